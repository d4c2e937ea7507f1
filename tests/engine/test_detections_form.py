"""`Detections`: the one named form of segments from methods to writers (issue 20 item 4)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pointtal.data.features import SnippetGeometry
from pointtal.engine.evaluate import evaluate_predictions
from pointtal.engine.inference import Predictions
from pointtal.evaluation import SegmentTable, segment_map
from pointtal.localization.detections import Detections

CLASSES = ("Jump", "Run")


def snippet_detections() -> Detections:
    return Detections(np.array([[1.0, 3.5, 2, 0.75], [0.0, 2.0, 1, 0.5]]), np.array([[4.0, 1, 0.9]]))


def test_columns_by_name_and_seconds_by_the_geometry():
    found = snippet_detections()
    assert found.start.tolist() == [1.0, 0.0] and found.end.tolist() == [3.5, 2.0]
    assert found.label.tolist() == [2, 1] and found.score.tolist() == [0.75, 0.5] and len(found) == 2
    assert (found.frame_at.tolist(), found.frame_label.tolist(), found.frame_score.tolist()) == ([4.0], [1], [0.9])
    geometry = SnippetGeometry(25.0, 16)  # 0.64 s a snippet
    seconds = found.in_seconds(geometry)
    assert seconds.unit == "seconds" and seconds.in_seconds(geometry) is seconds
    np.testing.assert_allclose(seconds.start, [0.64, 0.0])
    np.testing.assert_allclose(seconds.end, [2.24, 1.28])
    np.testing.assert_allclose(seconds.frame_at, [4.5 * 0.64])  # a single frame stands at its snippet's centre
    assert seconds.label.tolist() == [2, 1] and seconds.score.tolist() == [0.75, 0.5]
    segments, frames = seconds.entries(CLASSES)
    assert [(e["label"], e["score"]) for e in segments] == [("Run", 0.75), ("Jump", 0.5)]
    np.testing.assert_allclose([e["segment"] for e in segments], [[0.64, 2.24], [0.0, 1.28]])
    assert [(e["label"], e["score"]) for e in frames] == [("Jump", 0.9)]
    assert list(segments[0]) == ["label", "score", "segment"] and list(frames[0]) == ["label", "score", "frame"]
    with pytest.raises(ValueError, match="seconds"):
        found.entries(CLASSES)  # snippet units never reach a writer
    empty = Detections.empty().in_seconds(geometry)
    assert empty.entries(CLASSES) == ([], []) and len(empty) == 0


def test_predictions_write_and_evaluate_the_same_detections():
    geometry = SnippetGeometry(25.0, 16)
    predictions = Predictions(
        CLASSES, {"a": snippet_detections().in_seconds(geometry), "b": Detections.empty().in_seconds(geometry)}
    )
    doc = json.loads(json.dumps(predictions.results_json()))
    assert set(doc["results"]) == {"a", "b"} and doc["results"]["b"] == []
    assert [e["label"] for e in doc["results"]["a"]] == ["Run", "Jump"]
    assert predictions.frames["a"][0]["frame"] == pytest.approx(2.88)
    # evaluation reads the detections themselves: the same mAP as the entries the file holds
    from pointtal.data.annotations import GroundTruth, Instance, Video

    gt = GroundTruth(
        {
            "a": Video("a", "test", 10.0, None, (Instance(0.0, 1.28, "Jump"), Instance(0.64, 2.24, "Run"))),
            "b": Video("b", "test", 10.0, None, (Instance(1.0, 2.0, "Run"),)),
        },
        CLASSES,
    )
    record = evaluate_predictions(gt, ["a", "b"], predictions, [0.5])
    truth = SegmentTable.from_ground_truth([gt.videos["a"], gt.videos["b"]], CLASSES)
    rows = {v: [(*e["segment"], e["label"], e["score"]) for e in doc["results"][v]] for v in ("a", "b")}
    want = segment_map(truth, SegmentTable.from_mapping(rows, CLASSES), [0.5])
    assert record["mAP@0.5"] == pytest.approx(100 * float(want.map[0]))
    assert record["mAP@0.5"] == pytest.approx(75.0)  # Jump found (AP 1); Run: 1 of its 2 instances (AP 0.5)
