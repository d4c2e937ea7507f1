"""LACP: "Learning Action Completeness from Points" (Lee & Byun, ICCV 2021), after its official code: its
Options (official options.py / config.py) and the `LACP` method (official main.py, train.py's step, test.py);
the network, the search and the losses are network.py, search.py and losses.py beside it.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from pointtal.applies import Applies
from pointtal.data.samplers import CropSampler, PerturbSampler, Sampler
from pointtal.localization.lacp import localize_lacp
from pointtal.methods.base import Batch, Detections, LabelRefresh, Method, PointDataset, Scores, check_options
from pointtal.methods.lacp.losses import feature_loss, focal_point_loss, pseudo_runs, score_loss, video_loss
from pointtal.methods.lacp.network import LACPNet, LACPOutput, video_scores
from pointtal.methods.lacp.search import optimal_sequences, select_seeds

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
    label_delay: Literal["iterator", "immediate"] = (
        "iterator"  # official loader workers: labels wait for a new iterator
    )
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
        check_options(
            self,
            [
                (self.num_segments is None or self.num_segments > 0, "num_segments", "must be > 0 (or null)"),
                (self.video_order in ("iterator", "stream"), "video_order", "must be 'iterator' or 'stream'"),
                (self.hidden > 0, "hidden", "must be > 0"),
                (0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)"),
                (self.r_act > 0, "r_act", "must be > 0"),
                *(
                    (getattr(self, key) >= 0, key, "must be >= 0 (a loss weight)")
                    for key in ("w_video", "w_point", "w_point_bkg", "w_score", "w_feature")
                ),
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
                (
                    self.search_prune <= 1.0,
                    "search_prune",
                    "must be <= 1 (sequence scores are at most 1; above it nothing but the best survives)",
                ),
                (0.0 <= self.oic_delta, "oic_delta", "must be >= 0"),
                (
                    0.0 <= self.class_threshold <= 1.0,
                    "class_threshold",
                    "must be in [0, 1] (video scores are probabilities)",
                ),
                (_probabilities(self.cas_thresholds), "cas_thresholds", "must be non-empty, each in [0, 1]"),
                (
                    _probabilities(self.actionness_thresholds),
                    "actionness_thresholds",
                    "must be non-empty, each in [0, 1]",
                ),
                (self.scale > 0, "scale", "must be > 0"),
                (self.gamma >= 0, "gamma", "must be >= 0 (weight of the video score)"),
                (0.0 <= self.nms_threshold <= 1.0, "nms_threshold", "must be in [0, 1] (a tIoU)"),
                (self.nms_extent >= 0, "nms_extent", "must be >= 0"),
            ],
        )


def _probabilities(thresholds: tuple[float, ...]) -> bool:
    """A non-empty list of thresholds on probabilities."""
    return len(thresholds) > 0 and all(0.0 <= t <= 1.0 for t in thresholds)


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


class LACP(Method[LACPOutput]):
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
        return {
            "pseudo": self.pseudo.to(torch.uint8).cpu(),
            "offsets": self.offsets.cpu(),
            "pending": self.pending.to(torch.uint8).cpu(),
            "pending_offsets": self.pending_offsets.cpu(),
        }

    def set_extra_state(self, state: dict) -> None:
        self.pseudo = state["pseudo"].bool()
        self.offsets = state["offsets"].long()
        self.pending = state.get("pending", torch.zeros((0, self.n_classes), dtype=torch.uint8)).bool()
        self.pending_offsets = state.get("pending_offsets", torch.zeros(0, dtype=torch.long)).long()

    def training_sampler(self, dataset: PointDataset, batch_size: int, seed: int, phase: int = 0) -> Sampler:
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
        return (
            self.options.label_delay == "iterator"
            and step % self.iterator_steps == 0
            and self.pending_offsets.numel() > 0
        )

    def refresh_due(self, step: int) -> bool:
        return self.search_due(step) or self.iterator_due(step)

    @property
    def first_search(self) -> int:
        """The first step before which the search runs."""
        o = self.options
        return -(-max(o.search_start, 1) // o.search_freq) * o.search_freq

    def plan_notes(self, steps: int) -> list[str]:
        if self.first_search >= steps:
            return [
                f"method.search_start={self.options.search_start} (search_freq {self.options.search_freq}): the "
                f"first search would come at step {self.first_search}, not within the run's {steps} steps; the "
                f"completeness losses stay off"
            ]
        return []

    def forward(self, features: torch.Tensor, mask: torch.Tensor, **extras: torch.Tensor) -> LACPOutput:
        return self.net(features, mask)

    def batch_pseudo(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Pseudo labels (B, T, C) of a batch's snippets and whether each video has been searched (B,)."""
        b, t = batch.mask.shape
        dev = batch.mask.device
        if self.offsets.numel() == 0:
            return torch.zeros((b, t, self.n_classes), dtype=torch.bool, device=dev), torch.zeros(
                b, dtype=torch.bool, device=dev
            )
        if self.pseudo.device != dev:
            self.pseudo, self.offsets = self.pseudo.to(dev), self.offsets.to(dev)
        flat = self.offsets[batch.video_index].unsqueeze(1) + batch.snippet_index.clamp(min=0)
        rows = self.pseudo[flat.clamp(max=self.pseudo.shape[0] - 1)] & batch.mask.unsqueeze(-1)
        return rows, torch.ones(b, dtype=torch.bool, device=dev)

    def loss(self, output: LACPOutput, batch: Batch, step: int) -> dict[str, torch.Tensor]:
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
        l_feat = feature_loss(
            output.embedded, runs, o.tau, o.sampling_size, o.feature_classes, column=output.column, batch=mask.shape[0]
        )
        per_video = (
            o.w_video * l_video
            + o.w_point * l_point
            + o.w_point_bkg * l_bkg
            + o.w_score * l_score
            + o.w_feature * l_feat
        )
        mean = lambda x: x.mean()  # noqa: E731  every term is per video, averaged over the batch
        return {
            "total": mean(per_video),
            "video": mean(l_video).detach(),
            "point": mean(l_point).detach(),
            "point_bkg": mean(l_bkg).detach(),
            "score": mean(l_score).detach(),
            "feature": mean(l_feat).detach(),
        }

    def scores(self, output: LACPOutput, mask: torch.Tensor) -> Scores:
        fused = output.fused
        video = F.pad(video_scores(output.cas, mask, self.options.r_act), (1, 0))  # (B, K), background 0
        return Scores(cas=fused, video_scores=video, actionness=1 - fused[..., 0])

    def localize(self, cas: np.ndarray, actionness: np.ndarray | None, video_scores: np.ndarray) -> Detections:
        o = self.options
        if actionness is None:
            actionness = 1 - np.asarray(cas)[:, 0]
        return localize_lacp(
            cas,
            actionness,
            video_scores,
            class_threshold=o.class_threshold,
            cas_thresholds=o.cas_thresholds,
            actionness_thresholds=o.actionness_thresholds,
            scale=o.scale,
            gamma=o.gamma,
            nms_threshold=o.nms_threshold,
            nms_extent=o.nms_extent,
            delta=o.oic_delta,
        )

    @torch.no_grad()
    def refresh_labels(
        self, step: int, dataset: PointDataset, predict_cas: Callable[[], torch.Tensor]
    ) -> LabelRefresh | None:
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

    def _search(self, step: int, dataset: PointDataset, predict_cas: Callable[[], torch.Tensor]) -> LabelRefresh:
        """Search every training video; the labels wait in `pending` until `refresh_labels` hands them over."""
        cas, mask = padded(predict_cas().float(), dataset.offsets)  # (V, T, K)
        points, _ = padded((dataset.point_labels[:, 1:] > 0).float(), dataset.offsets)
        pseudo, score = optimal_sequences(cas, points, mask, self.options)
        flat = pseudo[mask]  # (N, C)
        self.pending = flat.to(self.pseudo.device)
        self.pending_offsets = torch.from_numpy(np.asarray(dataset.offsets, dtype=np.int64))
        added = int(flat.sum())
        log.info(
            "step %d: optimal sequence search: %d pseudo action labels, mean sequence score %.4f",
            step,
            added,
            float(score.mean()),
        )
        mined = torch.cat([torch.zeros(len(flat), 1, dtype=torch.bool), flat.cpu()], 1)  # (N, C+1): no background
        return LabelRefresh(added=added, reinitialize=False, mined=mined)
