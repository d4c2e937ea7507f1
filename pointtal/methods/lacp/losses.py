"""LACP's losses, the official train.py: the video loss, the focal point losses, and the score- and
feature-contrastive completeness losses over the searched sequences (Sec. 3.4 of the paper)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from pointtal.methods.lacp.search import _prefix, oic

if TYPE_CHECKING:
    pass


# ----------------------------------------------------------------------------- losses (train.py)


def bce(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Elementwise binary cross-entropy with the log clamped at -100 (nn.BCELoss)."""
    with torch.autocast(p.device.type, enabled=False):  # BCE refuses autocast; the scores are float32 anyway
        return F.binary_cross_entropy(p.float(), y.float(), reduction="none")  # backward safe at p in {0, 1}


def video_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, C) scores and labels -> (B,) mean BCE over classes."""
    return bce(scores, labels).mean(1)


def focal_point_loss(
    fused: torch.Tensor, target: torch.Tensor, where: torch.Tensor, gamma: float = 2.0
) -> torch.Tensor:
    """(B,) sum over snippets in `where` (B, T) and all K columns of |y - p|^gamma * BCE(p, y), divided by the
    number of such snippets (0 when none). fused (B, T, K), target (B, T, K)."""
    weight = ((1 - fused) * target + fused * (1 - target)) ** gamma
    per = (weight * bce(fused, target)).sum(-1) * where  # (B, T)
    return per.sum(1) / where.sum(1).clamp(min=1)


@dataclass
class Runs:
    """Runs of the dense pseudo labels of (video, ground-truth class) pairs, as the official losses read them."""

    video: torch.Tensor  # (R,)
    cls: torch.Tensor  # (R,) 0-based class
    start: torch.Tensor  # (R,)
    end: torch.Tensor  # (R,) inclusive
    act: torch.Tensor  # (R,) bool


def pseudo_runs(pseudo: torch.Tensor, searched: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> Runs:
    """Runs of pseudo (B, T, C) for the classes of labels (B, C) in videos with a search (B,) whose labels
    change at least once. As in the official code the video's end counts as T-2 (range_idx), so a final run
    ends one snippet early and a final run of one snippet is dropped."""
    b, t, c = pseudo.shape
    lengths = mask.sum(1)
    seq = pseudo.transpose(1, 2) & mask.unsqueeze(1)  # (B, C, T)
    valid = mask.unsqueeze(1).expand(b, c, t)
    change = F.pad((seq[..., 1:] != seq[..., :-1]) & valid[..., 1:], (1, 0))  # (B, C, T) change at t
    use = searched.unsqueeze(1) & (labels > 0) & change.any(-1)  # (B, C)
    first = torch.zeros_like(change)
    first[..., 0] = True
    starts = (change | first) & valid & use.unsqueeze(-1)
    vb, vc, st = torch.nonzero(starts, as_tuple=True)
    same = torch.zeros_like(vb, dtype=torch.bool)
    same[:-1] = (vb[1:] == vb[:-1]) & (vc[1:] == vc[:-1])
    nxt = torch.zeros_like(st)
    nxt[:-1] = st[1:]
    end = torch.where(same, nxt - 1, lengths[vb] - 2)  # the last run ends at T-2 (official quirk)
    keep = end >= st
    vb, vc, st, end = vb[keep], vc[keep], st[keep], end[keep]
    return Runs(vb, vc, st, end, seq[vb, vc, st])


def score_loss(fused: torch.Tensor, runs: Runs, mask: torch.Tensor, delta: float = 0.25) -> torch.Tensor:
    """(B,) (mean_act(1 - oic) + mean_bkg(1 - oic))^2: action runs on p_c, background runs on 1 - p_c."""
    b, t, k = fused.shape
    lengths = mask.sum(1)
    p = (fused[..., 1:] * mask.unsqueeze(-1)).transpose(1, 2).reshape(b * (k - 1), t)  # (B*C, T) one row per class
    cum_act = _prefix(p)  # (B*C, T+1) prefix sums once per (video, class), not once per run
    cum_bkg = torch.arange(t + 1, device=p.device, dtype=cum_act.dtype) - cum_act  # prefix sums of 1 - p
    cums = torch.cat([cum_bkg, cum_act])  # (2*B*C, T+1): background rows, then action rows
    rows = runs.act.long() * (b * (k - 1)) + runs.video * (k - 1) + runs.cls  # (R,)
    contrast = oic(cums, lengths[runs.video], runs.start.unsqueeze(1), runs.end.unsqueeze(1), delta, rows=rows).squeeze(
        1
    )  # the oic reads only [0, length - 1] of a row
    loss = 1 - contrast  # (R,)

    def per_video(sel: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(b, dtype=loss.dtype, device=loss.device).index_add(0, runs.video[sel], loss[sel])
        count = torch.bincount(runs.video[sel], minlength=b)
        return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))

    return ((per_video(runs.act) + per_video(~runs.act)) ** 2).float()


def sample_snippets(start: torch.Tensor, end: torch.Tensor, parts: int, uniform: torch.Tensor) -> torch.Tensor:
    """One snippet in each of `parts` equal parts of [start, end] (official feature_sampling): part i spans
    [int(start + i*L/parts), int(start + (i+1)*L/parts)) (at least one snippet), L = end - start + 1;
    uniform (R, parts) in [0, 1) picks within it. -> (R, parts) long."""
    st = start.double().unsqueeze(1)
    step = (end.double() + 1 - start.double()).unsqueeze(1) / parts
    i = torch.arange(parts, device=start.device, dtype=torch.float64).unsqueeze(0)
    lo = torch.floor(st + step * i).long()
    hi = torch.floor(st + step * (i + 1)).long()
    hi = torch.where(lo >= hi, hi + 1, hi)
    return (lo + torch.floor(uniform.double() * (hi - lo)).long()).clamp(max=hi - 1)


def feature_loss(
    features: torch.Tensor,
    runs: Runs,
    tau: float,
    sampling_size: int,
    classes: str,
    uniform: torch.Tensor | None = None,
    column: torch.Tensor | None = None,
    batch: int | None = None,
) -> torch.Tensor:
    """(B,) feature-contrastive loss of each video's (video, class) groups with >= 2 action runs.

    A run's feature is the mean of `sampling_size` sampled snippets; features are L2-normalised,
    sim = exp(f_i . f_j / tau) within the group (diagonal 0), s_j = sum_i sim_ij y_i / sum_i sim_ij and the
    group loss is -sum_j y_j log s_j / sum_j y_j (y = action). Per video: the last such class ("last", the
    official code) or the mean over them ("mean").

    features (B, T, H), or with `column` the (N, H) embedding rows (`LACPOutput`) of `batch` videos of
    T = column.numel() // batch snippets, snippet (b, t) in row column[b*T + t]. Snippets are sampled for every
    run (the random stream does not depend on which groups qualify); similarities are computed only inside
    the qualifying groups, as one batched (G, L, L) product over groups padded to L runs.
    """
    b = features.shape[0] if column is None else batch
    out = torch.zeros(b, dtype=torch.float32, device=features.device)
    if runs.video.numel() == 0:
        return out
    r = runs.video.numel()
    if uniform is None:
        uniform = torch.rand((r, sampling_size), device=features.device)
    picks = sample_snippets(runs.start, runs.end, sampling_size, uniform)  # (R, S)
    n_cls = int(runs.cls.max()) + 1
    group = runs.video * n_cls + runs.cls  # (R,) non-decreasing: runs come ordered by video, class, start
    y = runs.act.float()
    n_act = torch.zeros(b * n_cls, device=features.device).index_add(0, group, y)  # (B*C',)
    ok = n_act[group] >= 2  # (R,) in a qualifying group
    sel = ok.nonzero().squeeze(1)  # (R',) runs of qualifying groups
    if sel.numel() == 0:
        return out
    if column is None:
        f = features[runs.video[sel].unsqueeze(1), picks[sel]]  # (R', S, H)
    else:
        t = column.numel() // b
        f = features[column[runs.video[sel].unsqueeze(1) * t + picks[sel]]]  # (R', S, H)
    f = F.normalize(f.float().sum(1), dim=1)  # (R', H) the normalised mean; a zero feature gives zero similarity
    g_sel, y_sel = group[sel], y[sel]
    gid, slot_of, size = torch.unique_consecutive(g_sel, return_inverse=True, return_counts=True)  # (G,)
    first = torch.cumsum(size, 0) - size
    pos = torch.arange(sel.numel(), device=f.device) - first[slot_of]  # (R',) position in its group
    width = int(size.max())
    blocks = f.new_zeros(len(gid), width, f.shape[1]).index_put((slot_of, pos), f)  # (G, L, H)
    real = torch.zeros(len(gid), width, dtype=torch.bool, device=f.device).index_put(
        (slot_of, pos), torch.ones_like(pos, dtype=torch.bool)
    )
    yl = torch.zeros(len(gid), width, device=f.device).index_put((slot_of, pos), y_sel)  # (G, L)
    pair = real.unsqueeze(1) & real.unsqueeze(2) & ~torch.eye(width, dtype=torch.bool, device=f.device)
    sim = torch.exp(blocks @ blocks.transpose(1, 2) / tau) * pair  # (G, L, L)
    s = (sim * yl.unsqueeze(2)).sum(1) / sim.sum(1).clamp(min=torch.finfo(sim.dtype).tiny)  # (G, L)
    used = real & (yl > 0)
    term = torch.where(used, -torch.log(torch.where(used, s, torch.ones_like(s))), torch.zeros_like(s))  # no NaN grads
    per_group = term.sum(1) / yl.sum(1)  # (G,) every group here has >= 2 action runs
    gv = torch.div(gid, n_cls, rounding_mode="floor")  # (G,) video of each group
    if classes == "last":
        last = torch.full((b,), -1, dtype=torch.long, device=f.device).scatter_reduce(
            0, gv, torch.arange(len(gid), device=f.device), reduce="amax", include_self=True
        )
        return torch.where(last >= 0, per_group[last.clamp(min=0)], out)
    total = out.index_add(0, gv, per_group)
    count = torch.bincount(gv, minlength=b)
    return total / count.clamp(min=1)
