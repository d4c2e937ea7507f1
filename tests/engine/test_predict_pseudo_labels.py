"""`pointtal predict --pseudo-labels`: a run's predicted segments as ActivityNet ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import tiny_raw_config

from pointtal.cli import main
from pointtal.config import build_config
from pointtal.data.annotations import load_ground_truth
from pointtal.engine import pseudo_labels
from pointtal.engine.pseudo_labels import select_segments
from pointtal.engine.setup import load_run_data
from pointtal.engine.trainer import train


def _seg(score, start=0.0, end=1.0, label="a"):
    return {"label": label, "score": score, "segment": [start, end]}


def test_select_keeps_the_upper_part_of_each_videos_score_range():
    segments = [_seg(0.2), _seg(1.0), _seg(0.36), _seg(0.34), _seg(-0.3)]  # range -0.3 .. 1.0
    assert [s["score"] for s in select_segments(segments, 0.5)] == [1.0, 0.36]  # >= -0.3 + 0.5 * 1.3 = 0.35
    assert [s["score"] for s in select_segments(segments, 0.0)] == [0.2, 1.0, 0.36, 0.34, -0.3]
    assert [s["score"] for s in select_segments(segments, 1.0)] == [1.0]
    # invariant to an increasing affine map of the scores (SF-Net logits carry a per-video offset)
    shifted = [_seg(10.0 + 3.0 * s["score"]) for s in segments]
    assert [s["score"] for s in select_segments(shifted, 0.5)] == [13.0, 11.08]
    assert [s["score"] for s in select_segments([_seg(-0.5), _seg(-0.5)], 0.9)] == [-0.5, -0.5]  # one level
    assert select_segments([], 0.5) == []


@pytest.fixture(scope="module")
def pseudo(tiny_data, tmp_path_factory):
    """A tiny SF-Net run, its validation predictions and pseudo-labels at threshold 0.3 (in the output guard's
    own directory: the run's ground truth is not written there)."""
    root = tmp_path_factory.mktemp("pseudo")
    run = root / "run"
    train(build_config(tiny_raw_config(tiny_data, "sfnet", steps=6)), run)
    out, labels = root / "pred.json", root / "pseudo_gt.json"
    args = [
        "predict",
        str(run),
        "--subset",
        "validation",
        "--out",
        str(out),
        "--pseudo-labels",
        str(labels),
        "--pseudo-threshold",
        "0.3",
        "--no-progress",
    ]
    assert main(args) == 0
    return run, out, labels, args


def _point_classes(tiny_data) -> dict[str, set[str]]:
    """Classes of each training video's points, as training mapped them (the rows of its point labels)."""
    data = load_run_data(build_config(tiny_raw_config(tiny_data, "sfnet", steps=6)), test=False)
    rows = data.train.point_labels  # (N, C+1)
    return {
        video_id: {
            data.classes[c - 1]
            for c in range(1, rows.shape[1])
            if rows[data.train.offsets[v] : data.train.offsets[v + 1], c].any()
        }
        for v, video_id in enumerate(data.train.video_ids)
    }


def _suppressed(entries):
    """Reference: per class, highest score first, drop an entry overlapping (> 0 s) a kept one; input order."""
    kept = []
    for i in sorted(range(len(entries)), key=lambda i: -entries[i][2]):
        (a, b), label, _ = entries[i]
        if all(label != entries[j][1] or min(b, entries[j][0][1]) - max(a, entries[j][0][0]) <= 0 for j in kept):
            kept.append(i)
    return [entries[i] for i in sorted(kept)]


def test_suppress_overlaps_keeps_the_best_of_each_same_class_overlap():
    segments = [_seg(0.5, 0, 4), _seg(0.9, 3, 6), _seg(0.7, 5.5, 8), _seg(0.8, 0, 4, label="b"), _seg(0.4, 6, 9)]
    # 0.9 [3,6] beats 0.5 [0,4] and 0.7 [5.5,8]; [6,9] only touches [3,6] (no shared time); class b is apart
    assert [s["score"] for s in pseudo_labels.suppress_overlaps(segments)] == [0.9, 0.8, 0.4]
    assert pseudo_labels.suppress_overlaps([]) == []
    rng = np.random.default_rng(0)
    for _ in range(50):  # against the plain loop, with ties and touching ends (times on a 0.5 s grid)
        n = int(rng.integers(1, 40))
        starts = rng.integers(0, 40, n) / 2
        entries = [
            ([a, a + int(rng.integers(1, 12)) / 2], str(rng.integers(0, 3)), float(rng.integers(0, 5))) for a in starts
        ]
        segments = [{"segment": seg, "label": label, "score": score} for seg, label, score in entries]
        got = [(s["segment"], s["label"], s["score"]) for s in pseudo_labels.suppress_overlaps(segments)]
        assert got == _suppressed(entries)


def test_pseudo_ground_truth_applies_classes_threshold_and_overlaps_in_that_order(tiny_data):
    gt = load_ground_truth(tiny_data / "annotations.json")
    video = gt.subset("validation")[0]
    a, b = gt.classes[:2]
    segments = {
        video.video_id: [
            _seg(5.0, 1, 3, a),
            _seg(9.0, 1, 3, b),
            _seg(4.0, 2, 4, a),
            _seg(1.0, 6, 7, a),
            _seg(3.0, 4, 5, a),
        ]
    }
    truth = pseudo_labels.pseudo_ground_truth(gt, segments, "validation", 0.5, {}, {video.video_id: {a}})
    kept = truth["database"][video.video_id]["annotations"]
    # class b dropped (its 9.0 would have set the range); range 1..5 keeps >= 3: 5.0, 4.0 (overlaps 5.0: out), 3.0
    assert [(x["score"], x["segment"]) for x in kept] == [(5.0, [1.0, 3.0]), (3.0, [4.0, 5.0])]
    everything = pseudo_labels.pseudo_ground_truth(gt, segments, "validation", 0.5, {}, None, suppress=False)
    assert [x["score"] for x in everything["database"][video.video_id]["annotations"]] == [5.0, 9.0]  # >= 5
    assert everything["pseudo_labels"]["classes"] == "all" and everything["pseudo_labels"]["overlaps"] == "kept"


def test_pseudo_labels_are_the_predicted_segments_above_threshold(pseudo, tiny_data, capsys):
    """Before: every predicted class and every overlapping same-class segment became an instance (issue 18 §4:
    55 % of a LACP run's instances were classes the video lacks). After: only the classes of the video's points,
    same-class overlaps suppressed (highest score kept)."""
    run, out, labels, args = pseudo
    point_classes = _point_classes(tiny_data)
    original = json.loads((tiny_data / "annotations.json").read_text())["database"]
    written = json.loads(labels.read_text())
    predicted = json.loads(out.read_text())["results"]
    gt = load_ground_truth(labels)  # valid ground truth pointtal reads, same classes as the run's
    assert gt.classes == load_ground_truth(tiny_data / "annotations.json").classes
    assert list(written["database"]) == list(original)  # every video, in the input's order
    assert written["pseudo_labels"]["threshold"] == 0.3 and written["pseudo_labels"]["subset"] == "validation"
    classes = gt.classes
    n_dropped = n_kept = n_other_class = n_overlapping = 0
    for video_id, entry in written["database"].items():
        source = original[video_id]
        assert (entry["subset"], entry["duration"], entry["fps"]) == (
            source["subset"],
            source["duration"],
            source["fps"],
        )
        if source["subset"] == "test":  # kept as it was, for evaluation
            assert [(a["segment"], a["label"]) for a in entry["annotations"]] == [
                (a["segment"], a["label"]) for a in source["annotations"]
            ]
            continue
        segments = [s for s in predicted[video_id] if s["label"] in point_classes[video_id]]
        n_other_class += len(predicted[video_id]) - len(segments)
        expected = []
        if segments:
            low, top = min(s["score"] for s in segments), max(s["score"] for s in segments)
            expected = [
                (s["segment"], s["label"], s["score"]) for s in segments if s["score"] >= low + 0.3 * (top - low)
            ]
        n_overlapping += len(expected) - len(_suppressed(expected))
        expected = [
            ([max(0.0, a), min(source["duration"], b)], label, score)
            for (a, b), label, score in _suppressed(expected)
            if max(0.0, a) < min(source["duration"], b)
        ]
        assert [(a["segment"], a["label"], a["score"]) for a in entry["annotations"]] == expected
        assert all(classes[a["label_id"]] == a["label"] for a in entry["annotations"])
        n_kept += len(expected)
        n_dropped += len(segments) - len(expected)
        if segments:
            assert entry["annotations"]  # the top segment of the video's classes is always kept
    assert n_kept > 24 and n_dropped > 0  # the threshold keeps several segments per video and drops some
    assert n_other_class > 0  # the class rule had something to remove on this run (SF-Net's NMS left no overlap)
    assert written["pseudo_labels"]["classes"] == "points" and written["pseudo_labels"]["overlaps"] == "suppressed"

    # a rerun replaces pointtal's own file without --overwrite; a file the user wrote is protected
    assert main(args) == 0
    labels.write_text(labels.read_text() + " ")
    assert main(args) == 2
    assert "--pseudo-labels" in capsys.readouterr().err


def test_full_scheme_trains_on_the_pseudo_labels(pseudo, tiny_data, tmp_path):
    _, _, labels, _ = pseudo
    raw = tiny_raw_config(tiny_data, "sfnet", steps=2)
    raw["data"].update(annotations=str(labels), points="full")
    config = build_config(raw)
    data = load_run_data(config)
    gt = load_ground_truth(labels)
    expected = torch.zeros(len(data.train), len(gt.classes) + 1)  # (V, C+1) multi-hot of the pseudo-labels
    for row, video_id in enumerate(data.train.video_ids):
        for instance in gt.videos[video_id].instances:
            expected[row, gt.class_index[instance.label]] = 1.0
    assert torch.equal(data.train.video_labels, expected)
    true = load_run_data(build_config(tiny_raw_config(tiny_data, "sfnet", steps=2)))
    assert not torch.equal(true.train.video_labels, expected)  # the pseudo-labels differ from the truth
    result = train(config, tmp_path / "full")
    assert result.metrics["step"] == 2 and (tmp_path / "full" / "predictions.json").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "--out predictions.json and/or --pseudo-labels"),
        (["--pseudo-labels", "x.json", "--pseudo-threshold", "1.5"], "--pseudo-threshold 1.5"),
        (["--pseudo-labels", "x.json", "--pseudo-threshold", "nan"], "--pseudo-threshold nan"),
        (["--out", "x.json", "--pseudo-overlaps", "keep"], "--pseudo-overlaps applies to --pseudo-labels"),
    ],
)
def test_bad_pseudo_label_options_are_one_line(pseudo, capsys, extra, message):
    run = pseudo[0]
    assert main(["predict", str(run), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_pseudo_labels_never_overwrite_the_ground_truth_the_run_reads(pseudo, tiny_data, capsys):
    run = pseudo[0]
    before = (tiny_data / "annotations.json").read_bytes()
    assert main(["predict", str(run), "--pseudo-labels", str(tiny_data / "annotations.json"), "--no-progress"]) == 2
    assert "--pseudo-labels" in (err := capsys.readouterr().err) and "data.annotations" in err
    assert (tiny_data / "annotations.json").read_bytes() == before


def test_pseudo_overlaps_keep_is_the_rule_without_suppression(pseudo, tmp_path):
    run, out, labels, args = pseudo
    kept = tmp_path / "kept.json"
    assert (
        main(
            [
                "predict",
                str(run),
                "--subset",
                "validation",
                "--pseudo-labels",
                str(kept),
                "--pseudo-threshold",
                "0.3",
                "--pseudo-overlaps",
                "keep",
                "--no-progress",
            ]
        )
        == 0
    )
    written, suppressed = json.loads(kept.read_text()), json.loads(labels.read_text())
    assert written["pseudo_labels"]["overlaps"] == "kept" and suppressed["pseudo_labels"]["overlaps"] == "suppressed"
    for video_id, entry in suppressed["database"].items():  # suppression only ever removes instances
        more = written["database"][video_id]["annotations"]
        assert all(a in more for a in entry["annotations"])
