"""SODA: aggregation, losses, self-distillation, OIC localization, NMS, checkpoints, ensembles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pointtal.config import from_dict
from pointtal.data.batch import make_batch
from pointtal.errors import InputError
from pointtal.localization.nms import nms, nms_per_class, pairwise_tiou, tiou
from pointtal.localization.soda import (
    Proposals,
    localize_soda,
    outer_inner_contrast,
    segment_peaks,
    select_classes,
    threshold_proposals,
    upsample_linear,
)
from pointtal.methods.soda import (
    SODA,
    Options,
    aggregate,
    distillation_loss,
    frame_loss,
    topk_k,
    video_loss,
    video_targets,
)

SMALL = {"hidden": 5, "dropout": 0.0}


def tiny_soda(**overrides) -> SODA:
    torch.manual_seed(0)
    return SODA(Options(**{**SMALL, **overrides}), in_dim=6, n_classes=3)


def tiny_batch(b: int = 2, t: int = 12, c: int = 3, d: int = 6) -> object:
    """B videos of T snippets: classes {1} and {2, 3}, one action and one background point each; a third
    video (b = 3) has class 3 only and no point."""
    g = torch.Generator().manual_seed(1)
    features = torch.randn(b, t, d, generator=g)
    mask = torch.ones(b, t, dtype=torch.bool)
    labels = torch.zeros(b, c + 1)
    labels[0, 1] = 1
    labels[1, 2] = labels[1, 3] = 1
    points = torch.zeros(b, t, c + 1)
    points[0, 3, 1] = 1
    points[0, 9, 0] = 1
    points[1, 5, 2] = 0.5
    points[1, 5, 3] = 0.5
    points[1, 0, 0] = 1
    if b > 2:
        labels[2, 3] = 1
    return make_batch(features, mask, labels, points)


# ----------------------------------------------------------------------------- aggregation
def test_topk_k_uses_floor_with_minimum_one():
    assert topk_k(torch.tensor([750, 16, 15, 7, 1]), 1 / 8).tolist() == [93, 2, 1, 1, 1]
    assert topk_k(torch.tensor([100]), 0.29).tolist() == [29]  # 0.29*100 = 28.999999999999996 in floats


def test_topk_aggregation_by_hand_with_padding():
    cas = torch.tensor(
        [
            [1.0, 5.0, 3.0, 2.0, 4.0, 0.0, 7.0, 6.0],  # class 0 of video 0 (T=8)
            [9.0, 1.0, 2.0, 8.0, 0.0, 50.0, 60.0, 70.0],
        ]
    )  # class 0 of video 1 (valid T=5)
    cas = torch.stack([cas, -cas], dim=-1)  # (B=2, T=8, C+1=2)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 5:] = False
    s = aggregate(cas, mask, "topk", eta=0.25)  # k = 2 and max(1, floor(5/4)) = 1
    assert s[0].tolist() == pytest.approx([(7 + 6) / 2, -(0 + 1) / 2])
    assert s[1].tolist() == pytest.approx([9.0, 0.0])  # padded 50, 60, 70 are ignored


def test_alternative_aggregations_by_hand():
    cas = torch.tensor([[[1.0, 0.0], [3.0, 2.0]]])  # (B=1, T=2, C+1=2)
    mask = torch.ones(1, 2, dtype=torch.bool)
    assert aggregate(cas, mask, "average", 0.125)[0].tolist() == pytest.approx([2.0, 1.0])
    # temporal softmax, class 0: weights e^1, e^3 over t
    w0 = math.exp(1) / (math.exp(1) + math.exp(3))
    w1 = math.exp(0) / (math.exp(0) + math.exp(2))
    expected = [w0 * 1 + (1 - w0) * 3, w1 * 0 + (1 - w1) * 2]
    assert aggregate(cas, mask, "temporal_softmax", 0.125)[0].tolist() == pytest.approx(expected)
    # category softmax: p[t, 0] = sigmoid(cas[t,0] - cas[t,1]) = sigmoid(1) at both snippets
    p = 1 / (1 + math.exp(-1))
    expected = [(p * 1 + p * 3) / (2 * p), ((1 - p) * 0 + (1 - p) * 2) / (2 * (1 - p))]
    assert aggregate(cas, mask, "category_softmax", 0.125)[0].tolist() == pytest.approx(expected)


def test_alternative_aggregations_ignore_padding():
    cas = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [100.0, -100.0]]])
    mask = torch.tensor([[True, True, False]])
    for method in ("topk", "average", "temporal_softmax", "category_softmax"):
        assert torch.allclose(aggregate(cas, mask, method, 0.5), aggregate(cas[:, :2], mask[:, :2], method, 0.5))


# ----------------------------------------------------------------------------- video and frame losses
def test_video_targets_background_label():
    labels = torch.tensor([[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    target, valid = video_targets(labels, 0)
    assert target[0].tolist() == [0.0, 0.5, 0.0, 0.5] and valid.tolist() == [True, False]
    target, valid = video_targets(labels, 1)
    assert target[0].tolist() == pytest.approx([1 / 3, 1 / 3, 0.0, 1 / 3]) and target[1].tolist() == [
        1,
        0,
        0,
        0,
    ]
    assert valid.tolist() == [True, True]


def test_video_loss_by_hand():
    logits = torch.tensor([[[0.0, math.log(3.0)]]])  # (M=1, B=1, 2): softmax = [1/4, 3/4]
    loss = video_loss(logits, torch.tensor([[0.0, 1.0]]), torch.tensor([True]))
    assert loss.tolist() == pytest.approx([-math.log(0.75)])


def test_frame_loss_by_hand_batch_and_video_normalisation():
    cas = torch.zeros(1, 2, 2, 2)  # (M, B, T, C+1): uniform softmax, log p = log 1/2
    cas[0, 0, 0] = torch.tensor([0.0, math.log(3.0)])  # p = [1/4, 3/4]
    points = torch.zeros(2, 2, 2)
    points[0, 0, 1] = 1  # video 0: one action point at t=0 -> -log 3/4
    points[1, 0, 0] = 1  # video 1: two background points -> -log 1/2 each
    points[1, 1, 0] = 1
    annotated = points.sum(-1) > 0
    a, b = -math.log(0.75), math.log(2)
    assert frame_loss(cas, points, annotated, "batch").tolist() == pytest.approx([(a + 2 * b) / 3])
    assert frame_loss(cas, points, annotated, "video").tolist() == pytest.approx([(a + b) / 2])


# ----------------------------------------------------------------------------- self-distillation
def reference_distillation(logits, mask, present, distance, normalized):
    """Slow loops over videos, networks, snippets and classes (the formula of docs/methods.md §3.2)."""
    m, b, t, c = logits.shape
    p = torch.softmax(logits, -1) if normalized else logits
    total = 0.0
    for v in range(b):
        length = int(mask[v].sum())
        acc = 0.0
        for net in range(1, m):
            for s in range(t):
                if not mask[v, s]:
                    continue
                if distance == "kl":
                    acc += sum(float(p[0, v, s, k] * math.log(p[0, v, s, k] / p[net, v, s, k])) for k in range(c))
                    continue
                for k in range(c):
                    if present[v, k]:
                        d = float(p[0, v, s, k] - p[net, v, s, k])
                        acc += abs(d) if distance == "l1" else d * d
        total += acc / (length * (m - 1))
    return total / b


def test_distillation_by_hand_three_networks_raw():
    logits = torch.zeros(3, 1, 2, 3)  # (M=3, B=1, T=2, C+1=3), raw (not normalised)
    logits[0, 0, :, 1] = torch.tensor([1.0, 2.0])
    logits[1, 0, :, 1] = torch.tensor([0.5, 2.0])
    logits[2, 0, :, 1] = torch.tensor([0.0, 4.0])
    logits[2, 0, :, 2] = 9.0  # class 2 is absent from the video: ignored
    present = torch.tensor([[False, True, False]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    # |1-0.5| + |2-2| + |1-0| + |2-4| = 3.5, divided by T (M-1) = 4
    value = distillation_loss(logits, mask, present, "l1", normalized=False, detach_master=False)
    assert value.item() == pytest.approx(3.5 / 4)
    value = distillation_loss(logits, mask, present, "l2", normalized=False, detach_master=False)
    assert value.item() == pytest.approx((0.25 + 0 + 1 + 4) / 4)


@pytest.mark.parametrize("distance", ["l1", "l2", "kl"])
def test_distillation_matches_loop_reference_with_present_classes(distance):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 2, 5, 4, generator=g)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    present = torch.tensor([[False, True, False, True], [False, False, True, False]])
    expected = reference_distillation(logits, mask, present, distance, normalized=True)
    value = distillation_loss(logits, mask, present, distance, normalized=True, detach_master=False)
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_distillation_on_video_scores_and_single_network():
    logits = torch.tensor([[[0.0, 1.0, 2.0]], [[0.0, 2.0, 0.0]]])  # (M=2, B=1, C+1=3)
    present = torch.tensor([[False, True, True]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    value = distillation_loss(logits, mask, present, "l1", normalized=False, detach_master=False)
    assert value.item() == pytest.approx(1.0 + 2.0)  # T = 1, M - 1 = 1
    assert distillation_loss(logits[:1], mask, present, "l1", True, False).item() == 0.0


def test_video_distillation_ignores_where_in_time_the_activations_lie():
    """Table 9: distilling the video-level scores compares aggregated scores only, so shuffling a peer's
    snippets in time (top-k mean is order-free) leaves it unchanged, while CAS distillation changes; and
    it equals, per video, sum over present classes |softmax(s_1) - softmax(s_2)| averaged over videos."""
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 10, 4)  # (M, B, T, C+1)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[2, 6:] = False
    present = torch.tensor([[False, True, False, False], [False, False, True, True], [False, True, True, False]])
    shuffled = logits.clone()
    shuffled[1, :, :6] = logits[1, :, torch.randperm(6)]  # valid snippets of every video, peer network only

    def loss(x, target):
        source = x if target == "cas" else aggregate(x, mask, "topk", 0.25)
        return distillation_loss(source, mask, present, "l1", True, False).item()

    assert loss(shuffled, "video") == pytest.approx(loss(logits, "video"), rel=1e-6)
    assert abs(loss(shuffled, "cas") - loss(logits, "cas")) > 1e-3
    expected = 0.0
    for b in range(3):
        n = int(mask[b].sum())
        k = max(1, math.floor(n * 0.25))
        p = [torch.softmax(logits[m, b, :n].sort(0, descending=True).values[:k].mean(0), 0) for m in range(2)]
        expected += float((p[0] - p[1]).abs()[present[b]].sum()) / 3
    assert loss(logits, "video") == pytest.approx(expected, rel=1e-5)


# ----------------------------------------------------------------------------- loop reference of the loss
def reference_aggregate(x: torch.Tensor, method: str, eta: float) -> torch.Tensor:
    """One video's valid (T, C+1) class activations -> (C+1,) video scores."""
    if method == "topk":
        k = max(1, math.floor(x.shape[0] * eta + 1e-9))
        return x.sort(dim=0, descending=True).values[:k].mean(0)
    if method == "average":
        return x.mean(0)
    if method == "temporal_softmax":
        return (torch.softmax(x, 0) * x).sum(0)
    p = torch.softmax(x, 1)
    return (p * x).sum(0) / p.sum(0)


def reference_losses(method, output, batch, step=0) -> dict[str, torch.Tensor]:
    """Loop reference of `SODA.loss` (per network, per video; bench/train_speed.py times it too)."""
    o = method.options
    logits = output.cas_logits.float()
    n_nets, n_videos = logits.shape[:2]
    lengths = [int(v) for v in batch.mask.sum(1)]
    video = [
        [reference_aggregate(logits[m, b, : lengths[b]], o.aggregation, o.eta) for b in range(n_videos)]
        for m in range(n_nets)
    ]
    l_vid = l_frame = torch.zeros(())
    for m in range(n_nets):
        losses = []
        for b in range(n_videos):
            y = batch.video_labels[b].float().clone()
            y[0] = o.background_label
            if y.sum() > 0:
                losses.append(-(y / y.sum() * F.log_softmax(video[m][b], 0)).sum())
        l_vid = l_vid + (torch.stack(losses).mean() if losses else torch.zeros(()))
        per_video, n_points = [], 0
        for b in range(n_videos):
            points = batch.point_mask[b, : lengths[b]]
            if points.any():
                ce = -(
                    batch.point_labels[b, : lengths[b]][points] * F.log_softmax(logits[m, b, : lengths[b]][points], 1)
                )
                per_video.append(ce.sum())
                n_points += int(points.sum())
        if o.frame_loss and per_video:
            if o.frame_normalization == "batch":
                l_frame = l_frame + torch.stack(per_video).sum() / n_points
            else:
                counts = [int(batch.point_mask[b].sum()) for b in range(n_videos) if batch.point_mask[b].any()]
                l_frame = l_frame + torch.stack([v / c for v, c in zip(per_video, counts, strict=True)]).mean()
    l_sd = torch.zeros(())
    if n_nets > 1 and o.distill_weight > 0:
        for b in range(n_videos):
            if o.distill_target == "cas":
                p = [logits[m, b, : lengths[b]] for m in range(n_nets)]  # (T, C+1) each
            else:
                p = [video[m][b][None] for m in range(n_nets)]  # (1, C+1) each
            length = p[0].shape[0]
            log_p = [F.log_softmax(q, -1) for q in p]
            p = [torch.softmax(q, -1) for q in p] if o.distill_normalized else p
            classes = [c for c in range(1, p[0].shape[1]) if batch.video_labels[b, c] > 0]
            acc = torch.zeros(())
            for m in range(1, n_nets):
                if o.distill_distance == "kl":
                    acc = acc + (p[0] * (log_p[0] - log_p[m])).sum()
                else:
                    d = p[0][:, classes] - p[m][:, classes]
                    acc = acc + (d.abs() if o.distill_distance == "l1" else d.square()).sum()
            l_sd = l_sd + acc / (length * (n_nets - 1))
        l_sd = l_sd / n_videos
    total = l_vid + l_frame + o.distill_weight * l_sd
    return {"total": total, "video": l_vid, "frame": l_frame, "distill": l_sd}


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"background_label": 1, "aggregation": "average", "frame_normalization": "video"},
        {"aggregation": "temporal_softmax", "distill_distance": "l2", "n_networks": 3},
        {"aggregation": "category_softmax", "distill_distance": "kl", "distill_target": "video"},
        {"distill_normalized": False, "distill_target": "video", "frame_loss": False},
        {"distill_target": "video"},  # Table 9's video row: L1 on softmax video scores
        {"distill_target": "video", "distill_distance": "l2", "n_networks": 3, "aggregation": "average"},
    ],
)
def test_loss_matches_loop_reference(overrides):
    model = tiny_soda(**overrides).train()
    batch = tiny_batch(b=3)
    batch.mask[2, 8:] = False  # a padded video (the engine resamples, but the loss must not depend on it)
    batch.point_mask[2, 8:] = False
    with torch.no_grad():
        output = model(batch.features, batch.mask)
    got, expected = model.loss(output, batch, 0), reference_losses(model, output, batch, 0)
    for key in expected:
        assert got[key].item() == pytest.approx(expected[key].item(), rel=1e-5, abs=1e-7), key


# ----------------------------------------------------------------------------- the method
def test_stacked_networks_equal_independent_casnets():
    model = tiny_soda(n_networks=3).train()
    batch = tiny_batch()
    logits = model(batch.features, batch.mask).cas_logits  # (3, B, T, C+1)
    nets = model.casnets
    x = batch.features.transpose(1, 2)
    for m in range(3):
        z = F.relu(F.conv1d(x, nets.weight1[m], nets.bias1[m], padding=1))
        z = F.relu(F.conv1d(z, nets.weight2[m], nets.bias2[m], padding=1))
        ref = F.conv1d(z, nets.weight3[m], nets.bias3[m]).transpose(1, 2)
        assert torch.allclose(logits[m], ref, atol=1e-5)


@pytest.mark.parametrize("init", ["default", "xavier"])
def test_each_casnet_is_an_independent_draw_of_the_documented_init(init):
    """Conv1d default: U(+-1/sqrt(fan_in)) weights and biases; Xavier: U(+-sqrt(6/(fan_in+fan_out))), zero
    bias; fans per network (channels x kernel). Independent networks: uncorrelated weights."""
    model = tiny_soda(n_networks=3, hidden=64, init=init)
    nets = model.casnets
    for weight, bias in ((nets.weight1, nets.bias1), (nets.weight2, nets.bias2), (nets.weight3, nets.bias3)):
        weight, bias = weight.detach(), bias.detach()
        m, fan_out_ch, fan_in_ch, k = weight.shape
        fan_in, fan_out = fan_in_ch * k, fan_out_ch * k  # e.g. weight1: 6 * 3 and 64 * 3
        bound = 1 / math.sqrt(fan_in) if init == "default" else math.sqrt(6 / (fan_in + fan_out))
        for net in range(m):
            largest = float(weight[net].abs().max())
            assert 0.97 * bound < largest <= bound  # >= 64 draws per network fill the range
            if init == "default":
                assert float(bias[net].abs().max()) <= bound
                assert bias.shape[1] < 16 or float(bias[net].abs().max()) > 0.5 * bound
            else:
                assert float(bias[net].abs().max()) == 0.0
        flat = weight.reshape(m, -1)
        correlation = torch.corrcoef(flat)[~torch.eye(m, dtype=torch.bool)]  # off-diagonal pairs
        assert float(correlation.abs().max()) < 4 / math.sqrt(flat.shape[1])  # ~4 sigma of independent draws


def test_padding_does_not_change_valid_snippets():
    model = tiny_soda().eval()
    batch = tiny_batch()
    mask = batch.mask.clone()
    mask[1, 7:] = False
    features = batch.features.clone()
    features[1, 7:] = 100.0  # garbage in the padding
    padded = model(features, mask).cas_logits[0, 1, :7]
    alone = model(batch.features[1:, :7], mask[1:, :7]).cas_logits[0, 0]
    assert torch.allclose(padded, alone, atol=1e-5)


@pytest.mark.parametrize("background_label", [0, 1])
def test_loss_is_finite_with_both_background_labels(background_label):
    model = tiny_soda(background_label=background_label).train()
    batch = tiny_batch()
    losses = model.loss(model(batch.features, batch.mask), batch, step=0)
    assert set(losses) == {"total", "video", "video_master", "frame", "distill"}
    assert all(torch.isfinite(v) for v in losses.values())
    expected = reference_losses(model, model(batch.features, batch.mask), batch, 0)
    assert float(expected["distill"].detach()) > 1e-4 and float(expected["frame"].detach()) > 1e-4  # all count
    for key in expected:  # total = video + frame + 0.6 distill, each from the per-video loop
        assert losses[key].item() == pytest.approx(expected[key].item(), rel=1e-5, abs=1e-7), key


@pytest.mark.parametrize("label", [0, 1])
def test_background_label_sets_the_video_target(label):
    """Targets by hand: video 0 has class {1}, video 1 classes {2, 3}; y_0 = the background label, L1-normed."""
    targets = {0: [[0, 1, 0, 0], [0, 0, 1 / 2, 1 / 2]], 1: [[1 / 2, 1 / 2, 0, 0], [1 / 3, 0, 1 / 3, 1 / 3]]}[label]
    batch = tiny_batch()
    model = tiny_soda(background_label=label, frame_loss=False, distill_weight=0.0).train()
    out = model(batch.features, batch.mask)
    total = model.loss(out, batch, 0)["total"].item()
    expected = 0.0
    for m in range(out.cas_logits.shape[0]):  # each network: mean over videos of CE(top-k mean, target)
        for b, y in enumerate(targets):
            logits = out.cas_logits[m, b].detach()  # (T = 12, C+1): k = floor(12 * 0.125) = 1, the max
            expected += -(torch.tensor(y) * F.log_softmax(logits.max(0).values, 0)).sum().item() / len(targets)
    assert total == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("target", ["cas", "video"])
def test_gradient_reaches_every_network_through_distillation(target):
    model = tiny_soda(n_networks=3, distill_target=target).train()
    batch = tiny_batch()
    out = model(batch.features, batch.mask)
    logits = out.cas_logits
    present = batch.video_labels > 0
    source = logits if target == "cas" else aggregate(logits, batch.mask, "topk", 0.125)
    distillation_loss(source, batch.mask, present, "l1", True, False).backward()
    grads = model.casnets.weight1.grad.flatten(1).abs().sum(1)  # (M,)
    assert (grads > 0).all()


def test_detach_master_stops_distillation_gradient_to_master():
    model = tiny_soda(n_networks=2, distill_detach_master=True, frame_loss=False).train()
    batch = tiny_batch()
    out = model(batch.features, batch.mask)
    present = batch.video_labels > 0
    distillation_loss(out.cas_logits, batch.mask, present, "l1", True, True).backward()
    grads = model.casnets.weight1.grad.flatten(1).abs().sum(1)
    assert grads[0] == 0 and grads[1] > 0
    model.zero_grad()
    model.loss(model(batch.features, batch.mask), batch, 0)["total"].backward()  # the video loss still trains it
    assert model.casnets.weight1.grad[0].abs().sum() > 0


def test_scores_use_the_master_and_are_probabilities():
    model = tiny_soda().eval()
    batch = tiny_batch()
    scores = model.scores(model(batch.features, batch.mask), batch.mask)
    assert scores.cas.shape == (2, 12, 4) and scores.video_scores.shape == (2, 4)
    assert torch.allclose(scores.cas.sum(-1), torch.ones(2, 12))
    assert torch.allclose(scores.video_scores.sum(-1), torch.ones(2))
    master = model.train()(batch.features, batch.mask).cas_logits[0]  # dropout 0: same as eval
    assert torch.allclose(scores.cas, torch.softmax(master, -1), atol=1e-6)


def test_inference_state_dict_drops_auxiliary_networks_and_scores_identically():
    model = tiny_soda(n_networks=3).eval()
    batch = tiny_batch()
    state = model.inference_state_dict()
    assert all(v.shape[0] == 1 for v in state.values())
    assert sum(v.numel() for v in state.values()) * 3 == sum(p.numel() for p in model.parameters())
    expected = model.scores(model(batch.features, batch.mask), batch.mask)
    for loader in ("load_inference_state_dict", "load_state_dict"):
        torch.manual_seed(5)  # a different initialisation, overwritten by the load
        other = SODA(Options(**SMALL, n_networks=3), in_dim=6, n_classes=3).eval()
        getattr(other, loader)(state)
        got = other.scores(other(batch.features, batch.mask), batch.mask)
        assert torch.allclose(got.cas, expected.cas) and torch.allclose(got.video_scores, expected.video_scores)
    single = SODA(Options(**SMALL, n_networks=1), in_dim=6, n_classes=3).eval()
    single.load_state_dict(state)  # the inference dict is an M = 1 model's state dict
    assert torch.allclose(single.scores(single(batch.features, batch.mask), batch.mask).cas, expected.cas)
    with pytest.raises(ValueError):
        SODA(Options(hidden=4, n_networks=2), in_dim=6, n_classes=3).load_inference_state_dict(state)


def test_options_are_validated_through_config():
    assert from_dict(Options, {"distill_distance": "l2", "thresholds": [0.1, 0.2]}, "m").thresholds == (
        0.1,
        0.2,
    )
    with pytest.raises(InputError, match="distil_weight"):
        from_dict(Options, {"distil_weight": 1.0}, "m")
    with pytest.raises(InputError, match="distill_normalized"):
        from_dict(Options, {"distill_distance": "kl", "distill_normalized": False}, "m")
    with pytest.raises(InputError, match="aggregation"):
        from_dict(Options, {"aggregation": "max"}, "m")
    assert Options().thresholds == pytest.approx(tuple(0.025 * i for i in range(10)))


# ----------------------------------------------------------------------------- NMS and tIoU
def test_tiou_by_hand():
    assert tiou(np.array([0.0, 2.0]), np.array([[1.0, 3.0], [2.0, 4.0], [0.0, 2.0], [5.0, 5.0]])).tolist() == [
        pytest.approx(1 / 3),
        0.0,
        1.0,
        0.0,
    ]
    assert pairwise_tiou(np.zeros((0, 2)), np.array([[0.0, 1.0]])).shape == (0, 1)


def test_nms_suppression_ties_and_threshold_boundary():
    segments = np.array([[0.0, 10.0], [1.0, 10.0], [20.0, 30.0], [0.0, 5.0]])
    scores = np.array([0.9, 0.8, 0.5, 0.95])
    # [1,10) vs [0,10): tIoU 0.9 -> suppressed at 0.7; [0,5) vs [0,10): 0.5 -> kept
    assert nms(segments, scores, 0.7).tolist() == [3, 0, 2]
    assert nms(segments, scores, 0.9).tolist() == [3, 0, 1, 2]  # tIoU equal to the threshold is kept
    tied = np.array([[0.0, 4.0], [0.0, 4.0], [10.0, 12.0]])
    assert nms(tied, np.array([0.5, 0.5, 0.5]), 0.7).tolist() == [0, 2]  # tie: the earlier one wins
    assert nms(np.zeros((0, 2)), np.zeros(0), 0.7).tolist() == []


def test_nms_per_class_does_not_suppress_across_classes():
    segments = np.array([[0.0, 10.0], [0.0, 10.0], [0.5, 10.0], [50.0, 60.0]])
    scores = np.array([0.6, 0.9, 0.7, 0.6])
    classes = np.array([1, 2, 1, 1])
    assert nms_per_class(segments, scores, classes, 0.7).tolist() == [1, 2, 3]  # ties by input order


# ----------------------------------------------------------------------------- localization
def test_select_classes_threshold_and_fallback():
    assert select_classes(np.array([0.9, 0.3, 0.2, 0.26]), 0.25).tolist() == [1, 3]
    assert select_classes(np.array([0.9, 0.05, 0.2, 0.1]), 0.25).tolist() == [2]  # none above: best action


def test_upsample_linear_centre_aligned():
    up = upsample_linear(np.array([[0.0], [1.0]]), 2)[:, 0]
    # positions (u+0.5)/2 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> clamped to 0 and 1 at the ends
    assert up.tolist() == pytest.approx([0.0, 0.25, 0.75, 1.0])
    assert np.array_equal(upsample_linear(np.arange(6.0).reshape(3, 2), 1), np.arange(6.0).reshape(3, 2))


def test_threshold_proposals_all_thresholds_and_columns():
    values = np.array([[0.1, 0.0], [0.5, 0.3], [0.5, 0.0], [0.1, 0.3]])  # (U=4, K=2)
    found = threshold_proposals(values, (0.05, 0.2))
    got = list(zip(found.column.tolist(), found.start.tolist(), found.end.tolist(), strict=True))
    assert got == [(0, 0, 4), (1, 1, 2), (1, 3, 4), (0, 1, 3), (1, 1, 2), (1, 3, 4)]


def test_outer_inner_contrast_by_hand_including_video_edges():
    values = np.array([[0.0, 1.0, 5.0, 5.0, 2.0, 0.0, 0.0, 3.0]]).T  # (U=8, K=1)
    proposals = Proposals(column=np.zeros(4, dtype=np.int64), start=np.array([2, 0, 0, 7]), end=np.array([4, 4, 8, 8]))
    oic = outer_inner_contrast(values, proposals, 0.25)
    # [2,4): pad ceil(0.5)=1 -> outside {1, 4}: 5 - 1.5; [0,4): left edge, outside {4}: 11/4 - 2
    # [0,8): whole video, outside empty -> mean 0; [7,8): right edge, outside {6}: 3 - 0
    assert oic.tolist() == pytest.approx([3.5, 0.75, 2.0, 3.0])
    # a larger ratio: [2,4) with pad ceil(0.75*2) = 2 points each side, {0,1} and {4,5}
    assert outer_inner_contrast(values, proposals, 0.75)[0] == pytest.approx(5 - 3 / 4)


def test_segment_peaks_use_overlapping_snippets():
    cas = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.5, 0.5], [0.4, 0.6]])  # (T=5, K=2)
    # [0.5, 2.2) overlaps snippets 0..2; [3, 5) is 3..4; [1.2, 1.3) is snippet 1 only; ties -> earliest
    peaks = segment_peaks(cas, np.array([0, 1, 1, 0]), np.array([0.5, 3.0, 1.2, 3.0]), np.array([2.2, 5.0, 1.3, 5.0]))
    assert peaks.tolist() == [1, 4, 1, 3]


def test_localize_end_to_end_one_clear_action():
    t = 40
    cas = np.full((t, 4), 0.02)
    cas[:, 0] = 0.94
    cas[10:20, 0], cas[10:20, 2] = 0.05, 0.91  # class 2 in snippets [10, 20)
    cas[15, 2], cas[15, 0] = 0.95, 0.01  # its peak
    video_scores = np.array([0.2, 0.05, 0.7, 0.05])
    found = localize_soda(cas, video_scores)
    assert found.segments.shape[1] == 4 and found.frames.shape[1] == 3
    best = found.segments[0]
    assert best[2] == 2 and set(found.segments[:, 2]) == {2.0}
    # centre-aligned interpolation: the edges fall between the snippet centres 9|10 and 19|20
    assert 9.4 <= best[0] <= 10.0 and 20.0 <= best[1] <= 20.6
    assert (best[0] + best[1]) / 2 == pytest.approx(15.0, abs=0.1)
    assert np.all(np.diff(found.segments[:, 3]) <= 0)  # descending score
    assert found.frames[0].tolist() == pytest.approx([15.0, 2.0, best[3]])
    # the whole-video proposal of threshold 0.0 survives NMS but ranks below the action
    assert found.segments[:, 3].max() == best[3]


def test_localize_without_any_proposal_is_empty():
    cas = np.full((5, 3), 1 / 3)
    found = localize_soda(cas, np.array([0.4, 0.3, 0.3]), thresholds=(0.5,))
    assert found.segments.shape == (0, 4) and found.frames.shape == (0, 3)


def test_soda_localize_wraps_detections_in_snippet_units():
    model = tiny_soda(scale=4, thresholds=(0.5,))
    cas = np.zeros((10, 4))
    cas[:, 0] = 1.0
    cas[0:3, 0], cas[0:3, 1] = 0.0, 1.0  # class 1 at the video start
    detections = model.localize(cas, None, np.array([0.0, 0.9, 0.05, 0.05]))
    assert detections.segments.shape == (1, 4)
    start, end, label, score = detections.segments[0]
    # upsampled centre-aligned: class-1 curve is 1 up to position 2, 0.5 at 2.5, so > 0.5 on [0, 12) / 4
    assert (start, end, label) == (0.0, 3.0, 1.0)
    # inside: u=0..9 are 1, u=10, 11 are 0.875, 0.625 -> 11.5/12; outside: pad ceil(0.25*12) = 3 after
    # [0,12): u=12,13,14 -> 0.375, 0.125, 0 -> mean 1/6 (nothing before the video start)
    assert score == pytest.approx(11.5 / 12 - 1 / 6 + 0.2 * 0.9)
    assert detections.frames.tolist() == [[0.0, 1.0, score]]
