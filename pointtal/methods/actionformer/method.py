"""ActionFormer (Zhang, Wu, Li, ECCV 2022): a single-stage, anchor-free, fully supervised detector, trained on
segments (`data.segments`: the ground truth, or a point method's pseudo labels).

The engine drives it through the `Method` contract:
  * batches: each video randomly truncated as the official THUMOS14 loader does (at most `max_seq_len` steps;
    shorter videos cut to a random [crop_ratio] fraction; a window is kept only if it holds at least
    `trunc_thresh` of one instance, else up to 200 draws), padded to the batch's longest clip (the network pads
    on to a multiple of 2^pyramid_layers); instances go in `Batch.targets`;
  * `phases`: one AdamW phase with linear warm-up (`warmup_epochs`) and cosine decay per step, evaluated with
    an EMA of the weights (`ema`) as the official evaluation does;
  * `loss`: sigmoid focal loss over every real point and class + DIoU over positive points, both divided by an
    EMA of the number of positive points (targets.py);
  * `scores`: none (no CAS, no video-level scores: the run's CAS figure and classification mAP are left out);
  * `detect`: per level the top `pre_nms_topk` (point, class) pairs above `pre_nms_thresh`, boundaries decoded,
    segments shorter than `duration_thresh` dropped, then soft-NMS within each class and the `max_segments` best.

Where a choice differs from the official code it is a switch: `score_weights` (pseudo-label confidences weight
the losses; off), `ema_after_warmup` (start the EMA after warm-up: at reduced budgets the official EMA still
holds much of the initial weights), `voting_within_class` (the official multi-class NMS skips voting).
OpenTAD's THUMOS14 re-implementation differs in `input_dropout` 0.2 (channel dropout of the features) and
`max_segments` 2000; its EMA, 35 epochs (5 warm-up) and the rest equal the official settings here.
Feature grid: feature step i stands for snippet i's centre (the official `num_frames / 2` offset with
num_frames = stride), so a segment [s, e) in snippet units is [s - 0.5, e - 0.5) on the grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch

from pointtal.applies import Applies
from pointtal.data.batch import Batch
from pointtal.data.dataset import PointDataset
from pointtal.data.samplers import batch_videos, gather_batch
from pointtal.errors import InputError
from pointtal.localization.nms import nms_per_class, segment_voting, soft_nms, soft_nms_per_class
from pointtal.methods.actionformer.network import ActionFormerNet, DetectorOutput
from pointtal.methods.actionformer.targets import (
    assign_targets,
    diou_loss,
    pyramid_points,
    sigmoid_focal_loss,
)
from pointtal.methods.base import (
    Detections,
    Method,
    Phase,
    Scores,
    TrainSchedule,
    VideoScores,
    check_options,
    schedule_steps,
)

GRID_OFFSET = 0.5  # snippet units of a feature step's window centre (num_frames / 2 / stride)
OFFICIAL_RANGES = ((0.0, 4.0), (4.0, 8.0), (8.0, 16.0), (16.0, 32.0), (32.0, 64.0), (64.0, 10000.0))


@dataclass(frozen=True)
class Options:
    """ActionFormer's switches; defaults are the official THUMOS14 configuration (configs/thumos_i3d.yaml)."""

    # --- batches
    max_seq_len: int = 2304  # training clips are truncated to at most this many feature steps
    trunc_thresh: float = 0.5  # a truncation window must keep this fraction of at least one instance
    crop_ratio: tuple[float, ...] | None = (0.9, 1.0)  # shorter videos: cut to a random fraction in [lo, hi]
    # --- network
    embed_dim: int = 512
    embed_layers: int = 2  # conv embedding layers (kernel embed_kernel, LayerNorm, ReLU)
    embed_kernel: int = 3
    stem_layers: int = 2  # transformer layers at full rate
    pyramid_layers: int = 5  # down-sampling transformer layers: pyramid_layers + 1 levels
    scale: int = 2  # down-sampling factor between levels
    heads: int = 4
    window: int = 19  # local attention window (each position sees window // 2 on each side)
    dropout: float = 0.0  # in attention projections and MLPs
    input_dropout: float = 0.0  # channel dropout of the input features (OpenTAD's THUMOS14 config: 0.2)
    drop_path: float = 0.1
    head_dim: int = 512
    head_layers: int = 3  # convolutions in each head, the output one included
    head_kernel: int = 3
    prior: float = 0.01  # initial foreground probability of the classifier
    # --- targets and losses
    regression_ranges: tuple[tuple[float, ...], ...] = OFFICIAL_RANGES  # per level [low, high], feature steps
    center_radius: float = 1.5  # centre sampling radius, in units of the level's stride
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    reg_weight: float = 1.0  # weight of the DIoU loss
    label_smoothing: float = 0.0
    loss_norm_init: float = 100.0  # initial value of the EMA of the positive count that divides the losses
    loss_norm_momentum: float = 0.9
    score_weights: bool = False  # weight each instance's positive points by its pseudo-label confidence
    # --- optimisation (train.lr, train.weight_decay, train.epochs / steps and train.grad_clip set the rest)
    optimizer: Literal["adamw", "adam"] = "adamw"
    warmup_epochs: float = 5.0  # linear warm-up, then cosine decay to min_lr over the remaining steps
    min_lr: float = 1e-8
    ema: bool = True  # evaluate an EMA of the weights (the official evaluation does)
    ema_decay: float = 0.999
    ema_after_warmup: bool = False  # start the EMA after warm-up instead of at the first step
    # --- inference
    pre_nms_topk: int = 2000  # candidates per level before NMS
    pre_nms_thresh: float = 0.001
    duration_thresh: float = 0.05  # drop candidates shorter than this (feature steps)
    nms: Literal["soft", "hard", "none"] = "soft"
    nms_sigma: float = 0.5
    iou_threshold: float = 0.1  # hard NMS only (Gaussian soft-NMS has no threshold)
    min_score: float = 0.001  # soft-NMS drops segments whose decayed score falls below this
    max_segments: int = 200  # OpenTAD's THUMOS14 config: 2000
    multiclass_nms: bool = True  # NMS within each class (False: across classes, then voting)
    voting_thresh: float = 0.7  # tIoU of segment voting (official: class-agnostic NMS only)
    voting_within_class: bool = False  # also vote after multi-class NMS (not in the official code)

    # keys that apply only under a condition (pointtal.config.check_applicable refuses them elsewhere)
    APPLIES: ClassVar[tuple[Applies, ...]] = (
        Applies("nms_sigma", "nms", ("soft",), "only Gaussian soft-NMS has a sigma"),
        Applies("iou_threshold", "nms", ("hard",), "only hard NMS has a threshold"),
        Applies("voting_thresh", "nms", ("none",), "voting follows NMS", excluded=True),
        Applies("voting_within_class", "multiclass_nms", (True,), "class-agnostic NMS always votes"),
        *(Applies(key, "ema", (True,), "there is no EMA of the weights") for key in ("ema_decay", "ema_after_warmup")),
    )

    def __post_init__(self):
        check_options(
            self,
            [
                (self.max_seq_len > 0, "max_seq_len", "must be > 0"),
                (0 <= self.trunc_thresh <= 1, "trunc_thresh", "must be in [0, 1]"),
                (
                    self.crop_ratio is None or (len(self.crop_ratio) == 2 and all(0 < r <= 1 for r in self.crop_ratio)),
                    "crop_ratio",
                    "must be null or [lo, hi], each in (0, 1]",
                ),
                (
                    self.crop_ratio is None or len(self.crop_ratio) != 2 or self.crop_ratio[0] <= self.crop_ratio[1],
                    "crop_ratio",
                    "must be [lo, hi] with lo <= hi",
                ),
                (self.heads >= 1, "heads", "must be >= 1"),
                (self.embed_dim >= self.heads, "embed_dim", f"must be >= {self.heads} (heads) and a multiple of heads"),
                (self.embed_dim % max(self.heads, 1) == 0, "embed_dim", "must be a multiple of heads"),
                (self.embed_layers >= 1, "embed_layers", "must be >= 1"),
                (self.embed_kernel >= 1, "embed_kernel", "must be >= 1 and odd"),
                (self.embed_kernel % 2 == 1, "embed_kernel", "must be odd"),
                (self.stem_layers >= 0, "stem_layers", "must be >= 0"),
                (
                    self.pyramid_layers == len(self.regression_ranges) - 1,
                    "pyramid_layers",
                    f"must be in [{len(self.regression_ranges) - 1}, {len(self.regression_ranges) - 1}] (one pyramid level "
                    "per regression range, the stem's included)",
                ),
                (self.scale >= 2, "scale", "must be >= 2 and even"),
                (self.scale % 2 == 0, "scale", "must be even"),
                (self.window >= 3, "window", "must be >= 3"),
                (0 <= self.dropout < 1, "dropout", "must be in [0, 1)"),
                (0 <= self.input_dropout < 1, "input_dropout", "must be in [0, 1)"),
                (0 <= self.drop_path < 1, "drop_path", "must be in [0, 1)"),
                (self.head_dim >= 1, "head_dim", "must be >= 1"),
                (self.head_layers >= 1, "head_layers", "must be >= 1"),
                (self.head_kernel >= 1, "head_kernel", "must be >= 1 and odd"),
                (self.head_kernel % 2 == 1, "head_kernel", "must be odd"),
                (0 < self.prior < 1, "prior", "must be in (0, 1)"),
                (
                    len(self.regression_ranges) >= 1
                    and all(len(r) == 2 and r[0] < r[1] for r in self.regression_ranges),
                    "regression_ranges",
                    "must give [low, high] with low < high for each pyramid level",
                ),
                (self.center_radius > 0, "center_radius", "must be > 0"),
                (0 <= self.focal_alpha <= 1, "focal_alpha", "must be in [0, 1]"),
                (self.focal_gamma >= 0, "focal_gamma", "must be >= 0"),
                (self.reg_weight > 0, "reg_weight", "must be > 0"),
                (0 <= self.label_smoothing < 1, "label_smoothing", "must be in [0, 1)"),
                (self.loss_norm_init > 0, "loss_norm_init", "must be > 0"),
                (0 <= self.loss_norm_momentum < 1, "loss_norm_momentum", "must be in [0, 1)"),
                (self.warmup_epochs >= 0, "warmup_epochs", "must be >= 0"),
                (self.min_lr >= 0, "min_lr", "must be >= 0"),
                (0 < self.ema_decay < 1, "ema_decay", "must be in (0, 1)"),
                (self.pre_nms_topk > 0, "pre_nms_topk", "must be > 0"),
                (0 <= self.pre_nms_thresh <= 1, "pre_nms_thresh", "must be in [0, 1] (a probability)"),
                (self.duration_thresh >= 0, "duration_thresh", "must be >= 0"),
                (self.nms_sigma > 0, "nms_sigma", "must be > 0"),
                (0 <= self.iou_threshold <= 1, "iou_threshold", "must be in [0, 1]"),
                (0 <= self.min_score <= 1, "min_score", "must be in [0, 1] (a probability)"),
                (self.max_segments > 0, "max_segments", "must be > 0"),
                (0 < self.voting_thresh <= 1, "voting_thresh", "must be in (0, 1]"),
            ],
        )


# ----------------------------------------------------------------------------- batches
def random_truncation(
    length: int,
    segments: np.ndarray,
    rng: np.random.Generator,
    max_len: int,
    thresh: float,
    crop_ratio: tuple[float, ...] | None,
    trials: int = 200,
) -> tuple[int, int, np.ndarray, np.ndarray]:
    """The official training truncation of one video of `length` steps with instances `segments` (K, 2) on the
    grid: (first step, steps kept, which instances are kept (K,) bool, the kept ones (K', 2) clipped to the
    window +- GRID_OFFSET and shifted to its start).

    A video longer than `max_len` is cut to `max_len`; a shorter one to a uniform integer in
    [round(lo * length), round(hi * length)] when `crop_ratio` is set (else kept whole). Window starts are
    uniform; the first of `trials` draws that keeps >= `thresh` of some instance wins (the last draw if none).
    """
    whole = (0, length, np.ones(len(segments), dtype=bool), segments)
    size = length
    if length <= max_len:
        if crop_ratio is None:
            return whole
        size = int(rng.integers(max(round(crop_ratio[0] * length), 1), min(round(crop_ratio[1] * length), length) + 1))
        if size == length:
            return whole
    else:
        size = max_len
    starts = rng.integers(0, length - size + 1, size=trials)  # (R,)
    low = np.maximum(starts[:, None] - GRID_OFFSET, segments[None, :, 0])  # (R, K)
    high = np.minimum(starts[:, None] + size + GRID_OFFSET, segments[None, :, 1])  # (R, K)
    with np.errstate(divide="ignore", invalid="ignore"):
        kept = np.clip(high - low, 0, None) / np.abs(segments[:, 1] - segments[:, 0])[None, :] >= thresh  # (R, K)
    good = np.flatnonzero(kept.any(1))
    pick = int(good[0]) if len(good) else trials - 1
    clipped = np.stack([low[pick], high[pick]], 1)[kept[pick]] - starts[pick]  # (K', 2)
    return int(starts[pick]), size, kept[pick], clipped


@dataclass(frozen=True)
class TruncationSampler:
    """Training batches of randomly truncated videos with their instances in `Batch.targets`:
    "segments" (B, M, 2) grid units within the clip, "labels" (B, M) 1..C (0 = padding row), "weights" (B, M)."""

    dataset: PointDataset
    batch_size: int
    seed: int
    options: Options

    def __call__(self, step: int, rank: int = 0, world: int = 1) -> Batch:
        o, table = self.options, self.dataset.segments
        videos = batch_videos(len(self.dataset), self.batch_size, self.seed, step)
        rng = np.random.default_rng([self.seed, step, 7])
        crops = []
        for v in videos:  # the batch's videos (a handful): each its own truncation
            rows = table.rows(int(v))
            grid = np.stack([table.start[rows], table.end[rows]], 1) - GRID_OFFSET  # (K, 2)
            start, size, keep, kept = random_truncation(
                int(self.dataset.n_snippets[v]), grid, rng, o.max_seq_len, o.trunc_thresh, o.crop_ratio
            )
            crops.append((start, size, kept, table.label[rows][keep], table.weight[rows][keep]))
        videos, crops = videos[rank::world], crops[rank::world]
        sizes = np.array([c[1] for c in crops])
        grid = np.arange(sizes.max())[None, :]  # (1, T)
        mask = grid < sizes[:, None]  # (B, T)
        snippet = np.where(mask, np.array([c[0] for c in crops])[:, None] + grid, -1)
        batch = gather_batch(self.dataset, videos, snippet, mask)
        most = max(1, max(len(c[2]) for c in crops))
        segments = torch.zeros(len(crops), most, 2)  # (B, M, 2)
        labels = torch.zeros(len(crops), most, dtype=torch.long)  # (B, M)
        weights = torch.ones(len(crops), most)  # (B, M)
        for row, (_, _, kept, label, weight) in enumerate(crops):
            segments[row, : len(kept)] = torch.from_numpy(kept.astype(np.float32))
            labels[row, : len(kept)] = torch.from_numpy(label)
            weights[row, : len(kept)] = torch.from_numpy(weight)
        batch.targets = {"segments": segments, "labels": labels, "weights": weights}
        return batch


# ----------------------------------------------------------------------------- the method
class ActionFormer(Method[DetectorOutput]):
    name = "actionformer"
    Options = Options
    supervision = "segments"

    def __init__(self, options: Options, in_dim: int, n_classes: int):
        super().__init__(options, in_dim, n_classes)
        self.net = ActionFormerNet(in_dim, n_classes, options)
        self.register_buffer("loss_norm", torch.tensor(float(options.loss_norm_init)))

    # ------------------------------------------------------------------ batching and schedule
    def training_sampler(self, dataset: PointDataset, batch_size: int, seed: int, phase: int = 0) -> TruncationSampler:
        if dataset.segments is None:
            raise InputError("method actionformer trains on segments, but the dataset has none (data.segments)")
        return TruncationSampler(dataset, batch_size, seed, self.options)

    def training_length(self, longest: int) -> tuple[int, str]:
        divisor = self.net.divisor
        return math.ceil(min(longest, self.options.max_seq_len) / divisor) * divisor, "max_seq_len"

    def phases(self, train: TrainSchedule, n_videos: int) -> tuple[Phase, ...]:
        o = self.options
        steps = schedule_steps(train.steps, train.epochs, n_videos, train.batch_size)
        warmup = min(steps, round(o.warmup_epochs * math.ceil(n_videos / train.batch_size)))
        return (
            Phase(
                "train",
                steps,
                train.lr,
                train.batch_size,
                train.weight_decay,
                optimizer=o.optimizer,
                warmup_steps=warmup,
                schedule="cosine",
                min_lr=o.min_lr,
                ema_decay=o.ema_decay if o.ema else None,
                ema_start=warmup if o.ema_after_warmup else 0,
            ),
        )

    def plan_notes(self, steps: int) -> list[str]:
        o = self.options
        if not o.ema or o.ema_after_warmup:
            return []
        left = o.ema_decay**steps
        if left < 0.05:
            return []
        return [
            f"method.ema: after {steps} steps the EMA (decay {o.ema_decay:g}) still holds {left:.0%} of the "
            "initial weights; evaluate the trained weights (method.ema=false) or set method.ema_after_warmup"
        ]

    # ------------------------------------------------------------------ computation
    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> DetectorOutput:
        return self.net(features, mask)

    def points(self, output: DetectorOutput):
        return pyramid_points(output.lengths, self.options.regression_ranges, self.options.scale, output.logits.device)

    def loss(self, output: DetectorOutput, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        o = self.options
        t = batch.targets
        targets = assign_targets(
            self.points(output), t["segments"], t["labels"], t["weights"], self.n_classes, o.center_radius
        )
        valid = output.mask  # (B, P)
        positive = (targets.classes.sum(-1) > 0) & valid  # (B, P)
        count = int(positive.sum())
        with torch.no_grad():
            self.loss_norm.mul_(o.loss_norm_momentum).add_((1 - o.loss_norm_momentum) * max(count, 1))
        goal = targets.classes[valid] * (1 - o.label_smoothing) + o.label_smoothing / (self.n_classes + 1)
        focal = sigmoid_focal_loss(output.logits[valid], goal, o.focal_alpha, o.focal_gamma)  # (N, C)
        diou = diou_loss(output.offsets[positive], targets.offsets[positive])  # (N+,)
        if o.score_weights:
            focal = focal * targets.weight[valid][:, None]
            diou = diou * targets.weight[positive]
        cls = focal.sum() / self.loss_norm
        reg = diou.sum() / self.loss_norm if count else 0 * output.offsets.sum()
        return {"total": cls + o.reg_weight * reg, "cls": cls, "reg": reg, "positives": torch.tensor(float(count))}

    def scores(self, output: DetectorOutput, mask: torch.Tensor) -> Scores:
        """None: a detector has no CAS and no video-level scores (its CAS figure and cmAP are left out)."""
        return Scores()

    def detect(self, output: DetectorOutput, videos: list[VideoScores]) -> list[Detections]:
        rows = [v.row for v in videos]
        found = self.candidates(output, rows)
        return [self.postprocess(*c, v.length) for c, v in zip(found, videos, strict=True)]

    @torch.no_grad()
    def candidates(self, output: DetectorOutput, rows: list[int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per video of `rows`: (segments (N, 2) on the grid, scores (N,), classes (N,) 0-based), level by level
        the top `pre_nms_topk` (point, class) pairs with probability > `pre_nms_thresh`, decoded, minus those
        shorter than `duration_thresh`."""
        o, c = self.options, self.n_classes
        points = self.points(output)
        index = torch.as_tensor(rows, device=output.logits.device)
        probs = torch.sigmoid(output.logits[index].float()) * output.mask[index, :, None]  # (R, P, C)
        picked = []
        first = 0
        for n in output.lengths:  # pyramid levels
            level = probs[:, first : first + n].reshape(len(rows), n * c)  # (R, n*C)
            value, flat = level.topk(min(o.pre_nms_topk, n * c), dim=1)  # (R, k) sorted
            picked.append((value, first + flat // c, flat % c))
            first += n
        value, point, label = (torch.cat(p, 1) for p in zip(*picked, strict=True))  # (R, K)
        offsets = output.offsets[index].float().gather(1, point[..., None].expand(-1, -1, 2))  # (R, K, 2)
        position, stride = points.position[point], points.stride[point]  # (R, K)
        segments = torch.stack([position - offsets[..., 0] * stride, position + offsets[..., 1] * stride], -1)
        keep = (value > o.pre_nms_thresh) & (segments[..., 1] - segments[..., 0] > o.duration_thresh)  # (R, K)
        segments, value, label, keep = (x.cpu().numpy() for x in (segments, value, label, keep))
        return [(segments[r][keep[r]], value[r][keep[r]], label[r][keep[r]]) for r in range(len(rows))]

    def postprocess(self, segments: np.ndarray, scores: np.ndarray, labels: np.ndarray, length: int) -> Detections:
        """NMS (module doc) of one video's candidates; segments in snippet units clipped to [0, length]."""
        o = self.options
        if not len(scores):
            return Detections.empty()
        groups = labels if o.multiclass_nms else np.zeros_like(labels)
        if o.nms == "soft" and o.multiclass_nms:
            rows = soft_nms_per_class(segments, scores, labels, o.nms_sigma, area_eps=1e-6, min_score=o.min_score)
            kept, kept_labels, kept_scores = rows[:, :2], rows[:, 2].astype(np.int64), rows[:, 3]
        elif o.nms == "soft":
            index, kept_scores = soft_nms(segments, scores, o.nms_sigma, area_eps=1e-6, min_score=o.min_score)
            kept, kept_labels = segments[index], labels[index]
        elif o.nms == "hard":
            above = scores > o.min_score
            index = np.flatnonzero(above)[nms_per_class(segments[above], scores[above], groups[above], o.iou_threshold)]
            kept, kept_scores, kept_labels = segments[index], scores[index], labels[index]
        else:
            kept, kept_scores, kept_labels = segments, scores, labels
        if o.nms != "none" and o.voting_thresh > 0 and (not o.multiclass_nms or o.voting_within_class):
            kept = _vote(kept, kept_labels, segments, scores, labels, o.voting_thresh, o.multiclass_nms)
        order = np.argsort(-kept_scores, kind="stable")[: o.max_segments]
        bounds = np.clip(kept[order] + GRID_OFFSET, 0, length)
        return Detections(np.column_stack([bounds, kept_labels[order] + 1, kept_scores[order]]), np.zeros((0, 3)))


def _vote(kept, kept_labels, segments, scores, labels, threshold: float, within_class: bool) -> np.ndarray:
    """Segment voting against all candidates (or those of the kept segment's class)."""
    if not within_class:
        return segment_voting(kept, segments, scores, threshold)
    out = kept.copy()
    for label in np.unique(kept_labels):  # classes of the video
        rows, pool = kept_labels == label, labels == label
        out[rows] = segment_voting(kept[rows], segments[pool], scores[pool], threshold)
    return out
