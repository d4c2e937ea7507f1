"""SF-Net (docs/methods.md §2): two-stream classification + actionness network trained from single-frame points.

The engine drives this class through the `Method` contract only:
  * training batches are random crops of `t_max` / `t_max_alt` snippets on alternate steps;
  * `forward` -> `SFNetOutput` (per-stream and fused class-activation and actionness logits);
  * `loss` -> {"total", "video", "frame", "act"}: alpha * L_vid + L_frame + beta * L_act, each summed over
    the RGB, flow and fused outputs (§2.2);
  * `scores` -> fused CAS and actionness (raw logits by default, see `Options.score_space`) and video scores;
  * `localize` -> segments and single frames (§2.5, pointtal/localization/sfnet.py);
  * `refresh_due` / `refresh_labels` -> anchor expansion (pseudo action frames, §2.3) once, at `expand_step`.

Shapes: B videos, T snippets (padded; `mask` marks real ones), D feature width (RGB half ‖ flow half, as I3D
features are stored), H hidden width (D/2 unless set), C action classes, K = C+1 columns (0 = background).

Choices the text leaves open (each a switch in `Options`):
* Mining score (`mining_score`): background mining ranks the batch's unlabelled snippets by the softmax
  probability of class 0 ("prob", default); "logit" ranks by the raw background logit as the reference
  code does.
* Background points (point_labels column 0) are labelled snippets: they take part in L_frame with class 0,
  count in n_labelled_i, never enter the mining pool, and are extra negatives of L_act (the actionness
  positives are the snippets carrying an action label).
* Videos with no labelled snippet have k_i = 0 and, as in the reference code, contribute nothing to the pool.
* Inference space (`score_space`): the reference code localizes on raw fused CAS logits plus raw actionness
  logits ("logit", default; this is what makes `s_c > 0` meaningful); "prob" uses softmax / sigmoid.
  Anchor expansion uses the same space: `predict_cas` must return `scores(...).cas` of this method.
* Anchor expansion stops a direction at its first failed candidate (`expand_stop_on_failure`, default);
  the reference code keeps walking past failures (False). Background-only points are not anchors (they
  still stop walks).

Differences from the official code (Flowerfan/SF-Net), each a switch whose "code" value reproduces it:
* Actionness negatives (`act_negatives`): the paper's L_act takes the sum(k_i) pool snippets with the highest
  actionness ("top", default). The official `act_loss` sorts its (n, 1) pool along the last axis, a no-op,
  so it takes the last sum(k_i) snippets of the batch's concatenated pool (video by video, in time order)
  ("code").
* Anchor expansion at the video's ends (`expand_edge`): the "snippet after the candidate" is clipped to the
  video ("clip", default), so a walk may label a video's first or last snippet; the official walk stops
  when that snippet lies outside the video ("code").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from pointtal.applies import Applies
from pointtal.data.samplers import CropSampler
from pointtal.methods.base import Batch, Detections, LabelRefresh, Method, PointDataset, Scores, check_options
from pointtal.methods.layers import masked_mean, select_hardest
from pointtal.methods.two_stream import (
    SFNetOutput,
    sfnet_detections,
    two_stream_net,
    video_loss,
    video_probabilities,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """SF-Net switches; defaults are the paper's THUMOS14 setting ([choice]: not fixed by the text)."""

    # --- batches (§2.4)
    t_max: int = 750  # random crop of this many snippets on even steps
    t_max_alt: int = 2800  # ... and of this many on odd steps (effectively whole videos)
    # --- network (§2.1)
    hidden: int | None = None  # H, width of both branches; None = D/2
    dropout: float = 0.7  # after the classification branch (training only)
    actionness: bool = True  # build and train the actionness branch (False: classification only)
    conv_backbone: bool = False  # classification branch = dilated temporal convs instead of FC layers
    conv_dilations: tuple[int, ...] = (3, 3)  # one kernel-3 conv per entry when conv_backbone [choice]
    # --- losses (§2.2)
    alpha: float = 1.0  # weight of L_vid
    beta: float = 1.0  # weight of L_act
    topk_divisor: int = 8  # L_vid pools the top k = ceil(T_i / topk_divisor) snippets per class
    min_video_len: int = 5  # L_vid skips videos with fewer valid snippets
    background: bool = True  # background mining in L_frame
    eta: float = 5.0  # mining ratio: k_i = min(floor(eta * n_labelled_i), T_i - n_labelled_i)
    mining_score: Literal["prob", "logit"] = "prob"  # rank the pool by P(background) or the raw logit [choice]
    act_loss_floor: float = 0.1  # add L_act only while it exceeds this (0: always)
    act_eps: float = 1e-3  # negatives: -log(1 + eps - sigmoid(a))
    act_negatives: Literal["top", "code"] = "top"  # code: the official no-op sort, the pool's last sum(k_i)
    # --- anchor expansion (§2.3)
    expand: bool = True
    expand_step: int = 2000  # training step at which the pseudo frames are mined (then re-initialise)
    radius: int = 3  # at most this many steps left and right of each anchor
    expand_ratio: float = 0.95  # candidate needs mean(cas[cand, L]) >= expand_ratio * mean(cas[anchor, L])
    expand_stop_on_failure: bool = True  # [choice] False: keep walking past a failed candidate (reference)
    expand_edge: Literal["clip", "code"] = "clip"  # code: stop where the snippet after a candidate is outside
    # --- inference (§2.5)
    score_space: Literal["logit", "prob"] = "logit"  # [choice] what `scores` hands to localize / expansion
    w_act: float = 2.0  # score_t = cas[t, c] + w_act * act_t
    adjust: float = 1.0  # threshold = mean(score) * adjust
    class_topk_divisor: int = 12  # s_c = mean of the top max(T // 12, 1) cas values
    class_ratio: float = 1.5  # keep classes with s_c > max(s) / class_ratio (and s_c > 0)
    min_segment_len: int = 2  # segments need at least this many snippets (frames come from every run)

    # keys that apply only under a condition (pointtal.config.check_applicable refuses them elsewhere)
    APPLIES: ClassVar[tuple[Applies, ...]] = (
        Applies("conv_dilations", "conv_backbone", (True,), "the FC classification branch has no convolutions"),
        *(
            Applies(key, "expand", (True,), "anchor expansion is off")
            for key in ("expand_step", "radius", "expand_ratio", "expand_stop_on_failure", "expand_edge")
        ),
        *(Applies(key, "background", (True,), "background mining is off") for key in ("eta", "mining_score")),
        *(
            Applies(key, "actionness", (True,), "there is no actionness branch")
            for key in ("beta", "act_loss_floor", "act_eps", "act_negatives", "w_act")
        ),
    )

    def __post_init__(self):
        checks = [
            (self.t_max > 0, "t_max", "must be > 0"),
            (self.t_max_alt > 0, "t_max_alt", "must be > 0"),
            (0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)"),
            (self.hidden is None or self.hidden > 0, "hidden", "must be > 0"),
            (self.topk_divisor > 0, "topk_divisor", "must be > 0"),
            (self.class_topk_divisor > 0, "class_topk_divisor", "must be > 0"),
            (self.alpha >= 0, "alpha", "must be >= 0 (a loss weight)"),
            (self.beta >= 0, "beta", "must be >= 0 (a loss weight)"),
            (self.min_video_len >= 0, "min_video_len", "must be >= 0"),
            (self.eta >= 0, "eta", "must be >= 0"),
            (self.act_loss_floor >= 0, "act_loss_floor", "must be >= 0 (0: always add L_act)"),
            (0 < self.act_eps <= 1, "act_eps", "must be in (0, 1]"),
            (self.expand_step >= 0, "expand_step", "must be >= 0"),
            (self.radius >= 0, "radius", "must be >= 0"),
            (self.expand_ratio >= 0, "expand_ratio", "must be >= 0"),
            (self.w_act >= 0, "w_act", "must be >= 0"),
            (self.adjust >= 0, "adjust", "must be >= 0"),
            (self.class_ratio > 0, "class_ratio", "must be > 0"),
            (self.min_segment_len >= 1, "min_segment_len", "must be >= 1"),
            (self.act_negatives in ("top", "code"), "act_negatives", "must be 'top' or 'code'"),
            (self.expand_edge in ("clip", "code"), "expand_edge", "must be 'clip' or 'code'"),
            (
                len(self.conv_dilations) > 0 and min(self.conv_dilations) >= 1,
                "conv_dilations",
                "must be >= 1 (each, in a non-empty list)",
            ),
        ]
        check_options(self, checks)


# ----------------------------------------------------------------------------- losses (§2.2)


@dataclass
class Mining:
    """Which snippets of a batch are labelled and which form the background-mining pool (shared by the
    RGB, flow and fused outputs)."""

    labelled: torch.Tensor  # (B, T) bool, valid snippets carrying a point (action or background)
    action: torch.Tensor  # (B, T) bool, labelled with at least one action class
    pool: torch.Tensor  # (B, T) bool, unlabelled valid snippets of videos with k_i >= 1
    count: torch.Tensor  # () long, sum_i k_i: how many pool snippets are mined


def mining_pool(mask: torch.Tensor, point_labels: torch.Tensor, eta: float) -> Mining:
    """k_i = min(floor(eta * n_labelled_i), T_i - n_labelled_i) and the batch pool (mask (B,T), labels (B,T,K))."""
    labelled = (point_labels.sum(-1) > 0) & mask  # (B, T)
    action = (point_labels[..., 1:].sum(-1) > 0) & labelled  # (B, T)
    n_labelled = labelled.sum(1)  # (B,)
    unlabelled = mask.sum(1) - n_labelled  # (B,)
    k = torch.minimum(torch.floor(n_labelled.double() * eta).long(), unlabelled).clamp(min=0)  # (B,)
    pool = mask & ~labelled & (k >= 1).unsqueeze(1)  # (B, T)
    return Mining(labelled, action, pool, k.sum())


def frame_loss(
    cas: torch.Tensor, point_labels: torch.Tensor, mining: Mining, background: bool, mining_score: str
) -> torch.Tensor:
    """L_frame: CE on labelled snippets (mean over the batch) + mined background CE / K.

    The sum(k_i) pool snippets with the highest background score (softmax probability of class 0, or its
    logit when mining_score == "logit") get the background label; their mean CE is divided by K = C+1.
    """
    log_p = F.log_softmax(cas.float(), dim=-1)  # (B, T, K)
    labelled_ce = -(point_labels * log_p).sum(-1)  # (B, T)
    loss = masked_mean(labelled_ce, mining.labelled)
    if background:
        rank_by = log_p[..., 0] if mining_score == "prob" else cas[..., 0]  # log P ranks as P does
        hard = select_hardest(rank_by, mining.pool, mining.count)  # (B, T)
        loss = loss + masked_mean(-log_p[..., 0], hard) / cas.shape[-1]
    return loss


def select_last(pool: torch.Tensor, count: torch.Tensor | int) -> torch.Tensor:
    """Bool mask of the last `count` entries of `pool` (B, T) in row-major order (video by video, in time
    order): what the official `act_loss` keeps after its no-op sort of the concatenated pool."""
    flat = pool.flatten()  # (B*T,)
    after = flat.flip(0).long().cumsum(0).flip(0)  # (B*T,) pool entries at or after each position
    return (flat & (after <= count)).view(pool.shape)


def actionness_loss(act: torch.Tensor, mining: Mining, eps: float, negatives: str = "top") -> torch.Tensor:
    """L_act: -mean log sigmoid(a) on action-labelled snippets, plus -mean log(1 + eps - sigmoid(a)) over the
    negatives: sum(k_i) pool snippets, and the background points. `negatives` "top" mines the pool snippets
    with the highest actionness (the paper); "code" takes the pool's last sum(k_i) (`select_last`, the
    official code)."""
    a = act.float()  # (B, T)
    positive = masked_mean(-F.logsigmoid(a), mining.action)
    if negatives == "code":
        mined = select_last(mining.pool, mining.count)  # (B, T)
    else:
        mined = select_hardest(a, mining.pool, mining.count)  # (B, T)
    negatives = mined | (mining.labelled & ~mining.action)
    negative = masked_mean(-torch.log(1.0 + eps - torch.sigmoid(a)), negatives)
    return positive + negative


# ----------------------------------------------------------------------------- anchor expansion (§2.3)


@dataclass(frozen=True)
class Expansion:
    """Result of anchor expansion over a flat (N snippets) layout."""

    labels: torch.Tensor  # (N, K) new point labels (old rows kept, pseudo rows copied from their anchor)
    pseudo: torch.Tensor  # (N,) bool, snippets that received a pseudo label


def anchor_expansion(
    point_labels: torch.Tensor,
    cas: torch.Tensor,
    offsets: np.ndarray,
    radius: int,
    ratio: float,
    stop_on_failure: bool = True,
    edge: str = "clip",
) -> Expansion:
    """Walk left and right of every action-labelled snippet (anchor) and copy its labels to candidates.

    point_labels (N, K), cas (N, K) (any monotone score space; the background column is ignored),
    offsets (V+1,) video boundaries in the flat layout. Candidate `anchor ± j` (j = 1..radius) is labelled
    when the arg-max action class of `anchor ± 1`, of the candidate and of `candidate ± 1` (clipped to the
    video with edge == "clip"; with edge == "code" the walk stops where it lies outside the video, as the
    official walk does) agree and mean(cas[cand, L]) >= ratio * mean(cas[anchor, L]), L = the anchor's
    action classes. A walk stops at the video edge, at an originally labelled snippet, and (stop_on_failure)
    at its first failed candidate. Conflicts are resolved as the reference code's sequential pass over
    anchors (left to right, left walk before right walk) does: a left walk stops at a snippet claimed by a
    right walk.
    Vectorised over anchors; the only loop is over j.
    """
    n = point_labels.shape[0]
    cas = cas.detach().float().cpu()
    labels = point_labels.detach().float().cpu()
    lengths = torch.from_numpy(np.diff(offsets).astype(np.int64))
    video = torch.repeat_interleave(torch.arange(lengths.numel()), lengths)  # (N,)
    assert video.numel() == n, "offsets do not match the number of snippets"
    labelled = labels.sum(1) > 0  # (N,)
    anchors = torch.nonzero(labelled & (labels[:, 1:].sum(1) > 0)).squeeze(1)  # (A,)
    classes = (labels[anchors, 1:] > 0).float()  # (A, C) the anchor's action classes L
    action_cas = cas[:, 1:]  # (N, C)

    def mean_score(rows: torch.Tensor) -> torch.Tensor:  # mean of cas[row, L] per anchor -> (A,)
        return (action_cas[rows] * classes).sum(1) / classes.sum(1)

    anchor_score = mean_score(anchors)  # (A,)
    best = action_cas.argmax(1)  # (N,) arg-max action class (background dropped)
    new_labels = labels.clone()
    right_claimed = torch.zeros(n, dtype=torch.bool)
    pseudo = torch.zeros(n, dtype=torch.bool)
    for direction in (1, -1):  # right walks first: they win conflicts with left walks
        alive = torch.ones(anchors.numel(), dtype=torch.bool)
        beside = (anchors + direction).clamp(0, n - 1)  # the snippet next to the anchor
        for j in range(1, radius + 1):
            cand = anchors + direction * j
            inside = (cand >= 0) & (cand < n)
            cand = cand.clamp(0, n - 1)
            inside &= video[cand] == video[anchors]
            alive &= inside & ~labelled[cand]
            if direction == -1:
                alive &= ~right_claimed[cand]
            after = cand + direction
            in_range = (after >= 0) & (after < n)
            after = torch.where(in_range, after, cand)
            after_inside = in_range & (video[after] == video[cand])  # (A,)
            if edge == "code":
                alive &= after_inside  # the official walk stops where the snippet after lies outside
            after = torch.where(after_inside, after, cand)  # clipped to the video
            agree = (best[beside] == best[cand]) & (best[cand] == best[after])
            ok = agree & (mean_score(cand) >= ratio * anchor_score)
            if stop_on_failure:
                alive &= ok
                claim = alive
            else:
                claim = alive & ok
            new_labels[cand[claim]] = labels[anchors[claim]]
            pseudo[cand[claim]] = True
            if direction == 1:
                right_claimed[cand[claim]] = True
    return Expansion(new_labels, pseudo)


def expansion_labels(expansion: Expansion) -> torch.Tensor:
    """(N, K) bool: the (snippet, class) labels anchor expansion gave to its pseudo frames."""
    return (expansion.labels > 0) & expansion.pseudo[:, None]


# ----------------------------------------------------------------------------- the method


class SFNet(Method[SFNetOutput]):
    """SF-Net: points + video labels, background mining, actionness, anchor expansion."""

    name = "sfnet"
    Options = Options

    def __init__(self, options: Options, in_dim: int, n_classes: int):
        super().__init__(options, in_dim, n_classes)
        self.net = two_stream_net(options, in_dim, n_classes, options.actionness)

    def training_sampler(self, dataset: PointDataset, batch_size: int, seed: int, phase: int = 0) -> CropSampler:
        """Random windows of `t_max` snippets on even steps and `t_max_alt` on odd ones (§2.4)."""
        return CropSampler(dataset, batch_size, seed, (self.options.t_max, self.options.t_max_alt))

    def training_length(self, longest: int) -> tuple[int, str]:
        o = self.options
        return min(longest, max(o.t_max, o.t_max_alt)), "method.t_max"

    @property
    def expand_at(self) -> int | None:
        """The step anchor expansion runs at (None: never)."""
        return self.options.expand_step if self.options.expand else None

    def refresh_due(self, step: int) -> bool:
        return step == self.expand_at

    def plan_notes(self, steps: int) -> list[str]:
        at = self.expand_at
        if at is None or 0 <= at < steps:
            return []
        return [
            f"method.expand_step={at} is not within the run's {steps} steps: anchor expansion (label mining) "
            f"never runs; give a step in [0, {steps}) or set method.expand=false"
        ]

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> SFNetOutput:
        return self.net(features, mask)

    def loss(self, output: SFNetOutput, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        o = self.options
        mining = mining_pool(batch.mask, batch.point_labels, o.eta)
        zero = output.cas.new_zeros((), dtype=torch.float32)
        l_vid, l_frame, l_act = zero, zero, zero
        for cas, act in output.streams():
            l_vid = l_vid + video_loss(cas, batch.mask, batch.video_labels, o.topk_divisor, o.min_video_len)
            l_frame = l_frame + frame_loss(cas, batch.point_labels, mining, o.background, o.mining_score)
            if act is not None:
                l_act = l_act + actionness_loss(act, mining, o.act_eps, o.act_negatives)
        act_term = l_act if o.act_loss_floor <= 0 else torch.where(l_act > o.act_loss_floor, l_act, zero)
        total = o.alpha * l_vid + l_frame + o.beta * act_term
        return {"total": total, "video": l_vid.detach(), "frame": l_frame.detach(), "act": l_act.detach()}

    def scores(self, output: SFNetOutput, mask: torch.Tensor) -> Scores:
        cas, act = output.cas.float(), output.act
        if self.options.score_space == "prob":
            cas = F.softmax(cas, dim=-1)
            act = None if act is None else torch.sigmoid(act.float())
        elif act is not None:
            act = act.float()
        return Scores(
            cas=cas, video_scores=video_probabilities(output, mask, self.options.topk_divisor), actionness=act
        )

    def localize(self, cas: np.ndarray, actionness: np.ndarray | None, video_scores: np.ndarray) -> Detections:
        return sfnet_detections(self.options, cas, actionness, self.options.w_act)

    def refresh_labels(
        self, step: int, dataset: PointDataset, predict_cas: Callable[[], torch.Tensor]
    ) -> LabelRefresh | None:
        """Anchor expansion at `expand_step`: pseudo frames from `predict_cas()` ((N, K) = `scores().cas`)."""
        if not self.refresh_due(step):
            return None
        o = self.options
        expansion = anchor_expansion(
            dataset.point_labels,
            predict_cas(),
            dataset.offsets,
            o.radius,
            o.expand_ratio,
            o.expand_stop_on_failure,
            o.expand_edge,
        )
        added = int(expansion.pseudo.sum())
        log.info("anchor expansion: added %d pseudo frames", added)
        dataset.set_point_labels(expansion.labels.to(dataset.point_labels.device))
        return LabelRefresh(added=added, reinitialize=True, mined=expansion_labels(expansion).cpu())
