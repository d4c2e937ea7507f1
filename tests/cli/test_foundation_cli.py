"""Acceptance tests of the foundation through the command line: real annotations, the synth -> annotate ->
evaluate round trip, reproducibility, and one clear stderr line (never a traceback) for every bad input."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from pointtal.cli import main
from pointtal.data.annotations import load_ground_truth
from pointtal.data.dataset import build_dataset
from pointtal.data.features import FeatureStore, validate_features
from pointtal.data.points import read_points
from pointtal.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "pointtal" / "data" / "vendor"
SHARED = Path("/work/shared/datasets")
THUMOS_GT = VENDOR / "thumos14" / "groundtruth.json"
GTEA_GT = VENDOR / "gtea" / "groundtruth.json"


def one_error_line(capsys, command: str) -> str:
    """The single stderr line of a failed command (and nothing that looks like a traceback)."""
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"pointtal {command}: error: "), lines[0]
    return lines[0]


def outside_count(points, videos, fps: float, stride: int) -> int:
    """Points of known videos whose snippet floor(t*fps/stride) is past the video's last snippet,
    computed here independently of pointtal.data.points.map_points."""
    n = 0
    for p in points:
        video = videos.get(p.video_id)
        if video is None:
            continue
        rate = (video.fps or fps) / stride
        if math.floor(p.time_sec * rate + 1e-9) >= max(1, math.floor(video.duration_sec * rate)):
            n += 1
    return n


# ------------------------------------------------------------------------------- real annotations


def test_vendored_annotations_equal_the_shared_copies():
    if not SHARED.is_dir():
        pytest.skip("/work/shared/datasets not mounted")
    for name in ("thumos14", "gtea"):
        shared = sorted(p.name for p in (SHARED / name).iterdir())
        assert shared == sorted(p.name for p in (VENDOR / name).iterdir())
        for file in shared:
            assert (SHARED / name / file).read_bytes() == (VENDOR / name / file).read_bytes(), file


def test_thumos14_ground_truth_subsets_and_classes():
    gt = load_ground_truth(THUMOS_GT)
    assert len(gt.subset("validation")) == 200 and len(gt.subset("test")) == 212
    assert len(gt.videos) == 412 and gt.subsets == {"validation", "test"}
    assert len(gt.classes) == 20 and list(gt.classes) == sorted(gt.classes)
    assert {"HighJump", "BaseballPitch", "VolleyballSpiking"} <= set(gt.classes)
    assert all(inst.label in gt.classes for v in gt.videos.values() for inst in v.instances)


@pytest.mark.parametrize(
    "dataset, annotator, fps, n_classes, subsets",
    [("thumos14", k, 25, 20, {"validation": 200, "test": 212}) for k in (1, 2, 3, 4)]
    + [("gtea", k, 15, 7, {"training": 21, "validation": 7}) for k in (1, 2, 3, 4)]
    + [("beoid", k, 30, 34, {"training": 46, "validation": 12}) for k in (1, 2, 3, 4)],
)
def test_cli_check_maps_each_click_file(capsys, dataset, annotator, fps, n_classes, subsets):
    gt_path = VENDOR / dataset / "groundtruth.json"
    clicks = VENDOR / dataset / f"points_annotator{annotator}.csv"
    gt = load_ground_truth(gt_path)
    assert len(gt.classes) == n_classes
    assert {s: len(gt.subset(s)) for s in subsets} == subsets
    if dataset in ("gtea", "beoid"):
        assert {v.fps for v in gt.videos.values()} == {fps}
    assert main(["annotate", str(gt_path), "--check", str(clicks), "--fps", str(fps), "--stride", "16"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    points = read_points(clicks)
    outside = outside_count(points, gt.videos, fps, 16)
    unknown = sum(p.video_id not in gt.videos for p in points)
    mapped = len(points) - outside - unknown
    n_videos = len({p.video_id for p in points if p.video_id in gt.videos})
    assert out[0] == (
        f"{clicks}: {len(points)} points, {mapped} mapped, {outside} outside video, "
        f"{unknown} unknown video, {n_videos} videos"
    )
    if dataset == "thumos14":
        assert outside > 0  # the THUMOS14 clicks run past a few ground-truth durations
    else:
        assert outside == 0 and unknown == 0


def test_cli_check_strict_refuses_the_thumos14_clicks_beyond_a_video(capsys):
    clicks = VENDOR / "thumos14" / "points_annotator1.csv"
    assert main(["annotate", str(THUMOS_GT), "--check", str(clicks), "--strict"]) == 2
    line = one_error_line(capsys, "annotate")
    assert "points_annotator1.csv" in line and "video_validation_0000311" in line and "beyond the video" in line


# ------------------------------------------------------------------- synth -> annotate -> evaluate


def file_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def synth_th14(tmp_path_factory):
    """`pointtal synth --preset thumos14 --dim 64` twice with the same seed (about 1 s each)."""
    base = tmp_path_factory.mktemp("synth_th14")
    for name in ("a", "b"):
        assert (
            main(["synth", str(base / name), "--preset", "thumos14", "--dim", "64", "--seed", "0", "--no-progress"])
            == 0
        )
    return base


@pytest.mark.slow  # THUMOS-size synthetic data
def test_synth_same_seed_gives_byte_identical_files(synth_th14):
    a, b = file_hashes(synth_th14 / "a"), file_hashes(synth_th14 / "b")
    assert a == b
    assert "annotations.json" in a and sum(k.startswith("features/") for k in a) == 412
    assert sum(k.startswith("points/") for k in a) == 4
    x = np.load(synth_th14 / "a" / "features" / "video_test_0000896.npy")
    assert x.dtype == np.float32 and x.shape[1] == 64 and np.isfinite(x).all()


@pytest.mark.slow  # THUMOS-size synthetic data
def test_synth_annotate_evaluate_round_trip(synth_th14, tmp_path, capsys):
    gt_path = synth_th14 / "a" / "annotations.json"
    gt = load_ground_truth(gt_path)
    assert len(gt.subset("validation")) == 200 and len(gt.subset("test")) == 212 and len(gt.classes) == 20

    # simulated points: same seed -> identical bytes, every point maps onto a snippet of a validation video
    outs = [tmp_path / f"points_{k}.csv" for k in range(2)]
    for out in outs:
        assert (
            main(
                [
                    "annotate",
                    str(gt_path),
                    "--scheme",
                    "sfnet-uniform",
                    "--subset",
                    "validation",
                    "--fps",
                    "25",
                    "--stride",
                    "16",
                    "--seed",
                    "3",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
    assert outs[0].read_bytes() == outs[1].read_bytes()
    n_instances = sum(len(v.instances) for v in gt.subset("validation"))
    points = read_points(outs[0])
    assert outs[0].read_text().count("\n") == len(points)  # one CSV line per point, no header
    assert 0.99 * n_instances <= len(points) <= n_instances  # one per instance (a few start past the end)
    capsys.readouterr()
    assert main(["annotate", str(gt_path), "--check", str(outs[0]), "--subset", "validation", "--strict"]) == 0
    assert f"{len(points)} mapped, 0 outside video, 0 unknown video" in capsys.readouterr().out

    # the test ground truth written as its own predictions scores 100 at every tIoU
    results: dict = {}
    for video in gt.subset("test"):
        results[video.video_id] = [
            {"label": i.label, "score": 1.0, "segment": [i.start_sec, i.end_sec]} for i in video.instances
        ]
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"version": "test", "external_data": {}, "results": results}))
    metrics = tmp_path / "metrics.json"
    assert main(["evaluate", str(gt_path), str(pred), "--subset", "test", "--json", str(metrics)]) == 0
    doc = json.loads(metrics.read_text())
    assert doc["tiou"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert doc["map"] == pytest.approx([100.0] * 7, abs=1e-9) and doc["average"] == pytest.approx(100.0, abs=1e-9)
    assert len(doc["per_class"]) == 20  # a class's AP sums 1/n_gt steps: 100 up to rounding, as officially
    assert all(ap == pytest.approx([100.0] * 7, abs=1e-9) for ap in doc["per_class"].values())
    assert capsys.readouterr().out.count("100.00") == 9  # 7 thresholds + 2 averages


# ------------------------------------------------------------------------------ one-line CLI errors

GT_OK = {
    "database": {
        "v1": {
            "subset": "validation",
            "duration": 30.0,
            "annotations": [{"segment": [2.0, 6.0], "label": "Jump"}, {"segment": [12.0, 20.0], "label": "Run"}],
        },
        "t1": {"subset": "test", "duration": 9.0, "annotations": [{"segment": [1.0, 4.0], "label": "Run"}]},
    }
}


def _gt_with(segment) -> str:
    broken = json.loads(json.dumps(GT_OK))
    broken["database"]["t1"]["annotations"][0]["segment"] = segment
    return json.dumps(broken)


# (id, ground truth text or None for a missing file, clicks text, extra argv, texts the line must hold)
ANNOTATE_CASES = [
    ("missing-gt", None, "v1,1.0,Jump\n", [], ["gt.json", "not found"]),
    (
        "malformed-json",
        '{"database": {"v1": {"duration": 3',
        "v1,1.0,Jump\n",
        [],
        ["gt.json", "malformed JSON", "line 1"],
    ),
    (
        "segment-start-after-end",
        _gt_with([4.0, 1.0]),
        "v1,1.0,Jump\n",
        [],
        ["gt.json", "video 't1'", "start 4.0 >= end 1.0"],
    ),
    ("segment-zero-length", _gt_with([2.0, 2.0]), "v1,1.0,Jump\n", [], ["video 't1'", "start 2.0 >= end 2.0"]),
    ("missing-clicks", json.dumps(GT_OK), None, [], ["clicks.csv", "not found"]),
    (
        "label-not-a-class",
        json.dumps(GT_OK),
        "v1,1.0,Jump\nv1,2.0,Swim\n",
        [],
        ["clicks.csv", "video 'v1'", "label 'Swim'"],
    ),
    (
        "negative-time",
        json.dumps(GT_OK),
        "v1,1.0,Jump\nv1,-0.5,Run\n",
        [],
        ["clicks.csv", "line 2", "video 'v1'", "negative time '-0.5'"],
    ),
    (
        "time-beyond-video",
        json.dumps(GT_OK),
        "v1,1.0,Jump\nt1,9.5,Run\n",
        ["--strict"],
        ["clicks.csv", "video 't1'", "9.500 s", "beyond the video"],
    ),
    (
        "huge-time-beyond-video",
        json.dumps(GT_OK),
        "v1,1e300,Jump\n",
        ["--strict"],
        ["clicks.csv", "video 'v1'", "beyond the video"],
    ),
    (
        "wrong-field-count",
        json.dumps(GT_OK),
        "v1,1.0,Jump\nv1,2.0,Run,extra\n",
        [],
        ["clicks.csv", "line 2", "expected 3 fields", "got 4"],
    ),
    (
        "video-not-in-gt",
        json.dumps(GT_OK),
        "v1,1.0,Jump\nv9,2.0,Run\n",
        ["--strict"],
        ["clicks.csv", "video 'v9'", "not in the ground truth"],
    ),
    ("non-utf8-clicks", json.dumps(GT_OK), b"v1,1.0,Jump\nv1,2.0,R\xe9un\n", [], ["clicks.csv", "line 2", "not UTF-8"]),
]


@pytest.mark.parametrize(
    "gt_text, clicks, extra, expected", [c[1:] for c in ANNOTATE_CASES], ids=[c[0] for c in ANNOTATE_CASES]
)
def test_annotate_bad_input_is_one_line(tmp_path, capsys, gt_text, clicks, extra, expected):
    gt_path, clicks_path = tmp_path / "gt.json", tmp_path / "clicks.csv"
    if gt_text is not None:
        gt_path.write_text(gt_text)
    if clicks is not None:
        clicks_path.write_bytes(clicks if isinstance(clicks, bytes) else clicks.encode())
    code = main(["annotate", str(gt_path), "--check", str(clicks_path), *extra])
    assert code != 0
    line = one_error_line(capsys, "annotate")
    for text in expected:
        assert text in line, (text, line)


def test_without_strict_beyond_and_unknown_points_are_counted_not_errors(tmp_path, capsys):
    gt_path, clicks = tmp_path / "gt.json", tmp_path / "clicks.csv"
    gt_path.write_text(json.dumps(GT_OK))
    clicks.write_text("v1,1.0,Jump\nt1,9.5,Run\nv1,1e300,Jump\nv9,2.0,Run\n")
    assert main(["annotate", str(gt_path), "--check", str(clicks)]) == 0
    out = capsys.readouterr().out
    assert "4 points, 1 mapped, 2 outside video, 1 unknown video" in out


EVALUATE_CASES = [
    ("missing-predictions", None, ["pred.json", "not found"]),
    ("malformed-json", '{"results": {"t1": [', ["pred.json", "malformed JSON"]),
    (
        "reversed-segment",
        '{"results": {"t1": [{"label": "Run", "score": 0.5, "segment": [3, 1]}]}}',
        ["pred.json", "video 't1'", "prediction 0", "start 3.0 >= end 1.0"],
    ),
    (
        "nan-score",
        '{"results": {"t1": [{"label": "Run", "score": NaN, "segment": [1, 3]}]}}',
        ["pred.json", "video 't1'", "score", "nan"],
    ),
    (
        "label-not-a-class",
        '{"results": {"t1": [{"label": "Swim", "score": 0.5, "segment": [1, 3]}]}}',
        ["pred.json", "video 't1'", "unknown label 'Swim'"],
    ),
    ("duplicate-video", '{"results": {"t1": [], "t1": []}}', ["pred.json", "'t1'", "twice"]),
]


@pytest.mark.parametrize("predictions, expected", [c[1:] for c in EVALUATE_CASES], ids=[c[0] for c in EVALUATE_CASES])
def test_evaluate_bad_input_is_one_line(tmp_path, capsys, predictions, expected):
    gt_path, pred = tmp_path / "gt.json", tmp_path / "pred.json"
    gt_path.write_text(json.dumps(GT_OK))
    if predictions is not None:
        pred.write_text(predictions)
    assert main(["evaluate", str(gt_path), str(pred)]) != 0
    line = one_error_line(capsys, "evaluate")
    for text in expected:
        assert text in line, (text, line)


def test_debug_shows_the_exception_instead(tmp_path):
    with pytest.raises(InputError, match="not found"):
        main(["--debug", "evaluate", str(tmp_path / "gt.json"), str(tmp_path / "pred.json")])


# ------------------------------------------------------------- feature errors (library, then CLI line)


def _features_dir(tmp_path: Path, arrays: dict[str, np.ndarray]) -> Path:
    root = tmp_path / "features"
    root.mkdir()
    for video_id, array in arrays.items():
        np.save(root / f"{video_id}.npy", array)
    return root


def _ground_truth(tmp_path: Path, video_ids) -> Path:
    database = {
        v: {"subset": "validation", "duration": 10.0, "annotations": [{"segment": [1.0, 3.0], "label": "Jump"}]}
        for v in video_ids
    }
    path = tmp_path / "gt_features.json"
    path.write_text(json.dumps({"database": database}))
    return path


def _good(t: int = 6, d: int = 8) -> np.ndarray:
    return np.random.default_rng(t).random((t, d), dtype=np.float32)


def _with(value) -> np.ndarray:
    x = _good()
    x[2, 3] = value
    return x


@pytest.mark.parametrize(
    "arrays, bad_video, expected",
    [
        ({"va": _good(), "vb": _with(np.nan)}, "vb", "NaN or inf"),
        ({"va": _good(), "vb": _with(np.inf)}, "vb", "NaN or inf"),
        ({"va": _good(), "vb": _with(-np.inf)}, "vb", "NaN or inf"),
        ({"va": _good(d=8), "vb": _good(d=10)}, "vb", "10 wide but other videos are 8"),
    ],
    ids=["nan", "inf", "minus-inf", "widths-differ"],
)
def test_feature_errors_name_file_and_video(tmp_path, capsys, monkeypatch, arrays, bad_video, expected):
    root = _features_dir(tmp_path, arrays)
    store = FeatureStore(root)
    for video_id in arrays:
        if video_id == bad_video:
            with pytest.raises(InputError) as store_err:
                store.load(video_id)
        else:
            store.load(video_id)
    gt = load_ground_truth(_ground_truth(tmp_path, arrays))
    with pytest.raises(InputError) as dataset_err:
        build_dataset(gt, "validation", FeatureStore(root), 25.0, 16)
    for err in (store_err, dataset_err):
        message = str(err.value)
        assert f"{root / bad_video}.npy" in message and f"video '{bad_video}'" in message
        assert expected in message and "\n" not in message
    if expected.startswith("NaN"):
        with pytest.raises(InputError, match=f"video '{bad_video}'.*NaN or inf"):
            validate_features(arrays[bad_video], bad_video, root / f"{bad_video}.npy")

    # the CLI prints such an error as one line (train/predict reach build_dataset through the same path)
    import pointtal.cli.evaluate as evaluate_cli

    def run(args):
        build_dataset(gt, "validation", FeatureStore(root), 25.0, 16)

    monkeypatch.setattr(evaluate_cli, "run", run)
    assert main(["evaluate", "gt.json", "pred.json"]) == 2
    line = one_error_line(capsys, "evaluate")
    assert f"video '{bad_video}'" in line and expected in line


@pytest.mark.parametrize("video_id", ["../x", "../../etc/passwd", "/etc/passwd", "a/b", "..", "x\x00y"])
def test_video_id_escaping_the_feature_directory_is_refused(tmp_path, video_id):
    root = _features_dir(tmp_path, {"va": _good()})
    (tmp_path / "x.npy").write_bytes((root / "va.npy").read_bytes())  # a real file one level up
    store = FeatureStore(root)
    with pytest.raises(InputError, match="cannot be a feature file name") as err:
        store.load(video_id)
    assert repr(video_id) in str(err.value) and str(root) in str(err.value)
    gt = load_ground_truth(_ground_truth(tmp_path, ["va", video_id]))
    with pytest.raises(InputError, match="cannot be a feature file name") as err:
        build_dataset(gt, "validation", store, 25.0, 16)
    assert repr(video_id) in str(err.value)
