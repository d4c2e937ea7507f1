"""Published dataset layouts (LACP, HR-Pro) read in place, and the `gaussian` point scheme.

The acceptance check: one tiny benchmark written as LACP publishes it (rgb/flow halves, gt.json with string
times and no durations, fps_dict.json, split files, point_gaussian/point_labels.csv in native-fps frames) and
as pointtal's own layout trains to the same predictions and metrics.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_raw_config

from pointtal.cli import main
from pointtal.config import build_config
from pointtal.data.annotations import load_ground_truth
from pointtal.data.layouts import SplitFeatureStore, detect_layout, open_features
from pointtal.data.points import Point, simulate_points
from pointtal.engine.checkpoint import load_checkpoint
from pointtal.engine.logs import read_metrics
from pointtal.engine.setup import load_run_data
from pointtal.engine.trainer import train
from pointtal.errors import InputError

FPS, STRIDE = 25.0, 16  # feature rate of the tiny preset


def _native_fps(video_id: str) -> float:
    """Native frame rates as in THUMOS14's fps_dict.json: most 30, some 29.97, one 25."""
    return (30.0, 29.97, 25.0)[sum(map(ord, video_id)) % 3]


@pytest.fixture(scope="module")
def source(tiny_data):
    """The tiny benchmark as plain Python data: ground truth, features and gaussian training points."""
    gt = load_ground_truth(tiny_data / "annotations.json")
    features = {v: np.load(tiny_data / "features" / f"{v}.npy") for v in gt.videos}
    train_videos = gt.subset("validation")
    counts = {v.video_id: features[v.video_id].shape[0] for v in train_videos}
    points = simulate_points(train_videos, "gaussian", FPS, STRIDE, seed=3, snippet_counts=counts)
    frames = [(p, int(round(p.time_sec * _native_fps(p.video_id)))) for p in points]  # native-fps frame numbers
    return gt, features, frames


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


def write_lacp(root: Path, source, *, hrpro: bool = False) -> Path:
    """The benchmark in LACP's release layout (or HR-Pro's with `hrpro`): what their download unpacks to."""
    gt, features, frames = source
    split_of = {"validation": "train", "test": "test"}
    database = {}
    for video_id, video in gt.videos.items():
        split = split_of[video.subset]
        array = features[video_id]  # (T, 64)
        if hrpro:
            _save(root / "features" / split / f"{video_id}.npy", array)
        else:
            _save(root / "features" / split / "rgb" / f"{video_id}.npy", array[:, :32])
            _save(root / "features" / split / "flow" / f"{video_id}.npy", array[:, 32:])
        segments = [[i.start_sec, i.end_sec] for i in video.instances]
        entry = {
            "subset": "Validation" if split == "train" else "Test",
            "annotations": [
                {"segment": [repr(a), repr(b)] if not hrpro else [a, b], "label": i.label}
                for (a, b), i in zip(segments, video.instances, strict=True)
            ],
        }
        if hrpro:
            entry.update(duration=array.shape[0] * STRIDE / FPS, fps=_native_fps(video_id))
        database[video_id] = entry
    name = "gt_full.json" if hrpro else "gt.json"
    (root / name).write_text(json.dumps({"database": database}))
    for split in ("train", "test"):
        ids = [v for v in sorted(gt.videos) if split_of[gt.videos[v].subset] == split]
        (root / f"split_{split}.txt").write_text("".join(f"{v}\n" for v in ids))
    if not hrpro:
        (root / "fps_dict.json").write_text(json.dumps({v: _native_fps(v) for v in gt.videos}))
    classes = {c: i for i, c in enumerate(gt.classes)}
    header = (
        "class,start_frame,stop_frame,video_id,point"
        if hrpro
        else "class,class_index,start_frame,stop_frame,video_id,point"
    )
    lines = [header]
    for point, frame in frames:
        index = "" if hrpro else f"{classes[point.label]},"
        lines.append(f"{point.label},{index}{frame - 5},{frame + 5},{point.video_id},{frame}")
    csv = root / ("point_labels/point_gaussian.csv" if hrpro else "point_gaussian/point_labels.csv")
    csv.parent.mkdir(parents=True, exist_ok=True)
    csv.write_text("\n".join(lines) + "\n")
    return root


def write_pointtal(root: Path, source) -> Path:
    """The same data in pointtal's own layout: DIR/<id>.npy, ActivityNet JSON, seconds in an SF-Net CSV."""
    gt, features, frames = source
    database = {}
    for video_id, video in gt.videos.items():
        _save(root / "features" / f"{video_id}.npy", features[video_id])
        database[video_id] = {
            "subset": video.subset,
            "duration": features[video_id].shape[0] * STRIDE / FPS,
            "annotations": [{"segment": [i.start_sec, i.end_sec], "label": i.label} for i in video.instances],
        }
    (root / "annotations.json").write_text(json.dumps({"database": database}))
    lines = [f"{p.video_id},{frame / _native_fps(p.video_id):.6f},{p.label}\n" for p, frame in frames]
    (root / "points.csv").write_text("".join(lines))
    return root


def _raw(annotations: Path, features: Path, points: Path, method: str = "sfnet", steps: int = 8) -> dict:
    raw = tiny_raw_config(Path("unused"), method, steps=steps)
    raw["data"].update(annotations=str(annotations), features=str(features), points=str(points))
    return raw


# ------------------------------------------------------------------------------------ acceptance


def test_lacp_layout_trains_to_the_same_numbers_as_pointtal_layout(source, tmp_path):
    lacp = write_lacp(tmp_path / "THUMOS14", source)
    own = write_pointtal(tmp_path / "own", source)
    configs = {
        "lacp": build_config(_raw(lacp / "gt.json", lacp, lacp / "point_gaussian" / "point_labels.csv")),
        "own": build_config(_raw(own / "annotations.json", own / "features", own / "points.csv")),
    }
    data = {name: load_run_data(config) for name, config in configs.items()}
    for part in ("train", "test"):
        a, b = getattr(data["lacp"], part), getattr(data["own"], part)
        assert a.video_ids == b.video_ids
        for field in ("features", "video_labels", "point_labels", "truth_labels"):
            assert torch.equal(getattr(a, field), getattr(b, field)), (part, field)
    assert data["lacp"].train.point_labels[:, 1:].sum() == len(source[2])  # every gaussian point landed
    for name, config in configs.items():
        train(config, tmp_path / f"run_{name}", data=data[name])
    predictions = [json.loads((tmp_path / f"run_{n}" / "predictions.json").read_text()) for n in configs]
    assert predictions[0] == predictions[1]
    assert sum(len(v) for v in predictions[0]["results"].values()) > 0
    metrics = [read_metrics(tmp_path / f"run_{n}")[-1] for n in configs]
    assert {k: v for k, v in metrics[0].items() if "time" not in k and "sec" not in k} == {
        k: v for k, v in metrics[1].items() if "time" not in k and "sec" not in k
    }
    weights = [load_checkpoint(tmp_path / f"run_{n}" / "checkpoint.pt")["model"] for n in configs]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_hrpro_layout_gives_the_same_datasets_as_pointtal_layout(source, tmp_path):
    hrpro = write_lacp(tmp_path / "THUMOS14", source, hrpro=True)
    own = write_pointtal(tmp_path / "own", source)
    a = load_run_data(build_config(_raw(hrpro, hrpro / "features", hrpro / "point_labels" / "point_gaussian.csv")))
    b = load_run_data(build_config(_raw(own / "annotations.json", own / "features", own / "points.csv")))
    for part in ("train", "test"):
        x, y = getattr(a, part), getattr(b, part)
        assert x.video_ids == y.video_ids
        assert all(torch.equal(getattr(x, f), getattr(y, f)) for f in ("features", "point_labels", "truth_labels"))
    assert all(v.fps is None for v in a.gt.videos.values())  # native 30 fps never becomes the feature rate
    assert a.gt.frame_fps == {v: _native_fps(v) for v in a.gt.videos}


# ------------------------------------------------------------------------------------ detection


def test_layouts_are_detected_from_the_root_or_its_features_folder(source, tmp_path):
    lacp = write_lacp(tmp_path / "lacp", source)
    hrpro = write_lacp(tmp_path / "hrpro", source, hrpro=True)
    own = write_pointtal(tmp_path / "own", source)
    assert detect_layout(lacp).kind == detect_layout(lacp / "features").kind == "lacp"
    assert detect_layout(lacp).features == lacp / "features"
    assert detect_layout(hrpro).kind == detect_layout(hrpro / "features").kind == "hrpro"
    assert detect_layout(hrpro).splits == ("train", "test")
    assert detect_layout(own / "features").kind == detect_layout(own).kind == "pointtal"
    assert detect_layout(own).features == own / "features"


def test_lacp_store_joins_rgb_and_flow_and_hrpro_store_memory_maps(source, tmp_path):
    _, features, _ = source
    lacp = open_features(write_lacp(tmp_path / "lacp", source))
    hrpro = open_features(write_lacp(tmp_path / "hrpro", source, hrpro=True) / "features")
    assert isinstance(lacp, SplitFeatureStore) and isinstance(hrpro, SplitFeatureStore)
    assert lacp.ids() == hrpro.ids() == sorted(features)
    for video_id in ("video_validation_0001", "video_test_0003"):
        assert np.array_equal(lacp.load(video_id), features[video_id])
        loaded = hrpro.load(video_id)
        assert isinstance(loaded, np.memmap) and np.array_equal(loaded, features[video_id])
        assert lacp.n_snippets(video_id) == features[video_id].shape[0]
    assert "video_test_0003" in lacp and "video_test_9999" not in lacp
    with pytest.raises(InputError, match=r"no feature file for video 'video_test_9999' in train/ or test/"):
        lacp.load("video_test_9999")


def _expect_error(path, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern) as err:
        open_features(path)
    assert "\n" not in str(err.value)


def test_layout_errors_name_what_was_expected(source, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _expect_error(
        empty,
        r"empty: no feature files found; expected DIR/<video_id>\.npy \(pointtal\), "
        r"DIR/features/\{train,test\}/\{rgb,flow\}/<video_id>\.npy \(LACP\)",
    )
    _expect_error(tmp_path / "missing", "missing: feature directory not found")
    lacp = write_lacp(tmp_path / "lacp", source)
    (lacp / "features" / "test" / "flow" / "video_test_0002.npy").unlink()
    _expect_error(
        lacp,
        r"features/test/rgb: 1 video\(s\) have no file in the other stream folder "
        r"\(first: video_test_0002\)",
    )
    for path in (lacp / "features" / "test" / "flow").iterdir():
        path.unlink()
    (lacp / "features" / "test" / "flow").rmdir()
    _expect_error(lacp, r"features/test: has rgb/ but no flow/")
    hrpro = write_lacp(tmp_path / "hrpro", source, hrpro=True)
    _save(hrpro / "features" / "test" / "rgb" / "x.npy", np.ones((3, 4), np.float32))
    _save(hrpro / "features" / "test" / "flow" / "x.npy", np.ones((3, 4), np.float32))
    _expect_error(hrpro, "train/ and test/ hold different layouts")
    twice = write_lacp(tmp_path / "twice", source, hrpro=True)
    _save(twice / "features" / "test" / "video_validation_0001.npy", np.ones((3, 64), np.float32))
    _expect_error(twice, "video 'video_validation_0001' has features in both")


def test_rgb_and_flow_of_different_lengths_are_refused(source, tmp_path):
    lacp = write_lacp(tmp_path / "lacp", source)
    _save(lacp / "features" / "train" / "flow" / "video_validation_0002.npy", np.ones((7, 32), np.float32))
    store = open_features(lacp)
    with pytest.raises(
        InputError,
        match=r"video 'video_validation_0002' streams differ in length "
        r"\(rgb \(\d+, 32\), flow \(7, 32\)\); rgb and flow need the same",
    ):
        store.load("video_validation_0002")
    _save(lacp / "features" / "train" / "flow" / "video_validation_0002.npy", np.ones((7, 32), np.float32) * np.nan)
    with pytest.raises(
        InputError,
        match=r"flow/video_validation_0002.npy: video 'video_validation_0002' "
        r"features contain NaN",
    ):
        store.load("video_validation_0002")


# ------------------------------------------------------------------------------------ ground truth


def test_lacp_ground_truth_string_times_durations_from_features_and_split_subsets(source, tmp_path):
    gt, features, _ = source
    lacp = write_lacp(tmp_path / "lacp", source)
    raw = _raw(lacp, lacp, lacp / "point_gaussian" / "point_labels.csv")
    raw["data"].update(train_subset="train", test_subset="held_out")
    run = load_run_data(build_config(raw))
    assert run.gt.subsets == {"train", "held_out"}
    assert [v.video_id for v in run.gt.subset("held_out")] == [v.video_id for v in gt.subset("test")]
    for video_id, video in run.gt.videos.items():
        assert video.duration_sec == features[video_id].shape[0] * STRIDE / FPS
        assert video.fps is None
        assert [(i.start_sec, i.end_sec, i.label) for i in video.instances] == [
            (i.start_sec, i.end_sec, i.label) for i in gt.videos[video_id].instances
        ]
    assert run.gt.frame_fps == {v: _native_fps(v) for v in gt.videos}
    # LACP's own mapping: point frame * feature_fps / (native fps * 16), floored.
    _, _, frames = source
    rows = run.train.point_labels
    for point, frame in frames:
        v = run.train.video_ids.index(point.video_id)
        snippet = int(frame * FPS / (_native_fps(point.video_id) * STRIDE))
        assert rows[run.train.offsets[v] + snippet, run.gt.class_index[point.label]] == 1.0


def _lacp_gt_error(tmp_path, source, change, pattern: str) -> None:
    root = write_lacp(tmp_path / "lacp", source)
    change(root)
    with pytest.raises(InputError, match=pattern) as err:
        load_run_data(build_config(_raw(root / "gt.json", root, root / "point_gaussian" / "point_labels.csv")))
    assert "\n" not in str(err.value)


def _edit_gt(root: Path, edit) -> None:
    data = json.loads((root / "gt.json").read_text())
    edit(data["database"])
    (root / "gt.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    "change, pattern",
    [
        (
            lambda r: _edit_gt(r, lambda db: db["video_test_0001"]["annotations"][0].update(segment=["1.5", "abc"])),
            r"gt.json: video 'video_test_0001' annotation 0: segment time 'abc' is not a number",
        ),
        (
            lambda r: _edit_gt(r, lambda db: db["video_test_0001"]["annotations"][0].update(segment=["9.5", "2.0"])),
            r"gt.json: video 'video_test_0001' annotation 0: segment start 9.5 >= end 2.0",
        ),
        (
            lambda r: (r / "split_test.txt").write_text("video_test_0001\nvideo_test_0404\n"),
            r"split_test.txt line 2: video 'video_test_0404' is not in .*gt.json",
        ),
        (lambda r: (r / "split_train.txt").unlink(), r"split_train.txt: split file not found"),
        (
            lambda r: (r / "split_test.txt").write_text("video_validation_0001\n"),
            r"split_test.txt: video 'video_validation_0001' is listed in both split files",
        ),
        (
            lambda r: (r / "fps_dict.json").write_text('{"video_validation_0001": -30}'),
            r"fps_dict.json: video 'video_validation_0001': fps must be a positive number",
        ),
    ],
)
def test_bad_published_ground_truth_is_one_clear_error(tmp_path, source, change, pattern):
    _lacp_gt_error(tmp_path, source, change, pattern)


def test_lacp_points_need_a_native_fps(tmp_path, source):
    def drop_fps(root):
        (root / "fps_dict.json").write_text(json.dumps({"video_test_0001": 30.0}))

    _lacp_gt_error(tmp_path, source, drop_fps, r"point_labels.csv line 2: no valid fps for video")


def test_videos_without_duration_or_features_are_skipped_with_a_warning(tmp_path, source, caplog):
    root = write_lacp(tmp_path / "lacp", source)
    for stream in ("rgb", "flow"):
        (root / "features" / "test" / stream / "video_test_0002.npy").unlink()
    caplog.set_level(logging.WARNING)
    run = load_run_data(build_config(_raw(root / "gt.json", root, root / "point_gaussian" / "point_labels.csv")))
    assert "video_test_0002" not in run.gt.videos and "video_test_0001" in run.gt.videos
    assert any(
        "1 of 36 videos of the split files have no duration and no feature file" in r.getMessage()
        and "video_test_0002" in r.getMessage()
        for r in caplog.records
    )


def test_plain_ground_truth_without_split_files_is_read_as_before(tiny_data):
    run = load_run_data(build_config(tiny_raw_config(tiny_data, "weak")), train=False)
    assert run.gt.frame_fps is None and run.gt.subsets == {"validation", "test"}
    assert all(v.fps == 25.0 for v in run.gt.videos.values())


# ------------------------------------------------------------------------------------ gaussian scheme


def _video(start: float, end: float, label: str = "Jump", video_id: str = "v"):
    from pointtal.data.annotations import Instance, Video

    return Video(video_id, "validation", 10_000.0, None, (Instance(start, end, label),))


def test_gaussian_points_centre_on_the_instance_with_the_asked_spread():
    # 400 videos with one 1000 s instance: snippets (0.64 s) are fine against a 100 s std.
    videos = [_video(100.0 + i, 1100.0 + i, video_id=f"v{i:03d}") for i in range(400)]
    points = simulate_points(videos, "gaussian", FPS, STRIDE, seed=0, gaussian_std=0.1)
    assert len(points) == len(videos)
    offsets = np.array([(p.time_sec - (600.0 + int(p.video_id[1:]))) / 1000.0 for p in points])  # / length
    assert abs(offsets.mean()) < 3 * 0.1 / np.sqrt(len(offsets))  # centred (3 standard errors)
    assert 0.09 < offsets.std() < 0.11  # the asked relative std
    default = simulate_points(videos, "gaussian", FPS, STRIDE, seed=0)
    spread = np.array([(p.time_sec - (600.0 + int(p.video_id[1:]))) / 1000.0 for p in default])
    assert 0.008 < spread.std() < 0.012  # the measured protocol, std = length / 100


def test_gaussian_points_are_clipped_inside_their_instance_and_seeded():
    videos = [_video(50.0 + 3 * i, 60.0 + 3 * i, video_id=f"v{i:03d}") for i in range(300)]
    wide = simulate_points(videos, "gaussian", FPS, STRIDE, seed=1, gaussian_std=2.0)  # most draws fall outside
    times = np.array([p.time_sec for p in wide])
    starts = np.array([v.instances[0].start_sec for v in videos])
    assert np.all(times >= starts) and np.all(times <= starts + 10.0)
    snippet = STRIDE / FPS
    first, last = np.ceil(starts / snippet), np.floor((starts + 10.0) / snippet) - 1  # snippets fully inside
    on = np.floor(times / snippet)
    assert np.all((on >= first) & (on <= last))
    assert ((on == first) | (on == last)).mean() > 0.5  # clipping piles most draws on the end snippets
    assert wide == simulate_points(videos, "gaussian", FPS, STRIDE, seed=1, gaussian_std=2.0)
    assert wide != simulate_points(videos, "gaussian", FPS, STRIDE, seed=2, gaussian_std=2.0)
    assert all(isinstance(p, Point) and p.label == "Jump" for p in wide)


def test_annotate_cli_writes_gaussian_points_reproducibly(tiny_data, tmp_path, capsys):
    outs = [tmp_path / f"{name}.csv" for name in ("a", "b", "c")]
    for out, seed in zip(outs, (0, 0, 1), strict=True):
        assert (
            main(
                [
                    "annotate",
                    str(tiny_data / "annotations.json"),
                    "--scheme",
                    "gaussian",
                    "--subset",
                    "validation",
                    "--seed",
                    str(seed),
                    "--gaussian-std",
                    "0.05",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
    assert "scheme gaussian, seed 0" in capsys.readouterr().out
    assert outs[0].read_bytes() == outs[1].read_bytes() != outs[2].read_bytes()
    assert (
        main(
            [
                "annotate",
                str(tiny_data / "annotations.json"),
                "--scheme",
                "gaussian",
                "--gaussian-std",
                "0",
                "--out",
                str(outs[0]),
            ]
        )
        != 0
    )
