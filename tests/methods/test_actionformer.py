"""ActionFormer: target assignment, losses, windowed attention, padding, post-processing, truncation, schedule,
EMA and exact resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pointtal.localization.nms import segment_voting, soft_nms, soft_nms_per_class
from pointtal.methods.actionformer.method import ActionFormer, Options, random_truncation
from pointtal.methods.actionformer.network import local_attention
from pointtal.methods.actionformer.targets import (
    assign_targets,
    diou_loss,
    pyramid_points,
    sigmoid_focal_loss,
)
from pointtal.methods.base import Phase

SMALL = dict(
    embed_dim=16,
    head_dim=16,
    heads=2,
    window=5,
    pyramid_layers=2,
    regression_ranges=((0, 4), (4, 8), (8, 10000)),
    max_seq_len=64,
)


# ----------------------------------------------------------------------------- target assignment
def test_target_assignment_matches_a_hand_computed_example():
    """Two levels: 8 points of stride 1 (range [0, 4]) and 4 of stride 2 (range [4, 10000]); radius 1.5.

    A [1, 4] class 1 and B [2, 3.5] class 2 overlap; C [0, 12] class 3 is long; D [4.5, 5.5] class 1 and
    E [4.75, 5.75] class 2 have equal lengths. By hand:
      level 0, point 2: inside A's centre region [1, 4], farthest end 2 <= 4 -> A: class 1, offsets (1, 2);
      level 0, point 3: A (length 3) and B (centre region [2, 3.5], length 1.5) -> the shortest, B: class 2,
                        offsets (1, 0.5);
      level 0, point 5: D and E tie on length -> classes 1 and 2, offsets of the first (D): (0.5, 0.5);
      level 0, points 5-7 are in C's centre region [4.5, 7.5] but their farthest ends (7, 6, 7) exceed 4;
      level 1, point 4 (index 2): C's region at stride 2 is [3, 9], farthest end 8 in [4, 10000] -> class 3,
                        offsets (4, 8) / 2 = (2, 4); point 6 (index 3): offsets (6, 6) / 2 = (3, 3);
      level 1, point 2: A's farthest end 2 is below 4 -> negative. Everything else is negative.
    The second video has no instance: all negative."""
    points = pyramid_points((8, 4), ((0, 4), (4, 10000)), 2, "cpu")
    segments = torch.tensor(
        [[[1.0, 4.0], [2.0, 3.5], [0.0, 12.0], [4.5, 5.5], [4.75, 5.75]], [[0.0, 0.0]] * 5]
    )  # (2, 5, 2)
    labels = torch.tensor([[1, 2, 3, 1, 2], [0, 0, 0, 0, 0]])
    weights = torch.tensor([[0.5, 0.9, 0.7, 0.2, 0.3], [1.0] * 5])
    targets = assign_targets(points, segments, labels, weights, 3, 1.5)
    expected = np.zeros((2, 12, 3))
    offsets = np.zeros((2, 12, 2))
    weight = np.ones((2, 12))
    for point, classes, offset, w in [
        (2, [0], (1, 2), 0.5),
        (3, [1], (1, 0.5), 0.9),
        (5, [0, 1], (0.5, 0.5), 0.2),
        (8 + 2, [2], (2, 4), 0.7),
        (8 + 3, [2], (3, 3), 0.7),
    ]:
        expected[0, point, classes] = 1
        offsets[0, point] = offset
        weight[0, point] = w
    np.testing.assert_array_equal(targets.classes.numpy(), expected)
    positive = expected.sum(-1) > 0
    np.testing.assert_allclose(targets.offsets.numpy()[positive], offsets[positive])
    np.testing.assert_allclose(targets.weight.numpy(), weight)


def test_assignment_of_a_batch_without_instances_is_all_negative():
    points = pyramid_points((4, 2), ((0, 4), (4, 10000)), 2, "cpu")
    empty = torch.zeros(2, 0, dtype=torch.long)
    targets = assign_targets(points, torch.zeros(2, 0, 2), empty, torch.ones(2, 0), 3, 1.5)
    assert targets.classes.shape == (2, 6, 3) and targets.classes.sum() == 0


# ----------------------------------------------------------------------------- losses
def test_focal_and_diou_losses_equal_per_instance_loop_references():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 3, generator=gen) * 3
    targets = (torch.rand(40, 3, generator=gen) > 0.7).float()
    got = sigmoid_focal_loss(logits, targets, 0.25, 2.0)
    for i in range(40):
        for c in range(3):
            x, y = float(logits[i, c]), float(targets[i, c])
            p = 1 / (1 + math.exp(-x))
            ce = -(y * math.log(p) + (1 - y) * math.log(1 - p))
            p_t = p if y else 1 - p
            ref = (0.25 if y else 0.75) * ce * (1 - p_t) ** 2
            assert abs(float(got[i, c]) - ref) < 1e-5
    pred = torch.rand(30, 2, generator=gen) * 5
    goal = torch.rand(30, 2, generator=gen) * 5
    got = diou_loss(pred, goal)
    for i in range(30):
        (a, b), (g, h) = pred[i].tolist(), goal[i].tolist()  # distances from the point to start / end
        p_seg, g_seg = (-a, b), (-g, h)
        inter = max(0.0, min(p_seg[1], g_seg[1]) - max(p_seg[0], g_seg[0]))
        union = (a + b) + (g + h) - inter
        enclosing = max(p_seg[1], g_seg[1]) - min(p_seg[0], g_seg[0])
        centres = (p_seg[0] + p_seg[1]) / 2 - (g_seg[0] + g_seg[1]) / 2
        ref = 1 - inter / union + (centres / enclosing) ** 2
        assert abs(float(got[i]) - ref) < 1e-5


def test_losses_are_divided_by_the_moving_average_of_the_positive_count():
    torch.manual_seed(0)
    method = ActionFormer(Options(**SMALL, drop_path=0.0), 8, 3).eval()
    features, mask = torch.randn(1, 32, 8), torch.ones(1, 32, dtype=torch.bool)
    segments = torch.tensor([[[2.0, 9.0], [15.0, 17.0]]])
    batch = type(
        "B", (), {"targets": {"segments": segments, "labels": torch.tensor([[1, 3]]), "weights": torch.ones(1, 2)}}
    )()
    output = method(features, mask)
    losses = {key: value.detach() for key, value in method.loss(output, batch, 0).items()}
    count = int(losses["positives"])
    assert count > 0
    norm = 0.9 * 100 + 0.1 * count
    assert float(method.loss_norm) == pytest.approx(norm)
    points = method.points(output)
    targets = assign_targets(points, segments, torch.tensor([[1, 3]]), torch.ones(1, 2), 3, 1.5)
    valid = output.mask[0]
    focal = sigmoid_focal_loss(output.logits[0][valid], targets.classes[0][valid], 0.25, 2.0).sum()
    positive = targets.classes[0].sum(-1) > 0
    diou = diou_loss(output.offsets[0][positive], targets.offsets[0][positive]).sum()
    assert float(losses["cls"]) == pytest.approx(float(focal.detach()) / norm, rel=1e-5)
    assert float(losses["reg"]) == pytest.approx(float(diou.detach()) / norm, rel=1e-5)
    method.loss(output, batch, 1)  # a second step moves the average again
    assert float(method.loss_norm) == pytest.approx(0.9 * norm + 0.1 * count)


# ----------------------------------------------------------------------------- attention and padding
def band_attention(q, k, v, key_mask, half):
    """Full T x T attention under a band mask |t - t'| <= half and the key mask (the reference)."""
    t = q.shape[2]
    index = torch.arange(t)
    allowed = ((index[:, None] - index[None, :]).abs() <= half)[None, None] & key_mask[:, None, None, :]
    scores = (q @ k.transpose(-1, -2)).masked_fill(~allowed, float("-inf"))
    weights = torch.nan_to_num(scores.softmax(-1), nan=0.0)
    return weights @ v


@pytest.mark.parametrize("t,half", [(23, 2), (40, 9), (7, 9)])
def test_windowed_attention_equals_full_attention_under_a_band_mask(t, half):
    gen = torch.Generator().manual_seed(t)
    q, k, v = (torch.randn(2, 3, t, 4, generator=gen, dtype=torch.float64) for _ in range(3))
    unpadded = torch.ones(2, t, dtype=torch.bool)
    padded = unpadded.clone()
    padded[1, t // 2 :] = False  # the second video is padded
    for mask in (unpadded, padded):
        got = local_attention(q, k, v, mask, half)
        np.testing.assert_allclose(got.numpy(), band_attention(q, k, v, mask, half).numpy(), atol=1e-5)
    # a padded key never changes a real query: the real part alone gives the same outputs
    alone = local_attention(
        q[1:, :, : t // 2], k[1:, :, : t // 2], v[1:, :, : t // 2], torch.ones(1, t // 2, dtype=torch.bool), half
    )
    np.testing.assert_allclose(
        local_attention(q, k, v, padded, half)[1:, :, : t // 2].numpy(), alone.numpy(), atol=1e-6
    )


def test_outputs_at_real_positions_do_not_depend_on_padding():
    torch.manual_seed(0)
    method = ActionFormer(Options(**SMALL), 8, 3).eval()
    features = torch.randn(1, 37, 8)
    alone = method(features, torch.ones(1, 37, dtype=torch.bool))
    more = torch.cat([features, torch.randn(1, 90, 8)], 1)  # padded with garbage, masked out
    mask = torch.arange(127)[None, :] < 37
    padded = method(more, mask)
    for level, n_padded in enumerate(padded.lengths):
        start_a, start_p = sum(alone.lengths[:level]), sum(padded.lengths[:level])
        real = math.ceil(37 / 2**level)
        for name in ("logits", "offsets"):
            a = getattr(alone, name)[0, start_a : start_a + real]
            p = getattr(padded, name)[0, start_p : start_p + real]
            np.testing.assert_allclose(a.detach().numpy(), p.detach().numpy(), atol=1e-5)
        assert padded.mask[0, start_p : start_p + n_padded].sum() == real


# ----------------------------------------------------------------------------- post-processing
def test_soft_nms_with_voting_matches_a_hand_computed_example():
    """A [0, 10] 0.9, B [1, 11] 0.8, C [20, 30] 0.7, sigma 0.5: tIoU(A, B) = 9 / 11, so B decays to
    0.8 exp(-(9/11)^2 / 0.5) and is visited after C. Voting at 0.7: A and B each average A and B weighted by
    score x tIoU; C votes alone."""
    segments = np.array([[0.0, 10.0], [1.0, 11.0], [20.0, 30.0]])
    scores = np.array([0.9, 0.8, 0.7])
    order, decayed = soft_nms(segments, scores, 0.5, area_eps=1e-6, min_score=0.001)
    iou = 9 / 11
    assert order.tolist() == [0, 2, 1]
    np.testing.assert_allclose(decayed, [0.9, 0.7, 0.8 * math.exp(-iou * iou / 0.5)], rtol=1e-5)
    voted = segment_voting(segments[order], segments, scores, 0.7)
    a, b = np.array([0.0, 10.0]), np.array([1.0, 11.0])
    np.testing.assert_allclose(voted[0], (0.9 * a + 0.8 * iou * b) / (0.9 + 0.8 * iou))
    np.testing.assert_allclose(voted[1], [20.0, 30.0])
    np.testing.assert_allclose(voted[2], (0.9 * iou * a + 0.8 * b) / (0.9 * iou + 0.8))
    # a decayed score below min_score is dropped; without min_score (HR-Pro) nothing is
    assert soft_nms(segments, scores, 0.5, min_score=0.3)[0].tolist() == [0, 2]
    assert len(soft_nms(segments, scores, 0.5)[0]) == 3
    # classes apart: B of another class is not decayed by A
    rows = soft_nms_per_class(segments, scores, np.array([1, 2, 1]), 0.5, area_eps=1e-6, min_score=0.001)
    np.testing.assert_allclose(rows[:, 3], [0.9, 0.7, 0.8])


def test_detections_are_soft_nms_per_class_top_k_in_snippet_units():
    method = ActionFormer(Options(**SMALL, max_segments=2), 8, 3)
    segments = np.array([[-2.0, 10.0], [1.0, 11.0], [20.0, 40.0]])  # grid units
    found = method.postprocess(segments, np.array([0.9, 0.8, 0.7]), np.array([0, 1, 0]), 35)
    # classes 1 and 2 do not suppress each other: B keeps 0.8 and beats C; A is clipped at 0, C at 35 snippets
    np.testing.assert_allclose(found.segments, [[0.0, 10.5, 1, 0.9], [1.5, 11.5, 2, 0.8]])


# ----------------------------------------------------------------------------- batches
def test_random_truncation_keeps_half_an_instance_and_clips_it():
    segments = np.array([[10.0, 20.0], [70.0, 90.0]])
    for seed in range(20):
        start, size, keep, kept = random_truncation(100, segments, np.random.default_rng(seed), 40, 0.5, None)
        assert size == 40 and 0 <= start <= 60 and keep.any()
        window = np.array([start - 0.5, start + size + 0.5])
        overlap = np.clip(np.minimum(segments[:, 1], window[1]) - np.maximum(segments[:, 0], window[0]), 0, None)
        np.testing.assert_array_equal(keep, overlap / 10.0 / np.array([1, 2]) >= 0.5)
        expected = np.stack([np.maximum(segments[:, 0], window[0]), np.minimum(segments[:, 1], window[1])], 1)
        np.testing.assert_allclose(kept, expected[keep] - start)
    sizes = {random_truncation(50, segments[:1], np.random.default_rng(s), 2304, 0.5, (0.9, 1.0))[1] for s in range(60)}
    assert sizes <= set(range(45, 51)) and len(sizes) > 2  # short videos: a random 90-100 % cut


# ----------------------------------------------------------------------------- schedule
def test_warmup_then_cosine_learning_rate_at_chosen_steps():
    phase = Phase("train", 100, 1e-4, 2, 0.05, optimizer="adamw", warmup_steps=10, schedule="cosine", min_lr=1e-8)
    assert phase.lr_at(0) == 0.0  # the official warm-up starts at 0 and reaches lr at step W - 1
    assert phase.lr_at(3) == pytest.approx(1e-4 * 3 / 9)
    assert phase.lr_at(9) == pytest.approx(1e-4)
    assert phase.lr_at(10) == pytest.approx(1e-4)
    assert phase.lr_at(55) == pytest.approx(1e-8 + 0.5 * (1e-4 - 1e-8))  # half-way through the cosine
    assert phase.lr_at(85) == pytest.approx(1e-8 + 0.5 * (1e-4 - 1e-8) * (1 + math.cos(math.pi * 75 / 90)))
    assert Phase("p", 10, 1e-3, 2, 0.0).lr_at(7) == 1e-3  # default: constant


def test_adamw_groups_leave_biases_norms_and_scales_undecayed():
    from pointtal.engine.trainer import new_optimizer

    method = ActionFormer(Options(**SMALL), 8, 3)
    phase = method.phases(
        type("T", (), {"steps": 10, "epochs": None, "batch_size": 2, "lr": 1e-4, "weight_decay": 0.05})(), 4
    )[0]
    optimizer = new_optimizer(method, phase, 0)
    assert isinstance(optimizer, torch.optim.AdamW)
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 0.05 and plain["weight_decay"] == 0.0
    names = {id(p): n for n, p in method.named_parameters()}
    assert all(names[id(p)].endswith("weight") and p.ndim > 1 for p in decayed["params"])
    plain_names = {names[id(p)] for p in plain["params"]}
    assert "net.level_scales" in plain_names and any(n.endswith("path_mlp.scale") for n in plain_names)
    assert any(n.endswith("norm1.weight") for n in plain_names) and any(n.endswith("bias") for n in plain_names)
    assert len(decayed["params"]) + len(plain["params"]) == len(list(method.parameters()))


# ----------------------------------------------------------------------------- training, EMA and resume
def detector_config(data, steps: int = 12, checkpoint_every: int = 3, **method):
    from conftest import tiny_raw_config

    from pointtal.config import build_config

    raw = tiny_raw_config(data, "sfnet", steps=steps)
    raw["method"] = {"name": "actionformer", **SMALL, "max_seq_len": 48, "warmup_epochs": 0.5, **method}
    raw["data"].pop("points")
    raw["train"].update(batch_size=4, lr=1e-3, weight_decay=0.05, grad_clip=1.0, checkpoint_every=checkpoint_every)
    return build_config(raw)


# warm-up is 3 steps (half an epoch of 24 videos in batches of 4); ema_after_warmup starts the EMA at step 3
@pytest.mark.parametrize("stop,after_warmup", [(2, False), (9, False), (3, True)])
def test_resume_inside_and_after_warmup_equals_an_uninterrupted_run(
    tiny_data, tmp_path, monkeypatch, stop, after_warmup
):
    from conftest import interrupt_training_at

    from pointtal.engine.checkpoint import load_checkpoint
    from pointtal.engine.trainer import train

    config = detector_config(tiny_data, checkpoint_every=1, ema_after_warmup=after_warmup)
    whole = tmp_path / "whole"
    train(config, whole)
    with monkeypatch.context() as patch:
        interrupt_training_at(patch, stop)
        with pytest.raises(KeyboardInterrupt):
            train(config, tmp_path / "cut")
    assert int(load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"]) == stop
    train(config, tmp_path / "cut", resume=True)
    a, b = load_checkpoint(whole / "checkpoint.pt"), load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert a["step"] == b["step"] == 12
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)
        torch.testing.assert_close(a["ema"][key], b["ema"][key], rtol=0, atol=0)
    assert a["optimizer"]["param_groups"][0]["lr"] == b["optimizer"]["param_groups"][0]["lr"]


def test_the_ema_is_what_evaluation_and_prediction_use(tiny_data, tmp_path):
    from pointtal.engine.checkpoint import load_checkpoint
    from pointtal.engine.predictor import load_trained
    from pointtal.engine.trainer import train

    config = detector_config(tiny_data, steps=6, ema_decay=0.5)
    train(config, tmp_path / "run")
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    key = "net.classify.out.conv.weight"
    assert not torch.equal(saved["ema"][key], saved["model"][key])
    torch.testing.assert_close(best["model"][key], saved["ema"][key])  # the evaluated weights are the average
    loaded = load_trained(tmp_path / "run")
    torch.testing.assert_close(loaded.method.state_dict()[key], saved["ema"][key])


@pytest.mark.slow
def test_short_training_learns_on_tiny_data(tiny_data, tmp_path):
    """20 epochs (240 steps) of a 64-wide detector with the official pyramid on the tiny synthetic set: its
    trained weights reach an average mAP far above an untrained detector's."""
    from pointtal.config import build_config
    from pointtal.engine.trainer import evaluate_model, train

    raw = detector_config(tiny_data).to_dict()
    raw["method"] = {
        "name": "actionformer",
        "embed_dim": 64,
        "head_dim": 64,
        "max_seq_len": 256,
        "warmup_epochs": 2,
        "ema": False,
    }
    raw["train"].pop("steps")
    raw["train"].update(epochs=20, batch_size=2)
    config = build_config(raw)
    result = train(config, tmp_path / "run")
    assert result.metrics["average"] > 40.0
    from pointtal.engine.setup import load_run_data
    from pointtal.engine.trainer import new_method

    data = load_run_data(config)
    untrained, _ = new_method(config, data, 0, torch.device("cpu"))
    assert evaluate_model(untrained, data, config, torch.device("cpu"), 0)[0]["average"] < 10.0


def test_score_weights_scale_the_losses_of_each_instance_points():
    torch.manual_seed(0)
    features, mask = torch.randn(1, 32, 8), torch.ones(1, 32, dtype=torch.bool)
    targets = {
        "segments": torch.tensor([[[2.0, 9.0], [15.0, 17.0]]]),
        "labels": torch.tensor([[1, 3]]),
        "weights": torch.tensor([[0.25, 1.0]]),
    }
    batch = type("B", (), {"targets": targets})()
    losses = {}
    for weighted in (False, True):
        torch.manual_seed(0)
        method = ActionFormer(Options(**SMALL, drop_path=0.0, score_weights=weighted), 8, 3).eval()
        output = method(features, mask)
        losses[weighted] = {k: float(v.detach()) for k, v in method.loss(output, batch, 0).items()}
    points = method.points(output)
    assigned = assign_targets(points, targets["segments"], targets["labels"], torch.ones(1, 2), 3, 1.5)
    valid, positive = output.mask[0], assigned.classes[0].sum(-1) > 0
    weight = assign_targets(points, targets["segments"], targets["labels"], targets["weights"], 3, 1.5).weight[0]
    assert set(weight[positive].tolist()) == {0.25, 1.0} and (weight[~positive] == 1).all()
    norm = float(method.loss_norm)
    focal = sigmoid_focal_loss(output.logits[0][valid], assigned.classes[0][valid], 0.25, 2.0).detach()
    diou = diou_loss(output.offsets[0][positive], assigned.offsets[0][positive]).detach()
    assert losses[False]["cls"] == pytest.approx(float(focal.sum()) / norm, rel=1e-5)
    assert losses[True]["cls"] == pytest.approx(float((focal * weight[valid][:, None]).sum()) / norm, rel=1e-5)
    assert losses[True]["reg"] == pytest.approx(float((diou * weight[positive]).sum()) / norm, rel=1e-5)
    assert losses[True]["reg"] < losses[False]["reg"]


def test_trains_on_a_point_methods_pseudo_labels(tiny_data, tmp_path):
    """The route: SF-Net on clicks -> `predict --pseudo-labels` -> ActionFormer with data.segments = that file."""
    import json

    from conftest import tiny_raw_config

    from pointtal.cli import main
    from pointtal.config import build_config
    from pointtal.engine.setup import load_run_data
    from pointtal.engine.trainer import train

    train(build_config(tiny_raw_config(tiny_data, "sfnet", steps=10)), tmp_path / "teacher")
    pseudo = tmp_path / "pseudo.json"
    assert (
        main(
            [
                "predict",
                str(tmp_path / "teacher"),
                "--pseudo-labels",
                str(pseudo),
                "--subset",
                "validation",
                "--no-progress",
            ]
        )
        == 0
    )
    config = detector_config(tiny_data, steps=4)
    config = build_config({**config.to_dict(), "data": {**config.to_dict()["data"], "segments": str(pseudo)}})
    table = load_run_data(config, test=False).train.segments
    written = json.loads(pseudo.read_text())["database"]
    first = table.rows(0)
    video = load_run_data(config, test=False).train.video_ids[0]
    scores = sorted(a["score"] for a in written[video]["annotations"])
    assert sorted(table.weight[first].tolist()) == pytest.approx(scores)  # the file's instances, with their scores
    assert len(table) == sum(len(written[v]["annotations"]) for v in written if written[v]["subset"] == "validation")
    result = train(config, tmp_path / "student")
    assert result.step == 4 and (tmp_path / "student" / "predictions.json").is_file()


def test_options_errors_name_the_key_and_the_plan_warns_about_a_young_ema():
    from pointtal.errors import InputError

    with pytest.raises(
        InputError,
        match=r"method.pyramid_layers=5 must be in \[1, 1\] \(one pyramid level per "
        "regression range",
    ):
        Options(regression_ranges=((0, 4), (4, 10000)))
    with pytest.raises(InputError, match=r"method.regression_ranges=.* low < high for each pyramid level"):
        Options(regression_ranges=((0, 4), (8, 4)), pyramid_layers=1)
    with pytest.raises(InputError, match=r"method.window=2 must be >= 3"):
        Options(window=2)
    notes = ActionFormer(Options(**SMALL), 8, 3).plan_notes(600)
    assert len(notes) == 1 and "55%" in notes[0]  # 0.999^600 of the initial weights remain
    assert ActionFormer(Options(**SMALL), 8, 3).plan_notes(3500) == []
    assert ActionFormer(Options(**SMALL, ema_after_warmup=True), 8, 3).plan_notes(600) == []
