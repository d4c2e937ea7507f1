"""LACP's pseudo labels: the seeds of the official utils.select_seed and the optimal sequence search of the
official utils (get_oic_score, the exhaustive and beam search over action / background sequences, Sec. 3.3 of the
paper), batched over videos."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from pointtal.methods.seeds import select_seeds as shared_select_seeds

if TYPE_CHECKING:
    from pointtal.methods.lacp.method import Options


# ----------------------------------------------------------------------------- seeds (utils.select_seed)


def _regions(anchor: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For every snippet of (B, T) rows: the last anchor at or before it, the first at or after it (-1 / T_i
    when none), and its region id (0 before the first anchor, i+1 after anchor at index i)."""
    b, t = anchor.shape
    idx = torch.arange(t, device=anchor.device).expand(b, t)
    lengths = mask.sum(1, keepdim=True)
    prev = torch.where(anchor, idx, torch.full_like(idx, -1)).cummax(1).values  # (B, T)
    nxt = torch.where(anchor, idx, lengths.expand(b, t)).flip(1).cummin(1).values.flip(1)  # (B, T)
    return prev, nxt, prev + 1


def _region_reduce(
    values: torch.Tensor, region: torch.Tensor, member: torch.Tensor, reduce: str, fill: float
) -> torch.Tensor:
    """Per-region reduction of (B, T) `values` over `member` snippets, gathered back to each snippet (B, T)."""
    b, t = values.shape
    init = torch.full((b, t + 1), fill, dtype=values.dtype, device=values.device)
    src = torch.where(member, values, torch.full_like(values, fill))
    out = init.scatter_reduce(1, region, src, reduce=reduce, include_self=True)
    return out.gather(1, region)


@dataclass
class Spans:
    """Per-snippet view of the stretches between anchors (seed points or action seeds)."""

    prev: torch.Tensor  # (B, T) last anchor <= t (-1: none)
    nxt: torch.Tensor  # (B, T) first anchor >= t (T_i: none)
    inside: torch.Tensor  # (B, T) bool, a valid non-anchor snippet of a video with anchors
    first: torch.Tensor  # (B, T) first marked snippet of its stretch (T+1 if none)
    last: torch.Tensor  # (B, T) last marked snippet of its stretch (-1 if none)


def _spans(anchor: torch.Tensor, marked: torch.Tensor, mask: torch.Tensor) -> Spans:
    prev, nxt, region = _regions(anchor, mask)
    lengths = mask.sum(1, keepdim=True)
    inside = mask & ~anchor & ((prev >= 0) | (nxt < lengths))
    idx = torch.arange(anchor.shape[1], device=anchor.device).expand_as(prev)
    member = inside & marked
    big = anchor.shape[1] + 1
    first = _region_reduce(idx, region, member, "amin", big)
    last = _region_reduce(idx, region, member, "amax", -1)
    return Spans(prev, nxt, inside, first, last)


def select_seeds(
    bkg: torch.Tensor, points: torch.Tensor, mask: torch.Tensor, act_thresh: float = 0.1, bkg_thresh: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo background points and pseudo action points: the official select_seed, shared with HR-Pro
    (`methods.seeds.select_seeds`), on the detached float background and 0/1 points, seeds as bool.

    bkg (B, T) P(background), points (B, T, C) {0,1} action points, mask (B, T). Between points (snippets of
    any class), the stretch before the first and after the last:
      * background seeds: the snippets with bkg >= bkg_thresh, filled from the first to the last of them
        (before the first point: from 0 to the last; after the last point: from the first to the end); with
        none, the arg-max of bkg (and from 0 to it / from it to the end for the outer stretches);
      * action seeds: walking away from each point while bkg <= act_thresh and not a background seed, the
        snippets get that point's classes (between two points the right point's walk is written last).
    Adjacent points (no snippet between) get nothing. Returns act_seed (B, T, C) float, bkg_seed (B, T) bool.
    """
    act, bkg_seed = shared_select_seeds(bkg.detach().float(), (points > 0).float(), mask, act_thresh, bkg_thresh)
    return act, bkg_seed.bool()


# ----------------------------------------------------------------------------- optimal sequence search


def oic(
    cum: torch.Tensor,
    length: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    delta: float = 0.25,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """Outer-inner contrast of segments [start, end] (inclusive) of rows with prefix sums `cum` (R, T+1).

    cum's first axis is gathered with row-aligned index tensors start/end (R, ...) (or, with `rows` (R,), row
    r reads cum[rows[r]]); length (R,) the row's real length.
    outer = [max(0, int(s - delta*L)), s) and (e, min(len-1, int(e + delta*L))]; 0 when empty.
    """
    shape = start.shape
    r = shape[0]
    width = math.prod(shape[1:])
    s, e = start.reshape(r, width), end.reshape(r, width)
    n = e - s + 1
    ln = length.reshape(r, 1)
    lo = torch.floor(s - delta * n).long().clamp(min=0)
    hi = torch.minimum(torch.floor(e + delta * n).long(), ln - 1)
    if rows is None:
        g = lambda i: cum.gather(1, i.clamp(0, cum.shape[1] - 1))  # noqa: E731
    else:
        flat, base = cum.reshape(-1), (rows * cum.shape[1]).reshape(r, 1)
        g = lambda i: flat[base + i.clamp(0, cum.shape[1] - 1)]  # noqa: E731
    inner = (g(e + 1) - g(s)) / n.clamp(min=1)
    count = (s - lo) + (hi - e)
    total = (g(s) - g(lo)) + (g(hi + 1) - g(e + 1))
    outer = torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))
    return (inner - outer).reshape(shape)


def _prefix(x: torch.Tensor) -> torch.Tensor:
    """(R, T) -> (R, T+1) float64 prefix sums."""
    return F.pad(x.double().cumsum(1), (1, 0))


@dataclass
class Cores:
    """Seed-constrained sequences: one per (video, class) with an action seed. Segment i (alternating labels)
    must cover its core [left_i, right_i]; the boundary before segment i lies in [right_{i-1}+1, left_i]."""

    video: torch.Tensor  # (Q,)
    cls: torch.Tensor  # (Q,) 0-based action class
    n: torch.Tensor  # (Q,) segments
    act: torch.Tensor  # (Q, S) bool, segment is action
    left: torch.Tensor  # (Q, S) core start
    right: torch.Tensor  # (Q, S) core end
    length: torch.Tensor  # (Q,) video length


def sequence_cores(act_seed: torch.Tensor, bkg_seed: torch.Tensor, mask: torch.Tensor) -> Cores:
    """The official search's transcript and ranges (search.greedy_search_with_id), batched.

    For class c: action seeds of c; background = background seeds and the action seeds of other classes.
    Before the first action seed the background stretch is filled from 0 to its last background seed (none:
    the first action core starts at 0); after the last, from its first background seed to the end (none: the
    last action core runs to the end); between two action groups, from the first to the last background seed.
    """
    v, t, c = act_seed.shape
    a = (act_seed > 0) & mask.unsqueeze(-1)  # (V, T, C)
    qv, qc = torch.nonzero(a.any(1), as_tuple=True)  # (Q,)
    seq_mask = mask[qv]  # (Q, T)
    act = a[qv, :, qc]  # (Q, T)
    other = a.any(-1)[qv] & ~act
    bkg = (bkg_seed[qv] | other) & seq_mask & ~act
    sp = _spans(act, bkg, seq_mask)
    lengths = seq_mask.sum(1, keepdim=True)
    idx = torch.arange(t, device=act.device).expand_as(act)
    has_left, has_right = sp.prev >= 0, sp.nxt < lengths
    found = sp.last >= 0
    lo = torch.where(has_left, sp.first, torch.zeros_like(idx))
    hi = torch.where(has_right, sp.last, lengths - 1)
    bkg_core = sp.inside & found & (idx >= lo) & (idx <= hi)
    act_core = act | (sp.inside & ~found)  # no background in a stretch: the action core covers it
    kind = torch.where(act_core, 2, torch.where(bkg_core, 1, 0))  # (Q, T)
    prev_kind = F.pad(kind, (1, 0))[:, :-1]
    next_kind = F.pad(kind, (0, 1))[:, 1:]
    q_s, start = torch.nonzero((kind > 0) & (kind != prev_kind), as_tuple=True)
    _, end = torch.nonzero((kind > 0) & (kind != next_kind), as_tuple=True)
    q = len(qv)
    n = torch.bincount(q_s, minlength=q)
    s_max = int(n.max()) if q else 0
    first = torch.cumsum(n, 0) - n
    slot = torch.arange(len(q_s), device=act.device) - first[q_s]
    shape = (q, max(s_max, 1))
    left = torch.zeros(shape, dtype=torch.long, device=act.device).index_put_((q_s, slot), start)
    right = torch.zeros(shape, dtype=torch.long, device=act.device).index_put_((q_s, slot), end)
    is_act = torch.zeros(shape, dtype=torch.bool, device=act.device).index_put_((q_s, slot), kind[q_s, start] == 2)
    return Cores(qv, qc, n, is_act, left, right, lengths.squeeze(1))


def search_sequences(
    cas: torch.Tensor, cores: Cores, delta: float = 0.25, chunk: int = 1 << 22
) -> tuple[torch.Tensor, torch.Tensor]:
    """The best sequence of every (video, class) of `cores`: exact arg-max of the mean outer-inner score of its
    segments (action segments on p_c, background segments on 1 - p_c), by dynamic programming over segment
    boundaries. cas (V, T, K) fused probabilities. Returns labels (Q, T) bool (action) and scores (Q,).

    Batched over sequences; the only loops are over the segment index and (memory) chunks of sequences.
    """
    q = cores.video.numel()
    t = cas.shape[1]
    dev = cas.device
    if q == 0:
        return torch.zeros((0, t), dtype=torch.bool, device=dev), torch.zeros(0, dtype=torch.float64, device=dev)
    p = cas[cores.video, :, cores.cls + 1].double()  # (Q, T)
    cum_act = _prefix(p)
    cum_bkg = _prefix(1 - p)
    n, s_max = cores.n, cores.left.shape[1]
    length = cores.length
    # boundary sets G_i = [lo_i, hi_i], i = 0..n: G_0 = {0}, G_n = {T_q}
    lo = torch.zeros((q, s_max + 1), dtype=torch.long, device=dev)
    hi = torch.zeros_like(lo)
    lo[:, 1:s_max] = cores.right[:, :-1] + 1
    hi[:, 1:s_max] = cores.left[:, 1:]
    ends = torch.arange(s_max + 1, device=dev).unsqueeze(0) >= n.unsqueeze(1)  # (Q, S+1) i >= n
    lo = torch.where(ends, length.unsqueeze(1), lo)
    hi = torch.where(ends, length.unsqueeze(1), hi)
    size = hi - lo + 1  # (Q, S+1)
    value = torch.zeros((q, 1), dtype=torch.float64, device=dev)  # V_0 over G_0
    back = []
    for i in range(s_max):
        active = i < n  # (Q,)
        a_max, b_max = int(size[:, i].max()), int(size[:, i + 1].max())
        arg = torch.zeros((q, b_max), dtype=torch.long, device=dev)
        new = torch.full((q, b_max), float("-inf"), dtype=torch.float64, device=dev)
        step = max(1, chunk // max(a_max * b_max, 1))
        for c0 in range(0, q, step):
            rows = slice(c0, min(q, c0 + step))
            s = lo[rows, i, None, None] + torch.arange(a_max, device=dev).view(1, -1, 1)  # (R, A, 1)
            e = lo[rows, i + 1, None, None] + torch.arange(b_max, device=dev).view(1, 1, -1) - 1  # (R, 1, B)
            s, e = torch.broadcast_tensors(s, e)
            use_act = cores.act[rows, i].view(-1, 1, 1)
            score = torch.where(
                use_act, oic(cum_act[rows], length[rows], s, e, delta), oic(cum_bkg[rows], length[rows], s, e, delta)
            )  # (R, A, B)
            ok = (
                (torch.arange(a_max, device=dev).view(1, -1, 1) < size[rows, i, None, None])
                & (torch.arange(b_max, device=dev).view(1, 1, -1) < size[rows, i + 1, None, None])
                & (e >= s)
            )
            prev = F.pad(value[rows], (0, a_max - value.shape[1]), value=float("-inf"))[:, :, None]
            total = torch.where(ok, prev + score, torch.full_like(score, float("-inf")))
            best, where = total.max(1)  # (R, B)
            new[rows], arg[rows] = best, where
        keep = active.unsqueeze(1)
        value = torch.where(
            keep, new, F.pad(value, (0, max(0, b_max - value.shape[1])), value=float("-inf"))[:, :b_max]
        )
        back.append(arg)
    final = value[:, 0] / n.double()  # G_n = {T}: offset 0
    # traceback: boundaries b_1..b_{n-1}
    boundary = torch.zeros((q, s_max + 1), dtype=torch.long, device=dev)
    cur = torch.zeros(q, dtype=torch.long, device=dev)
    rows = torch.arange(q, device=dev)
    for i in range(s_max - 1, -1, -1):
        active = i < n
        a = back[i][rows, cur]
        cur = torch.where(active, a, cur)
        boundary[:, i] = torch.where(active, lo[:, i] + a, boundary[:, i])
    return boundary_labels(boundary, cores, t), final


def boundary_labels(boundary: torch.Tensor, cores: Cores, t: int) -> torch.Tensor:
    """(Q, T) bool action labels of sequences whose segment i starts at boundary[:, i] (i = 1..n-1 read)."""
    q, width = boundary.shape
    dev = boundary.device
    marks = torch.zeros((q, t + 1), dtype=torch.long, device=dev)
    slot = torch.arange(width, device=dev).unsqueeze(0)
    inner = (slot >= 1) & (slot < cores.n.unsqueeze(1))
    marks.scatter_add_(1, torch.where(inner, boundary, t), inner.long())
    segment = marks[:, :t].cumsum(1).clamp(max=cores.act.shape[1] - 1)  # (Q, T) segment index of every snippet
    return cores.act.gather(1, segment) & (torch.arange(t, device=dev).unsqueeze(0) < cores.length.unsqueeze(1))


def beam_search_sequences(
    cas: torch.Tensor, cores: Cores, budget: int, prune: float = 0.1, delta: float = 0.25, slots: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The official search (decode.Decoder with SingleTranscriptGrammar), batched over sequences and hypotheses.

    A hypothesis is a partial sequence with score = mean outer-inner score of its finished segments (+inf
    before the first). Frame by frame, a hypothesis inside a free stretch (between the end of its segment's core
    and the next core's start) either stays or starts the next segment; at the next core's start it must move.
    After each frame: hypotheses scoring < `prune` go (but the best stays), then all but the `budget` best (ties
    at the cut kept). The survivor with the best final score (mean over all segments) wins.

    Frames inside cores change no hypothesis (pruning is idempotent), so the loop runs over the free frames of
    the sequence with the most of them, every sequence advancing one of its own free frames per iteration;
    each iteration is a few (Q, 2 * slots) tensor operations. `slots` (default 2 * budget) bounds the
    hypotheses kept per sequence: ties beyond it at the budget cut are dropped (the official code keeps them).
    Returns labels (Q, T) bool and final scores (Q,).
    """
    q, t, dev = cores.video.numel(), cas.shape[1], cas.device
    if q == 0:
        return torch.zeros((0, t), dtype=torch.bool, device=dev), torch.zeros(0, dtype=torch.float64, device=dev)
    m = slots or 2 * budget
    p = cas[cores.video, :, cores.cls + 1].double()  # (Q, T)
    cums = torch.stack([_prefix(1 - p), _prefix(p)])  # (2, Q, T+1): background, action
    n, s_max, length = cores.n, cores.left.shape[1], cores.length
    rows = torch.arange(q, device=dev)
    # free frames: gap g (boundary before segment g = 1..n-1) spans [right_{g-1} + 1, left_g]
    gap_lo, gap_hi = cores.right[:, :-1] + 1, cores.left[:, 1:]  # (Q, S-1)
    gap_len = torch.where(torch.arange(1, s_max, device=dev).unsqueeze(0) < n.unsqueeze(1), gap_hi - gap_lo + 1, 0)
    ends = gap_len.cumsum(1)  # (Q, S-1)
    total = ends[:, -1] if s_max > 1 else torch.zeros(q, dtype=torch.long, device=dev)
    n_events = int(total.max()) if s_max > 1 else 0

    cums = cums.reshape(2 * q, t + 1)  # row label * Q + sequence

    def seg_oic(label: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
        """(Q, M) outer-inner scores of segments of label (Q,) on that label's scores."""
        return oic(cums, length, start, end, delta, rows=label.long() * q + rows)

    score = torch.full((q, m), float("-inf"), dtype=torch.float64, device=dev)
    score[:, 0] = float("inf")
    alive = torch.zeros((q, m), dtype=torch.bool, device=dev)
    alive[:, 0] = True
    seg = torch.zeros((q, m), dtype=torch.long, device=dev)  # index of the hypothesis' current segment
    start = torch.zeros((q, m), dtype=torch.long, device=dev)  # its first frame
    parents, frames, gaps = [], [], []  # per event: which candidate each slot took, the frame and the gap
    for e in range(n_events):
        valid = e < total  # (Q,)
        g = torch.searchsorted(ends, torch.full((q, 1), e, device=dev), right=True).squeeze(1).clamp(max=s_max - 2)
        frame = gap_lo[rows, g] + e - (ends[rows, g] - gap_len[rows, g])  # (Q,)
        forced = frame == gap_hi[rows, g]
        stay = alive & (seg == g.unsqueeze(1)) & valid.unsqueeze(1)  # (Q, M) hypotheses that may move now
        finished = seg_oic(cores.act[rows, g], start, (frame - 1).unsqueeze(1).expand(q, m))
        moved = torch.where((g == 0).unsqueeze(1), finished, (score * g.unsqueeze(1) + finished) / (g + 1).unsqueeze(1))
        keep_old = alive & ~(stay & forced.unsqueeze(1))
        cand_alive = torch.cat([keep_old, stay], 1)  # (Q, 2M)
        cand_score = torch.cat([score, moved], 1)
        cand_seg = torch.cat([seg, (g + 1).unsqueeze(1).expand(q, m)], 1)  # (Q, 2M)
        cand_start = torch.cat([start, frame.unsqueeze(1).expand(q, m)], 1)
        # prune: below `prune` goes unless it is the best; then the `budget` best, ties at the cut kept
        ranked = torch.where(cand_alive, cand_score, torch.full_like(cand_score, float("-inf")))
        best = ranked.argmax(1)
        keep = cand_alive & (cand_score >= prune)
        lone = ~keep.any(1)
        keep = torch.where(lone.unsqueeze(1), F.one_hot(best, 2 * m).bool() & cand_alive, keep)
        kept = torch.where(keep, cand_score, torch.full_like(cand_score, float("-inf")))
        cut = kept.topk(min(budget, 2 * m), dim=1).values[:, -1:]  # (Q, 1) the budget-th best
        keep &= (keep.sum(1, keepdim=True) <= budget) | (cand_score >= cut)
        order = torch.where(keep, cand_score, torch.full_like(cand_score, float("-inf"))).topk(m, dim=1).indices
        alive = keep.gather(1, order)
        score = torch.where(alive, cand_score.gather(1, order), torch.full_like(score, float("-inf")))
        seg, start = cand_seg.gather(1, order), cand_start.gather(1, order)
        parents.append(order.to(torch.int16 if 2 * m < 2**15 else torch.int32))
        frames.append(torch.where(valid, frame, -1))
        gaps.append(g)
    last = (n - 1).unsqueeze(1)
    closing = seg_oic(cores.act.gather(1, last).squeeze(1), start, (length - 1).unsqueeze(1).expand(q, m))
    final = torch.where(last == 0, closing, (score * last + closing) / (last + 1))
    final = torch.where(alive, final, torch.full_like(final, float("-inf")))
    slot = final.argmax(1)  # (Q,)
    best = final[rows, slot]
    boundary = torch.zeros((q, s_max + 1), dtype=torch.long, device=dev)
    for e in range(n_events - 1, -1, -1):  # traceback: a slot that came from a move at event e starts a segment
        took = parents[e][rows, slot].long()
        moved_here = (took >= m) & (frames[e] >= 0)
        boundary[rows, gaps[e] + 1] = torch.where(moved_here, frames[e], boundary[rows, gaps[e] + 1])
        slot = torch.where(took >= m, took - m, took)
    return boundary_labels(boundary, cores, t), best


def optimal_sequences(
    cas: torch.Tensor, points: torch.Tensor, mask: torch.Tensor, options: Options
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense pseudo labels (V, T, C) bool of padded videos from fused CAS (V, T, K) and action points
    (V, T, C), and the mean sequence score of each video's searched classes (V,) (0 where none)."""
    act_seed, bkg_seed = select_seeds(cas[..., 0], points, mask, options.act_thresh, options.bkg_thresh)
    cores = sequence_cores(act_seed, bkg_seed, mask)
    if options.search == "beam":
        labels, score = beam_search_sequences(cas, cores, options.budget, options.search_prune, options.oic_delta)
    else:
        labels, score = search_sequences(cas, cores, options.oic_delta)
    v, t, c = points.shape
    pseudo = torch.zeros((v, c, t), dtype=torch.bool, device=cas.device)
    pseudo[cores.video, cores.cls] = labels
    total = torch.zeros(v, dtype=torch.float64, device=cas.device).index_add_(0, cores.video, score)
    count = torch.bincount(cores.video, minlength=v).clamp(min=1)
    return pseudo.transpose(1, 2), total / count
