"""HR-Pro (Zhang et al., AAAI 2024): hierarchical reliability propagation, a two-stage point-supervised method.
This module holds its Options (the official cfgs/thumos_hyp.yaml) and the `HRPro` method (the official training
and inference loops); the networks, losses and stage-2 proposal batches are network.py, losses.py and
proposals.py beside it.

The engine drives this class through the `Method` contract only, in two phases:
  * phase 0 "snippet" (stage 1, `train.steps` at `train.lr`, `train.batch_size` whole videos): the S-model --
    reliability-aware attention blocks over the video's snippets plus one prototype token per class from an
    online memory, a temporal conv embedding and a sigmoid classifier with a background column; losses are
    the focal point loss on action points, the focal background loss on background seeds and the
    prototype contrastive loss (plus a video loss whose official weight is 0). `start_phase(0)` fills the
    memory with the mean embedding of each class's points; the action seeds update it, video by video in
    `forward` (`memory_update` "video", the official) or after the batch in `loss` ("batch").
  * phase 1 "instance" (stage 2, `stage2_epochs` epochs of `stage2_batch_size` videos at `stage2_lr`):
    `start_phase(1)` freezes stage 1 and runs the reliability ranking on the training videos (stage-1
    proposals, the proposal each point trusts most = pseudo label, random background proposals); the
    I-model (RoI features of each proposal, a completeness score and start/end regression) is trained with
    the score loss and the boundary-regression loss on the method's own proposal batches.
  * inference: stage-1 proposals, and once phase 1 has started the I-model scores and refines them
    (`detect`); Gaussian soft-NMS per class.

docs/methods.md §6 describes the method. Shapes: B videos, T snippets (padded; `mask` marks real ones), D feature width, C action classes (column 0
of every (C+1)-wide tensor is background), M proposals and K pseudo labels per video (padded, with masks).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pointtal.applies import Applies
from pointtal.data.dataset import PointDataset
from pointtal.data.samplers import CropSampler, PerturbSampler, Sampler, gather_batch
from pointtal.errors import InputError
from pointtal.localization.hrpro import (
    AGNOSTIC_THRESHOLDS,
    CAS_THRESHOLDS,
    RawProposals,
    match_points,
    negative_proposals,
    soft_nms_per_class,
    stage1_proposals,
    valid_segments,
)
from pointtal.localization.peaks import segment_peaks
from pointtal.methods.base import (
    Batch,
    Detections,
    Method,
    Phase,
    PhaseContext,
    Scores,
    TrainSchedule,
    VideoScores,
    check_options,
    schedule_steps,
)
from pointtal.methods.hrpro.losses import (
    contrastive_loss,
    focal_frame_loss,
    instance_losses,
    sequential_memory_update,
    video_scores,
)
from pointtal.methods.hrpro.network import (
    InstanceModel,
    InstanceOutput,
    SnippetModel,
    SnippetOutput,
    StepWeights,
    refine,
)
from pointtal.methods.hrpro.proposals import (
    ProposalSampler,
    TrainingProposals,
    WithPoints,
    stage2_steps_per_epoch,
)
from pointtal.methods.seeds import select_seeds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """HR-Pro switches; defaults are the official THUMOS14 settings (cfgs/thumos_hyp.yaml and the code).

    Where this port differs from the official code (each a deliberate choice):
    * Stage-1 batches (`num_segments`): the official num_segments -1 takes whole videos (None, the default);
      an integer N draws the official random_perturb of N snippets from longer videos and keeps shorter ones
      whole, as the code's dataset does. Whole-video attention runs in groups of similar length (no change
      to any output; see `SnippetModel.forward`).
    * Stage-1 video order (`video_order`): the official main.py re-creates its shuffled loader iterator every
      n_videos // batch_size steps and reads batch_size videos a step, so the remainder of each shuffle is not
      read ("iterator", default; seeded permutations); "stream": a seeded stream of per-epoch permutations.
    * Stage-1 model selection (`stage1_selection`): the official code evaluates stage 1 on the test set every
      test_iter (50) steps and ranks with the checkpoint of the best test mAP -- model selection on the test
      set. "last" (default) ranks with the final stage-1 weights; a subset name (the official: "test", which
      the trainer warns about; or a validation subset of the ground truth, or the training subset) keeps the
      stage-1 weights of that subset's best in-run evaluation (every `train.eval_every` steps) and stage 2
      starts from them. Not with DDP.
    * Memory updates (`memory_update`): the official stage 1 runs one video per forward and updates the memory
      after each, so the forward and contrastive loss of a step's video b see the updates of videos 0..b-1.
      "video" (default) does exactly that (one forward per video in training, the points and labels reach
      `forward` in the batch's extras); "batch" lets a step's whole batch see the memory of the step's start
      and applies the per-video updates after it, in batch order (one batched forward); "none" freezes the
      memory. Each update moves the memory by `memory_momentum` = 0.001.
    * Contrastive regions (`contrastive_regions`): the official `extract_region_feat` ends a seed run that
      reaches the video's end at T-2, so the video's last snippet never enters a prototype similarity and a
      one-snippet run at the end is dropped ("code", default); "all" averages over every seed.
    * Point times in the ranking (`ranking_point_time`): the official matches proposals to each click's exact
      time (frame / fps); "exact" (default) uses the time the point file gives (`PointDataset.point_times`),
      one point per click; "centre" puts one point per labelled (snippet, class) at the snippet's centre
      (up to half a snippet away). Datasets without times fall back to "centre".
    * Soft-NMS overlap uses `end - start + soft_nms_offset`: the official adds 1 to lengths in seconds; the
      default 1.5625 snippets is 1 s at 25 fps / stride 16 (THUMOS14).
    * Negative proposals come from a seeded generator in bounded rounds (the official loop is unbounded);
      proposals are not rounded to 1e-3 snippets.
    * Stage-2 epochs (`stage2_drop_last`): the official loader shuffles every epoch and drops its last
      incomplete batch: n_videos // stage2_batch_size steps an epoch (True, default; one batch of every video
      when there are fewer than a batch, where the official loader has none and fails); False: ceil(n / batch)
      steps over a seeded stream of per-epoch permutations.
    * The official training forward also scores the refined proposals (unused by any loss): skipped.
    * THUMOS14's ambiguous-segment filter is the evaluator's job here, not the method's.
    * Cosine similarities use F.normalize (eps 1e-12): a zero vector gives 0, not NaN as in the official.
    * The attention blocks' 1x1 query / key projections are folded into the in-projection (one product for q, k
      and v per block, `ReliabilityAwareBlock.folded_projections`) when a step has more tokens than D: the same
      values up to float32 rounding, 22 % fewer FLOPs per stage-1 step at the official shape.
    * Stage-2 rows whose regressed start passed their end (or with a non-finite value) are dropped after
      soft-NMS; the official code writes them and its evaluator counts each as a false positive (tIoU 0), so
      the output is the official one less those false positives (`detect`; BENCHMARKS.md "HR-Pro's
      evaluation time": they raise mAP by the amount measured there). `refined_bounds: clip` also clips the
      refined boundaries to [0, T] before they are scored (the official keeps boundaries outside the video;
      measured +0.08 average mAP on synthetic THUMOS14, BENCHMARKS.md).
    * `max_per_class` K (default 1000) stops soft-NMS after K visits per class and video: the rows written
      are exactly the K best-scored rows of each class's official output (soft-NMS only lowers scores, so
      it visits in score order), at O(K N) instead of O(N^2). The official keeps every row (null): up to
      ~30k per THUMOS14 video and ~10x LACP's evaluation time. 1000 is over 4x the most instances of one
      class in one THUMOS14 test video (218); measured effect -0.01 average mAP (BENCHMARKS.md, "HR-Pro's
      evaluation time beside LACP's").
    Paper vs code: the paper concatenates the class prototypes to the snippets as tokens; the official code
    reshapes the (C, 1, D) memory with `view(1, D, C)` (no transpose), so each token mixes classes
    (`prototype_tokens`: "code" follows the code, "rows" the paper). The video loss has weight 0 in the
    code (`lambdas` [0, 0.5, 1, 1]); the regression/score losses use tIoU threshold 0.3 (the function's
    default 0.5 is overridden by the caller).
    """

    # --- stage 1 batches
    num_segments: int | None = None  # None: whole videos (official num_segments -1); N: random_perturb to N
    video_order: Literal["iterator", "stream"] = "iterator"  # official: a new shuffle every n // batch steps
    # --- stage 1 network
    r_act: int = 8  # top-k pooling: k = max(1, floor(T / r_act))
    dropout: float = 0.7  # before the classifier (and in the I-model's fusion layer)
    rab_layers: int = 2  # reliability-aware attention blocks
    rab_dropout: float = 0.3
    num_heads: int = 8
    dim_feedforward: int = 128
    attention_dropout: float = 0.1
    prototype_tokens: Literal["code", "rows"] = "code"
    contrastive_regions: Literal["code", "all"] = "code"  # code: extract_region_feat drops each video's last snippet
    # --- stage 1 losses and memory
    weight_video: float = 0.0  # lambdas[0]
    weight_frame: float = 0.5  # lambdas[1]: focal loss on action points
    weight_frame_bkg: float = 1.0  # lambdas[2]: focal loss on background seeds
    weight_contrastive: float = 1.0  # lambdas[3]
    temperature: float = 0.1  # contrastive similarity temperature
    memory_momentum: float = 0.001
    memory_update: Literal["video", "batch", "none"] = "video"  # video: the official per-video forward + update
    seed_act_thresh: float = 0.1  # pseudo action snippets: background score <= this next to a point
    seed_bkg_thresh: float = 0.95  # background seeds: background score >= this
    # --- inference / proposal generation
    scale: int = 2  # temporal upsampling of the CAS
    class_thresh: float = 0.5
    cas_thresholds: tuple[float, ...] = CAS_THRESHOLDS
    agnostic_thresholds: tuple[float, ...] = AGNOSTIC_THRESHOLDS
    outer_ratio: float = 0.25  # _lambda
    gamma: float = 0.0  # weight of the video score in a proposal's score
    soft_nms_sigma: float = 0.3
    soft_nms_offset: float = 1.5625  # snippets added to lengths in soft-NMS overlaps (1 s at 25 fps / 16)
    max_per_class: int | None = 1000  # soft-NMS visits per class and video (None: all, as the official)
    refined_bounds: Literal["official", "clip"] = "official"  # clip: refined boundaries clipped to [0, T]
    # --- stage 2
    stage2_epochs: int = 20
    stage2_batch_size: int = 10
    stage2_lr: float = 5e-5
    stage2_drop_last: bool = True  # the official loader drops each epoch's last incomplete batch
    stage1_selection: str = (
        "last"  # "last": final stage-1 weights; a subset: its best in-run evaluation (official: test)
    )
    weight_loss_score: float = 1.0
    weight_loss_reg: float = 1.0
    max_proposal: int = 1000  # training proposals per video (random subset beyond)
    roi_size: int = 12
    roi_extension: float = 0.25  # proposals are widened by this fraction on each side before RoI pooling
    iou_thresh: float = 0.3
    negative_ratio: float = 0.5  # negative proposals per video = int(ratio * stage-1 proposals)
    ranking_point_time: Literal["exact", "centre"] = "exact"  # a point's time in the ranking (official: frame / fps)

    # keys that apply only under a condition (pointtal.config.check_applicable refuses them elsewhere)
    APPLIES: ClassVar[tuple[Applies, ...]] = (
        Applies("memory_momentum", "memory_update", ("video", "batch"), "the memory is never updated"),
    )

    def __post_init__(self):
        check_options(
            self,
            [
                (self.num_segments is None or self.num_segments > 0, "num_segments", "must be > 0 (or null)"),
                (self.video_order in ("iterator", "stream"), "video_order", "must be 'iterator' or 'stream'"),
                (self.r_act >= 1, "r_act", "must be >= 1"),
                (0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)"),
                (self.rab_layers >= 0, "rab_layers", "must be >= 0"),
                (0.0 <= self.rab_dropout < 1.0, "rab_dropout", "must be in [0, 1)"),
                (self.num_heads >= 1, "num_heads", "must be >= 1"),
                (self.dim_feedforward >= 1, "dim_feedforward", "must be >= 1"),
                (0.0 <= self.attention_dropout < 1.0, "attention_dropout", "must be in [0, 1)"),
                *(
                    (getattr(self, key) >= 0.0, key, "must be >= 0 (a loss weight)")
                    for key in (
                        "weight_video",
                        "weight_frame",
                        "weight_frame_bkg",
                        "weight_contrastive",
                        "weight_loss_score",
                        "weight_loss_reg",
                    )
                ),
                (self.temperature > 0.0, "temperature", "must be > 0"),
                (self.contrastive_regions in ("code", "all"), "contrastive_regions", "must be 'code' or 'all'"),
                (0.0 <= self.memory_momentum <= 1.0, "memory_momentum", "must be in [0, 1]"),
                (0.0 <= self.seed_act_thresh <= 1.0, "seed_act_thresh", "must be in [0, 1] (a probability)"),
                (0.0 <= self.seed_bkg_thresh <= 1.0, "seed_bkg_thresh", "must be in [0, 1] (a probability)"),
                (
                    self.memory_update in ("video", "batch", "none"),
                    "memory_update",
                    "must be 'video', 'batch' or 'none'",
                ),
                (self.scale >= 1, "scale", "must be >= 1"),
                (0.0 <= self.class_thresh <= 1.0, "class_thresh", "must be in [0, 1] (video scores are probabilities)"),
                *(
                    (
                        len(getattr(self, key)) > 0 and all(0.0 <= t <= 1.0 for t in getattr(self, key)),
                        key,
                        "must be non-empty, each in [0, 1] (thresholds on probabilities)",
                    )
                    for key in ("cas_thresholds", "agnostic_thresholds")
                ),
                (self.outer_ratio >= 0.0, "outer_ratio", "must be >= 0"),
                (self.gamma >= 0.0, "gamma", "must be >= 0 (weight of the video score)"),
                (self.soft_nms_sigma > 0.0, "soft_nms_sigma", "must be > 0"),
                (self.soft_nms_offset >= 0.0, "soft_nms_offset", "must be >= 0"),
                (self.max_per_class is None or self.max_per_class >= 1, "max_per_class", "must be >= 1 (or null)"),
                (self.refined_bounds in ("official", "clip"), "refined_bounds", "must be 'official' or 'clip'"),
                (self.stage2_epochs >= 0, "stage2_epochs", "must be >= 0"),
                (self.stage2_batch_size >= 1, "stage2_batch_size", "must be >= 1"),
                (self.stage2_lr > 0.0, "stage2_lr", "must be > 0"),
                (bool(self.stage1_selection), "stage1_selection", "must be 'last' or the name of a subset"),
                (self.max_proposal >= 1, "max_proposal", "must be >= 1"),
                (self.roi_size >= 6, "roi_size", "must be >= 6 (start, centre and end bins)"),
                (self.roi_extension >= 0.0, "roi_extension", "must be >= 0"),
                (0.0 <= self.iou_thresh <= 1.0, "iou_thresh", "must be in [0, 1]"),
                (self.negative_ratio >= 0.0, "negative_ratio", "must be >= 0"),
                (self.ranking_point_time in ("exact", "centre"), "ranking_point_time", "must be 'exact' or 'centre'"),
            ],
        )


# ----------------------------------------------------------------------------- the method
class HRPro(Method[SnippetOutput | InstanceOutput]):
    """HR-Pro: snippet-level stage (S-model + prototype memory), then instance-level stage (I-model)."""

    name = "hrpro"
    Options = Options
    selection_key = "method.stage1_selection"

    def __init__(self, options: Options, in_dim: int, n_classes: int):
        super().__init__(options, in_dim, n_classes)
        if in_dim % options.num_heads:
            raise InputError(f"method.num_heads={options.num_heads} must divide the feature width {in_dim}")
        self.snippet = SnippetModel(options, in_dim, n_classes)
        self.instance = InstanceModel(in_dim, options.dropout, options.roi_size, options.roi_extension)
        self.stage2_ready = False
        self.training_proposals: TrainingProposals | None = None
        # stage1_selection: the stage-1 weights (snippet state dict) of the best evaluation so far, its step and mAP
        self.stage1_best: dict[str, torch.Tensor] | None = None
        self.stage1_best_step, self.stage1_best_score = -1, -math.inf

    # ------------------------------------------------------------------ schedule
    def phases(self, train: TrainSchedule, n_videos: int) -> tuple[Phase, ...]:
        o = self.options
        first = Phase(
            "snippet",
            schedule_steps(train.steps, train.epochs, n_videos, train.batch_size),
            train.lr,
            train.batch_size,
            train.weight_decay,
        )
        second = Phase(
            "instance",
            o.stage2_epochs * stage2_steps_per_epoch(n_videos, o),
            o.stage2_lr,
            o.stage2_batch_size,
            train.weight_decay,
        )
        return first, second

    def phase_parameters(self, index: int) -> list[nn.Parameter]:
        if index == 0:
            return list(self.snippet.parameters())
        self.snippet.requires_grad_(False)
        return list(self.instance.parameters())

    @property
    def selection_subset(self) -> str | None:
        """Stage 1 with `stage1_selection` naming a subset: the engine reports its in-run evaluations."""
        o = self.options
        return None if o.stage1_selection == "last" or self.stage2_ready else o.stage1_selection

    def observe_evaluation(self, step: int, subset: str, average: float) -> None:
        """Keep the stage-1 weights (and memory) of the best evaluation so far (the official keeps the
        checkpoint of the best test mAP and ranks with it); ties keep the earlier one, as the official `>`."""
        if average > self.stage1_best_score:
            self.stage1_best = {k: v.detach().clone() for k, v in self.snippet.state_dict().items()}
            self.stage1_best_step, self.stage1_best_score = step, average

    def start_phase(self, index: int, context: PhaseContext) -> None:
        if index == 0:
            self.init_memory(context.dataset, context.device, context.batch_size)
        else:
            if self.stage1_best is not None:  # stage1_selection: stage 2 starts from the selected stage-1 weights
                self.snippet.load_state_dict(self.stage1_best)
                log.info(
                    "stage 2 starts from the stage-1 weights after step %d (average mAP %.2f on '%s', "
                    "method.stage1_selection)",
                    self.stage1_best_step,
                    self.stage1_best_score,
                    self.options.stage1_selection,
                )
                self.stage1_best = None
            self.snippet.requires_grad_(False)
            self.training_proposals = self.rank_proposals(
                context.dataset, context.device, context.batch_size, int(torch.randint(2**31 - 1, ()))
            )
            self.stage2_ready = True

    def training_sampler(self, dataset: PointDataset, batch_size: int, seed: int, phase: int = 0) -> Sampler:
        """Stage 1: whole videos or the official random_perturb (with the points and labels in `extras` when the
        memory is updated per video, so `forward` can update it between videos); stage 2: proposal batches."""
        o = self.options
        if phase == 0:
            if o.num_segments is None:
                sampler = CropSampler(dataset, batch_size, seed, (int(dataset.n_snippets.max()),), o.video_order)
            else:  # the official random_perturb; a video of at most N snippets stays whole
                sampler = PerturbSampler(
                    dataset, batch_size, seed, o.num_segments, keep_short=True, order=o.video_order
                )
            return WithPoints(sampler) if o.memory_update == "video" else sampler
        if self.training_proposals is None:
            raise RuntimeError("HR-Pro stage 2 needs the ranking of start_phase(1) (or a checkpoint holding it)")
        return ProposalSampler(dataset, batch_size, seed, self.training_proposals, o.max_proposal, o.stage2_drop_last)

    # ------------------------------------------------------------------ checkpoint state
    def get_extra_state(self) -> dict:
        state: dict[str, Any] = {"stage2_ready": self.stage2_ready}
        if self.stage1_best is not None:
            state.update(
                stage1_best=self.stage1_best,
                stage1_best_step=self.stage1_best_step,
                stage1_best_score=self.stage1_best_score,
            )
        if self.training_proposals is not None:
            state.update({k: getattr(self.training_proposals, k) for k in TrainingProposals.__dataclass_fields__})
        return state

    def set_extra_state(self, state: dict) -> None:
        self.stage2_ready = bool(state.get("stage2_ready", False))
        self.stage1_best = state.get("stage1_best")
        self.stage1_best_step = int(state.get("stage1_best_step", -1))
        self.stage1_best_score = float(state.get("stage1_best_score", -math.inf))
        if "proposals" in state:
            self.training_proposals = TrainingProposals(**{k: state[k] for k in TrainingProposals.__dataclass_fields__})

    def inference_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights and the stage flag; the training proposals stay in the training checkpoint."""
        state = self.state_dict()
        state["_extra_state"] = {"stage2_ready": self.stage2_ready}
        return state

    # ------------------------------------------------------------------ between phases
    @torch.no_grad()
    def _stage1_batches(self, dataset: PointDataset, device: torch.device, batch_size: int):
        """(video indices, SnippetOutput) over the dataset in eval mode, whole videos padded per batch."""
        was_training = self.training
        self.eval()
        lengths = dataset.n_snippets
        for first in range(0, len(dataset), batch_size):  # a loop over batches
            videos = np.arange(first, min(first + batch_size, len(dataset)))
            snippet = np.arange(lengths[videos].max())[None, :].repeat(len(videos), 0)
            mask = snippet < lengths[videos][:, None]
            batch = gather_batch(dataset, videos, np.where(mask, snippet, -1), mask).to(device)
            yield videos, batch, self._snippet_forward(batch.features, batch.mask)
        self.train(was_training)

    def init_memory(self, dataset: PointDataset, device: torch.device, batch_size: int) -> None:
        """Each class's prototype = the mean embedding (eval mode) of its points over the training videos."""
        total = torch.zeros_like(self.snippet.prototypes)  # (C, D)
        count = torch.zeros(self.n_classes, device=total.device)
        for _, batch, out in self._stage1_batches(dataset, device, batch_size):
            points = ((batch.point_labels[..., 1:] > 0) & batch.mask.unsqueeze(-1)).float()  # (B, T, C)
            total += torch.einsum("btc,btd->cd", points, out.embedded.float())
            count += points.sum((0, 1))
        self.snippet.prototypes = torch.where(
            count[:, None] > 0, total / count.clamp(min=1)[:, None], self.snippet.prototypes
        )

    def rank_proposals(
        self, dataset: PointDataset, device: torch.device, batch_size: int, seed: int
    ) -> TrainingProposals:
        """The official reliability ranking on the training videos: stage-1 proposals (all thresholds, not
        suppressed), reliable proposals (pseudo labels) from the points, negative proposals from the
        background seeds (int(negative_ratio * proposals) per video)."""
        o = self.options
        proposals, pseudo = [], []
        for videos, batch, out in self._stage1_batches(dataset, device, batch_size):
            points = ((batch.point_labels[..., 1:] > 0) & batch.mask.unsqueeze(-1)).float()
            _, bkg_seed = select_seeds(
                out.cas[..., 0].float(), points, batch.mask, o.seed_act_thresh, o.seed_bkg_thresh
            )
            scores = self.scores(out, batch.mask)
            cas, vid, seeds = (
                scores.cas.float().cpu().numpy(),
                scores.video_scores.float().cpu().numpy(),
                bkg_seed.cpu().numpy() > 0,
            )
            point_rows = points.cpu().numpy()
            for row, v in enumerate(videos):  # proposal generation is per video (numpy), as at inference
                n = int(dataset.n_snippets[v])
                raw = self._stage1_raw(cas[row, :n], vid[row])
                time, label = self.ranking_points(dataset, int(v), point_rows[row, :n])
                matched = match_points(raw, time, label)
                matched = matched[matched >= 0]
                rng = np.random.default_rng([seed, int(v)])
                negative = negative_proposals(seeds[row, :n], int(o.negative_ratio * len(raw)), rng)
                proposals.append(np.concatenate([np.column_stack([raw.start, raw.end]), negative[:, :2]]))
                pseudo.append(np.column_stack([raw.start[matched], raw.end[matched]]))
        return TrainingProposals(*_flat(proposals), *_flat(pseudo))

    def ranking_points(self, dataset: PointDataset, video: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A video's action points for the ranking: (times (P,) in snippet units, sorted; classes 1..C (P,)).

        `ranking_point_time` "exact": each point at the time its file gives (the official frame / fps), from
        `dataset.point_times`; "centre" (or a dataset without times): one point per labelled (snippet, class)
        of the point rows (T, C) at the snippet's centre."""
        times = dataset.point_times
        if self.options.ranking_point_time == "exact" and times is not None:
            position, label = times.of_video(video)
            return position[label > 0], label[label > 0]
        snippet, label = np.nonzero(rows)
        return snippet + 0.5, label + 1

    # ------------------------------------------------------------------ computation
    def _snippet_forward(
        self, features: torch.Tensor, mask: torch.Tensor, weights: StepWeights | None = None
    ) -> SnippetOutput:
        embedded, scores = self.snippet(features, mask, weights)
        background = scores[..., :1]
        fused = torch.cat([background, scores[..., 1:] * (1 - background)], -1)  # (B, T, C+1)
        return SnippetOutput(fused, scores[..., 1:], embedded, features, mask)

    def forward(
        self, features: torch.Tensor, mask: torch.Tensor, **extras: torch.Tensor
    ) -> SnippetOutput | InstanceOutput:
        """Stage 1 on (B, T, D) features; with `proposals` (B, M, 2) in extras (stage-2 batches) the I-model;
        in training with `points` (B, T, C) and `labels` (B, C) in extras (memory_update "video") one video at
        a time, updating the memory after each (`_forward_per_video`)."""
        if "proposals" in extras:
            return self.instance(features, mask.sum(1), extras["proposals"])
        if "points" in extras and self.training and self.options.memory_update == "video":
            return self._forward_per_video(features, mask, extras["points"], extras["labels"])
        return self._snippet_forward(features, mask)

    def _forward_per_video(
        self, features: torch.Tensor, mask: torch.Tensor, points: torch.Tensor, labels: torch.Tensor
    ) -> SnippetOutput:
        """The official stage-1 step: video b's forward (and contrastive loss) sees the memory after the
        updates of videos 0..b-1 of the step; after it, its action seeds (from its own CAS) update the memory.
        A loop over the batch's videos, as the official loop over single-video forwards."""
        o = self.options
        b, t, _ = features.shape
        parts, memories = [], []
        weights = self.snippet.step_weights(int(mask.sum()) + b * self.n_classes)  # shared by the b forwards
        for row in range(b):  # inherently sequential: each forward reads the memory the previous one wrote
            n = int(mask[row].sum())
            memories.append(self.snippet.prototypes)
            one = self._snippet_forward(features[row : row + 1, :n], mask[row : row + 1, :n], weights)
            act_seed, _ = select_seeds(
                one.cas[..., 0].detach().float(),
                points[row : row + 1, :n].float(),
                mask[row : row + 1, :n],
                o.seed_act_thresh,
                o.seed_bkg_thresh,
            )
            self.snippet.prototypes = sequential_memory_update(
                self.snippet.prototypes,
                one.embedded.detach().float(),
                act_seed,
                labels[row : row + 1].float(),
                o.memory_momentum,
            )
            parts.append(one)

        def stack(name: str) -> torch.Tensor:  # (B, T, W), zeros past each video's end
            return torch.cat([F.pad(getattr(p, name), (0, 0, 0, t - p.mask.shape[1])) for p in parts])

        return SnippetOutput(
            stack("cas"), stack("class_scores"), stack("embedded"), features, mask, torch.stack(memories)
        )

    def loss(self, output: SnippetOutput | InstanceOutput, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        if isinstance(output, InstanceOutput):
            o, x = self.options, batch.extras
            output = InstanceOutput(output.iou.float(), output.start_reg.float(), output.end_reg.float())
            reg, score = instance_losses(
                output,
                x["proposals"],
                x["proposals_mask"],
                x["proposal_draw"],
                x["pseudo"],
                x["pseudo_mask"],
                o.iou_thresh,
            )
            total = o.weight_loss_reg * reg + o.weight_loss_score * score
            return {"total": total, "regression": reg.detach(), "score": score.detach()}
        return self.snippet_losses(output, batch)

    def snippet_losses(self, output: SnippetOutput, batch: Batch) -> dict[str, torch.Tensor]:
        """Stage-1 losses (each a mean over the batch's videos) and the memory update."""
        o = self.options
        mask = batch.mask
        cas = output.cas.float()  # (B, T, C+1)
        labels = batch.video_labels[:, 1:].float()  # (B, C)
        points = ((batch.point_labels[..., 1:] > 0) & mask.unsqueeze(-1)).float()  # (B, T, C)
        act_seed, bkg_seed = select_seeds(cas[..., 0].detach(), points, mask, o.seed_act_thresh, o.seed_bkg_thresh)
        vid = video_scores(output.class_scores.float(), mask, o.r_act, labels)
        video = F.binary_cross_entropy(vid, labels, reduction="none").mean(1)  # (B,)
        action_target = F.pad(points, (1, 0))  # (B, T, C+1), background column 0 empty
        frame = focal_frame_loss(cas, action_target, points.amax(-1))
        background_target = torch.zeros_like(cas)
        background_target[..., 0] = 1
        frame_bkg = focal_frame_loss(cas, background_target, bkg_seed)
        embedded = output.embedded.float()
        memory = self.snippet.prototypes if output.memory is None else output.memory  # (C, D) or (B, C, D)
        contrast = contrastive_loss(
            embedded, memory, act_seed, bkg_seed, labels, mask, o.temperature, o.contrastive_regions
        )
        if o.memory_update != "none" and output.memory is None and self.training:
            self.snippet.prototypes = sequential_memory_update(
                self.snippet.prototypes, embedded.detach(), act_seed, labels, o.memory_momentum
            )
        losses = {
            "video": video.mean(),
            "frame": frame.mean(),
            "frame_bkg": frame_bkg.mean(),
            "contrastive": contrast.mean(),
        }
        total = (
            o.weight_video * losses["video"]
            + o.weight_frame * losses["frame"]
            + o.weight_frame_bkg * losses["frame_bkg"]
            + o.weight_contrastive * losses["contrastive"]
        )
        return {"total": total, **{k: v.detach() for k, v in losses.items()}}

    def scores(self, output: SnippetOutput, mask: torch.Tensor) -> Scores:
        """cas: the fused stage-1 CAS (background column 0), video_scores: top-k of s_c (column 0 = 0),
        actionness: 1 - background."""
        vid = video_scores(output.class_scores.float(), mask, self.options.r_act)  # (B, C)
        return Scores(
            cas=output.cas.float(), video_scores=F.pad(vid, (1, 0)), actionness=1 - output.cas[..., 0].float()
        )

    def _stage1_raw(self, cas: np.ndarray, video_scores_: np.ndarray) -> RawProposals:
        o = self.options
        return stage1_proposals(
            cas,
            video_scores_,
            class_thresh=o.class_thresh,
            scale=o.scale,
            cas_thresholds=o.cas_thresholds,
            agnostic_thresholds=o.agnostic_thresholds,
            outer_ratio=o.outer_ratio,
            gamma=o.gamma,
        )

    def _suppress(self, bounds: np.ndarray, score: np.ndarray, label: np.ndarray) -> np.ndarray:
        """(N, 4) [start, end, class, score]: soft-NMS per class (each class's `max_per_class` best rows),
        then the rows that cannot be a segment dropped (`valid_segments`)."""
        o = self.options
        return valid_segments(
            soft_nms_per_class(bounds, score, label, o.soft_nms_sigma, o.soft_nms_offset, max_per_class=o.max_per_class)
        )

    def localize(self, cas: np.ndarray, actionness: np.ndarray | None, video_scores_: np.ndarray) -> Detections:
        """Stage 1 alone (before phase 1): its proposals after soft-NMS per class."""
        raw = self._stage1_raw(cas, video_scores_)
        return with_frames(self._suppress(np.column_stack([raw.start, raw.end]), raw.score, raw.label), cas)

    def detect(self, output: SnippetOutput, videos: list[VideoScores]) -> list[Detections]:
        """Stage-1 proposals of each video scored and refined by the I-model (the official I_test): every
        proposal once as is with score completeness + stage-1 score, once refined with the refined
        proposal's completeness + stage-1 score; then soft-NMS per class.

        Valid by construction: the I-model regresses each boundary freely (`refine`), so a refined start can
        pass its end (start offset - end offset > 1 proposal width) or leave the video. The official code
        keeps such rows through soft-NMS and writes them; its evaluator scores an inverted segment tIoU 0
        against every ground truth, so it is only ever a false positive. Here soft-NMS runs on the same rows
        (so every other row's decayed score is the official one) and the rows with start >= end or a
        non-finite value are dropped afterwards (`valid_segments`): the output is the official one less
        those false positives. They are not swapped into order, which would turn a false positive into a
        possible hit. Boundaries outside [0, T] are valid segments and stay, as in the official code;
        `refined_bounds: clip` clips the refined boundaries to the video before they are scored instead.
        """
        if not self.stage2_ready:
            return super().detect(output, videos)
        o = self.options
        found = []
        for video in videos:  # inference only: one video's proposals at a time bounds the RoI memory
            raw = self._stage1_raw(video.cas, video.video_scores)
            if not len(raw):
                found.append(Detections.empty())
                continue
            n = len(video.cas)
            features = output.features[video.row : video.row + 1, :n]  # (1, T, D)
            lengths = torch.tensor([n], device=features.device)
            proposals = torch.from_numpy(np.column_stack([raw.start, raw.end])).float()[None].to(features.device)
            with torch.no_grad():
                first = self.instance(features, lengths, proposals)  # (1, M) each
                refined = refine(proposals, first.start_reg.float(), first.end_reg.float())  # (1, M, 2)
                if o.refined_bounds == "clip":
                    refined = refined.clamp(0.0, float(n))
                second = self.instance(features, lengths, refined)
            bounds = np.concatenate(
                [np.column_stack([raw.start, raw.end]), refined[0].cpu().numpy().astype(np.float64)]
            )
            score = np.concatenate(
                [first.iou[0].float().cpu().numpy() + raw.score, second.iou[0].float().cpu().numpy() + raw.score]
            )
            found.append(with_frames(self._suppress(bounds, score, np.concatenate([raw.label, raw.label])), video.cas))
        return found


def with_frames(segments: np.ndarray, cas: np.ndarray) -> Detections:
    """Detections whose single frames are each segment's arg-max snippet of its class's CAS (T, C+1) within
    the segment clipped to the video, with the segment's score (what the frame-level evaluation reads)."""
    n = cas.shape[0]
    if len(segments) == 0 or n == 0:
        return Detections(segments.reshape(-1, 4), np.zeros((0, 3)))
    start = np.clip(segments[:, 0], 0, n - 1)
    end = np.clip(segments[:, 1], start + 1e-9, n)
    label = segments[:, 2].astype(np.int64)
    peak = segment_peaks(cas, label, start, end)  # (N,)
    return Detections(segments, np.column_stack([peak, label, segments[:, 3]]).astype(np.float64))


def _flat(rows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-video (M_v, 2) arrays -> flat (sum M_v, 2) float32 tensor and (V+1,) offsets."""
    counts = [len(r) for r in rows]
    flat = np.concatenate([r.reshape(-1, 2) for r in rows]) if rows else np.zeros((0, 2))
    return torch.from_numpy(flat).float(), torch.from_numpy(np.concatenate([[0], np.cumsum(counts)])).long()
