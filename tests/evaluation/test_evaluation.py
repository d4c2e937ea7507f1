"""Evaluation: the fast evaluators against a transcription of the official code, and by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from pointtal.cli import main
from pointtal.data.annotations import load_ground_truth
from pointtal.errors import InputError
from pointtal.evaluation import (
    ANET_TIOUS,
    FRAME_DISTANCES,
    THUMOS_TIOUS,
    PointTable,
    SegmentTable,
    average_precision,
    classification_map,
    frame_map,
    load_ambiguous,
    load_frame_predictions,
    load_segment_predictions,
    matching,
    segment_map,
    segment_tiou,
    video_classification_ap,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_eval import reference_map  # noqa: E402

VENDOR = Path(__file__).resolve().parents[2] / "pointtal" / "data" / "vendor" / "thumos14"
GT_PATH = VENDOR / "groundtruth.json"
AMBIGUOUS_PATH = VENDOR / "ambiguous_test.txt"


@pytest.fixture(scope="module")
def thumos():
    """THUMOS14 test ground truth: (GroundTruth, SegmentTable, rows as tuples)."""
    gt = load_ground_truth(GT_PATH)
    videos = gt.subset("test")
    rows = [(v.video_id, i.start_sec, i.end_sec, i.label) for v in videos for i in v.instances]
    return gt, SegmentTable.from_ground_truth(videos, gt.classes), rows


def _random_segments(rng, gt_rows, classes, n, skip_classes=()):
    """Jittered copies of ground truth, wrong labels, unknown and validation videos, coarse values (ties)."""
    rows = []
    for k in rng.integers(0, len(gt_rows), n):
        video, start, end, label = gt_rows[k]
        if rng.random() < 0.15:
            label = classes[rng.integers(len(classes))]
        if label in skip_classes:
            continue
        if rng.random() < 0.05:
            video = ["video_unknown_1", "video_validation_0000051"][rng.integers(2)]
        length = end - start
        a = round(start + rng.normal(0, 0.4) * length, 1)
        b = round(end + rng.normal(0, 0.4) * length, 1)
        if b <= a:
            b = a + 0.1
        rows.append((video, a, b, label, round(float(rng.random()), 2)))  # 2 decimals: many score ties
    return rows


def _segments(rows, classes):
    return SegmentTable.from_columns(*zip(*rows, strict=True), classes=classes)


def _assert_equal_reference(result, gt_rows, pred_rows, frames=False):
    classes, ref_ap = reference_map(gt_rows, pred_rows, list(result.thresholds), frames=frames)
    assert sorted(classes) == sorted(result.classes)
    fast_ap = result.ap[:, [result.classes.index(c) for c in classes]]
    np.testing.assert_allclose(fast_ap, ref_ap, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.map, ref_ap.mean(axis=1), rtol=0, atol=1e-12)


# ---------------------------------------------------------------- fast == official transcription


@pytest.mark.parametrize("seed", range(5))
def test_segment_map_equals_reference_on_thumos14(thumos, seed):
    gt, table, gt_rows = thumos
    rng = np.random.default_rng(seed)
    skip = tuple(gt.classes[i] for i in rng.choice(len(gt.classes), 2, replace=False))  # no predictions
    rows = _random_segments(rng, gt_rows, gt.classes, 1500, skip_classes=skip)
    result = segment_map(table, _segments(rows, gt.classes), THUMOS_TIOUS)
    assert result.ap.shape == (7, 20)
    for name in skip:
        assert np.all(result.per_class[name] == 0)
    assert result.counts["predictions_unknown_video"] > 0
    assert 0.05 < result.map[0] < 1
    _assert_equal_reference(result, gt_rows, rows)


@pytest.mark.parametrize("mode", ["rounds", "sequential", "presolve+rounds", "presolve+sequential"])
def test_every_matching_strategy_equals_reference(thumos, monkeypatch, mode):
    """Force each path of greedy_match (single-pair presolve on/off, parallel rounds or the plain loop)."""
    gt, table, gt_rows = thumos
    monkeypatch.setattr(matching, "_PRESOLVE_SINGLE", mode.startswith("presolve"))
    if mode.endswith("rounds"):
        monkeypatch.setattr(matching, "_SEQUENTIAL_PAIRS", 0)
        monkeypatch.setattr(matching, "_MIN_ROUND_GAIN", 0.0)
    else:
        monkeypatch.setattr(matching, "_SEQUENTIAL_PAIRS", 10**12)
    rows = _random_segments(np.random.default_rng(11), gt_rows, gt.classes, 1500)
    _assert_equal_reference(segment_map(table, _segments(rows, gt.classes), ANET_TIOUS), gt_rows, rows)


@pytest.mark.parametrize("presolve", [True, False])
@pytest.mark.parametrize("seed", range(20))
def test_dense_ties_equal_reference(monkeypatch, seed, presolve):
    """Tiny integer grids: duplicate and nested ground truth, equal tIoUs, equal scores everywhere."""
    monkeypatch.setattr(matching, "_SEQUENTIAL_PAIRS", 0)
    monkeypatch.setattr(matching, "_MIN_ROUND_GAIN", 0.0)
    monkeypatch.setattr(matching, "_PRESOLVE_SINGLE", presolve)
    rng = np.random.default_rng(100 + seed)

    def segment():
        a = int(rng.integers(0, 10))
        return a, a + int(rng.integers(1, 5))

    gt_rows = [(f"v{rng.integers(2)}", *segment(), f"c{rng.integers(2)}") for _ in range(20)]
    pred_rows = [(f"v{rng.integers(3)}", *segment(), f"c{rng.integers(3)}", int(rng.integers(3))) for _ in range(80)]
    classes = ["c0", "c1", "c2"]
    gt_table = SegmentTable.from_columns(*zip(*gt_rows, strict=True), None, classes=classes)
    result = segment_map(gt_table, _segments(pred_rows, classes), (0.1, 0.25, 1 / 3, 0.5, 0.75, 1.0))
    _assert_equal_reference(result, gt_rows, pred_rows)


@pytest.mark.parametrize("seed", range(2))
def test_frame_map_equals_reference_on_thumos14(thumos, seed):
    gt, table, gt_rows = thumos
    rng = np.random.default_rng(seed)
    rows = []
    for k in rng.integers(0, len(gt_rows), 1500):
        video, start, end, label = gt_rows[k]
        if rng.random() < 0.1:
            label = gt.classes[rng.integers(len(gt.classes))]
        rows.append(
            (video, round(start + (end - start) * rng.uniform(-0.3, 1.3), 1), label, round(float(rng.random()), 2))
        )
    result = frame_map(table, PointTable.from_columns(*zip(*rows, strict=True), classes=gt.classes))
    assert result.criterion == "distance"
    assert 0 < result.map[0] < result.map[-1] < 1  # a looser distance can only match more
    _assert_equal_reference(result, gt_rows, rows, frames=True)


def test_ground_truth_as_predictions_scores_100(thumos):
    gt, table, _ = thumos
    result = segment_map(table, table, THUMOS_TIOUS)
    np.testing.assert_array_equal(result.map, np.ones(7))
    points = PointTable(
        table.video_ids, table.classes, table.video, (table.start_sec + table.end_sec) / 2, table.label, table.score
    )
    np.testing.assert_array_equal(frame_map(table, points).map, np.ones(4))


# ---------------------------------------------------------------- by hand


def test_tiou_by_hand():
    got = segment_tiou(
        np.array([0.0, 0, 0, 0, 2]),
        np.array([10.0, 10, 10, 10, 4]),
        np.array([5.0, 10, 2, 20, 0]),
        np.array([15.0, 20, 4, 30, 10]),
    )
    np.testing.assert_allclose(got, [5 / 15, 0, 0.2, 0, 0.2])


def _one_class(gt_segments, predictions, tious=(0.5,)):
    """GT [(start, end)] and predictions [(start, end, score)] of one class in one video 'v'."""
    gt = SegmentTable.from_mapping({"v": [(s, e, "a") for s, e in gt_segments]}, ["a"])
    pred = SegmentTable.from_mapping({"v": [(s, e, "a", sc) for s, e, sc in predictions]}, ["a"])
    return segment_map(gt, pred, tious)


def test_two_prediction_ap_by_hand():
    # TP then FP: precision (1, 1/2), recall (1/2, 1/2) -> AP = 1/2 * 1
    assert _one_class([(0, 10), (20, 30)], [(20, 30, 0.9), (100, 110, 0.5)]).ap[0, 0] == pytest.approx(0.5)
    # FP then TP: precision (0, 1/2), recall (0, 1/2) -> AP = 1/2 * 1/2
    assert _one_class([(0, 10), (20, 30)], [(20, 30, 0.4), (100, 110, 0.5)]).ap[0, 0] == pytest.approx(0.25)


def test_threshold_decides_and_matched_ground_truth_is_skipped():
    # pred [0, 10] vs GT [0, 20]: tIoU 0.5 -> TP up to 0.5, FP above
    np.testing.assert_allclose(_one_class([(0, 20)], [(0, 10, 1.0)], THUMOS_TIOUS).map, [1, 1, 1, 1, 1, 0, 0])
    # second prediction's best GT [0, 10] (tIoU 9/11) is taken, so it falls to [8, 18] (tIoU 3/17 = 0.176)
    result = _one_class([(0, 10), (8, 18)], [(0, 10, 0.9), (1, 11, 0.8)], (0.1, 0.15, 0.2))
    np.testing.assert_allclose(result.map, [1.0, 1.0, 0.5])


def test_score_ties_keep_input_order():
    assert _one_class([(0, 10)], [(0, 10, 0.5), (50, 60, 0.5)]).ap[0, 0] == pytest.approx(1.0)
    assert _one_class([(0, 10)], [(50, 60, 0.5), (0, 10, 0.5)]).ap[0, 0] == pytest.approx(0.5)


def test_duplicate_prediction_is_a_false_positive():
    assert _one_class([(0, 10), (20, 30)], [(0, 10, 0.9), (0, 10, 0.8)]).ap[0, 0] == pytest.approx(0.5)


def test_empty_predictions_give_zero():
    gt = SegmentTable.from_mapping({"v": [(0, 10, "a"), (3, 5, "b")]}, ["a", "b"])
    result = segment_map(gt, SegmentTable.from_mapping({}, ["a", "b"]))
    assert result.classes == ("a", "b")
    np.testing.assert_array_equal(result.ap, np.zeros((7, 2)))


def test_class_without_ground_truth_is_not_averaged_and_class_without_predictions_is_zero():
    gt = SegmentTable.from_mapping({"v": [(0, 10, "a"), (20, 30, "b")]}, ["a", "b", "c"])
    pred = SegmentTable.from_mapping({"v": [(0, 10, "a", 0.9), (0, 10, "c", 0.99)]}, ["a", "b", "c"])
    result = segment_map(gt, pred, (0.5,))
    assert result.classes == ("a", "b")  # 'c' has no ground truth: left out, its prediction ignored
    np.testing.assert_allclose(result.ap, [[1.0, 0.0]])
    assert result.map[0] == pytest.approx(0.5)
    assert result.counts["ignored_class_without_gt"] == 1


def test_prediction_for_video_without_ground_truth_is_false_positive():
    gt = SegmentTable.from_mapping({"v": [(0, 10, "a")]}, ["a"])
    pred = SegmentTable.from_mapping({"v": [(0, 10, "a", 0.5)], "w": [(0, 10, "a", 0.9)]}, ["a"])
    result = segment_map(gt, pred, (0.5,))
    assert result.ap[0, 0] == pytest.approx(0.5)
    assert result.counts["predictions_unknown_video"] == 1


def test_exclude_videos_and_ambiguous_segments():
    gt = SegmentTable.from_mapping({"v": [(0, 10, "a")], "x": [(0, 10, "a")]}, ["a"])
    pred = SegmentTable.from_mapping({"v": [(0, 10, "a", 0.5), (40, 50, "a", 0.9), (60, 70, "a", 0.8)]}, ["a"])
    assert segment_map(gt, pred, (0.5,)).ap[0, 0] == pytest.approx(1 / 6)  # recall 1/2 at precision 1/3
    # x excluded: recall 1 at precision 1/3
    assert segment_map(gt, pred, (0.5,), exclude_videos={"x"}).ap[0, 0] == pytest.approx(1 / 3)
    # [40, 50] overlaps [49, 55] -> discarded; [60, 70] only touches [70, 80] -> kept
    ambiguous = {"v": np.array([[49.0, 55.0], [70.0, 80.0]])}
    result = segment_map(gt, pred, (0.5,), exclude_videos={"x"}, ambiguous=ambiguous)
    assert result.counts["dropped_ambiguous"] == 1
    assert result.ap[0, 0] == pytest.approx(0.5)


def test_frame_map_by_hand():
    gt = SegmentTable.from_mapping({"v": [(0, 10, "a")]}, ["a"])
    # point 9 (distance 0.8) first, then the centre (distance 0)
    points = PointTable.from_columns(["v", "v", "v"], [9.0, 5.0, 11.0], ["a", "a", "a"], [0.9, 0.8, 0.95], ["a"])
    result = frame_map(gt, points, FRAME_DISTANCES)
    # 11 is outside (FP first everywhere); <= 0.75: 9 is FP, 5 TP -> P 1/3 R 1; at 1.0: 9 TP -> P 1/2 R 1
    np.testing.assert_allclose(result.ap[:, 0], [1 / 3, 1 / 3, 1 / 3, 1 / 2])
    assert result.average == pytest.approx((3 / 3 + 1 / 2) / 4)


def test_classification_map_by_hand():
    scores = np.array([[0.9, 0.5, 0.3], [0.8, 0.4, 0.3], [0.7, 0.3, 0.2], [0.1, 0.2, 0.1]])
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    ap = video_classification_ap(scores, labels)
    np.testing.assert_allclose(ap[:2], [(1 + 2 / 3) / 2, 1 / 2])
    assert np.isnan(ap[2])  # no positive video
    assert classification_map(scores, labels) == pytest.approx(((1 + 2 / 3) / 2 + 1 / 2) / 2)
    # tied scores enter together, whatever the input order
    assert average_precision(np.array([0.5, 0.5]), np.array([1, 0])) == pytest.approx(0.5)
    assert average_precision(np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(0.5)


# ---------------------------------------------------------------- loaders


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "entry, expect",
    [
        ({"label": "a", "score": "0.9", "segment": [0, 1]}, "'0.9'"),
        ({"label": "a", "score": 0.9, "segment": [2, 1]}, "start 2.0 >= end 1.0"),
        ({"label": "zzz", "score": 0.9, "segment": [0, 1]}, "unknown label 'zzz'"),
        ({"label": "a", "segment": [0, 1]}, "missing 'score'"),
        ({"label": "a", "score": 0.9, "frame": 3.0}, "use --frames"),
        ({"label": "a", "score": 0.9, "segment": [0]}, "segment must be [start, end]"),
    ],
)
def test_segment_loader_rejects_bad_entries(tmp_path, entry, expect):
    path = _write(tmp_path / "p.json", json.dumps({"results": {"vid_7": [entry]}}))
    with pytest.raises(InputError) as err:
        load_segment_predictions(path, ["a"])
    message = str(err.value)
    assert str(path) in message and "vid_7" in message and expect in message


def test_loaders_read_valid_files(tmp_path):
    path = _write(
        tmp_path / "p.json",
        json.dumps(
            {
                "version": "x",
                "results": {
                    "v1": [
                        {"label": "b", "score": 0.5, "segment": [1, 2]},
                        {"label": "a", "score": 1, "segment": [0, 3.5]},
                    ],
                    "v2": [],
                },
            }
        ),
    )
    table = load_segment_predictions(path, ["a", "b"])
    assert table.video_ids == ("v1",) and table.label.tolist() == [1, 0]
    np.testing.assert_array_equal(table.end_sec, [2.0, 3.5])
    frames = _write(tmp_path / "f.json", json.dumps({"results": {"v": [{"label": "a", "score": 0.1, "frame": 4}]}}))
    assert load_frame_predictions(frames, ["a"]).time_sec.tolist() == [4.0]
    with pytest.raises(InputError, match="malformed JSON"):
        load_segment_predictions(_write(tmp_path / "bad.json", '{"results": {'), ["a"])
    with pytest.raises(InputError, match="'results'"):
        load_segment_predictions(_write(tmp_path / "r.json", '{"database": {}}'), ["a"])


def test_load_ambiguous_vendored_file():
    ambiguous = load_ambiguous(AMBIGUOUS_PATH)
    assert sum(len(v) for v in ambiguous.values()) == 99
    np.testing.assert_array_equal(ambiguous["video_test_0000278"][0], [0.0, 1.4])


# ---------------------------------------------------------------- CLI


def _gt_predictions(tmp_path: Path, thumos, frames=False) -> Path:
    """The THUMOS14 test ground truth written as a predictions file (every score 1)."""
    gt, table, rows = thumos
    results: dict = {}
    for video, start, end, label in rows:
        entry = {"label": label, "score": 1.0}
        entry.update({"frame": (start + end) / 2} if frames else {"segment": [start, end]})
        results.setdefault(video, []).append(entry)
    return _write(tmp_path / "pred.json", json.dumps({"results": results}))


def test_cli_table_and_json(tmp_path, thumos, capsys):
    pred = _gt_predictions(tmp_path, thumos)
    out = tmp_path / "m.json"
    assert main(["evaluate", str(GT_PATH), str(pred), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "avg 0.3:0.7" in text and "avg 0.1:0.7" in text and text.count("100.00") == 9
    assert "Excluding" not in text and "Ambiguous" not in text
    doc = json.loads(out.read_text())
    assert doc["tiou"] == list(THUMOS_TIOUS)
    assert doc["map"] == [100.0] * 7 and doc["average"] == 100.0 and doc["unit"] == "percent"
    assert len(doc["per_class"]) == 20 and doc["per_class"]["HighJump"] == [100.0] * 7


def test_cli_options_are_announced(tmp_path, thumos, capsys):
    pred = _gt_predictions(tmp_path, thumos)
    ids = _write(tmp_path / "ids.txt", "video_test_0000270\nvideo_test_0001292, video_test_0001496\n")
    out = tmp_path / "m.json"
    assert (
        main(
            [
                "evaluate",
                str(GT_PATH),
                str(pred),
                "--tiou",
                "anet",
                "--exclude-videos",
                f"@{ids}",
                "--ambiguous",
                str(AMBIGUOUS_PATH),
                "--json",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "Excluding 2 videos" in text and "video_test_0001292" in text  # absent from the GT: reported
    assert "Ambiguous segments on" in text and "avg 0.5:0.95" in text
    doc = json.loads(out.read_text())
    assert doc["tiou"] == list(ANET_TIOUS) and doc["exclude_videos"] == ["video_test_0000270", "video_test_0001496"]
    assert 0 < doc["average"] < 100  # GT segments touching ambiguous ones were discarded


def test_cli_frames_json(tmp_path, thumos, capsys):
    pred = _gt_predictions(tmp_path, thumos, frames=True)
    out = tmp_path / "f.json"
    assert main(["evaluate", str(GT_PATH), str(pred), "--frames", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["distance"] == list(FRAME_DISTANCES) and "tiou" not in doc and doc["map"] == [100.0] * 4
    assert "Single-frame" in capsys.readouterr().out


@pytest.mark.parametrize(
    "predictions, extra, expect",
    [
        ('{"results": {"v": [', [], "malformed JSON"),
        (None, [], "not found"),
        (
            '{"results": {"video_test_0000896": [{"label": "Juggling", "score": 1, "segment": [1, 2]}]}}',
            [],
            "unknown label 'Juggling'",
        ),
        ('{"results": {}}', ["--tiou", "0.5,1.5"], "threshold 1.5"),
        ('{"results": {}}', ["--subset", "nope"], "subset 'nope'"),
        ('{"results": {}}', ["--frames", "--tiou", "0.5"], "use --distance"),
        ('{"results": {}}', ["--exclude-videos", "@missing.txt"], "not found"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, capsys, predictions, extra, expect):
    path = tmp_path / "p.json"
    if predictions is not None:
        _write(path, predictions)
    assert main(["evaluate", str(GT_PATH), str(path), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pointtal evaluate: error:") and expect in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_threshold_parsing():
    from pointtal.cli.evaluate import parse_thresholds

    assert parse_thresholds("0.1:0.7:0.1", "--tiou", 1.0) == THUMOS_TIOUS
    assert parse_thresholds("0.5:0.95:0.05", "--tiou", 1.0) == ANET_TIOUS
    assert parse_thresholds("anet", "--tiou", 1.0) == ANET_TIOUS
    assert parse_thresholds("0.3, 0.5", "--tiou", 1.0) == (0.3, 0.5)
    with pytest.raises(InputError, match="START:STOP:STEP"):
        parse_thresholds("0.3;0.5", "--tiou", 1.0)


def test_cli_help_states_percent(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "percent" in text and "Example:" in text and "--exclude-videos" in text
