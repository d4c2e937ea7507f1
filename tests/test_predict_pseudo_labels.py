"""`pointtal predict --pseudo-labels`: a run's predicted segments as ActivityNet ground truth."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import tiny_raw_config
from pointtal.cli import main
from pointtal.config import build_config
from pointtal.data.annotations import load_ground_truth
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
    args = ["predict", str(run), "--subset", "validation", "--out", str(out), "--pseudo-labels", str(labels),
            "--pseudo-threshold", "0.3", "--no-progress"]
    assert main(args) == 0
    return run, out, labels, args


def test_pseudo_labels_are_the_predicted_segments_above_threshold(pseudo, tiny_data, capsys):
    run, out, labels, args = pseudo
    original = json.loads((tiny_data / "annotations.json").read_text())["database"]
    written = json.loads(labels.read_text())
    predicted = json.loads(out.read_text())["results"]
    gt = load_ground_truth(labels)  # valid ground truth pointtal reads, same classes as the run's
    assert gt.classes == load_ground_truth(tiny_data / "annotations.json").classes
    assert list(written["database"]) == list(original)  # every video, in the input's order
    assert written["pseudo_labels"]["threshold"] == 0.3 and written["pseudo_labels"]["subset"] == "validation"
    classes = gt.classes
    n_dropped = n_kept = 0
    for video_id, entry in written["database"].items():
        source = original[video_id]
        assert (entry["subset"], entry["duration"], entry["fps"]) == \
            (source["subset"], source["duration"], source["fps"])
        if source["subset"] == "test":  # kept as it was, for evaluation
            assert [(a["segment"], a["label"]) for a in entry["annotations"]] == \
                [(a["segment"], a["label"]) for a in source["annotations"]]
            continue
        segments = predicted[video_id]
        low, top = min(s["score"] for s in segments), max(s["score"] for s in segments)
        expected = [(s["segment"], s["label"], s["score"]) for s in segments
                    if s["score"] >= low + 0.3 * (top - low)]
        expected = [([max(0.0, a), min(source["duration"], b)], label, score)
                    for (a, b), label, score in expected if max(0.0, a) < min(source["duration"], b)]
        assert [(a["segment"], a["label"], a["score"]) for a in entry["annotations"]] == expected
        assert all(classes[a["label_id"]] == a["label"] for a in entry["annotations"])
        n_kept += len(expected)
        n_dropped += len(segments) - len(expected)
    assert n_kept > 24 and n_dropped > 0  # the threshold keeps several segments per video and drops some
    assert all(v.instances for v in gt.subset("validation"))  # the top segment is always kept

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


@pytest.mark.parametrize("extra, message", [
    ([], "--out predictions.json and/or --pseudo-labels"),
    (["--pseudo-labels", "x.json", "--pseudo-threshold", "1.5"], "--pseudo-threshold 1.5"),
    (["--pseudo-labels", "x.json", "--pseudo-threshold", "nan"], "--pseudo-threshold nan"),
])
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
