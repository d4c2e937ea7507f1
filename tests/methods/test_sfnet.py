"""SF-Net and the weak baseline: layers, batched losses vs a per-video loop reference, padding, localization,
anchor expansion.

The `reference_*` functions are the slow, obviously-correct versions (plain loops over videos and snippets,
written after the SF-Net reference code); bench/train_speed.py imports `reference_losses` from here.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pointtal.config import from_dict
from pointtal.data.batch import make_batch
from pointtal.errors import InputError
from pointtal.localization.runs import find_runs_2d
from pointtal.localization.sfnet import localize_sfnet, run_peaks
from pointtal.methods.layers import (
    Packing,
    TemporalConv,
    _PackedTaps,
    masked_topk_mean,
    project,
    select_hardest,
    topk_counts,
)
from pointtal.methods.sfnet import Options as SFNetOptions
from pointtal.methods.sfnet import SFNet, anchor_expansion, select_last
from pointtal.methods.weak import Options as WeakOptions
from pointtal.methods.weak import Weak

D, C = 16, 3  # tiny feature width (RGB 8 ‖ flow 8) and action classes; K = C+1 columns
K = C + 1


# ----------------------------------------------------------------------------- reference (loops)


def reference_video_loss(cas, mask, video_labels, divisor=8, min_len=5):
    terms = []
    for i in range(cas.shape[0]):
        valid = cas[i][mask[i]].float()  # (T_i, K)
        target = video_labels[i].float().clone()
        target[0] = 0
        if valid.shape[0] < min_len or target.sum() == 0:
            continue
        k = math.ceil(valid.shape[0] / divisor)
        pooled = valid.topk(k, dim=0).values.mean(0)  # (K,)
        terms.append(-(target / target.sum() * F.log_softmax(pooled, dim=0)).sum())
    return torch.stack(terms).mean() if terms else torch.zeros(())


def reference_mining(mask, point_labels, eta):
    """Per video: labelled / action / background-point snippets, k_i, and the pooled unlabelled snippets."""
    videos = []
    for i in range(mask.shape[0]):
        valid = [t for t in range(mask.shape[1]) if mask[i, t]]
        labelled = [t for t in valid if point_labels[i, t].sum() > 0]
        action = [t for t in labelled if point_labels[i, t, 1:].sum() > 0]
        background = [t for t in labelled if t not in action]
        k = min(int(math.floor(eta * len(labelled))), len(valid) - len(labelled))
        unlabelled = [t for t in valid if t not in labelled] if k >= 1 else []
        videos.append(dict(labelled=labelled, action=action, background=background, k=max(k, 0), pool=unlabelled))
    return videos


def reference_frame_loss(cas, point_labels, videos, background=True, mining_score="prob"):
    rows = [cas[i, t].float() for i, v in enumerate(videos) for t in v["labelled"]]
    targets = [point_labels[i, t] for i, v in enumerate(videos) for t in v["labelled"]]
    loss = torch.zeros(())
    if rows:
        loss = torch.stack([-(y * F.log_softmax(r, 0)).sum() for r, y in zip(rows, targets, strict=True)]).mean()
    count = sum(v["k"] for v in videos if v["k"] >= 1)
    if background and count > 0:
        pool = torch.stack([cas[i, t].float() for i, v in enumerate(videos) for t in v["pool"]])  # (P, K)
        score = F.softmax(pool, 1)[:, 0] if mining_score == "prob" else pool[:, 0]
        chosen = pool[score.topk(count).indices]
        loss = loss + (-F.log_softmax(chosen, 1)[:, 0]).mean() / cas.shape[-1]
    return loss


def reference_act_loss(act, videos, eps=1e-3, which="top"):
    """which "top": the count highest of the pool; "code": the official act_loss, whose sort of the
    (n, 1) pool is a no-op, so the last count snippets of the pool concatenated video by video."""
    positives = [act[i, t].float() for i, v in enumerate(videos) for t in v["action"]]
    loss = torch.zeros(())
    if positives:
        loss = -F.logsigmoid(torch.stack(positives)).mean()
    count = sum(v["k"] for v in videos if v["k"] >= 1)
    negatives = [act[i, t].float() for i, v in enumerate(videos) for t in v["background"]]
    if count > 0:
        pool = torch.stack([act[i, t].float() for i, v in enumerate(videos) for t in v["pool"]])
        negatives += list(pool.sort().values[-count:] if which == "top" else pool[-count:])
    if negatives:
        loss = loss - torch.log(1 + eps - torch.sigmoid(torch.stack(negatives))).mean()
    return loss


def reference_losses(method, output, batch, step=0) -> dict[str, torch.Tensor]:
    """Loop reference of `SFNet.loss` (the total and every component)."""
    o = method.options
    videos = reference_mining(batch.mask, batch.point_labels, o.eta)
    l_vid = l_frame = l_act = torch.zeros(())
    for cas, act in output.streams():
        l_vid = l_vid + reference_video_loss(cas, batch.mask, batch.video_labels, o.topk_divisor, o.min_video_len)
        l_frame = l_frame + reference_frame_loss(cas, batch.point_labels, videos, o.background, o.mining_score)
        if act is not None:
            l_act = l_act + reference_act_loss(act, videos, o.act_eps, o.act_negatives)
    use_act = o.act_loss_floor <= 0 or float(l_act.detach()) > o.act_loss_floor
    total = o.alpha * l_vid + l_frame + (o.beta * l_act if use_act else 0.0)
    return {"total": total, "video": l_vid, "frame": l_frame, "act": l_act}


def reference_attention_pool(output, mask, video_labels) -> dict[tuple[int, int], torch.Tensor]:
    """Weak baseline's pooled features, per (video, present action class): softmax of the fused CAS over the
    video's snippets, below-average weights zeroed, renormalised, applied to [h_rgb ‖ h_flow]."""
    pooled = {}
    for i in range(mask.shape[0]):
        n = int(mask[i].sum())  # prefix masks
        for c in range(1, output.cas.shape[-1]):
            if n == 0 or not bool(video_labels[i, c] > 0):
                continue
            a = torch.softmax(output.cas[i, :n, c].float(), 0)
            a = torch.where(a >= min(1.0 / n, float(a.max().detach())), a, torch.zeros(()))
            a = a / a.sum()
            h = torch.cat([output.hidden_rgb[i, :n], output.hidden_flow[i, :n]], -1).float()  # (n, 2H)
            pooled[i, c] = (a[:, None] * h).sum(0)
    return pooled


def reference_anchor_expansion(point_labels, cas, offsets, radius, ratio, stop_on_failure, edge="clip"):
    """Sequential walk in the reference code's order (video by video, anchor by anchor, left then right);
    edge "code": the walk ends where the snippet after the candidate is outside the video (official)."""
    labels = point_labels.clone()
    pseudo = torch.zeros(labels.shape[0], dtype=torch.bool)
    for v in range(len(offsets) - 1):
        lo, hi = int(offsets[v]), int(offsets[v + 1])
        originally = [t for t in range(lo, hi) if point_labels[t].sum() > 0]
        for anchor in originally:
            classes = [c for c in range(1, labels.shape[1]) if point_labels[anchor, c] > 0]
            if not classes:
                continue

            def best(t: int) -> int:
                return int(cas[t, 1:].argmax())

            def score(t: int, classes=classes) -> float:
                return float(cas[t, classes].mean())

            for direction in (-1, 1):
                for j in range(1, radius + 1):
                    cand = anchor + direction * j
                    if cand < lo or cand >= hi or labels[cand].sum() > 0:
                        break
                    if edge == "code" and not lo <= cand + direction < hi:
                        break
                    after = cand + direction if lo <= cand + direction < hi else cand
                    agree = best(anchor + direction) == best(cand) == best(after)
                    if agree and score(cand) >= ratio * score(anchor):
                        labels[cand] = point_labels[anchor]
                        pseudo[cand] = True
                    elif stop_on_failure:
                        break
    return labels, pseudo


# ----------------------------------------------------------------------------- helpers


def tiny_sfnet(**overrides) -> SFNet:
    options = from_dict(SFNetOptions, {"dropout": 0.0, **overrides}, "test")
    return SFNet(options, D, C)


def random_batch(seed: int, b: int = 6, t: int = 40):
    """Random lengths (some < 5), action points, background points, a video without points, one without labels."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, t + 1, (b,), generator=g)
    lengths[0] = t
    mask = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    features = torch.randn(b, t, D, generator=g)
    video_labels = (torch.rand(b, K, generator=g) < 0.5).float()
    video_labels[:, 0] = 0
    video_labels[1] = 0  # a video with no positive label
    point_labels = torch.zeros(b, t, K)
    for i in range(b):
        n_points = int(torch.randint(0, 5, (), generator=g)) if i != 2 else 0  # video 2: no points
        for snippet in torch.randperm(int(lengths[i]), generator=g)[:n_points].tolist():
            cls = int(torch.randint(0, K, (), generator=g))  # class 0 = background point
            point_labels[i, snippet, cls] = 1.0
        if i == 3 and lengths[i] > 2:  # a snippet with two labels: mean of one-hots
            point_labels[i, 1] = torch.tensor([0.0, 0.5, 0.5, 0.0])
    return make_batch(features, mask, video_labels, point_labels)


# ----------------------------------------------------------------------------- layers


@pytest.mark.parametrize("dilation", [1, 3])
def test_temporal_conv_matches_conv1d_and_its_gradients(dilation):
    torch.manual_seed(0)
    conv = TemporalConv(5, 7, 3, dilation)
    ref = nn.Conv1d(5, 7, 3, padding=dilation, dilation=dilation)
    ref.weight.data.copy_(conv.weight.data.permute(2, 0, 1))  # (D, k, H) -> Conv1d's (H, D, k)
    ref.bias.data.copy_(conv.bias.data)
    x = torch.randn(2, 9, 5, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    y = conv(x)
    y_ref = ref(x_ref.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(y)
    y.backward(grad)
    y_ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv.weight.grad.permute(2, 0, 1), ref.weight.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv.bias.grad, ref.bias.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dilation", [1, 2])
def test_layers_on_real_snippets_equal_the_padded_layers_and_their_gradients(dilation):
    """The network computes on real snippets only (`Packing` / `project` / `taps`); values and weight
    gradients must equal the same layers on the zero-padded batch, padding, holes and video edges included."""
    torch.manual_seed(0)
    conv, linear = TemporalConv(6, 4, 3, dilation), nn.Linear(6, 5)
    mask = torch.tensor(
        [
            [True] * 7 + [False] * 2,
            [True] * 3 + [False] * 6,
            [True] * 9,
            [False] * 9,
            [True, False, True, True, False, True, True, True, False],
        ]
    )  # last row: holes
    x = torch.randn(5, 9, 6).masked_fill(~mask.unsqueeze(-1), 0)  # (B, T, D), zero padding
    packing = Packing(mask)
    rows = packing.rows(x)
    assert torch.equal(rows, x[mask]) and rows.shape == (25, 6)
    assert torch.equal(packing.scatter(rows), x)
    projected_conv, projected_linear = project([conv, linear], rows)  # one product per layer
    grad_conv, grad_linear = torch.randn(25, 4), torch.randn(25, 5)
    packed = (conv.taps(projected_conv, packing) * grad_conv).sum() + (
        (projected_linear + linear.bias) * grad_linear
    ).sum()
    packed.backward()
    packed_grads = [p.grad.clone() for p in (conv.weight, conv.bias, linear.weight, linear.bias)]
    for p in (conv.weight, conv.bias, linear.weight, linear.bias):
        p.grad = None
    padded = (conv(x)[mask] * grad_conv).sum() + (linear(x)[mask] * grad_linear).sum()
    padded.backward()
    torch.testing.assert_close(packed, padded)
    for got, want in zip(
        packed_grads, (conv.weight.grad, conv.bias.grad, linear.weight.grad, linear.bias.grad), strict=True
    ):
        torch.testing.assert_close(got, want)
    assert torch.equal(conv.rows(rows, packing), conv(x)[mask])  # same additions in the same order


def test_packed_tap_gradient_reaches_each_source_row_through_its_reader():
    """The packed tap sum's backward (gathers through the reverse neighbour) equals autograd's through the
    padded conv for the input rows themselves, not only for the weights."""
    torch.manual_seed(1)
    conv = TemporalConv(3, 2, 3, 2)
    mask = torch.tensor([[True] * 6 + [False] * 2, [False, True, True, False, True, True, True, True]])
    x = torch.randn(2, 8, 3).masked_fill(~mask.unsqueeze(-1), 0)
    packing = Packing(mask)
    rows = packing.rows(x).requires_grad_(True)
    x_ref = x.clone().requires_grad_(True)
    grad = torch.randn(int(mask.sum()), 2)
    (conv.rows(rows, packing) * grad).sum().backward()
    (conv(x_ref)[mask] * grad).sum().backward()
    torch.testing.assert_close(rows.grad, x_ref.grad[mask])


def _gather_reference_taps(z: torch.Tensor, packing: Packing, shifts: list[int]) -> torch.Tensor:
    """The tap sum with every row gathering its neighbours (zero weight where there is none), in tap order."""
    y = z[:, shifts.index(0)].clone()
    for j, shift in enumerate(shifts):
        if shift != 0:
            source, weight = packing.neighbours(shift, z.dtype)
            y = y + z[:, j][source] * weight
    return y


@pytest.mark.parametrize("columns", [False, True])
@pytest.mark.parametrize("shifts", [[-1, 0, 1], [-2, 0, 2], [-3, 0, 3], [-2, -1, 0, 1, 2], [-9, 0, 9]])
def test_packed_taps_by_slices_equal_gathers_bit_for_bit(shifts, columns):
    """On CPU the tap sum adds shifted slices and recomputes only the misplaced rows (video edges, holes, an empty
    video, shifts longer than a video or the batch): values and the gradient of z equal the every-row gather
    form exactly, and the gradient equals autograd's through that form, also when it is laid out column-major
    (`columns`: a transposed row-major block)."""
    torch.manual_seed(2)
    mask = torch.tensor(
        [
            [True] * 7 + [False] * 2,
            [True] + [False] * 8,
            [True] * 9,
            [False] * 9,
            [True, False, True, True, False, True, True, True, False],
        ]
    )
    packing = Packing(mask)
    n = int(mask.sum())
    z = torch.randn(n, len(shifts), 4, requires_grad=True)
    z_ref = z.detach().clone().requires_grad_(True)
    y = _PackedTaps.apply(z, packing, shifts, columns)
    want = _gather_reference_taps(z_ref, packing, shifts)
    assert torch.equal(y, want)
    grad = torch.randn(n, 4)
    (grad_z,) = torch.autograd.grad(y, z, grad)
    want.backward(grad)
    assert torch.equal(grad_z, z_ref.grad)
    assert grad_z.permute(1, 2, 0).is_contiguous() == columns  # (k, H, N) storage when asked for
    # every row outside `misplaced` reads row n + shift, and every misplaced row does not
    source, weight = packing.neighbours(shifts[-1], torch.float32)
    rows = torch.arange(n)
    simple = (source == rows + shifts[-1]) & (weight[:, 0] > 0)
    assert packing.misplaced(shifts[-1]).tolist() == rows[~simple].tolist()
    assert 0 < len(rows[~simple]) < n or abs(shifts[-1]) >= 9


def test_onednn_products_equal_f_linear_for_every_operand_layout():
    """`layers.linear` and `project` (oneDNN on CPU) equal F.linear with gradients for inputs that are column
    slices (SF-Net's RGB / flow halves), weights that are transposed views (a TemporalConv's taps), and both
    weight-gradient forms (O <= I and O > I); `_onednn_mm` reads a weight operand that is the transpose of a
    column slice correctly (it copies it: oneDNN's reference kernel would take minutes at SF-Net's shape)."""
    from pointtal.methods.layers import _onednn_mm, linear

    g = torch.Generator().manual_seed(0)
    features = torch.randn(37, 48, generator=g)
    for x in (features[:, :24], features[:, 24:].contiguous()):
        for out_dim in (16, 72):
            base = torch.randn(24, out_dim, generator=g)
            for w_leaf, view in ((base.t().contiguous(), lambda w: w), (base, lambda w: w.t())):
                w_leaf = w_leaf.clone().requires_grad_(True)
                b = torch.randn(out_dim, generator=g, requires_grad=True)
                xr = x.clone().requires_grad_(True)
                upstream = torch.randn(37, out_dim, generator=g)
                mine = linear(xr, view(w_leaf), b)
                got = torch.autograd.grad((mine * upstream).sum(), [xr, w_leaf, b])
                ref = F.linear(xr, view(w_leaf), b)
                want = torch.autograd.grad((ref * upstream).sum(), [xr, w_leaf, b])
                torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-5)
                for a, r in zip(got, want, strict=True):
                    torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5)
    a, wide = torch.randn(40, 30, generator=g), torch.randn(30, 64, generator=g)
    b = wide[:, :50].t()  # (50, 30): the transpose of a column slice
    assert not (b.is_contiguous() or b.t().is_contiguous())
    torch.testing.assert_close(_onednn_mm(a, b), a @ wide[:, :50], rtol=1e-5, atol=1e-5)
    # project: separate products sharing the rows, weight gradients through one copy of the rows
    conv, lin = TemporalConv(24, 5, 3), nn.Linear(24, 7)
    rows = features[:, :24].clone().requires_grad_(True)
    outs = project([conv, lin], rows)
    up = [torch.randn(37, 15, generator=g), torch.randn(37, 7, generator=g)]
    got = torch.autograd.grad(
        sum((o * u).sum() for o, u in zip(outs, up, strict=True)), [rows, conv.weight, lin.weight]
    )
    refs = [rows @ conv.weight.flatten(1), rows @ lin.weight.t()]
    want = torch.autograd.grad(
        sum((o * u).sum() for o, u in zip(refs, up, strict=True)), [rows, conv.weight, lin.weight]
    )
    for o, r in zip(outs, refs, strict=True):
        torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-5)
    for a_, r in zip(got, want, strict=True):
        torch.testing.assert_close(a_, r, rtol=1e-5, atol=1e-5)


def test_cpu_dropout_scales_kept_values_and_gradients_as_f_dropout():
    """`layers.dropout` (the two-stream network's dropout): every output is 0 or h / (1-p) (F.dropout's value up
    to the rounding of 1/(1-p)), about 1-p of them kept, the gradient is the same mask times 1/(1-p); the input
    itself in eval and for p = 0."""
    from pointtal.methods.layers import dropout

    torch.manual_seed(0)
    h = torch.randn(400, 300, requires_grad=True)
    out = dropout(h, 0.7, True)
    kept = out != 0
    assert torch.equal(out[kept], (h.detach() * (1 / 0.3))[kept])
    torch.testing.assert_close(out[kept], (h.detach() * torch.ones(()).div_(0.3))[kept], rtol=1e-6, atol=0)
    assert abs(float(kept.float().mean()) - 0.3) < 0.01
    out.backward(torch.ones_like(out))
    assert torch.equal(h.grad, torch.where(kept, torch.ones(()) * (1 / 0.3), 0.0))
    assert dropout(h, 0.7, False) is h and dropout(h, 0.0, True) is h


@pytest.mark.parametrize("conv_backbone", [False, True])
def test_two_stream_outputs_and_gradients_equal_through_onednn_and_f_linear(conv_backbone, monkeypatch):
    """The two-stream network's CPU route (oneDNN products, column-major input-conv gradients, shared weight
    gradients) gives the outputs and every parameter gradient of the same network on F.linear products."""
    from pointtal.methods.two_stream import TwoStreamNet

    torch.manual_seed(0)
    net = TwoStreamNet(16, 4, 8, 0.0, True, (1, 2) if conv_backbone else None).train()
    with torch.no_grad():
        net.act_weights.copy_(torch.tensor([0.6, -0.4]))  # (init 0 would pass the actionness branch no gradient)
    mask = torch.tensor([[True] * 9, [True] * 5 + [False] * 4, [True, True, False, True] + [False] * 5])
    features = torch.randn(3, 9, 16)
    weights = [torch.randn(3, 9, 4), torch.randn(3, 9, 4), torch.randn(3, 9)]

    def run():
        out = net(features, mask)
        total = (out.cas * weights[0]).sum() + (out.cas_rgb * weights[1]).sum() + (out.act * weights[2]).sum()
        return out.cas.detach(), torch.autograd.grad(total, list(net.parameters()))

    cas, grads = run()
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    cas_ref, grads_ref = run()
    torch.testing.assert_close(cas, cas_ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_temporal_conv_xavier_bound():
    conv = TemporalConv(40, 60, 3)
    conv.reset_parameters(xavier=True)
    bound = math.sqrt(6 / (40 * 3 + 60 * 3))
    largest = float(conv.weight.detach().abs().max())
    assert 0.9 * bound < largest <= bound
    assert float(conv.bias.detach().abs().sum()) == 0


def test_masked_topk_mean_uses_each_videos_own_length_and_k():
    values = torch.tensor([[[1.0], [5.0], [3.0], [100.0]], [[2.0], [4.0], [-1.0], [7.0]]])  # (2, 4, 1)
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    k = torch.tensor([2, 3])
    got = masked_topk_mean(values, mask, k)
    assert got[:, 0].tolist() == pytest.approx([(5 + 3) / 2, (7 + 4 + 2) / 3])  # padding (100) ignored
    assert topk_counts(torch.tensor([1, 8, 9, 750]), 8, "ceil").tolist() == [1, 1, 2, 94]


def test_select_hardest_ranks_over_the_whole_batch():
    scores = torch.tensor([[0.9, 0.1, 0.5], [0.8, 0.95, 0.2]])
    pool = torch.tensor([[True, True, True], [True, False, True]])  # 0.95 is not in the pool
    chosen = select_hardest(scores, pool, torch.tensor(2))
    assert chosen.tolist() == [[True, False, False], [True, False, False]]
    assert not select_hardest(scores, pool, 0).any()


# ----------------------------------------------------------------------------- network


@pytest.mark.parametrize("conv_backbone", [False, True])
def test_padding_never_leaks_into_valid_outputs(conv_backbone):
    torch.manual_seed(1)
    method = tiny_sfnet(conv_backbone=conv_backbone).eval()
    batch = random_batch(3)
    features = batch.features.clone()
    features[~batch.mask] = 1e3  # loud padding
    with torch.no_grad():
        out = method(features, batch.mask)
        for i in range(features.shape[0]):
            n = int(batch.mask[i].sum())
            alone = method(batch.features[i : i + 1, :n], torch.ones(1, n, dtype=torch.bool))
            torch.testing.assert_close(out.cas[i, :n], alone.cas[0], rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(out.act[i, :n], alone.act[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("conv_backbone", [False, True])
def test_bf16_autocast_forward_loss_backward_tracks_float32(conv_backbone):
    """The CUDA path trains under bf16 autocast; CPU autocast runs the same dtype mix (bf16 matmuls, fp32 biases
    added to bf16 tap sums, bf16 scatters): outputs keep their shapes, and loss and gradients stay near fp32."""
    torch.manual_seed(3)
    method = tiny_sfnet(conv_backbone=conv_backbone)
    batch = random_batch(5)
    results = []
    for amp in (False, True):
        method.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = method(batch.features, batch.mask)
        assert out.cas.shape == (6, 40, K) and out.act.shape == (6, 40)
        assert out.cas_rgb.dtype == (torch.bfloat16 if amp else torch.float32)  # fused: fp32 weights promote
        losses = method.loss(out, batch, step=0)
        losses["total"].backward()
        results.append((float(losses["total"].detach()), torch.cat([p.grad.flatten() for p in method.parameters()])))
    (loss32, grad32), (loss16, grad16) = results
    assert math.isfinite(loss16) and bool(torch.isfinite(grad16).all())
    assert loss16 == pytest.approx(loss32, rel=0.05)
    assert float(F.cosine_similarity(grad16, grad32, dim=0)) > 0.98


def test_network_shapes_init_and_fusion():
    method = tiny_sfnet()
    net = method.net
    assert net.rgb.cls_layers[0].weight.shape == (8, 8)  # hidden defaults to D/2
    assert torch.all(net.cas_weights == 1) and torch.all(net.act_weights == 0)
    assert all(float(m.bias.detach().abs().sum()) == 0 for m in net.modules() if isinstance(m, nn.Linear))
    batch = random_batch(0)
    out = method(batch.features, batch.mask)
    assert out.cas.shape == (6, 40, K) and out.act.shape == (6, 40)
    torch.testing.assert_close(out.cas, out.cas_rgb + out.cas_flow)
    assert float(out.act.detach().abs().max()) == 0.0  # fused actionness starts at 0 (v init 0)
    # the RGB stream sees only the first half of the features
    changed = batch.features.clone()
    changed[..., 8:] += 1.0
    assert torch.equal(method(changed, batch.mask).cas_rgb, out.cas_rgb)
    with pytest.raises(InputError, match="not even"):
        SFNet(SFNetOptions(), 15, C)


def test_options_defaults_and_unknown_key():
    o = SFNetOptions()
    assert (o.eta, o.alpha, o.beta, o.dropout, o.w_act, o.expand_step, o.radius, o.expand_ratio) == (
        5.0,
        1.0,
        1.0,
        0.7,
        2.0,
        2000,
        3,
        0.95,
    )
    expanding, fixed = SFNet(o, D, C), SFNet(SFNetOptions(expand=False), D, C)  # one network each, asked 4000 times
    assert [s for s in range(4000) if expanding.refresh_due(s)] == [2000]
    assert not any(fixed.refresh_due(s) for s in range(4000))
    with pytest.raises(InputError, match="unknown key 'etaa'"):
        from_dict(SFNetOptions, {"etaa": 3}, "method")


# ----------------------------------------------------------------------------- losses


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"mining_score": "logit", "eta": 2.5},
        {"background": False, "act_loss_floor": 0.0},
        {"conv_backbone": True},
        {"act_negatives": "code", "act_loss_floor": 0.0},
    ],
)
def test_batched_losses_equal_the_loop_reference(seed, overrides):
    torch.manual_seed(seed)
    method = tiny_sfnet(**overrides)
    with torch.no_grad():  # non-zero fusion of actionness, so the fused output is a real third output
        method.net.act_weights.copy_(torch.tensor([0.7, -1.3]))
    batch = random_batch(seed)
    out = method(batch.features, batch.mask)
    got = method.loss(out, batch, step=0)
    want = reference_losses(method, out, batch)
    for key in ("total", "video", "frame", "act"):
        torch.testing.assert_close(got[key], want[key].float(), rtol=1e-5, atol=1e-5, msg=key)
    assert got["total"].requires_grad
    got["total"].backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in method.parameters())
    assert method.net.rgb.act_head.weight.grad.abs().sum() > 0 or float(got["act"]) <= 0.1


def test_select_last_takes_the_pools_last_entries_in_video_order():
    pool = torch.tensor([[True, False, True, True], [False, True, False, False], [True, True, False, False]])
    got = select_last(pool, torch.tensor(4))
    want = torch.tensor([[False, False, False, True], [False, True, False, False], [True, True, False, False]])
    assert torch.equal(got, want)
    assert not select_last(pool, 0).any() and torch.equal(select_last(pool, 6), pool)


@pytest.mark.parametrize("which", ["top", "code"])
def test_act_negatives_switch_equals_the_loop_reference_and_the_values_differ(which):
    """Both values equal their loop reference on batches whose pool is partly mined; the two differ (the
    official negatives are the pool's last snippets, not the highest actionness)."""
    from pointtal.methods.sfnet import actionness_loss, mining_pool

    other = {"top": "code", "code": "top"}[which]
    differs = 0
    for seed in range(4):
        batch = random_batch(seed, b=6, t=40)
        act = torch.randn(batch.mask.shape, generator=torch.Generator().manual_seed(seed)).requires_grad_()
        mining = mining_pool(batch.mask, batch.point_labels, 1.0)
        assert 0 < int(mining.count) < int(mining.pool.sum())  # a choice is made
        got = actionness_loss(act, mining, 1e-3, which)
        want = reference_act_loss(act, reference_mining(batch.mask, batch.point_labels, 1.0), 1e-3, which)
        torch.testing.assert_close(got, want.float(), rtol=1e-6, atol=1e-6)
        g_got, g_want = (torch.autograd.grad(v, act)[0] for v in (got, want))
        torch.testing.assert_close(g_got, g_want.float(), rtol=1e-6, atol=1e-7)
        differs += not torch.allclose(got, actionness_loss(act, mining, 1e-3, other))
    assert differs >= 3


def test_string_switches_are_checked_by_key():
    for key, good in [("act_negatives", ("top", "code")), ("expand_edge", ("clip", "code"))]:
        assert getattr(SFNetOptions(), key) == good[0]  # the paper's behaviour by default
        for value in good:
            assert getattr(from_dict(SFNetOptions, {key: value}, "method"), key) == value
        with pytest.raises(InputError, match=rf"method.{key}='last' must be '{good[0]}' or '{good[1]}'"):
            SFNetOptions(**{key: "last"})
        with pytest.raises(InputError, match=key):
            from_dict(SFNetOptions, {key: "last"}, "method")


@pytest.mark.parametrize("floor", [1e6, 1e-6])
def test_act_loss_is_dropped_below_the_floor(floor):
    method = tiny_sfnet(act_loss_floor=floor)
    batch = random_batch(0)
    out = method(batch.features, batch.mask)
    losses = method.loss(out, batch, 0)
    want = reference_losses(method, out, batch)
    assert 1e-3 < float(want["act"].detach()) < 1e6  # the act term is neither negligible nor above the high floor
    with_act = want["video"] + want["frame"] + (want["act"] if floor < 1 else 0.0)  # alpha = beta = 1
    torch.testing.assert_close(losses["total"], with_act.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(losses["act"], want["act"].float(), rtol=1e-5, atol=1e-5)  # logged either way


def test_mining_counts_and_pool_by_hand():
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    labels = torch.zeros(2, 6, K)
    labels[0, 1, 2] = 1  # video 0: one action point -> k = min(5 * 1, 5) = 5
    labels[1, 0, 0] = 1  # video 1: one background point -> k = min(5, 2) = 2
    from pointtal.methods.sfnet import mining_pool

    m = mining_pool(mask, labels, 5.0)
    assert int(m.count) == 7
    assert m.pool.sum().item() == 7 and not m.pool[0, 1] and not m.pool[1, 0] and not m.pool[1, 3:].any()
    assert m.action.sum().item() == 1 and m.labelled.sum().item() == 2


# ----------------------------------------------------------------------------- localization


def test_localize_hand_computed_segments_and_frames():
    cas = np.zeros((6, K))
    cas[:, 1] = [0, 3, 4, 0, 2, 0]
    cas[:, 2] = -1.0  # s_2 < 0: dropped
    cas[:, 3] = [0.5, 0, 0, 0, 0, 0]  # s_3 = 0.5 < 4 / 1.5: dropped
    cas[:, 0] = 50.0  # background column is ignored
    found = localize_sfnet(cas, None)
    # k = max(6 // 12, 1) = 1 -> s_1 = 4; threshold mean = 1.5 -> runs [1, 3) and [4, 5)
    np.testing.assert_allclose(found.segments, [[1, 3, 1, 8.0]])  # confidence max 4 + s_1 4
    np.testing.assert_allclose(found.frames, [[2, 1, 8.0], [4, 1, 6.0]])  # the 1-snippet run still gives a frame
    act = np.array([0, 0, 0, 0, 0, 1.0])
    found = localize_sfnet(cas, act, w_act=2.0)  # score = [0, 3, 4, 0, 2, 2], threshold 11/6
    np.testing.assert_allclose(found.segments, [[1, 3, 1, 8.0], [4, 6, 1, 6.0]])
    np.testing.assert_allclose(found.frames, [[2, 1, 8.0], [4, 1, 6.0]])  # tie -> first snippet
    raised = localize_sfnet(cas, act, adjust=1.2)  # threshold 2.2: only [1, 3) stays above it
    assert raised.segments.tolist() == [[1, 3, 1, 8.0]] and raised.frames.tolist() == [[2, 1, 8.0]]


def test_localize_several_classes_and_empty_cases():
    cas = np.zeros((4, K))
    cas[:, 1] = [4, 4, 0, 0]
    cas[:, 2] = [0, 0, 3, 3]  # 3 > 4 / 1.5: kept
    cas[:, 3] = [2, 0, 0, 0]  # 2 < 4 / 1.5: dropped
    found = localize_sfnet(cas, None)
    np.testing.assert_allclose(found.segments, [[0, 2, 1, 8.0], [2, 4, 2, 6.0]])
    np.testing.assert_allclose(found.frames, [[0, 1, 8.0], [2, 2, 6.0]])
    negative = localize_sfnet(-np.ones((5, K)), None)
    assert negative.segments.shape == (0, 4) and negative.frames.shape == (0, 3)
    assert localize_sfnet(np.zeros((0, K)), None).segments.shape == (0, 4)
    method = tiny_sfnet(min_segment_len=3)
    detections = method.localize(cas, np.zeros(4), np.zeros(K))
    assert detections.segments.shape == (0, 4) and detections.frames.shape == (2, 3)


def test_run_peaks_matches_a_loop():
    rng = np.random.default_rng(0)
    score = rng.integers(0, 4, size=(5, 30)).astype(float)
    rows, starts, ends = find_runs_2d(score > 1)
    peak, where = run_peaks(score, rows, starts, ends)
    for r, s, e, p, w in zip(rows, starts, ends, peak, where, strict=True):
        assert p == score[r, s:e].max() and w == s + np.argmax(score[r, s:e])


def test_scores_spaces():
    batch = random_batch(0)
    logit = tiny_sfnet().eval()
    out = logit(batch.features, batch.mask)
    s = logit.scores(out, batch.mask)
    torch.testing.assert_close(s.cas, out.cas)
    torch.testing.assert_close(s.video_scores.sum(-1), torch.ones(6))
    prob = tiny_sfnet(score_space="prob")
    s = prob.scores(out, batch.mask)
    torch.testing.assert_close(s.cas, torch.softmax(out.cas, -1))
    torch.testing.assert_close(s.actionness, torch.sigmoid(out.act))


# ----------------------------------------------------------------------------- anchor expansion


def expansion_layout():
    """Three videos (8, 4, 8 snippets) built so every rule fires once (see the comments)."""
    offsets = np.array([0, 8, 12, 20], dtype=np.int64)
    labels = torch.zeros(20, K)
    cas = torch.zeros(20, K)
    # video 0: anchor 3 (class 1); class 1 is the arg-max everywhere; scores decide
    labels[3, 1] = 1
    cas[:8, 1] = torch.tensor([0.5, 0.96, 0.97, 1.0, 0.99, 0.9, 0.99, 0.99])
    # video 1: anchor 8 (class 2) at the video's first snippet, a background point at 10
    labels[8, 2] = 1
    labels[10, 0] = 1
    cas[8:12, 2] = 1.0
    # video 2: anchors 12 (class 1) and 15 (classes 1 and 2), uniform scores: A's right walk meets B's left
    labels[12, 1] = 1
    labels[15, 1:3] = 0.5
    cas[12:20] = torch.tensor([0.0, 0.9, 0.1, 0.0])
    return offsets, labels, cas


def test_anchor_expansion_by_hand():
    offsets, labels, cas = expansion_layout()
    found = anchor_expansion(labels, cas, offsets, radius=3, ratio=0.95)
    # video 0: left 2 (0.97), 1 (0.96), 0 fails (0.5); right 4 (0.99), 5 fails (0.9) and stops the walk
    # video 1: left leaves the video; right 9, then 10 is labelled (background point)
    # video 2: right of 12: 13, 14 (15 labelled); left of 15 stops at 14 (claimed); right of 15: 16, 17, 18
    assert torch.nonzero(found.pseudo).squeeze(1).tolist() == [1, 2, 4, 9, 13, 14, 16, 17, 18]
    assert torch.equal(found.labels[13], labels[12]) and torch.equal(found.labels[14], labels[12])
    assert torch.equal(found.labels[17], labels[15]) and torch.equal(found.labels[9], labels[8])
    assert torch.equal(found.labels[~found.pseudo], labels[~found.pseudo])  # old labels untouched
    walk_on = anchor_expansion(labels, cas, offsets, radius=3, ratio=0.95, stop_on_failure=False)
    assert torch.nonzero(walk_on.pseudo).squeeze(1).tolist() == [1, 2, 4, 6, 9, 13, 14, 16, 17, 18]


def test_anchor_expansion_needs_arg_max_agreement():
    offsets = np.array([0, 5], dtype=np.int64)
    labels = torch.zeros(5, K)
    labels[0, 1] = 1
    cas = torch.zeros(5, K)
    cas[:, 1] = 1.0
    cas[3, 2] = 2.0  # snippet 3's arg-max is class 2
    found = anchor_expansion(labels, cas, offsets, radius=3, ratio=0.95)
    assert torch.nonzero(found.pseudo).squeeze(1).tolist() == [1]  # candidate 2 fails: snippet 3 disagrees
    cas[1, 2] = 2.0  # now the snippet beside the anchor disagrees with everything after it
    assert not anchor_expansion(labels, cas, offsets, radius=3, ratio=0.95).pseudo.any()


def test_anchor_expansion_edge_by_hand():
    """One 5-snippet video, anchor 2, uniform scores: "clip" labels 0, 1, 3, 4; "code" stops before 0 and 4
    (the snippet after them, -1 and 5, lies outside the video); a second video after it changes nothing."""
    offsets = np.array([0, 5, 10], dtype=np.int64)
    labels = torch.zeros(10, K)
    labels[2, 1] = 1
    cas = torch.zeros(10, K)
    cas[:, 1] = 1.0
    for stop in (True, False):
        clip = anchor_expansion(labels, cas, offsets, radius=3, ratio=0.95, stop_on_failure=stop)
        code = anchor_expansion(labels, cas, offsets, radius=3, ratio=0.95, stop_on_failure=stop, edge="code")
        assert torch.nonzero(clip.pseudo).squeeze(1).tolist() == [0, 1, 3, 4]
        assert torch.nonzero(code.pseudo).squeeze(1).tolist() == [1, 3]
    for edge, added in [("clip", 4), ("code", 2)]:  # the option reaches the training-time expansion
        dataset = FakeDataset(offsets, labels.clone())
        method = tiny_sfnet(expand_step=0, expand_edge=edge)
        assert method.refresh_labels(0, dataset, lambda: cas).added == added


@pytest.mark.parametrize("edge", ["clip", "code"])
@pytest.mark.parametrize("stop_on_failure", [True, False])
def test_anchor_expansion_equals_sequential_reference(stop_on_failure, edge):
    g = torch.Generator().manual_seed(5)
    offsets = np.array([0, 30, 37, 80, 81, 120], dtype=np.int64)
    n = int(offsets[-1])
    labels = torch.zeros(n, K)
    points = torch.randperm(n, generator=g)[:25]
    labels[points, torch.randint(0, K, (25,), generator=g)] = 1.0  # includes background points
    cas = torch.rand(n, K, generator=g)
    cas[:, 1] += 0.6 * (torch.rand(n, generator=g) < 0.8)  # long stretches agreeing on class 1
    for ratio in (0.5, 0.95):
        found = anchor_expansion(
            labels, cas, offsets, radius=3, ratio=ratio, stop_on_failure=stop_on_failure, edge=edge
        )
        want_labels, want_pseudo = reference_anchor_expansion(labels, cas, offsets, 3, ratio, stop_on_failure, edge)
        assert torch.equal(found.pseudo, want_pseudo)
        assert torch.equal(found.labels, want_labels)
        other = "code" if edge == "clip" else "clip"
        assert not torch.equal(
            found.pseudo, reference_anchor_expansion(labels, cas, offsets, 3, ratio, stop_on_failure, other)[1]
        )
    assert found.pseudo.sum() > 3


class FakeDataset:
    """The dataset contract SF-Net codes against (offsets, point_labels, set_point_labels): no ground truth."""

    def __init__(self, offsets, point_labels):
        self.offsets, self.point_labels = offsets, point_labels

    def set_point_labels(self, labels):
        self.point_labels = labels


def test_refresh_labels_runs_once_and_reports_precision(caplog):
    offsets, labels, cas = expansion_layout()
    truth = torch.zeros(20, K)
    truth[:, 0] = 1
    truth[1:5, 1] = 1  # pseudo 1, 2, 4: right (3 pairs)
    truth[9, 2] = 1  # right (1)
    truth[13, 1] = 1  # 13 right, 14 wrong (still background)
    truth[16:19, 1] = 1  # 16-18 carry classes 1 and 2: 3 of 6 pairs right
    for t in (1, 2, 4, 9, 13, 16, 17, 18):
        truth[t, 0] = 0
    dataset = FakeDataset(offsets, labels.clone())
    method = tiny_sfnet(expand_step=7)
    assert method.refresh_labels(6, dataset, lambda: cas) is None
    assert torch.equal(dataset.point_labels, labels)
    with caplog.at_level(logging.INFO):
        result = method.refresh_labels(7, dataset, lambda: cas)
    assert result.added == 9 and result.reinitialize
    assert result.precision(truth) == pytest.approx(8 / 12)  # scored by the engine, which holds the truth
    assert "anchor expansion: added 9 pseudo frames" in caplog.text
    assert int((dataset.point_labels.sum(1) > 0).sum()) == int((labels.sum(1) > 0).sum()) + 9
    assert tiny_sfnet(expand=False).refresh_labels(2000, dataset, lambda: cas) is None
    assert result.precision(None) is None


# ----------------------------------------------------------------------------- weak baseline and training


def test_weak_baseline_loss_centres_and_localization():
    torch.manual_seed(0)
    method = Weak(from_dict(WeakOptions, {"dropout": 0.0, "center_multilabel_step": 0}, "test"), D, C)
    batch = random_batch(1)
    out = method(batch.features, batch.mask)
    assert out.act is None
    first = method.loss(out, batch, step=10)
    assert float(first["center"]) == 0.0  # the first batch only sets the centres
    seen = method.center_seen.clone()
    assert seen[1:].any() and not seen[0]
    pooled = reference_attention_pool(out, batch.mask, batch.video_labels)  # {(video, class): (2H,) feature}
    first_mean = {
        c: torch.stack([f for (_, k), f in pooled.items() if k == c]).mean(0)
        for c in range(1, K)
        if any(k == c for _, k in pooled)
    }
    assert set(first_mean) == set(seen.nonzero().flatten().tolist())
    for c, centre in first_mean.items():  # a class's first batch sets its centre to its mean pooled feature
        torch.testing.assert_close(method.centers[c], centre, rtol=1e-5, atol=1e-6)
    second = method.loss(method(batch.features, batch.mask), batch, step=11)
    # the same batch and weights again (no dropout): the loss is the mean squared distance to those centres
    center = torch.stack([((f - first_mean[c]) ** 2).mean() for (_, c), f in pooled.items()]).mean()
    video = sum(reference_video_loss(cas, batch.mask, batch.video_labels) for cas, _ in out.streams())
    torch.testing.assert_close(second["center"], center.detach(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(second["total"].detach(), (video + 0.1 * center).detach(), rtol=1e-5, atol=1e-6)
    assert second["total"].requires_grad
    for c, centre in first_mean.items():  # EMA with momentum 0.1 towards the same batch mean: unchanged
        torch.testing.assert_close(method.centers[c], centre, rtol=1e-5, atol=1e-6)
    second["total"].backward()
    assert method.net.rgb.cls_layers[0].weight.grad.abs().sum() > 0
    # points are ignored: changing them changes nothing
    other = make_batch(batch.features, batch.mask, batch.video_labels, torch.zeros_like(batch.point_labels))
    method.eval()
    with torch.no_grad():
        a = method.loss(method(batch.features, batch.mask), batch, 12)["video"]
        b = method.loss(method(batch.features, batch.mask), other, 12)["video"]
    assert float(a) == float(b)
    s = method.scores(out, batch.mask)
    assert s.actionness is None
    detections = method.localize(s.cas[0].detach().numpy(), None, s.video_scores[0].detach().numpy())
    assert detections.segments.shape[1] == 4
    assert not any(method.refresh_due(s) for s in range(3000))


@pytest.mark.parametrize(
    "overrides",
    [{}, {"act_loss_floor": 0.0, "conv_backbone": True}, {"act_loss_floor": 0.0, "act_negatives": "code"}],
)
def test_loss_gradients_equal_the_loop_reference(overrides):
    """What an optimizer step sees: d(total)/d(every weight) equals that of the per-video loop reference
    (a detached term, a wrong mask or a mining choice outside the autograd graph would differ)."""
    torch.manual_seed(0)
    method = tiny_sfnet(**overrides)
    with torch.no_grad():
        method.net.act_weights.copy_(torch.tensor([0.7, -1.3]))
    batch = random_batch(7, b=8, t=30)
    grads = []
    for loss_of in (
        lambda out: method.loss(out, batch, 0)["total"],
        lambda out: reference_losses(method, out, batch)["total"],
    ):
        method.zero_grad()
        loss_of(method(batch.features, batch.mask)).backward()
        grads.append({name: p.grad.clone() for name, p in method.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == len(list(method.parameters()))
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6, msg=name)
