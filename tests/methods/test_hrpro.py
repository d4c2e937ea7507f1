"""HR-Pro: every loss, the seed selection, the memory, RoI pooling and the ranking against plain per-video loop
references (written from the official code's loops); proposal generation and soft-NMS on hand-computed
examples; two-phase training end to end and `--resume` inside stage 2."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pointtal.data.batch import make_batch
from pointtal.data.dataset import PointDataset
from pointtal.errors import InputError
from pointtal.localization.hrpro import (
    RawProposals,
    match_points,
    negative_proposals,
    soft_nms,
    soft_nms_per_class,
    stage1_proposals,
    upsample_extrapolate,
)
from pointtal.methods.hrpro import (
    HRPro,
    InstanceOutput,
    Options,
    contrastive_loss,
    focal_frame_loss,
    instance_losses,
    roi_pool,
    select_seeds,
    sequential_memory_update,
    video_scores,
)

TOL = dict(atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- random inputs
def _padded_batch(seed: int, lengths=(23, 9, 30, 1), n_classes: int = 3, tie_scores: bool = False):
    """background (B, T), points (B, T, C) {0,1}, mask (B, T): some videos without points, points at the ends,
    adjacent points, strong background runs."""
    g = torch.Generator().manual_seed(seed)
    b, t = len(lengths), max(lengths)
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
    background = torch.rand(b, t, generator=g)
    background = torch.where(torch.rand(b, t, generator=g) < 0.3, 0.96 + 0.04 * background, background)
    background = torch.where(torch.rand(b, t, generator=g) < 0.3, 0.1 * background, background)
    if tie_scores:  # exact thresholds (0.1, 0.95) and ties of the arg-max
        background = torch.tensor([0.0, 0.05, 0.1, 0.5, 0.5, 0.95])[torch.randint(0, 6, (b, t), generator=g)]
    points = torch.zeros(b, t, n_classes)
    for row, n in enumerate(lengths):
        count = int(torch.randint(0, 5, (), generator=g)) if row else 4
        where = torch.randint(0, n, (count,), generator=g)
        if row == 0:
            where = torch.tensor([0, 5, 6, n - 1])  # first and last snippet, two adjacent points
        points[row, where, torch.randint(0, n_classes, (len(where),), generator=g)] = 1
    return background * mask, points * mask[..., None], mask


def _reference_select_seed(bkg: torch.Tensor, points: torch.Tensor, act_thresh=0.1, bkg_thresh=0.95):
    """One video (T,), (T, C): the official select_seed loops, literally."""
    t = len(bkg)
    act, seed = points.clone(), torch.zeros(t)
    idx = [i for i in range(t) if points[i].max() > 0]
    if not idx:
        return act, seed
    strong = [bool(v >= bkg_thresh) for v in bkg]

    def argmax(lo, hi):  # first maximum of bkg[lo:hi]
        values = bkg[lo:hi].tolist()
        return lo + values.index(max(values))

    def walk(order, source):
        for j in order:
            if bkg[j] <= act_thresh and seed[j] < 1:
                act[j] = act[source]
            else:
                break

    if idx[0] > 0:
        hits = [j for j in range(idx[0]) if strong[j]]
        for j in range(0, (hits[-1] if hits else argmax(0, idx[0])) + 1):
            seed[j] = 1
        walk(range(idx[0] - 1, -1, -1), idx[0])
    if idx[-1] < t - 1:
        hits = [j for j in range(idx[-1] + 1, t) if strong[j]]
        for j in range(hits[0] if hits else argmax(idx[-1] + 1, t), t):
            seed[j] = 1
        walk(range(idx[-1] + 1, t), idx[-1])
    for a, b in zip(idx[:-1], idx[1:], strict=True):
        if b - a <= 1:
            continue
        hits = [j for j in range(a + 1, b) if strong[j]]
        if len(hits) >= 2:
            for j in range(hits[0], hits[-1] + 1):
                seed[j] = 1
        else:
            seed[argmax(a + 1, b)] = 1
        walk(range(a + 1, b), a)
        walk(range(b - 1, a, -1), b)
    return act, seed


@pytest.mark.parametrize("seed", range(8))
def test_select_seeds_equals_the_official_per_video_loops(seed):
    background, points, mask = _padded_batch(seed, tie_scores=seed % 2 == 1)
    act, bkg = select_seeds(background, points, mask)
    for row, n in enumerate(mask.sum(1).tolist()):
        ref_act, ref_bkg = _reference_select_seed(background[row, :n], points[row, :n])
        assert torch.equal(act[row, :n], ref_act) and torch.equal(bkg[row, :n], ref_bkg)
        assert not act[row, n:].any() and not bkg[row, n:].any()


def test_select_seeds_hand_example():
    # points at 2 (class 0) and 7 (class 1); b: a strong background pair 4-5 between them, strong 9 after
    b = torch.tensor([[0.5, 0.05, 0.0, 0.05, 0.97, 0.98, 0.02, 0.0, 0.05, 0.96, 0.2]])
    points = torch.zeros(1, 11, 2)
    points[0, 2, 0] = points[0, 7, 1] = 1
    act, bkg = select_seeds(b, points, torch.ones(1, 11, dtype=torch.bool))
    assert bkg[0].tolist() == [1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1]  # left: up to the arg-max 0; right: from 9
    assert act[0, :, 0].tolist() == [0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]  # 1 (left walk), 3 (forward walk)
    assert act[0, :, 1].tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0]  # 6 (backward), 8 (right walk)


# ----------------------------------------------------------------------------- stage-1 losses
def _snippet_inputs(seed: int):
    background, points, mask = _padded_batch(seed)
    g = torch.Generator().manual_seed(seed + 100)
    b, t, c = points.shape
    cas = torch.rand(b, t, c + 1, generator=g) * 0.98 + 0.01
    labels = (points.amax(1) > 0).float()
    labels[1, 0] = 1  # a labelled class without points
    embedded = torch.relu(torch.randn(b, t, 8, generator=g)) + 0.01
    prototypes = torch.randn(c, 8, generator=g)
    return cas, points, mask, labels, embedded, prototypes


def _regions(seq: torch.Tensor, regions: str = "all") -> list[int] | None:
    """Seed positions the contrastive loss averages over: None when seq has no 0/1 change (the official
    extract_region_feat returns nothing). "all": every seed; "code": `_official_regions`."""
    changes = [i for i in range(len(seq) - 1) if seq[i + 1] != seq[i]]
    if not changes:
        return None
    return _official_regions(seq) if regions == "code" else [i for i in range(len(seq)) if seq[i] == 1]


def _official_regions(seq: torch.Tensor) -> list[int]:
    """The official extract_region_feat step by step on a 0/1 sequence with at least one change: the change
    positions i (seq[i+1] != seq[i]), -1 prepended when the first change is not a rise, T-2 appended when the
    last is not a fall; pair k covers (idx[2k], idx[2k+1]] and is skipped when empty."""
    values = [int(v) for v in seq]
    diff = [values[i + 1] - values[i] for i in range(len(values) - 1)]
    idx = [i for i, d in enumerate(diff) if d != 0]
    if diff[idx[0]] != 1:
        idx = [-1] + idx
    if diff[idx[-1]] != -1:
        idx = idx + [len(diff) - 1]
    out = []
    for k in range(len(idx) // 2):
        if idx[2 * k + 1] - idx[2 * k] < 1:
            continue
        out.extend(range(idx[2 * k] + 1, idx[2 * k + 1] + 1))
    return out


def test_official_regions_drop_the_last_snippet_hand_example():
    seq = torch.tensor
    assert _official_regions(seq([0, 1, 1, 0, 1, 1])) == [1, 2, 4]  # the run reaching the end loses snippet 5
    assert _official_regions(seq([0, 1, 0, 1])) == [1]  # a one-snippet run at the end is dropped
    assert _official_regions(seq([1, 1, 0, 0])) == [0, 1]  # a run at the start is whole
    assert _official_regions(seq([0, 0, 0, 1])) == []  # nothing left
    assert _regions(seq([1, 1, 1])) is None and _regions(seq([0, 1, 1]), "all") == [1, 2]


@pytest.mark.parametrize("seed", range(3))
def test_frame_losses_and_video_loss_equal_per_video_loops(seed):
    cas, points, mask, labels, _, _ = _snippet_inputs(seed)
    act_seed, bkg_seed = select_seeds(cas[..., 0], points, mask)
    target = F.pad(points, (1, 0))
    frame = focal_frame_loss(cas, target, points.amax(-1))
    bkg_target = torch.zeros_like(cas)
    bkg_target[..., 0] = 1
    frame_bkg = focal_frame_loss(cas, bkg_target, bkg_seed)
    class_scores = cas[..., 1:]
    vid = video_scores(class_scores, mask, 8, labels)
    for row, n in enumerate(mask.sum(1).tolist()):
        p, y = cas[row, :n].double(), target[row, :n].double()
        num, count, num_b = 0.0, 0.0, 0.0
        for t in range(n):  # the official formula, one snippet at a time
            focal = ((1 - p[t]) * y[t] + p[t] * (1 - y[t])) ** 2
            bce = -(y[t] * torch.log(p[t]) + (1 - y[t]) * torch.log(1 - p[t]))
            if y[t].max() > 0:
                num, count = num + float((focal * bce).sum()), count + 1
            if bkg_seed[row, t] > 0:
                yb = torch.zeros_like(p[t])
                yb[0] = 1
                fb = ((1 - p[t]) * yb + p[t] * (1 - yb)) ** 2
                num_b += float((fb * -(yb * torch.log(p[t]) + (1 - yb) * torch.log(1 - p[t]))).sum())
        assert frame[row].item() == pytest.approx(num / (count + 1e-6), rel=1e-5, abs=1e-5)
        assert frame_bkg[row].item() == pytest.approx(num_b / (float(bkg_seed[row].sum()) + 1e-6), rel=1e-5, abs=1e-5)
        k = max(1, n // 8)
        for c in range(points.shape[-1]):
            column = class_scores[row, :n, c]
            expected = column.sort(descending=True).values[:k].mean() if labels[row, c] else column.mean()
            assert vid[row, c].item() == pytest.approx(expected.item(), abs=1e-6)


@pytest.mark.parametrize("regions", ["code", "all"])
@pytest.mark.parametrize("seed", range(4))
def test_contrastive_loss_equals_the_official_per_video_loop(seed, regions):
    cas, points, mask, labels, embedded, prototypes = _snippet_inputs(seed)
    act_seed, bkg_seed = select_seeds(cas[..., 0], points, mask)
    if seed == 3:  # seeds reaching each video's end, one-snippet runs at the end, a class whose only seed is last
        act_seed, bkg_seed = act_seed.clone(), bkg_seed.clone()
        for row, n in enumerate(mask.sum(1).tolist()):
            bkg_seed[row, n - 1], act_seed[row, n - 1] = 1, 0
            if n > 3:
                bkg_seed[row, n - 2] = 0
        act_seed[0, :, 2], act_seed[0, 22, 2] = 0, 1  # video 0 (23 snippets): class 2 only at the last snippet
        labels[0, 2] = 1
    got = contrastive_loss(embedded, prototypes, act_seed, bkg_seed, labels, mask, 0.1, regions)
    other = contrastive_loss(
        embedded, prototypes, act_seed, bkg_seed, labels, mask, 0.1, "all" if regions == "code" else "code"
    )
    if seed == 3:
        assert not torch.allclose(got, other)  # the two readings differ on these inputs
    protos = prototypes / prototypes.norm(dim=-1, keepdim=True)
    for row, n in enumerate(mask.sum(1).tolist()):
        feats = embedded[row, :n] / embedded[row, :n].norm(dim=-1, keepdim=True)
        gt = [c for c in range(labels.shape[1]) if labels[row, c] > 0]
        background = _regions(bkg_seed[row, :n], regions)
        if not background:
            assert got[row].item() == 0.0
            continue
        b_sim = torch.exp(feats[background] @ protos.t() / 0.1).mean(0)  # (C,)
        total = 0.0
        for c in gt:
            region = _regions(act_seed[row, :n, c], regions)
            if not region:
                continue
            a_sim = torch.exp(feats[region] @ protos.t() / 0.1).mean(0)
            total += 0.5 * -math.log(a_sim[c] / a_sim.sum()) + 0.5 * -math.log(a_sim[c] / (a_sim[c] + b_sim[c]))
        assert got[row].item() == pytest.approx(total / len(gt), rel=1e-5, abs=1e-5)


def test_sequential_memory_update_equals_updates_one_video_after_another():
    cas, points, mask, labels, embedded, prototypes = _snippet_inputs(1)
    act_seed, _ = select_seeds(cas[..., 0], points, mask)
    got = sequential_memory_update(prototypes, embedded, act_seed, labels, 0.3)  # a large momentum shows order
    memory = prototypes.clone()
    for row in range(len(mask)):
        for c in range(labels.shape[1]):
            chosen = act_seed[row, :, c] > 0
            if labels[row, c] > 0 and chosen.any():
                memory[c] = 0.7 * memory[c] + 0.3 * embedded[row, chosen].mean(0)
    torch.testing.assert_close(got, memory, **TOL)


def reference_losses(method: HRPro, output, batch, step: int) -> dict[str, torch.Tensor]:
    """Stage-1 losses one video at a time from the official formulas (also timed by bench/train_speed.py)."""
    o = method.options
    weights = {
        "video": o.weight_video,
        "frame": o.weight_frame,
        "frame_bkg": o.weight_frame_bkg,
        "contrastive": o.weight_contrastive,
    }
    sums = dict.fromkeys(weights, 0.0)
    protos = F.normalize(method.snippet.prototypes.float(), dim=-1)
    for row, n in enumerate(batch.mask.sum(1).tolist()):
        cas = output.cas[row, :n].float()  # (n, C+1)
        points = (batch.point_labels[row, :n, 1:] > 0).float()
        labels = batch.video_labels[row, 1:].float()
        act, seed = _reference_select_seed(cas[:, 0].detach(), points, o.seed_act_thresh, o.seed_bkg_thresh)
        scores = output.class_scores[row, :n].float()
        k = max(1, n // o.r_act)
        top = scores.sort(0, descending=True).values[:k].mean(0)
        vid = top * labels + scores.mean(0) * (1 - labels)
        sums["video"] += F.binary_cross_entropy(vid, labels)
        target = F.pad(points, (1, 0))
        background = torch.zeros_like(cas)
        background[:, 0] = 1
        for name, goal, weight in (("frame", target, points.amax(1)), ("frame_bkg", background, seed)):
            focal = ((1 - cas) * goal + cas * (1 - goal)) ** 2
            per_snippet = (focal * F.binary_cross_entropy(cas, goal, reduction="none")).sum(1)
            sums[name] += sum(per_snippet[t] * weight[t] for t in range(n)) / (weight.sum() + 1e-6)
        feats = F.normalize(output.embedded[row, :n].float(), dim=-1)
        region = _regions(seed, o.contrastive_regions)
        if not region:
            continue
        b_sim = torch.exp(feats[region] @ protos.t() / o.temperature).mean(0)
        total, gt = 0.0, [c for c in range(len(labels)) if labels[c] > 0]
        for c in gt:
            positions = _regions(act[:, c], o.contrastive_regions)
            if positions:
                a_sim = torch.exp(feats[positions] @ protos.t() / o.temperature).mean(0)
                total = (
                    total + 0.5 * -torch.log(a_sim[c] / a_sim.sum()) - 0.5 * torch.log(a_sim[c] / (a_sim[c] + b_sim[c]))
                )
        sums["contrastive"] += total / len(gt)
    b = len(batch.mask)
    losses = {k: torch.as_tensor(v) / b for k, v in sums.items()}
    return {"total": sum(weights[k] * losses[k] for k in weights), **losses}


@pytest.mark.parametrize("regions", ["code", "all"])
def test_stage1_loss_equals_the_per_video_reference(regions):
    method = _method(weight_video=0.3, contrastive_regions=regions)
    background, points, mask = _padded_batch(4, lengths=(26, 14, 30))
    g = torch.Generator().manual_seed(9)
    method.snippet.prototypes = torch.randn(3, 8, generator=g)
    batch = make_batch(
        torch.randn(*mask.shape, 8, generator=g) * mask[..., None],
        mask,
        F.pad((points.amax(1) > 0).float(), (1, 0)),
        F.pad(points, (1, 0)),
    )
    method.eval()  # no dropout, no memory update
    output = method(batch.features, batch.mask)
    got, expected = method.loss(output, batch, 0), reference_losses(method, output, batch, 0)
    for key in expected:
        assert got[key].item() == pytest.approx(expected[key].item(), rel=1e-5, abs=1e-5), key
    assert got["frame_bkg"] > 0 and got["contrastive"] > 0


@pytest.mark.parametrize("mode", ["video", "batch"])
def test_memory_updates_per_video_or_after_the_batch_equal_the_official_loop(mode):
    """The official S_train: one forward per video, each followed by its loss and a memory update, so video b
    sees the updates of videos 0..b-1 ("video"); "batch": every video sees the memory of the step's start and
    the updates follow in batch order. Loss, gradients and the final memory against that loop."""
    from pointtal.methods.hrpro import WithPoints

    def build():
        torch.manual_seed(0)
        m = HRPro(
            Options(
                num_heads=2,
                dim_feedforward=16,
                dropout=0.0,
                rab_dropout=0.0,
                attention_dropout=0.0,
                memory_momentum=0.3,
                memory_update=mode,
            ),
            8,
            3,
        )  # no dropout; a large momentum shows order
        m.snippet.prototypes = torch.randn(3, 8, generator=torch.Generator().manual_seed(5))
        return m.train()

    _, points, mask = _padded_batch(4, lengths=(26, 14, 30))
    g = torch.Generator().manual_seed(9)
    batch = make_batch(
        torch.randn(*mask.shape, 8, generator=g) * mask[..., None],
        mask,
        F.pad((points.amax(1) > 0).float(), (1, 0)),
        F.pad(points, (1, 0)),
    )
    batch = WithPoints(lambda *a: batch)(0)
    assert set(batch.extras) == {"points", "labels"}
    method = build()
    got = method.loss(method(batch.features, batch.mask, **batch.extras), batch, 0)
    got["total"].backward()

    reference = build()
    start = reference.snippet.prototypes.clone()
    total, memory = 0.0, start.clone()
    for row, n in enumerate(mask.sum(1).tolist()):  # the official loop over single-video forwards
        one = make_batch(
            batch.features[row : row + 1, :n],
            torch.ones(1, n, dtype=torch.bool),
            batch.video_labels[row : row + 1],
            batch.point_labels[row : row + 1, :n],
        )
        reference.snippet.prototypes = memory if mode == "video" else start
        out = reference(one.features, one.mask)
        total = total + reference_losses(reference, out, one, 0)["total"]
        act, _ = _reference_select_seed(out.cas[0, :, 0].detach(), (one.point_labels[0, :, 1:] > 0).float())
        for c in range(3):  # Reliable_Memory.update
            chosen = act[:, c] > 0
            if one.video_labels[0, c + 1] > 0 and chosen.any():
                memory = memory.clone()
                memory[c] = 0.7 * memory[c] + 0.3 * out.embedded[0, chosen].detach().mean(0)
    total = total / len(mask)
    total.backward()
    assert got["total"].item() == pytest.approx(total.item(), rel=1e-5, abs=1e-6)
    torch.testing.assert_close(method.snippet.prototypes, memory, **TOL)
    for (name, a), b in zip(method.snippet.named_parameters(), reference.snippet.parameters(), strict=False):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4, msg=name)
    other = build()
    flipped = HRPro(
        Options(
            num_heads=2,
            dim_feedforward=16,
            dropout=0.0,
            rab_dropout=0.0,
            attention_dropout=0.0,
            memory_momentum=0.3,
            memory_update="batch" if mode == "video" else "video",
        ),
        8,
        3,
    )
    flipped.load_state_dict(other.state_dict())
    flipped.train()
    assert flipped.loss(flipped(batch.features, batch.mask, **batch.extras), batch, 0)["total"].item() != pytest.approx(
        got["total"].item(), rel=1e-7, abs=0
    )  # the two modes differ on this batch


# ----------------------------------------------------------------------------- the stage-1 network and memory
def _method(**options) -> HRPro:
    torch.manual_seed(0)
    return HRPro(Options(num_heads=2, dim_feedforward=16, **options), 8, 3)


def test_padded_batch_scores_each_video_as_alone_and_memory_init_is_the_mean_point_embedding():
    method = _method().eval()
    method.snippet.prototypes = torch.randn(3, 8)
    _, points, mask, _, _, _ = _snippet_inputs(0)
    features = torch.randn(*mask.shape, 8) * mask[..., None]
    out = method(features, mask)
    for row, n in enumerate(mask.sum(1).tolist()):
        alone = method(features[row : row + 1, :n], torch.ones(1, n, dtype=torch.bool))
        torch.testing.assert_close(out.cas[row, :n], alone.cas[0], **TOL)
        torch.testing.assert_close(out.embedded[row, :n], alone.embedded[0], **TOL)

    lengths = mask.sum(1).numpy()
    data = PointDataset(
        video_ids=[str(r) for r in range(len(lengths))],
        geometries=[None] * len(lengths),
        offsets=np.concatenate([[0], np.cumsum(lengths)]),
        features=torch.cat([features[r, :n] for r, n in enumerate(lengths)]),
        video_labels=torch.zeros(len(lengths), 4),
        point_labels=torch.cat([F.pad(points[r, :n], (1, 0)) for r, n in enumerate(lengths)]),
        truth_labels=torch.zeros(int(lengths.sum()), 4),
    )
    before = method.snippet.prototypes.clone()
    method.init_memory(data, torch.device("cpu"), 2)
    embedded = torch.cat([out.embedded[r, :n] for r, n in enumerate(lengths)])
    for c in range(3):
        rows = data.point_labels[:, c + 1] > 0
        expected = embedded[rows].mean(0) if rows.any() else before[c]
        torch.testing.assert_close(method.snippet.prototypes[c], expected, **TOL)


def test_prototype_tokens_follow_the_official_view_or_the_paper_rows():
    code, rows = _method(), _method(prototype_tokens="rows")
    memory = torch.arange(24.0).reshape(3, 8)
    code.snippet.prototypes = rows.snippet.prototypes = memory
    official = memory.view(3, 1, 8).view(1, 8, -1)[0]  # (D, C): the official tokens are its columns
    assert torch.equal(code.snippet.tokens(), official.t()) and torch.equal(rows.snippet.tokens(), memory)
    assert not torch.equal(code.snippet.tokens(), memory)


def test_options_name_the_bad_key():
    with pytest.raises(InputError, match="method.num_heads"):
        HRPro(Options(num_heads=3), 8, 2)
    with pytest.raises(InputError, match="method.roi_size"):
        Options(roi_size=4)


# ----------------------------------------------------------------------------- stage 2
def _reference_roi(feature: torch.Tensor, proposals: torch.Tensor, bins=12, ext=0.25) -> torch.Tensor:
    """The official extract_roi_features for one video with torchvision's roi_align kernel, literally."""
    t, d = feature.shape
    start, end = proposals[:, 0].double(), proposals[:, 1].double()
    length = end - start
    fill = int(math.ceil(0.25 * float(length.max()))) + 1
    padded = torch.cat([torch.zeros(fill, d), feature, torch.zeros(fill, d)]).double()
    height_map = padded.shape[0]
    out = torch.zeros(len(proposals), bins, d, dtype=torch.float64)
    for p in range(len(proposals)):
        y1 = float(start[p] - ext * length[p]) + fill - 0.5
        y2 = float(end[p] + ext * length[p]) + fill - 0.5
        roi_h = max(y2 - y1, 1.0)
        bin_h = roi_h / bins
        grid = math.ceil(roi_h / bins)
        for ph in range(bins):
            for iy in range(grid):
                y = y1 + ph * bin_h + (iy + 0.5) * bin_h / grid
                if y < -1.0 or y > height_map:
                    continue
                y = max(y, 0.0)
                low = int(y)
                if low >= height_map - 1:
                    high = low = height_map - 1
                    y = float(low)
                else:
                    high = low + 1
                frac = y - low
                out[p, ph] += ((1 - frac) * padded[low] + frac * padded[high]) / grid
    return out.float()


def test_roi_pool_equals_the_roi_align_kernel_per_video():
    g = torch.Generator().manual_seed(3)
    lengths = torch.tensor([40, 17])
    features = torch.randn(2, 40, 5, generator=g)
    features[1, 17:] = 0
    proposals = torch.tensor(
        [[[0.0, 3.3], [2.7, 39.5], [12.25, 13.0], [35.1, 41.9]], [[0.4, 16.6], [5.0, 5.5], [10.3, 15.9], [-1.2, 2.2]]]
    )
    got = roi_pool(features, lengths, proposals, 12, 0.25)
    for row in range(2):
        expected = _reference_roi(features[row, : lengths[row]], proposals[row])
        torch.testing.assert_close(got[row], expected, **TOL)


def _reference_instance_losses(iou, start_reg, end_reg, proposals, draw, pseudo, thresh=0.3):
    """The official regression_loss and iou_loss of one video (np.random.rand replaced by `draw`)."""

    def segments_iou(a, b):
        inter = torch.minimum(a[:, None, 1], b[None, :, 1]) - torch.maximum(a[:, None, 0], b[None, :, 0])
        union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter
        value = inter / (union + 1e-6)
        return torch.where(value > 0, value, torch.zeros_like(value))

    if len(pseudo) == 0:
        pseudo = torch.zeros(1, 2)  # the official placeholder [0, 0, 0]
    width = proposals[:, 1] - proposals[:, 0]
    refined = torch.stack([proposals[:, 0] + start_reg * width, proposals[:, 1] + end_reg * width], 1)
    iou_max = segments_iou(proposals, pseudo).max(1).values
    refined_iou = segments_iou(refined, pseudo).max(1).values
    reg = F.smooth_l1_loss(refined_iou, torch.ones_like(refined_iou), reduction="none")
    weight = (iou_max >= thresh).float()
    reg = (reg * weight).sum() / weight.sum() if weight.sum() > 0 else (reg * weight).sum()
    high, low = (iou_max >= thresh).float(), (iou_max < thresh).float()
    ratio = min(high.sum() / low.sum(), torch.tensor(1.0))
    chosen = high + ((draw * low) > (1 - ratio)).float()
    score = F.smooth_l1_loss(iou, iou_max, reduction="none")
    score = (score * chosen).sum() / chosen.sum() if chosen.sum() > 0 else (score * chosen).sum()
    return reg, score


def test_instance_losses_equal_the_official_per_video_functions():
    g = torch.Generator().manual_seed(5)
    counts, pseudo_counts = [6, 3, 5], [2, 0, 1]
    b, m, k = 3, max(counts), max(pseudo_counts)
    start = torch.rand(b, m, generator=g) * 20
    proposals = torch.stack([start, start + 1 + torch.rand(b, m, generator=g) * 8], -1)
    pseudo = proposals[:, :k].clone() + torch.rand(b, k, 2, generator=g)
    proposal_mask = torch.arange(m)[None, :] < torch.tensor(counts)[:, None]
    pseudo_mask = torch.arange(k)[None, :] < torch.tensor(pseudo_counts)[:, None]
    output = InstanceOutput(
        torch.rand(b, m, generator=g), torch.randn(b, m, generator=g) * 0.2, torch.randn(b, m, generator=g) * 0.2
    )
    draw = torch.rand(b, m, generator=g)
    reg, score = instance_losses(output, proposals, proposal_mask, draw, pseudo, pseudo_mask, 0.3)
    refs = [
        _reference_instance_losses(
            output.iou[i, :n],
            output.start_reg[i, :n],
            output.end_reg[i, :n],
            proposals[i, :n],
            draw[i, :n],
            pseudo[i, : pseudo_counts[i]],
        )
        for i, n in enumerate(counts)
    ]
    assert reg.item() == pytest.approx(sum(float(r) for r, _ in refs) / b, abs=1e-5)
    assert score.item() == pytest.approx(sum(float(s) for _, s in refs) / b, abs=1e-5)
    assert reg.item() > 0 and score.item() > 0


# ----------------------------------------------------------------------------- proposals, soft-NMS, ranking
def test_upsample_extrapolates_past_the_last_snippet():
    up = upsample_extrapolate(np.array([[0.0], [1.0], [3.0]]), 2)[:, 0]
    assert up.tolist() == [0.0, 0.5, 1.0, 2.0, 3.0, 4.0]


def test_stage1_proposals_hand_example():
    # background b and one class (c = 1) over 4 snippets; the fused CAS column is what thresholds read
    cas = np.array([[0.9, 0.0], [0.2, 0.3], [0.2, 0.3], [0.9, 0.0]])
    raw = stage1_proposals(cas, np.array([0.0, 0.7]), scale=1, cas_thresholds=(0.1,), agnostic_thresholds=(0.5,))
    # CAS >= 0.1 on snippets 1-2; agnostic 1 - b = 0.8 >= 0.5 on 1-2: two proposals [1, 3)
    assert raw.start.tolist() == [1.0, 1.0] and raw.end.tolist() == [3.0, 3.0] and raw.label.tolist() == [1, 1]
    # inside 0.3, outside: floor(1 - 0.5) = 0 .. 0 and 3 .. floor(2 + 0.5) = 2 -> only snippet 0 (value 0)
    assert raw.score == pytest.approx([0.3, 0.3])


def test_soft_nms_hand_example():
    order, scores = soft_nms(np.array([[0.0, 4.0], [1.0, 4.0], [10.0, 12.0]]), np.array([0.5, 0.9, 0.4]), 0.3)
    # [1, 4] first; [0, 4] (tIoU 3/4) decays to 0.5 exp(-0.5625 / 0.3) = 0.077 < 0.4, so [10, 12] comes next
    assert order.tolist() == [1, 2, 0]
    assert scores == pytest.approx([0.9, 0.4, 0.5 * math.exp(-0.75 * 0.75 / 0.3)])
    rows = soft_nms_per_class(
        np.array([[0.0, 4.0], [1.0, 4.0], [0.0, 4.0]]), np.array([0.5, 0.9, 0.7]), np.array([2, 2, 1]), 0.3, 0.0
    )
    assert rows[:, 2].tolist() == [2, 2, 1]  # classes in order of first appearance
    assert rows[2].tolist() == [0.0, 4.0, 1.0, 0.7]  # the other class is not suppressed


def test_match_points_hand_example():
    raw = RawProposals(
        start=np.array([0.0, 1.0, 4.0, 1.0, 8.0]),
        end=np.array([9.0, 3.0, 6.0, 7.0, 9.0]),
        label=np.array([1, 1, 1, 2, 2]),
        score=np.array([0.9, 0.5, 0.4, 0.6, -0.1]),
    )
    # points: class 1 at 2 and 5, class 2 at 8.5
    matched = match_points(raw, np.array([2.0, 5.0, 8.5]), np.array([1, 1, 2]))
    # point 2: [0, 9] holds the next point (fails the boundary condition), [1, 3] is inside (-1, 5);
    # point 5: [4, 6] lies within (2, 8.5); point 8.5: the only class-2 proposal holding it has score <= 0
    assert matched.tolist() == [1, 2, -1]
    # points at 2 and 2.5: no class-1 proposal holding either lies between the neighbours -> the best one
    assert match_points(raw, np.array([2.0, 2.5]), np.array([1, 1])).tolist() == [0, 0]


def test_negative_proposals_lie_in_background_runs():
    seed = np.zeros(30, dtype=bool)
    seed[3:9] = seed[20] = True
    negative = negative_proposals(seed, 12, np.random.default_rng(0))
    assert negative.shape == (12, 3)
    for start, end, score in negative:
        if start == 20:
            assert end == 21 and score == -1
        else:
            assert 3 <= start < end <= 8 and score == pytest.approx(-(end - start) / 5)
    assert negative_proposals(np.zeros(5, dtype=bool), 3, np.random.default_rng(0)).shape == (0, 3)


# ----------------------------------------------------------------------------- detect
def test_stage2_detections_of_a_video_do_not_depend_on_its_batch():
    method = _method()
    method.stage2_ready = True
    method.eval()
    g = torch.Generator().manual_seed(0)
    lengths = [30, 12]
    features = torch.randn(2, 30, 8, generator=g)
    features[1, 12:] = 0
    mask = torch.arange(30)[None, :] < torch.tensor(lengths)[:, None]
    from pointtal.methods.base import VideoScores

    def videos_of(out, rows):
        s = method.scores(out, out.mask)
        return [
            VideoScores(str(r), s.cas[i, :n].numpy(), None, s.video_scores[i].numpy(), i)
            for i, (r, n) in enumerate(rows)
        ]

    with torch.no_grad():
        both = method(features, mask)
        found = method.detect(both, videos_of(both, [(0, 30), (1, 12)]))
        alone = method(features[1:, :12], mask[1:, :12])
        single = method.detect(alone, videos_of(alone, [(1, 12)]))
    assert len(found[1].segments) > 0
    np.testing.assert_allclose(found[1].segments, single[0].segments, atol=1e-5)
    assert (
        method.localize(
            videos_of(both, [(0, 30)])[0].cas, None, videos_of(both, [(0, 30)])[0].video_scores
        ).segments.shape[0]
        * 2
        == found[0].segments.shape[0]
    )  # as is + refined


def test_a_training_step_of_each_stage_reduces_its_loss_and_stage2_leaves_stage1_alone():
    method = _method()
    g = torch.Generator().manual_seed(1)
    background, points, mask = _padded_batch(2, lengths=(20, 16))
    features = torch.randn(*mask.shape, 8, generator=g)
    batch = make_batch(
        features * mask[..., None], mask, F.pad((points.amax(1) > 0).float(), (1, 0)), F.pad(points, (1, 0))
    )
    optimizer = torch.optim.Adam(method.phase_parameters(0), lr=1e-2)
    method.train()
    memory = method.snippet.prototypes.clone()
    first = [float(method.loss(method(batch.features, batch.mask), batch, 0)["total"].detach())]
    for step in range(5):
        loss = method.loss(method(batch.features, batch.mask), batch, step)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(method.loss(method(batch.features, batch.mask), batch, 5)["total"].detach()) < first[0]
    assert not torch.equal(method.snippet.prototypes, memory)  # the memory moved

    snippet_before = {k: v.clone() for k, v in method.snippet.state_dict().items()}
    params = method.phase_parameters(1)
    assert all(not p.requires_grad for p in method.snippet.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3)
    batch.extras = {
        "proposals": torch.tensor([[[1.0, 6.0], [2.0, 9.0], [10.0, 14.0]]] * 2),
        "proposals_mask": torch.ones(2, 3, dtype=torch.bool),
        "proposal_draw": torch.full((2, 3), 0.99),
        "pseudo": torch.tensor([[[1.5, 7.0]]] * 2),
        "pseudo_mask": torch.ones(2, 1, dtype=torch.bool),
    }
    losses = []
    for step in range(8):
        loss = method.loss(method(batch.features, batch.mask, **batch.extras), batch, step)
        losses.append(float(loss["total"].detach()))
        optimizer.zero_grad()
        loss["total"].backward()
        optimizer.step()
    assert losses[-1] < losses[0]
    assert all(torch.equal(v, method.snippet.state_dict()[k]) for k, v in snippet_before.items())


# ----------------------------------------------------------------------------- end to end (pointtal train)
def _hrpro_raw(tiny_data, steps: int, epochs: int, **train) -> dict:
    from conftest import tiny_raw_config

    raw = tiny_raw_config(tiny_data, "sfnet", steps=steps, **train)
    raw["method"] = {
        "name": "hrpro",
        "num_heads": 4,
        "dim_feedforward": 32,
        "stage2_epochs": epochs,
        "stage2_batch_size": 8,
        "stage2_lr": 1e-3,
    }
    return raw


def _state_equal(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, dict):
            if not _state_equal(x, y):
                return False
        elif isinstance(x, torch.Tensor):
            if not torch.equal(x, y):
                return False
        elif x != y:
            return False
    return True


@pytest.mark.slow
def test_train_runs_both_stages_and_stage2_learns_completeness(tiny_data, tmp_path):
    from pointtal.config import build_config
    from pointtal.engine.checkpoint import load_checkpoint
    from pointtal.engine.setup import load_run_data
    from pointtal.engine.trainer import train
    from pointtal.localization.nms import pairwise_tiou
    from pointtal.methods.hrpro import refine

    config = build_config(_hrpro_raw(tiny_data, 60, 15, lr=1e-3, eval_every=60))
    result = train(config, tmp_path / "run")
    assert result.step == 60 + 15 * 3  # 24 training videos in batches of 8: 3 steps per stage-2 epoch
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    maps = [r["mAP@0.1"] for r in records if "mAP@0.1" in r]
    assert len(maps) >= 2 and min(maps) > 10.0  # stage 1 (step 60) and stage 2 both localize
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert saved["model"]["_extra_state"]["stage2_ready"]
    assert [g["lr"] for g in saved["optimizer"]["param_groups"]] == [1e-3]

    data = load_run_data(config)
    method = HRPro(config.method_options, data.test.dim, len(data.classes))
    method.load_state_dict(saved["model"])
    method.eval()
    predicted, truth, refined_truth = [], [], []
    for v in range(len(data.test)):  # the I-model's completeness against the proposals' true tIoU
        features = data.test.video_features(v)[None]
        mask = torch.ones(features.shape[:2], dtype=torch.bool)
        with torch.no_grad():
            scores = method.scores(method(features, mask), mask)
            raw = method._stage1_raw(scores.cas[0].numpy(), scores.video_scores[0].numpy())
            proposals = torch.from_numpy(np.column_stack([raw.start, raw.end])).float()[None]
            out = method.instance(features, torch.tensor([features.shape[1]]), proposals)
        action = data.test.truth_labels[data.test.offsets[v] : data.test.offsets[v + 1], 1:].amax(1).numpy() > 0
        edges = np.diff(np.concatenate([[0], action.astype(int), [0]]))
        gt = np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], 1)
        predicted.append(out.iou[0].numpy())
        truth.append(pairwise_tiou(proposals[0].numpy(), gt).max(1))
        refined_truth.append(pairwise_tiou(refine(proposals, out.start_reg, out.end_reg)[0].numpy(), gt).max(1))
    predicted, truth = np.concatenate(predicted), np.concatenate(truth)
    assert np.corrcoef(predicted, truth)[0, 1] > 0.2  # completeness ranks the proposals
    assert np.concatenate(refined_truth).mean() > truth.mean()  # regression moves boundaries towards actions


@pytest.mark.slow
def test_resume_inside_stage2_ends_with_the_weights_of_an_uninterrupted_run(tiny_data, tmp_path, monkeypatch):
    from conftest import interrupt_training_at

    from pointtal.config import build_config
    from pointtal.engine.checkpoint import load_checkpoint
    from pointtal.engine.trainer import train

    config = build_config(_hrpro_raw(tiny_data, 4, 2, checkpoint_every=1))
    whole = train(config, tmp_path / "whole")
    assert whole.step == 4 + 2 * 3
    final = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["model"]

    with monkeypatch.context() as patch:
        interrupt_training_at(patch, 7)  # inside stage 2 (steps 4..9)
        with pytest.raises(KeyboardInterrupt):
            train(config, tmp_path / "cut")
    cut = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert cut["step"] == 7 and cut["model"]["_extra_state"]["stage2_ready"]
    assert len(cut["model"]["_extra_state"]["proposals"]) > 0

    calls = []
    start_phase = HRPro.start_phase
    monkeypatch.setattr(HRPro, "start_phase", lambda self, i, c: calls.append(i) or start_phase(self, i, c))
    train(config, tmp_path / "cut", resume=True)
    assert calls == []  # the ranking comes back from the checkpoint, not recomputed
    resumed = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["model"]
    assert _state_equal(resumed, final), "resumed run differs from the uninterrupted one"
    stage1 = [k for k in final if k.startswith("snippet.")]
    assert stage1 and all(torch.equal(cut["model"][k], final[k]) for k in stage1)  # stage 1 frozen in stage 2


def test_thumos14_preset_is_the_official_setting():
    from pathlib import Path

    from pointtal.config import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "thumos14_hrpro.yaml")
    assert config.method == "hrpro" and config.method_options == Options()  # defaults are the official values
    assert (config.train.steps, config.train.batch_size, config.train.lr) == (1000, 16, 1e-4)
    method = HRPro(config.method_options, 64, 20)
    first, second = method.phases(config.train, 200)  # THUMOS14's 200 validation videos
    assert (first.steps, first.batch_size, first.lr) == (1000, 16, 1e-4)
    assert (second.steps, second.batch_size, second.lr) == (20 * 20, 10, 5e-5)
    # the official evaluation leaves out three test videos
    assert config.data.exclude_videos == ("video_test_0000270", "video_test_0001292", "video_test_0001496")


def _official_match_point(proposals: list, points: list) -> list:
    """The official ranking.match_point as plain loops: proposals [(start, end, score, label)], points
    [(time, label)] sorted by time -> per point the matched proposal's index or None."""
    t_pos = [-1] + [t for t, _ in points] + [1e5]
    out = []
    for i, (t, label) in enumerate(points):
        match, best = None, 0
        for j, (start, end, score, lab) in enumerate(proposals):  # with the boundary condition
            if lab == label and start <= t <= end and start > t_pos[i] and end < t_pos[i + 2] and score > best:
                match, best = j, score
        if match is None:
            for j, (start, end, score, lab) in enumerate(proposals):  # without it
                if lab == label and start <= t <= end and score > best:
                    match, best = j, score
        out.append(match)
    return out


@pytest.mark.parametrize("point_time", ["exact", "centre"])
def test_ranking_keeps_every_stage1_proposal_adds_negatives_and_takes_pseudo_labels_from_them(point_time):
    from pointtal.data.dataset import PointTimes

    method = _method(ranking_point_time=point_time)
    _, points, mask, _, _, _ = _snippet_inputs(2)
    lengths = mask.sum(1).numpy()
    g = torch.Generator().manual_seed(2)
    features = torch.randn(int(lengths.sum()), 8, generator=g)
    video, snippet, cls = (a.numpy() for a in torch.nonzero(points > 0, as_tuple=True))
    # the clicks' exact times: anywhere in their snippet (the official frame / fps), not its centre
    position = snippet + np.random.default_rng(0).uniform(0.0, 0.999, len(snippet))
    data = PointDataset(
        video_ids=[str(r) for r in range(len(lengths))],
        geometries=[None] * len(lengths),
        offsets=np.concatenate([[0], np.cumsum(lengths)]),
        features=features,
        video_labels=torch.zeros(len(lengths), 4),
        point_labels=torch.cat([F.pad(points[r, :n], (1, 0)) for r, n in enumerate(lengths)]),
        truth_labels=torch.zeros(int(lengths.sum()), 4),
        point_times=PointTimes(video.astype(np.int64), position, cls.astype(np.int64) + 1),
    )
    ranked = method.rank_proposals(data, torch.device("cpu"), 3, seed=0)
    assert ranked.proposal_offsets.tolist()[0] == 0 and len(ranked.proposal_offsets) == len(lengths) + 1
    method.eval()
    differ = 0
    for v, n in enumerate(lengths):
        with torch.no_grad():
            out = method(data.video_features(v)[None], torch.ones(1, int(n), dtype=torch.bool))
            scores = method.scores(out, out.mask)
        raw = method._stage1_raw(scores.cas[0].numpy(), scores.video_scores[0].numpy())
        mine = ranked.proposals[ranked.proposal_offsets[v] : ranked.proposal_offsets[v + 1]].numpy()
        np.testing.assert_allclose(mine[: len(raw)], np.column_stack([raw.start, raw.end]), atol=1e-6)
        negatives = mine[len(raw) :]
        assert len(negatives) <= int(0.5 * len(raw)) and (negatives[:, 1] > negatives[:, 0]).all()
        pseudo = ranked.pseudo[ranked.pseudo_offsets[v] : ranked.pseudo_offsets[v + 1]].numpy()
        proposals = list(zip(raw.start, raw.end, raw.score, raw.label, strict=False))
        ours = video == v
        exact = sorted(zip(position[ours], cls[ours] + 1, strict=False))
        centre = sorted(zip(snippet[ours] + 0.5, cls[ours] + 1, strict=False))
        matches = {"exact": _official_match_point(proposals, exact), "centre": _official_match_point(proposals, centre)}
        differ += sum(a != b for a, b in zip(matches["exact"], matches["centre"], strict=False))
        expected = [j for j in matches[point_time] if j is not None]
        np.testing.assert_allclose(
            pseudo.reshape(-1, 2), np.column_stack([raw.start[expected], raw.end[expected]]), atol=1e-6
        )
    assert len(ranked.pseudo) > 0 and len(ranked.proposals) > len(ranked.pseudo)
    assert differ > 0  # the exact times change some matches on these inputs


def test_length_groups_keep_videos_within_the_ratio_of_their_longest():
    from pointtal.methods.hrpro import length_groups

    lengths = torch.tensor([100, 12, 80, 81, 11, 64, 13, 10])
    groups = [g.tolist() for g in length_groups(lengths, ratio=1.25)]
    assert groups == [[0, 3, 2], [5], [6, 1, 4], [7]]  # 100/81/80 | 64 | 13/12/11 | 10 (< 13 / 1.25)
    assert sorted(i for g in groups for i in g) == list(range(8))


def test_attention_in_length_groups_equals_each_video_alone():
    method = _method().eval()
    method.snippet.prototypes = torch.randn(3, 8)
    lengths = torch.tensor([3, 20, 9, 16, 2])  # four groups at ratio 1.25
    mask = torch.arange(20)[None, :] < lengths[:, None]
    features = torch.randn(5, 20, 8) * mask[..., None]
    with torch.no_grad():
        embedded, scores = method.snippet(features, mask)
        for row, n in enumerate(lengths.tolist()):
            alone_embedded, alone_scores = method.snippet(
                features[row : row + 1, :n], torch.ones(1, n, dtype=torch.bool)
            )
            torch.testing.assert_close(embedded[row, :n], alone_embedded[0], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(scores[row, :n], alone_scores[0], rtol=1e-5, atol=1e-5)
        assert float(embedded[~mask].abs().max()) == 0.0


def test_num_segments_perturbs_long_videos_and_keeps_short_ones_whole(tiny_data):
    from conftest import tiny_raw_config

    from pointtal.config import build_config
    from pointtal.data.samplers import PerturbSampler
    from pointtal.engine.setup import load_run_data

    data = load_run_data(build_config(tiny_raw_config(tiny_data, "weak")), test=False)
    size = int(np.median(data.train.n_snippets))
    method = HRPro(Options(num_segments=size), data.train.dim, 4)
    sampler = method.training_sampler(data.train, 8, 0, 0).sampler  # inside WithPoints (memory_update video)
    assert isinstance(sampler, PerturbSampler) and sampler.keep_short
    batch = sampler(3)
    lengths = data.train.n_snippets[batch.video_index.numpy()]
    real = batch.mask.sum(1).numpy()
    assert (real == np.minimum(lengths, size)).all() and (lengths > size).any() and (lengths < size).any()
    for row in np.flatnonzero(lengths <= size):  # short videos: every snippet once, in order
        assert batch.snippet_index[row, : lengths[row]].tolist() == list(range(lengths[row]))
    for row in np.flatnonzero(lengths > size):  # long ones: one snippet per bin, non-decreasing
        picked = batch.snippet_index[row].numpy()
        assert (np.diff(picked) >= 0).all() and picked.max() < lengths[row]


def test_training_data_carry_each_point_at_the_exact_time_of_its_file(tiny_data):
    """A click at t seconds sits at t * fps / stride snippets (its snippet row is the floor), as the official
    ranking's frame / fps; the ranking of the trained data reads these times."""
    from pointtal.config import build_config
    from pointtal.data.points import read_points
    from pointtal.engine.setup import load_run_data

    raw = _hrpro_raw(tiny_data, 2, 0)
    raw["data"]["annotator"] = 0  # the first click file for every video
    config = build_config(raw)
    data = load_run_data(config, test=False)
    train = data.train
    times = train.point_times
    clicks = {(p.video_id, round(p.time_sec * 25 / 16, 6), p.label) for p in read_points(raw["data"]["points"][0])}
    classes = data.gt.classes
    got = {
        (train.video_ids[v], round(float(x), 6), classes[c - 1])
        for v, x, c in zip(times.video, times.position, times.class_index, strict=False)
    }
    assert got and got <= clicks and len(got) == len(times.position)
    assert not np.allclose(times.position % 1, 0.5)  # not snippet centres
    rows = train.offsets[times.video] + np.floor(times.position).astype(np.int64)
    assert (train.point_labels[torch.from_numpy(rows), torch.from_numpy(times.class_index)] > 0).all()
    method = _method(ranking_point_time="exact")
    v = int(times.video[0])
    position, label = method.ranking_points(train, v, np.zeros((1, 3)))
    assert np.all(np.diff(position) >= 0) and set(position) == set(times.position[times.video == v])
    centre = _method(ranking_point_time="centre").ranking_points(
        train, v, (train.point_labels[train.offsets[v] : train.offsets[v + 1], 1:] > 0).numpy()
    )
    np.testing.assert_allclose(centre[0] % 1, 0.5)


@pytest.mark.parametrize("drop_last", [True, False])
def test_stage2_epochs_follow_the_official_loader(drop_last):
    """I_train: each epoch a shuffled DataLoader of `batch_size2` videos with drop_last=True (n // batch steps,
    every batch full, no video twice in an epoch); drop_last False: ceil(n / batch) steps over a video stream."""
    from pointtal.config import TrainConfig
    from pointtal.methods.hrpro import ProposalSampler, TrainingProposals

    n, size, epochs = 23, 5, 3
    method = HRPro(
        Options(
            num_heads=2, dim_feedforward=16, stage2_batch_size=size, stage2_epochs=epochs, stage2_drop_last=drop_last
        ),
        8,
        3,
    )
    per_epoch = n // size if drop_last else -(-n // size)
    assert method.phases(TrainConfig(steps=7, batch_size=4), n)[1].steps == epochs * per_epoch
    data = PointDataset(
        [str(v) for v in range(n)],
        [None] * n,
        np.arange(n + 1) * 6,
        torch.zeros(n * 6, 8),
        torch.zeros(n, 4),
        torch.zeros(n * 6, 4),
        torch.zeros(n * 6, 4),
    )
    props = TrainingProposals(
        torch.tensor([[0.0, 2.0]] * n), torch.arange(n + 1), torch.tensor([[0.0, 2.0]] * n), torch.arange(n + 1)
    )
    sampler = ProposalSampler(data, size, 0, props, 10, drop_last)
    stream = [sampler(step).video_index.tolist() for step in range(epochs * per_epoch)]
    if drop_last:  # the official: per epoch, full batches of distinct videos; n % size videos left out
        for e in range(epochs):
            epoch = stream[e * per_epoch : (e + 1) * per_epoch]
            assert all(len(b) == size for b in epoch)
            seen = [v for b in epoch for v in b]
            assert len(set(seen)) == len(seen) == n - n % size
    else:
        flat = [v for b in stream for v in b]
        assert sorted(flat[:n]) == list(range(n)) and len(stream[per_epoch - 1]) == size  # a stream, no gaps


@pytest.mark.slow  # three short two-stage runs (~1 min)
@pytest.mark.parametrize("selection", ["last", "test", "validation"])
def test_stage2_starts_from_the_stage1_weights_the_selection_names(tiny_data, tmp_path, monkeypatch, caplog, selection):
    """stage1_selection: "last" ranks with the final stage-1 weights; a subset name ranks with the stage-1
    weights of that subset's best in-run evaluation (the official: the test set, warned about)."""
    from pointtal.config import build_config
    from pointtal.engine.checkpoint import load_checkpoint
    from pointtal.engine.trainer import train
    from pointtal.methods.base import Method

    seen = []  # (step, subset, average, stage-1 weights) of each evaluation the method heard of
    stage1_end = {}

    def observe(self, step, subset, average, __f=HRPro.observe_evaluation):
        seen.append((step, subset, average, {k: v.clone() for k, v in self.snippet.state_dict().items()}))
        return __f(self, step, subset, {2: 1.0, 4: 5.0, 6: 5.0}[step])  # the best: step 4 (a tie keeps it)

    def start(self, index, context, __f=HRPro.start_phase):
        if index == 1:
            stage1_end.update({k: v.clone() for k, v in self.snippet.state_dict().items()})
        return __f(self, index, context)

    monkeypatch.setattr(HRPro, "observe_evaluation", observe)
    monkeypatch.setattr(HRPro, "start_phase", start)
    # evaluations score stage-1 proposals only: stage 2's refinement is not under test here
    monkeypatch.setattr(HRPro, "detect", lambda self, output, videos: Method.detect(self, output, videos))
    raw = _hrpro_raw(tiny_data, 6, 1, eval_every=2)
    raw["method"]["stage1_selection"] = selection
    train(build_config(raw), tmp_path / "run")
    final = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    weights = {k[len("snippet.") :]: v for k, v in final.items() if k.startswith("snippet.")}
    if selection == "last":
        assert seen == [] and all(torch.equal(weights[k], v) for k, v in stage1_end.items())
        return
    assert [s[0] for s in seen] == [2, 4, 6] and all(s[1] == selection for s in seen)  # stage 1's evaluations
    assert all(0 <= s[2] <= 100 for s in seen)  # real average mAPs on the subset
    if selection == "test":  # the very averages the run reports for those steps
        from pointtal.engine.logs import read_metrics

        reported = {r["step"]: r["average"] for r in read_metrics(tmp_path / "run")}
        assert [s[2] for s in seen] == [reported[s[0]] for s in seen]
    assert all(torch.equal(weights[k], v) for k, v in seen[1][3].items())  # stage 1 frozen since: step 4's
    assert not all(torch.equal(weights[k], v) for k, v in stage1_end.items())  # not the final stage-1 weights
    assert "stage1_best" not in final["_extra_state"]
    warned = "selects weights on the test subset" in caplog.text
    assert warned == (selection == "test")


def test_stage1_selection_state_survives_a_checkpoint_and_a_missing_subset_is_an_error(tiny_data, tmp_path):
    from pointtal.config import build_config
    from pointtal.engine.trainer import train
    from pointtal.errors import InputError

    method = _method(stage1_selection="test")
    assert method.selection_subset == "test" and _method().selection_subset is None
    method.observe_evaluation(4, "test", 3.0)
    method.observe_evaluation(8, "test", 3.0)  # a tie keeps the earlier
    method.observe_evaluation(6, "test", 1.0)
    other = _method(stage1_selection="test")
    other.load_state_dict(method.state_dict())
    assert other.stage1_best_step == 4 and other.stage1_best_score == 3.0
    assert _state_equal(other.stage1_best, method.stage1_best)
    raw = _hrpro_raw(tiny_data, 2, 1, eval_every=1)
    raw["method"]["stage1_selection"] = "holdout"
    with pytest.raises(InputError, match="method.stage1_selection='holdout': the ground truth has no subset"):
        train(build_config(raw), tmp_path / "run")


def test_onednn_linear_equals_f_linear_with_gradients():
    """layers.linear (float32 CPU products through oneDNN, used by the attention blocks) is F.linear: values
    and all three gradients, with and without bias; other dtypes fall back to F.linear."""
    from pointtal.methods.layers import linear

    g = torch.Generator().manual_seed(0)
    for bias in (True, False):
        x = torch.randn(37, 24, generator=g, requires_grad=True)
        w = torch.randn(16, 24, generator=g, requires_grad=True)
        b = torch.randn(16, generator=g, requires_grad=True) if bias else None
        upstream = torch.randn(37, 16, generator=g)
        mine = linear(x, w, b)
        grads = torch.autograd.grad((mine * upstream).sum(), [x, w] + ([b] if bias else []))
        ref = torch.nn.functional.linear(x, w, b)
        ref_grads = torch.autograd.grad((ref * upstream).sum(), [x, w] + ([b] if bias else []))
        torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-5)
        for got, want in zip(grads, ref_grads, strict=False):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    x64 = torch.randn(5, 3, dtype=torch.float64)
    w64 = torch.randn(2, 3, dtype=torch.float64)
    assert torch.equal(linear(x64, w64), torch.nn.functional.linear(x64, w64))
