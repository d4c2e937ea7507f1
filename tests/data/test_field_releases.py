"""ActionFormer's and OpenTAD's THUMOS14 releases read as they are (issue 21, item 5), trained and evaluated on.

The tiny benchmark (features at 25 fps, stride 16: snippet i covers [0.64 i, 0.64 (i+1)) s) is written as each
release lays it out: features every 4 frames of a 6.25 fps video (the same 0.64 s), each step centred 8 frames
(1.28 s) into its window, so the release's clock runs 1.28 - 0.32 = 0.96 s ahead of pointtal's for the same
snippet. Read with the window offset, the releases give the same training data as pointtal's own layout, and
the detector trained on them predicts the same segments, 0.96 s later, in the release's own seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_raw_config

from pointtal.cli import main
from pointtal.config import build_config
from pointtal.data.annotations import load_ground_truth
from pointtal.data.features import SnippetGeometry
from pointtal.data.layouts import load_truth
from pointtal.data.layouts.actionformer import offset_frames
from pointtal.engine.logs import read_metrics
from pointtal.engine.setup import load_run_data
from pointtal.engine.trainer import train
from pointtal.errors import InputError
from pointtal.evaluation.protocol import excluded_videos

FPS, STRIDE = 6.25, 4  # the release's video rate and feature stride: a step every 0.64 s, as the tiny preset
SHIFT = 0.96  # seconds the release's clock runs ahead: its step centre (4 i + 8) / 6.25 vs pointtal's 0.64 i + 0.32
DETECTOR = dict(
    name="actionformer",
    embed_dim=16,
    head_dim=16,
    heads=2,
    window=5,
    pyramid_layers=2,
    regression_ranges=((0, 4), (4, 8), (8, 10000)),
    max_seq_len=48,
    warmup_epochs=0.5,
    ema=False,
)
OPENTAD_OUT = ("video_test_0000270", "video_test_0001292")


@pytest.fixture(scope="module")
def source(tiny_data):
    gt = load_ground_truth(tiny_data / "annotations.json")
    features = {v: np.load(tiny_data / "features" / f"{v}.npy") for v in gt.videos}
    return gt, features


def _instances(video, label_ids=None):
    out = []
    for inst in video.instances:
        entry = {"segment": [inst.start_sec + SHIFT, inst.end_sec + SHIFT], "label": inst.label}
        if label_ids is not None:
            entry["segment(frames)"] = [x * FPS for x in entry["segment"]]
            entry["label_id"] = label_ids[inst.label]
        out.append(entry)
    return out


def write_actionformer(root: Path, source) -> Path:
    """`data/thumos/` as ActionFormer's README unpacks it: annotations/thumos14.json and i3d_features/."""
    gt, features = source
    label_ids = {c: i for i, c in enumerate(gt.classes)}  # THUMOS14's label_id order is alphabetical
    database = {}
    for video_id, video in gt.videos.items():
        (root / "i3d_features").mkdir(parents=True, exist_ok=True)
        np.save(root / "i3d_features" / f"{video_id}.npy", features[video_id])
        database[video_id] = {
            "subset": video.subset.capitalize(),
            "duration": video.duration_sec + SHIFT,
            "fps": FPS,
            "annotations": _instances(video, label_ids),
        }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "thumos14.json").write_text(json.dumps({"version": "Thumos14-30fps", "database": database}))
    return root


def write_opentad(root: Path, source, order: tuple[str, ...], renamed: dict[str, str]) -> Path:
    """`data/thumos-14/` as OpenTAD lays it out: subsets training / validation, `frame` counts (fps = frame /
    duration), category_idx.txt, one Ambiguous instance per test video, the ActionFormer features."""
    gt, features = source
    folder = root / "features" / "i3d_actionformer_stride4_thumos"
    folder.mkdir(parents=True)
    database = {}
    for video_id, video in gt.videos.items():
        name = renamed.get(video_id, video_id)
        np.save(folder / f"{name}.npy", features[video_id])
        frames = int(np.ceil((video.duration_sec + SHIFT) * FPS))
        annotations = _instances(video)
        if video.subset == "test":
            annotations.append({"segment": [0.5, 1.5], "label": "Ambiguous"})
        database[name] = {
            "subset": "training" if video.subset == "validation" else "validation",
            "duration": frames / FPS,
            "frame": frames,
            "annotations": annotations,
        }
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "thumos_14_anno.json").write_text(json.dumps({"database": database}))
    (root / "annotations" / "category_idx.txt").write_text("".join(f"{c}\n" for c in order))
    return root


def _config(tiny_data, annotations, features, **data):
    raw = tiny_raw_config(tiny_data, "sfnet", steps=6)
    raw["method"] = dict(DETECTOR)
    raw["data"].pop("points")
    raw["data"].update(annotations=str(annotations), features=str(features), **data)
    raw["train"].update(lr=1e-3, weight_decay=0.05, grad_clip=1.0, eval_every=6)
    raw["eval"]["tiou"] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    return build_config(raw)


def test_the_release_geometry_centres_feature_step_i_at_i_stride_plus_8_frames():
    geometry = SnippetGeometry(30.0, STRIDE, offset_frames(STRIDE))
    steps = np.arange(5)
    centres = geometry.to_seconds(steps + 0.5)
    np.testing.assert_allclose(centres, (steps * 4 + 8) / 30.0)  # (i * stride + num_frames / 2) / fps
    np.testing.assert_array_equal(geometry.to_snippet((steps * 4 + 8) / 30.0), steps)
    assert geometry.to_snippet(8 / 30.0 - 2.01 / 30) == -1  # before step 0's snippet: the reader clips it


def _on_boundaries(dataset, gt) -> int:
    """Instance ends that fall on a snippet boundary (time x 25 / 16 an integer): the release's clock reaches
    them by other float operations, so the snippet label there may differ by one row (of the logging-only
    per-snippet truth)."""
    units = [t * 25 / 16 for v in dataset.video_ids for i in gt.videos[v].instances for t in (i.start_sec, i.end_sec)]
    return sum(abs(u - round(u)) < 1e-9 for u in units)


def _same_data(a, b, shift: float = 0.0, gt=None):
    assert a.video_ids == b.video_ids
    for field in ("features", "video_labels"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    differ = int((a.truth_labels != b.truth_labels).any(1).sum())
    assert differ <= (_on_boundaries(b, gt) if gt is not None else 0)
    if a.segments is not None:
        np.testing.assert_allclose(a.segments.start, b.segments.start, atol=1e-9)
        np.testing.assert_allclose(a.segments.end, b.segments.end, atol=1e-9)
        np.testing.assert_allclose(a.segments.start_sec, b.segments.start_sec + shift, atol=1e-9)
        np.testing.assert_array_equal(a.segments.label, b.segments.label)


def test_actionformer_release_trains_and_evaluates_like_pointtal_layout(tiny_data, source, tmp_path, capsys):
    root = write_actionformer(tmp_path / "thumos", source)
    configs = {
        "release": _config(tiny_data, root / "annotations" / "thumos14.json", root / "i3d_features", stride=STRIDE),
        "own": _config(tiny_data, tiny_data / "annotations.json", tiny_data / "features"),
    }
    data = {name: load_run_data(config) for name, config in configs.items()}
    assert data["release"].gt.classes == source[0].classes
    assert all(v.fps == FPS and v.offset_frames == 6.0 for v in data["release"].gt.videos.values())
    _same_data(data["release"].train, data["own"].train, SHIFT, source[0])
    _same_data(data["release"].test, data["own"].test, gt=source[0])
    for name, config in configs.items():
        train(config, tmp_path / name, data=data[name])
    runs = {n: json.loads((tmp_path / n / "predictions.json").read_text())["results"] for n in configs}
    assert sum(len(v) for v in runs["own"].values()) > 0
    for video_id, own in runs["own"].items():
        mine = runs["release"][video_id]
        assert [e["label"] for e in mine] == [e["label"] for e in own]
        np.testing.assert_allclose([e["score"] for e in mine], [e["score"] for e in own], atol=1e-5)
        np.testing.assert_allclose([e["segment"] for e in mine], [np.add(e["segment"], SHIFT) for e in own], atol=1e-4)
    metrics = {n: read_metrics(tmp_path / n)[-1] for n in configs}
    for key in ("average", "average_0.3_0.7", "mAP@0.5"):
        assert metrics["release"][key] == pytest.approx(metrics["own"][key], abs=1e-6)
    # `pointtal evaluate` reads the release's annotation file as it is and shows both field averages
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                str(root / "annotations" / "thumos14.json"),
                str(tmp_path / "release" / "predictions.json"),
                "--subset",
                "test",
                "--json",
                str(tmp_path / "m.json"),
            ]
        )
        == 0
    )
    shown = json.loads((tmp_path / "m.json").read_text())["averages"]
    assert shown["avg 0.1:0.7"] == pytest.approx(metrics["own"]["average"], abs=1e-6)
    assert shown["avg 0.3:0.7"] == pytest.approx(metrics["own"]["average_0.3_0.7"], abs=1e-6)
    out = capsys.readouterr().out
    assert "avg 0.1:0.7" in out and "avg 0.3:0.7" in out


def test_opentad_release_reads_its_classes_subsets_and_fps_and_drops_two_test_videos(tiny_data, source, tmp_path):
    gt = source[0]
    order = tuple(reversed(gt.classes))  # category_idx.txt decides the class columns
    tests = [v for v in sorted(gt.videos) if gt.videos[v].subset == "test"]
    renamed = dict(zip(tests[:2], OPENTAD_OUT, strict=True))
    root = write_opentad(tmp_path / "thumos-14", source, order, renamed)
    annotations = root / "annotations" / "thumos_14_anno.json"
    truth = load_truth(annotations)
    assert truth.classes == order and "Ambiguous" not in truth.classes
    assert {v.subset for v in truth.videos.values()} == {"validation", "test"}  # training / validation by role
    video = truth.videos[OPENTAD_OUT[0]]
    assert video.fps == pytest.approx(FPS) and video.offset_frames == 6.0
    assert len(video.instances) == len(gt.videos[tests[0]].instances)  # Ambiguous dropped
    assert excluded_videos(["thumos14-opentad"]) == OPENTAD_OUT
    assert excluded_videos(["thumos14-lacp"]) == excluded_videos(["thumos14-hrpro"]) == excluded_videos(["thumos14"])

    class_list = tmp_path / "classes.txt"
    class_list.write_text("".join(f"{c}\n" for c in order))
    config = _config(
        tiny_data,
        annotations,
        root / "features" / "i3d_actionformer_stride4_thumos",
        stride=STRIDE,
        exclude_videos=("thumos14-opentad",),
    )
    release = load_run_data(config)
    own = load_run_data(
        _config(
            tiny_data,
            tiny_data / "annotations.json",
            tiny_data / "features",
            class_list=str(class_list),
            exclude_videos=tuple(tests[:2]),
        )
    )
    assert release.protocol.exclude_videos == OPENTAD_OUT and len(release.test) == len(tests) - 2
    _same_data(release.train, own.train, SHIFT, gt)
    _same_data(release.test, own.test, gt=gt)
    # trained on the release, evaluated by `pointtal evaluate` on its annotation file under the recorded protocol
    train(config, tmp_path / "run", data=release)
    final = read_metrics(tmp_path / "run")[-1]
    assert (
        main(
            [
                "evaluate",
                str(annotations),
                str(tmp_path / "run" / "predictions.json"),
                "--subset",
                "test",
                "--json",
                str(tmp_path / "m.json"),
            ]
        )
        == 0
    )
    scored = json.loads((tmp_path / "m.json").read_text())
    assert scored["exclude_videos"] == list(OPENTAD_OUT)
    assert scored["averages"]["avg 0.1:0.7"] == pytest.approx(final["average"], abs=1e-6)
    assert scored["averages"]["avg 0.3:0.7"] == pytest.approx(final["average_0.3_0.7"], abs=1e-6)


def test_a_release_whose_label_ids_disagree_is_refused_naming_the_video(tiny_data, source, tmp_path):
    root = write_actionformer(tmp_path / "thumos", source)
    path = root / "annotations" / "thumos14.json"
    doc = json.loads(path.read_text())
    entry = next(e for e in doc["database"].values() if e["annotations"])
    entry["annotations"][0]["label_id"] += 10  # one instance's class column disagrees with the others'
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"video '.*': label '.*' has label_id \d+ here and \d+ elsewhere"):
        load_truth(path)


def test_run_tables_name_both_field_averages_and_show_one_where_they_are_one():
    from pointtal.engine.report import _metrics_table

    records = [
        {"step": 5, "mAP@0.5": 30.0, "average": 40.0, "average_0.3_0.7": 33.0},
        {"step": 10, "mAP@0.5": 35.0, "average": 45.0, "average_0.3_0.7": 38.0},
    ]
    table = _metrics_table(records, (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7))
    assert table[0] == "| step | mAP@0.5 | avg 0.1:0.7 | avg 0.3:0.7 |"
    assert table[3] == "| **10** (best) | 35.00 | 45.00 | 38.00 |"
    detector = _metrics_table(
        [{k: v for k, v in r.items() if k != "mAP@0.5"} for r in records], (0.3, 0.4, 0.5, 0.6, 0.7)
    )
    assert detector[0] == "| step | avg 0.3:0.7 |" and detector[2] == "| 5 | 40.00 |"


def test_pointtal_pseudo_labels_and_other_strides_get_no_window_offset(tiny_data, source, tmp_path, caplog):
    from pointtal.data.layouts import Subsets

    root = write_actionformer(tmp_path / "thumos", source)
    path = root / "annotations" / "thumos14.json"
    doc = json.loads(path.read_text())
    pseudo = tmp_path / "pseudo.json"  # what `pointtal predict --pseudo-labels` writes: label_id on every instance
    pseudo.write_text(json.dumps({"version": "pointtal pseudo-labels", "pseudo_labels": {"run": "r"}, **doc}))
    assert {v.offset_frames for v in load_truth(pseudo).videos.values()} == {0.0}
    assert {v.offset_frames for v in load_truth(path, names=Subsets(stride=STRIDE)).videos.values()} == {6.0}
    with caplog.at_level("WARNING"):
        other = load_truth(path, names=Subsets(stride=16))
    assert {v.offset_frames for v in other.videos.values()} == {0.0}
    assert "without the release's window offset" in caplog.text
