"""LACP: "Learning Action Completeness from Points" (Lee & Byun, ICCV 2021), after its official code.

The engine drives this class through the `Method` contract only:
  * training batches are whole videos (the official main.py loads every video with num_segments=-1 and averages
    the losses of 16 single-video forwards per step; here 16 padded videos in one forward, losses per video and
    averaged, which is the same objective);
  * `forward` -> `LACPOutput`: sigmoid CAS (C action columns + background) of a kernel-3 temporal conv
    embedding (ReLU) and a 1x1 conv classifier without bias, dropout 0.7 between;
  * `loss` -> {"total", "video", "point", "point_bkg", "score", "feature"} (weights `lambdas`, official [1, .5, 1, 1, 1]);
  * `refresh_due` / `refresh_labels` -> the optimal sequence search over every training video after each
    `search_freq` steps; its dense pseudo labels reach training when the official loader would see them
    (`label_delay`: at the next re-creation of its data iterator, the default, or at once). Labels in use and
    labels waiting are training state (`get_extra_state`), so `--resume` restores both without searching again;
  * `scores` / `localize` -> the official test.py post-processing (pointtal/localization/lacp.py).

Shapes: B videos, T snippets (padded; `mask` marks real ones), D feature width, H embedding width, C action
classes, K = C+1 columns with column 0 = background (the official code keeps background last).

Fused CAS: p_c = sigmoid(cas_c) * (1 - sigmoid(cas_bg)) for action classes, p_bg = sigmoid(cas_bg).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pointtal.applies import Applies
from pointtal.data.dataset import CropSampler, PerturbSampler
from pointtal.localization.lacp import localize_lacp
from pointtal.methods.base import Detections, LabelRefresh, Method, Scores, check_options
from pointtal.methods.layers import Packing, _PackedTaps, linear, topk_counts, topk_or_mean
from pointtal.methods.seeds import select_seeds as shared_select_seeds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """LACP switches; defaults are the official code's THUMOS14 settings (options.py, config.py, train.py).

    Where the paper, the official code and pointtal differ (each a switch or a stated choice):
    * Training batches (`num_segments`): the official code trains and tests on whole videos (main.py passes
      num_segments=-1, so its random_perturb sampling is the identity): None, the default. An integer N
      samples N snippets per training video as the code's random_perturb would (one random snippet between
      the floors of consecutive bin starts, both ends included; `PerturbSampler`); inference and the search
      stay on whole videos, as the code's test loader and search always use num_segments=-1.
    * Video order (`video_order`): the official main.py re-creates its shuffled loader iterator every
      len(train) // batch_size steps and reads batch_size videos a step, so the remainder of each shuffle is
      never read ("iterator", default; seeded permutations); "stream" reads a seeded stream of per-epoch
      permutations, every video once an epoch.
    * Sequence search (`search`): the official code approximates the arg-max of the sequence score (mean
      outer-inner contrast of the segments of a seed-consistent sequence) by a frame-by-frame beam search
      keeping `budget` = 25 hypotheses and dropping partial scores < `search_prune` = 0.1 ("beam", default;
      batched over videos, classes and hypotheses, one iteration per free frame; at most 2 * budget
      hypotheses survive ties at the cut, the code keeps all). "exact" computes the exact arg-max of the same
      objective over the same sequences by dynamic programming over segment boundaries (a loop over segments
      only; equals brute-force enumeration; scores at least as high as the beam). Where the official code
      asserts (two action groups of a class with no background seed between them) the groups are joined into
      one action core. Ties between equal scores are broken by slot order, not by the code's dict order.
    * Feature-contrastive loss (`feature_classes`): the official loop overwrites the per-class loss, so only the
      last ground-truth class (in class order) with >= 2 action segments counts ("last", default); "mean"
      averages over all such classes (the paper's sum over classes, normalised).
    * When a search's labels take effect (`label_delay`): the official main.py loads its training videos with
      `num_workers=2` (options.py default); each worker holds a copy of the dataset made when the iterator is
      created, every `len(train) // batch_size` steps (12 on THUMOS14), so the labels a search writes reach
      training only at the next re-creation: training reads labels 1-14 steps old and one search in six is
      never read. "iterator" (default: what produced the published numbers) reproduces that: a search's
      labels wait until the next step s with s % max(1, len(train) // batch_size) == 0 (the sampler's batch
      size; pointtal step s is the official step s + 1). "immediate" uses each search from the next step, as
      the official code does with `num_workers=0`.
    * Official run-boundary quirk (kept): the contrastive losses read runs of the pseudo labels with the
      video's last snippet dropped (the code's range_idx ends at T-2), so a final run of one snippet is
      ignored. Classes whose pseudo labels never change are skipped, as in the code.
    * Top-k: k = T // r_act as in the code, but at least 1 (the code divides by zero for T < r_act).
    * Videos without points: no point or seed losses (the code would fail on them).
    * Background points (point_labels column 0) are not used (the official data has none).
    * Feature sampling for the feature loss draws one random snippet in each third of a segment (torch RNG).
    * Inference (`localize`): class threshold on top-k video scores, 10 CAS thresholds and 9 actionness
      thresholds on the x24-upsampled fused CAS, outer-inner scores + gamma * video score, NMS 0.7 with the
      official "+1 second" IoU (`nms_extent` = 1 s in snippets: 25 fps / 16-frame snippets).
    """

    # --- batches (main.py, thumos_features.py)
    num_segments: int | None = None  # None: whole videos (official); N: random_perturb to N snippets in training
    video_order: Literal["iterator", "stream"] = "iterator"  # official: a new shuffle every len(train) // batch steps
    # --- network (model.py)
    hidden: int = 2048  # embedding width H (kernel-3 conv + ReLU)
    dropout: float = 0.7
    r_act: int = 8  # top-k = T // r_act snippets per class for video scores
    # --- losses (train.py); lambdas [video, point, point_bkg, score, feature] = [1, 0.5, 1, 1, 1]
    w_video: float = 1.0
    w_point: float = 0.5
    w_point_bkg: float = 1.0
    w_score: float = 1.0
    w_feature: float = 1.0
    focal_gamma: float = 2.0
    tau: float = 0.1  # temperature of the feature-contrastive loss
    sampling_size: int = 3  # snippets sampled (one per equal part) to describe a segment's feature
    feature_classes: Literal["last", "mean"] = "last"
    # --- seeds and search (utils.select_seed, search.py)
    act_thresh: float = 0.1  # pseudo action points: P(background) <= act_thresh next to a point
    bkg_thresh: float = 0.95  # pseudo background points: P(background) >= bkg_thresh
    search_freq: int = 10  # search after every search_freq steps (before step s with s % search_freq == 0)
    search_start: int = 10  # first step whose batch may use a search (the code: after step 10)
    label_delay: Literal["iterator", "immediate"] = "iterator"  # official loader workers: labels wait for a new iterator
    search: Literal["beam", "exact"] = "beam"  # the official beam search, or the exact arg-max (DP)
    budget: int = 25  # beam: hypotheses kept after each frame (ties at the cut kept, up to 2 * budget)
    search_prune: float = 0.1  # beam: partial sequences scoring below this are dropped (the best always stays)
    oic_delta: float = 0.25  # outer region = delta * length on each side (every outer-inner score)
    # --- inference (test.py, config.py)
    class_threshold: float = 0.5
    cas_thresholds: tuple[float, ...] = (0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.225)
    actionness_thresholds: tuple[float, ...] = (0.5, 0.525, 0.55, 0.575, 0.6, 0.625, 0.65, 0.675, 0.7)
    scale: int = 24
    gamma: float = 0.2  # proposal score = outer-inner contrast + gamma * video score
    nms_threshold: float = 0.7
    nms_extent: float = 25 / 16  # the official NMS adds 1 (second) to lengths: 1 s in snippets

    # keys that apply only under a condition (pointtal.config.check_applicable refuses them elsewhere)
    APPLIES: ClassVar[tuple[Applies, ...]] = (
        Applies("budget", "search", ("beam",), "the exact search has no beam"),
        Applies("search_prune", "search", ("beam",), "the exact search prunes nothing"),
    )

    def __post_init__(self):
        check_options(self, [
            (self.num_segments is None or self.num_segments > 0, "num_segments", "must be > 0 (or null)"),
            (self.video_order in ("iterator", "stream"), "video_order", "must be 'iterator' or 'stream'"),
            (self.hidden > 0, "hidden", "must be > 0"),
            (0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)"),
            (self.r_act > 0, "r_act", "must be > 0"),
            *((getattr(self, key) >= 0, key, "must be >= 0 (a loss weight)")
              for key in ("w_video", "w_point", "w_point_bkg", "w_score", "w_feature")),
            (self.focal_gamma >= 0, "focal_gamma", "must be >= 0"),
            (self.tau > 0, "tau", "must be > 0"),
            (self.sampling_size > 0, "sampling_size", "must be > 0"),
            (self.feature_classes in ("last", "mean"), "feature_classes", "must be 'last' or 'mean'"),
            (0.0 <= self.act_thresh <= 1.0, "act_thresh", "must be in [0, 1] (a probability)"),
            (0.0 <= self.bkg_thresh <= 1.0, "bkg_thresh", "must be in [0, 1] (a probability)"),
            (self.search_freq > 0, "search_freq", "must be > 0"),
            (self.search in ("beam", "exact"), "search", "must be 'beam' or 'exact'"),
            (self.label_delay in ("iterator", "immediate"), "label_delay", "must be 'iterator' or 'immediate'"),
            (self.budget > 0, "budget", "must be > 0"),
            (self.search_start >= 0, "search_start", "must be >= 0"),
            (self.search_prune <= 1.0, "search_prune",
             "must be <= 1 (sequence scores are at most 1; above it nothing but the best survives)"),
            (0.0 <= self.oic_delta, "oic_delta", "must be >= 0"),
            (0.0 <= self.class_threshold <= 1.0, "class_threshold",
             "must be in [0, 1] (video scores are probabilities)"),
            (_probabilities(self.cas_thresholds), "cas_thresholds", "must be non-empty, each in [0, 1]"),
            (_probabilities(self.actionness_thresholds), "actionness_thresholds",
             "must be non-empty, each in [0, 1]"),
            (self.scale > 0, "scale", "must be > 0"),
            (self.gamma >= 0, "gamma", "must be >= 0 (weight of the video score)"),
            (0.0 <= self.nms_threshold <= 1.0, "nms_threshold", "must be in [0, 1] (a tIoU)"),
            (self.nms_extent >= 0, "nms_extent", "must be >= 0"),
        ])


def _probabilities(thresholds: tuple[float, ...]) -> bool:
    """A non-empty list of thresholds on probabilities."""
    return len(thresholds) > 0 and all(0.0 <= t <= 1.0 for t in thresholds)


# ----------------------------------------------------------------------------- network (model.py)


@dataclass
class LACPOutput:
    """Forward result (padded positions hold junk)."""

    cas: torch.Tensor  # (B, T, K) sigmoid CAS, column 0 = background (not fused)
    embedded: torch.Tensor  # (N, H) embedding after ReLU, before dropout, of the real snippets
    column: torch.Tensor  # (B*T,) long: the row of `embedded` holding snippet (b, t) (-1 on padding)

    @property
    def fused(self) -> torch.Tensor:
        return fuse(self.cas)

    @property
    def features(self) -> torch.Tensor:
        """(B, T, H) embedding, zeros on padding (scattered on demand; the feature loss reads `embedded`)."""
        b, t = self.cas.shape[:2]
        real = self.column >= 0
        out = self.embedded.new_zeros(b * t, self.embedded.shape[1])
        out[real] = self.embedded[self.column[real]]
        return out.view(b, t, -1)


def fuse(cas: torch.Tensor) -> torch.Tensor:
    """(B, T, K) sigmoid CAS -> fused: action columns times 1 - P(background), background column kept."""
    bg = cas[..., :1]
    return torch.cat([bg, cas[..., 1:] * (1 - bg)], dim=-1)


class LACPNet(nn.Module):
    """Conv1d(D -> H, k=3, pad 1) + ReLU, dropout, Conv1d(H -> K, k=1, no bias); PyTorch default init.

    Computed on the batch's real snippets only (`Packing`): the kernel-3 conv is one (N, D) x (D, 3H) product
    (`layers.linear`: oneDNN on CPU) and a tap sum that reads each snippet's neighbours in its own video, zeros
    past its ends, which equals the Conv1d of each video alone; padding costs no FLOPs (a quarter of a batch of
    T/2..T videos)."""

    def __init__(self, in_dim: int, hidden: int, n_outputs: int, dropout: float):
        super().__init__()
        self.embed = nn.Conv1d(in_dim, hidden, kernel_size=3, padding=1)
        self.classifier = nn.Conv1d(hidden, n_outputs, kernel_size=1, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> LACPOutput:
        """features (B, T, D), mask (B, T) -> cas (B, T, K) and the embedding of the real snippets."""
        packing = Packing(mask)
        rows = packing.rows(features)  # (N, D)
        h_dim, d, k = self.embed.weight.shape
        weight = self.embed.weight.permute(2, 0, 1).reshape(k * h_dim, d)  # (3H, D): tap j reads t + j - 1
        z = linear(rows, weight.to(rows.dtype)).unflatten(-1, (k, h_dim))  # (N, 3, H)
        h = F.relu(_PackedTaps.apply(z, packing, [-1, 0, 1]).add_(self.embed.bias.to(z.dtype)))  # (N, H)
        logits = self.dropout(h) @ self.classifier.weight[:, :, 0].t().to(h.dtype)  # (N, K): classes, bg last
        cas = torch.sigmoid(torch.cat([logits[:, -1:], logits[:, :-1]], dim=-1).float())  # (N, K) bg first
        return LACPOutput(packing.scatter(cas), h, packing.slot)


def video_scores(cas: torch.Tensor, mask: torch.Tensor, r_act: int, labels: torch.Tensor | None = None) -> torch.Tensor:
    """(B, C) video scores from the un-fused sigmoid CAS (B, T, K): top-k mean, k = max(1, T_i // r_act); in
    training (labels (B, C)) the official code uses the mean over all snippets for the classes absent from the
    video (`layers.topk_or_mean`, shared with HR-Pro)."""
    k = topk_counts(mask.sum(1), r_act, "floor")  # (B,)
    return topk_or_mean(cas[..., 1:], mask, k, labels, max(mask.shape[1] // r_act, 1))


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


def _region_reduce(values: torch.Tensor, region: torch.Tensor, member: torch.Tensor, reduce: str,
                   fill: float) -> torch.Tensor:
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


def select_seeds(bkg: torch.Tensor, points: torch.Tensor, mask: torch.Tensor, act_thresh: float = 0.1,
                 bkg_thresh: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
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


def oic(cum: torch.Tensor, length: torch.Tensor, start: torch.Tensor, end: torch.Tensor,
        delta: float = 0.25, rows: torch.Tensor | None = None) -> torch.Tensor:
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


def search_sequences(cas: torch.Tensor, cores: Cores, delta: float = 0.25,
                     chunk: int = 1 << 22) -> tuple[torch.Tensor, torch.Tensor]:
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
            score = torch.where(use_act, oic(cum_act[rows], length[rows], s, e, delta),
                                oic(cum_bkg[rows], length[rows], s, e, delta))  # (R, A, B)
            ok = ((torch.arange(a_max, device=dev).view(1, -1, 1) < size[rows, i, None, None])
                  & (torch.arange(b_max, device=dev).view(1, 1, -1) < size[rows, i + 1, None, None])
                  & (e >= s))
            prev = F.pad(value[rows], (0, a_max - value.shape[1]), value=float("-inf"))[:, :, None]
            total = torch.where(ok, prev + score, torch.full_like(score, float("-inf")))
            best, where = total.max(1)  # (R, B)
            new[rows], arg[rows] = best, where
        keep = active.unsqueeze(1)
        value = torch.where(keep, new, F.pad(value, (0, max(0, b_max - value.shape[1])),
                                             value=float("-inf"))[:, :b_max])
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


def beam_search_sequences(cas: torch.Tensor, cores: Cores, budget: int, prune: float = 0.1, delta: float = 0.25,
                          slots: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
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
        parents.append(order.to(torch.int16 if 2 * m < 2 ** 15 else torch.int32))
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


def optimal_sequences(cas: torch.Tensor, points: torch.Tensor, mask: torch.Tensor, options: Options
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


# ----------------------------------------------------------------------------- losses (train.py)


def bce(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Elementwise binary cross-entropy with the log clamped at -100 (nn.BCELoss)."""
    with torch.autocast(p.device.type, enabled=False):  # BCE refuses autocast; the scores are float32 anyway
        return F.binary_cross_entropy(p.float(), y.float(), reduction="none")  # backward safe at p in {0, 1}


def video_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, C) scores and labels -> (B,) mean BCE over classes."""
    return bce(scores, labels).mean(1)


def focal_point_loss(fused: torch.Tensor, target: torch.Tensor, where: torch.Tensor, gamma: float = 2.0
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
    use = (searched.unsqueeze(1) & (labels > 0) & change.any(-1))  # (B, C)
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
    contrast = oic(cums, lengths[runs.video], runs.start.unsqueeze(1), runs.end.unsqueeze(1), delta,
                   rows=rows).squeeze(1)  # the oic reads only [0, length - 1] of a row
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


def feature_loss(features: torch.Tensor, runs: Runs, tau: float, sampling_size: int, classes: str,
                 uniform: torch.Tensor | None = None, column: torch.Tensor | None = None,
                 batch: int | None = None) -> torch.Tensor:
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
    real = torch.zeros(len(gid), width, dtype=torch.bool, device=f.device).index_put((slot_of, pos),
                                                                                      torch.ones_like(pos, dtype=torch.bool))
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
            0, gv, torch.arange(len(gid), device=f.device), reduce="amax", include_self=True)
        return torch.where(last >= 0, per_group[last.clamp(min=0)], out)
    total = out.index_add(0, gv, per_group)
    count = torch.bincount(gv, minlength=b)
    return total / count.clamp(min=1)


# ----------------------------------------------------------------------------- batches


# ----------------------------------------------------------------------------- the method


def padded(flat: torch.Tensor, offsets: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, W) flat rows -> (V, T_max, W) padded with zeros and the (V, T_max) mask."""
    lengths = torch.from_numpy(np.diff(offsets))
    t = int(lengths.max())
    mask = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)  # (V, T)
    out = flat.new_zeros((len(lengths), t, flat.shape[1]))
    out[mask] = flat
    return out, mask


class LACP(Method):
    """LACP: point-level focal losses with pseudo background points, video loss, optimal sequence search and
    the score- and feature-contrastive completeness losses."""

    name = "lacp"
    Options = Options

    def __init__(self, options: Options, in_dim: int, n_classes: int):
        super().__init__(options, in_dim, n_classes)
        self.net = LACPNet(in_dim, options.hidden, n_classes + 1, options.dropout)
        self.pseudo = torch.zeros((0, n_classes), dtype=torch.bool)  # (N, C) dense pseudo labels, flat layout
        self.offsets = torch.zeros(0, dtype=torch.long)  # (V+1,) the layout of `pseudo` (empty: no search yet)
        # label_delay "iterator": the latest search's labels (N, C) and layout (V+1,), waiting for the next
        # re-creation of the official data iterator (empty: nothing waiting)
        self.pending = torch.zeros((0, n_classes), dtype=torch.bool)
        self.pending_offsets = torch.zeros(0, dtype=torch.long)
        self.iterator_steps = 1  # steps between the official iterator's re-creations (set by `training_sampler`)

    # state of the search: carried by checkpoints (weights_only-safe), restored by --resume
    def get_extra_state(self) -> dict:
        return {"pseudo": self.pseudo.to(torch.uint8).cpu(), "offsets": self.offsets.cpu(),
                "pending": self.pending.to(torch.uint8).cpu(), "pending_offsets": self.pending_offsets.cpu()}

    def set_extra_state(self, state: dict) -> None:
        self.pseudo = state["pseudo"].bool()
        self.offsets = state["offsets"].long()
        self.pending = state.get("pending", torch.zeros((0, self.n_classes), dtype=torch.uint8)).bool()
        self.pending_offsets = state.get("pending_offsets", torch.zeros(0, dtype=torch.long)).long()

    def training_sampler(self, dataset: Any, batch_size: int, seed: int, phase: int = 0) -> Callable:
        """Whole videos (the official setting), or `num_segments` snippets per video by random_perturb.
        Also fixes `iterator_steps` = max(1, len(dataset) // batch_size), the official main.py's steps
        between re-creations of its data iterator (`label_delay`)."""
        self.iterator_steps = max(1, len(dataset) // batch_size)
        o = self.options
        if o.num_segments is None:
            return CropSampler(dataset, batch_size, seed, (int(dataset.n_snippets.max()),), o.video_order)
        return PerturbSampler(dataset, batch_size, seed, o.num_segments, order=o.video_order)

    def training_length(self, longest: int) -> tuple[int, str]:
        n = self.options.num_segments
        return (longest, "") if n is None else (n, "method.num_segments")

    def search_due(self, step: int) -> bool:
        """Whether the search runs before step `step` (the official: after step `step`, 1-based)."""
        o = self.options
        return step >= max(o.search_start, 1) and step % o.search_freq == 0

    def iterator_due(self, step: int) -> bool:
        """Whether waiting labels reach training before step `step` (label_delay "iterator": the official
        loader's iterator is re-created there)."""
        return (self.options.label_delay == "iterator" and step % self.iterator_steps == 0
                and self.pending_offsets.numel() > 0)

    def refresh_due(self, step: int) -> bool:
        return self.search_due(step) or self.iterator_due(step)

    @property
    def first_search(self) -> int:
        """The first step before which the search runs."""
        o = self.options
        return -(-max(o.search_start, 1) // o.search_freq) * o.search_freq

    def plan_notes(self, steps: int) -> list[str]:
        if self.first_search >= steps:
            return [f"method.search_start={self.options.search_start} (search_freq {self.options.search_freq}): the "
                    f"first search would come at step {self.first_search}, not within the run's {steps} steps; the "
                    f"completeness losses stay off"]
        return []

    def forward(self, features: torch.Tensor, mask: torch.Tensor, **extras: torch.Tensor) -> LACPOutput:
        return self.net(features, mask)

    def batch_pseudo(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Pseudo labels (B, T, C) of a batch's snippets and whether each video has been searched (B,)."""
        b, t = batch.mask.shape
        dev = batch.mask.device
        if self.offsets.numel() == 0:
            return torch.zeros((b, t, self.n_classes), dtype=torch.bool, device=dev), torch.zeros(b, dtype=torch.bool, device=dev)
        if self.pseudo.device != dev:
            self.pseudo, self.offsets = self.pseudo.to(dev), self.offsets.to(dev)
        flat = self.offsets[batch.video_index].unsqueeze(1) + batch.snippet_index.clamp(min=0)
        rows = self.pseudo[flat.clamp(max=self.pseudo.shape[0] - 1)] & batch.mask.unsqueeze(-1)
        return rows, torch.ones(b, dtype=torch.bool, device=dev)

    def loss(self, output: LACPOutput, batch: Any, step: int) -> dict[str, torch.Tensor]:
        o = self.options
        mask = batch.mask
        labels = batch.video_labels[:, 1:].float()  # (B, C)
        fused = output.fused  # (B, T, K)
        points = (batch.point_labels[..., 1:] > 0).float() * mask.unsqueeze(-1)  # (B, T, C)
        l_video = video_loss(video_scores(output.cas, mask, o.r_act, labels), labels)
        target = F.pad(points, (1, 0))  # (B, T, K), background target 0 at action points
        has_point = points.amax(-1) > 0
        l_point = focal_point_loss(fused, target, has_point, o.focal_gamma)
        _, bkg_seed = select_seeds(fused[..., 0], points, mask, o.act_thresh, o.bkg_thresh)
        target_bkg = torch.zeros_like(fused)
        target_bkg[..., 0] = 1
        l_bkg = focal_point_loss(fused, target_bkg, bkg_seed, o.focal_gamma)
        pseudo, searched = self.batch_pseudo(batch)
        runs = pseudo_runs(pseudo, searched, labels, mask)
        l_score = score_loss(fused, runs, mask, o.oic_delta)
        l_feat = feature_loss(output.embedded, runs, o.tau, o.sampling_size, o.feature_classes,
                              column=output.column, batch=mask.shape[0])
        per_video = (o.w_video * l_video + o.w_point * l_point + o.w_point_bkg * l_bkg
                     + o.w_score * l_score + o.w_feature * l_feat)
        mean = lambda x: x.mean()  # noqa: E731  every term is per video, averaged over the batch
        return {"total": mean(per_video), "video": mean(l_video).detach(), "point": mean(l_point).detach(),
                "point_bkg": mean(l_bkg).detach(), "score": mean(l_score).detach(),
                "feature": mean(l_feat).detach()}

    def scores(self, output: LACPOutput, mask: torch.Tensor) -> Scores:
        fused = output.fused
        video = F.pad(video_scores(output.cas, mask, self.options.r_act), (1, 0))  # (B, K), background 0
        return Scores(cas=fused, video_scores=video, actionness=1 - fused[..., 0])

    def localize(self, cas: np.ndarray, actionness: np.ndarray | None, video_scores: np.ndarray) -> Detections:
        o = self.options
        if actionness is None:
            actionness = 1 - np.asarray(cas)[:, 0]
        return localize_lacp(cas, actionness, video_scores, class_threshold=o.class_threshold,
                             cas_thresholds=o.cas_thresholds, actionness_thresholds=o.actionness_thresholds,
                             scale=o.scale, gamma=o.gamma, nms_threshold=o.nms_threshold,
                             nms_extent=o.nms_extent, delta=o.oic_delta)

    @torch.no_grad()
    def refresh_labels(self, step: int, dataset: Any, predict_cas: Callable[[], torch.Tensor]) -> LabelRefresh | None:
        """The optimal sequence search over every training video (eval-mode fused CAS from `predict_cas`) when
        it is due; its labels are used from this step ("immediate") or from the next re-creation of the official
        data iterator, which may be this step ("iterator", `label_delay`)."""
        refresh = self._search(step, dataset, predict_cas) if self.search_due(step) else None
        if self.options.label_delay == "immediate" and self.pending_offsets.numel():
            self.pseudo, self.offsets = self.pending, self.pending_offsets
            self.pending, self.pending_offsets = self.pending[:0], self.pending_offsets[:0]
        elif self.iterator_due(step):  # the official iterator is re-created: its workers copy the latest labels
            self.pseudo, self.offsets = self.pending.to(self.pseudo.device), self.pending_offsets
            self.pending, self.pending_offsets = self.pending[:0], self.pending_offsets[:0]
        return refresh

    def _search(self, step: int, dataset: Any, predict_cas: Callable[[], torch.Tensor]) -> LabelRefresh:
        """Search every training video; the labels wait in `pending` until `refresh_labels` hands them over."""
        cas, mask = padded(predict_cas().float(), dataset.offsets)  # (V, T, K)
        points, _ = padded((dataset.point_labels[:, 1:] > 0).float(), dataset.offsets)
        pseudo, score = optimal_sequences(cas, points, mask, self.options)
        flat = pseudo[mask]  # (N, C)
        self.pending = flat.to(self.pseudo.device)
        self.pending_offsets = torch.from_numpy(np.asarray(dataset.offsets, dtype=np.int64))
        added = int(flat.sum())
        precision = None
        if dataset.truth_labels is not None and added:
            precision = float((flat & (dataset.truth_labels[:, 1:] > 0)).sum()) / added
        log.info("step %d: optimal sequence search: %d pseudo action labels, mean sequence score %.4f%s",
                 step, added, float(score.mean()), "" if precision is None else f", precision {precision:.3f}")
        return LabelRefresh(added=added, precision=precision, reinitialize=False)
