"""`cas` and `video_scores` are optional outputs of the method contract: classification mAP and CAS figures
appear where a method produces them and are left out, not faked, where it does not (issue 21)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pointtal.data.annotations import GroundTruth, Instance, Video
from pointtal.data.features import SnippetGeometry
from pointtal.engine.evaluate import evaluate_predictions
from pointtal.engine.inference import Predictions, predict, score_videos
from pointtal.methods.actionformer.method import ActionFormer, Options
from pointtal.methods.base import Detections, VideoScores
from pointtal.viz import timeline_figure

SMALL = dict(
    embed_dim=16,
    head_dim=16,
    heads=2,
    window=5,
    pyramid_layers=2,
    regression_ranges=((0, 4), (4, 8), (8, 10000)),
    max_seq_len=64,
    ema=False,
)


def two_videos() -> GroundTruth:
    videos = {
        "a": Video("a", "test", 20.0, None, (Instance(2.0, 6.0, "Jump"),)),
        "b": Video("b", "test", 20.0, None, (Instance(8.0, 12.0, "Run"),)),
    }
    return GroundTruth(videos, ("Jump", "Run"))


def predictions_with(video_scores: dict) -> Predictions:
    found = {
        "a": Detections(np.array([[2.0, 6.0, 1, 0.9]]), np.zeros((0, 3)), "seconds"),
        "b": Detections(np.array([[8.0, 12.0, 1, 0.8]]), np.zeros((0, 3)), "seconds"),
    }  # class 1: Jump
    return Predictions(("Jump", "Run"), found, video_scores)


def test_classification_map_is_reported_only_with_video_scores():
    gt = two_videos()
    # video a holds Jump, b holds Run: scores that rank each video's class first give cmAP 100
    scored = evaluate_predictions(
        gt, ["a", "b"], predictions_with({"a": np.array([0.0, 0.9, 0.1]), "b": np.array([0.0, 0.2, 0.7])}), [0.5]
    )
    assert scored["cmAP"] == pytest.approx(100.0)
    wrong = evaluate_predictions(
        gt, ["a", "b"], predictions_with({"a": np.array([0.0, 0.1, 0.9]), "b": np.array([0.0, 0.7, 0.2])}), [0.5]
    )
    assert wrong["cmAP"] == pytest.approx(50.0)  # each class's positive ranked second of two: AP 1/2
    none = evaluate_predictions(gt, ["a", "b"], predictions_with({}), [0.5])
    assert "cmAP" not in none  # left out, not 0 or a guess
    assert none["mAP@0.5"] == scored["mAP@0.5"] == pytest.approx(50.0)  # segments still evaluated (Jump AP 1)


def test_a_detector_has_no_cas_and_no_video_scores_yet_detects():
    torch.manual_seed(0)
    method = ActionFormer(Options(**SMALL), 8, 2).eval()
    rng = np.random.default_rng(0)
    items = [
        ("a", rng.standard_normal((37, 8)).astype(np.float32)),
        ("b", rng.standard_normal((21, 8)).astype(np.float32)),
    ]
    scored = list(score_videos(method, items, batch_size=2, device=torch.device("cpu"), amp=False))
    assert [(s.cas, s.video_scores, s.actionness, s.length) for s in scored] == [
        (None, None, None, 37),
        (None, None, None, 21),
    ]
    geometry = {v: SnippetGeometry(25.0, 16) for v, _ in items}
    out = predict(method, items, geometry, ("Jump", "Run"), batch_size=2, device=torch.device("cpu"), amp=False)
    assert out.video_scores == {}
    assert all(len(out.segments[v]) > 0 for v, _ in items)  # an untrained detector still proposes segments
    # each video's detections are those it gets alone (the length comes from the engine, not from a CAS)
    alone = predict(method, items[1:], geometry, ("Jump", "Run"), batch_size=1, device=torch.device("cpu"), amp=False)
    a, b = alone.segments["b"], out.segments["b"]
    assert [e["label"] for e in a] == [e["label"] for e in b]
    np.testing.assert_allclose(
        [[*e["segment"], e["score"]] for e in a], [[*e["segment"], e["score"]] for e in b], rtol=1e-5, atol=1e-6
    )
    assert max(e["segment"][1] for e in b) <= 21 * 16 / 25 + 1e-9  # clipped to the video's 21 snippets


def test_video_scores_need_a_length_without_cas():
    assert VideoScores("v", np.zeros((5, 3)), None, np.zeros(3)).length == 5
    with pytest.raises(ValueError, match="length"):
        VideoScores("v", None, None, None)


def test_timeline_leaves_the_cas_panel_out_without_a_cas():
    inputs = dict(
        video_id="v",
        duration_sec=20.0,
        classes=("Jump", "Run"),
        ground_truth=[(2.0, 6.0, "Jump")],
        points=[(4.0, "Jump")],
        actionness=None,
        segments=[(2.5, 6.5, "Jump", 0.8)],
        snippet_sec=0.64,
    )
    with_cas = timeline_figure(cas=np.zeros((31, 3)), **inputs)
    without = timeline_figure(cas=None, **inputs)
    assert len(with_cas.axes) == 4 and len(without.axes) == 3  # ground truth, points, (CAS,) predictions
    assert with_cas.axes[2].get_ylabel() == "CAS" and "CAS" not in [ax.get_ylabel() for ax in without.axes]
    assert "snippets" in with_cas._suptitle.get_text() and "snippets" not in without._suptitle.get_text()
    assert [p.get_x() for p in without.axes[-1].patches] == [p.get_x() for p in with_cas.axes[-1].patches]
