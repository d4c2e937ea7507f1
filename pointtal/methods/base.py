"""The contract between the engine and a method. The engine knows nothing else about a method.

A method is an `nn.Module` subclass of `Method` with ClassVars `name` and `Options` (a frozen dataclass), and:

Supervision
  * `supervision` (ClassVar): "points" (default: the dataset's point labels) or "segments": the engine then
    also loads every training video's instances from `data.segments` (`full` ground truth or a pseudo-label
    file) into `dataset.segments` (a `SegmentTable`: seconds, snippet units, class, confidence weight);

Batching (the method's own: crop windows, fixed-length resampling, proposal batches)
  * `training_sampler(dataset, batch_size, seed, phase)` -> a `data.samplers.Sampler`, a callable
    `(step, rank, world) -> Batch` deterministic in (seed, step) so a resumed run sees the same data; the
    dataset lacks the training videos' ground truth (`truth_labels` None: the engine keeps it);
  * `inference_length` -> None (whole videos) or N (videos resampled to N snippets, scores interpolated back);
  * `training_length(longest)` -> (snippets per video in a training batch, the option that sets it).
Schedule
  * `phases(train, n_videos)` -> the run's `Phase`s (one by default; HR-Pro has two). At the first step of each
    phase the engine calls `start_phase(index, context)` and builds a fresh optimizer (the phase's: Adam, or
    AdamW with no decay on parameters of at most one dimension) over the parameters that require gradients;
    every step runs at `Phase.lr_at(step)` (warm-up, cosine), and a phase with `ema_decay` evaluates an EMA of
    the weights (kept in checkpoints, like the optimizer). State a method computes there (or while mining
    labels) lives in buffers or `get_extra_state`, so checkpoints carry it;
  * `phase_parameters(index)` -> what phase `index` trains (default: every parameter that requires gradients);
  * `refresh_due(step)` / `refresh_labels(step, dataset, predict_cas)` for label mining (SF-Net's anchor
    expansion, LACP's optimal sequence search); `predict_cas()` returns `scores().cas` of every training
    snippet, (N, C+1) in the dataset's flat layout. The method returns a `LabelRefresh` with the labels it
    mined; it never reads the training videos' ground truth: the engine scores the mined labels against it
    for the log (`LabelRefresh.precision`);
  * `plan_notes(steps)` -> warnings about the method's options against the run's length;
  * `selection_subset` -> a subset of the ground truth whose in-run evaluations (every `train.eval_every`
    steps) the method hears of through `observe_evaluation(step, subset, average)` (HR-Pro keeps the best
    stage-1 weights), or None.
Computation
  * `forward(features, mask, **batch.extras)` -> the method's small named output (`Method[Output]` names its
    type; `loss`, `scores` and `detect` take it);
  * `loss(output, batch, step)` -> dict of scalar tensors, key "total" is optimised, the rest are logged
    (`batch` a `data.batch.Batch`);
  * `scores(output, mask)` -> `Scores` (per-snippet class scores in the method's score space -- logits or
    probabilities -- video probabilities, actionness): what figures, label mining and ensembles read; each
    is optional (None: the method has none, and the CAS figure or the classification mAP is left out);
  * `detect(output, videos)` -> one `Detections` per video, in the video's snippet units (`videos[i].length`
    its real snippets; the engine turns them into seconds, `Detections.in_seconds`). The default runs
    `localize(cas, actionness, video_scores)` on each video's scores (a CAS method writes only `localize`);
    a proposal method overrides `detect` and returns its regressed segments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np
import torch
from torch import nn

from pointtal.data.batch import Batch
from pointtal.data.dataset import PointDataset
from pointtal.data.samplers import CropSampler, Sampler
from pointtal.errors import InputError
from pointtal.localization.detections import Detections

__all__ = [
    "Batch",
    "Detections",
    "LabelRefresh",
    "Method",
    "Phase",
    "PhaseContext",
    "PointDataset",
    "Scores",
    "TrainSchedule",
    "VideoScores",
    "check_options",
    "schedule_steps",
]

Output = TypeVar("Output")  # a method's forward output (a small dataclass of tensors), read by its loss/scores/detect


class TrainSchedule(Protocol):
    """What a method reads of the run's `train` config (`config.TrainConfig`) to plan its phases."""

    @property
    def steps(self) -> int: ...
    @property
    def epochs(self) -> int | None: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def lr(self) -> float: ...
    @property
    def weight_decay(self) -> float: ...


def check_options(options: Any, checks: Iterable[tuple[bool, str, str]]) -> None:
    """Validate a method's Options: the first failed `(ok, key, why)` raises InputError naming
    `method.<key>=<value>` (the CLI prints it as one line)."""
    for ok, key, why in checks:
        if not ok:
            raise InputError(f"method.{key}={getattr(options, key)!r} {why}")


@dataclass
class Scores:
    """Per-snippet and per-video scores of a batch. Each is optional: a method that has no CAS (a detector
    regressing segments) or no video-level scores returns None, and the figures and the classification mAP
    that read them are then left out (a CAS method must give `cas` and `video_scores`: `localize` reads them)."""

    cas: torch.Tensor | None = None  # (B, T, C+1) class scores, logits or probabilities (column 0 = bg)
    video_scores: torch.Tensor | None = None  # (B, C+1) video-level class probabilities
    actionness: torch.Tensor | None = None  # (B, T) or None when the method has no actionness


@dataclass
class VideoScores:
    """One video's scores over its real snippets (resampled scores interpolated back to its length); a score
    the method does not produce is None."""

    video_id: str
    cas: np.ndarray | None  # (T, C+1), column 0 = background
    actionness: np.ndarray | None  # (T,) or None
    video_scores: np.ndarray | None  # (C+1,)
    row: int = 0  # the video's row in the batch `output` it was scored in (for `Method.detect`)
    length: int | None = None  # T, the video's real snippets (None: taken from `cas`)

    def __post_init__(self):
        if self.length is None:
            if self.cas is None:
                raise ValueError(f"VideoScores of '{self.video_id}': give `length` when there is no cas")
            self.length = len(self.cas)


@dataclass(frozen=True)
class LabelRefresh:
    """What a label-mining step did (logged by the engine).

    The method never sees the training videos' ground truth: the engine scores `mined` against it for the
    log (`precision`), out of the losses' reach.
    """

    added: int
    reinitialize: bool
    mined: torch.Tensor | None = None  # (N, C+1) bool: the (snippet, class) labels the step gave, flat layout

    def precision(self, truth: torch.Tensor | None) -> float | None:
        """Fraction of the mined (snippet, class) labels present in `truth` ((N, C+1) multi-hot, column 0 =
        background); None without truth or without a mined label."""
        if truth is None or self.mined is None or not bool(self.mined.any()):
            return None
        mined = self.mined.detach().cpu()
        return float((mined & (truth.detach().cpu() > 0)).sum()) / int(mined.sum())


@dataclass(frozen=True)
class Phase:
    """One stretch of training with its own optimizer (a two-stage method has two)."""

    name: str
    steps: int
    lr: float
    batch_size: int
    weight_decay: float
    optimizer: str = "adam"  # "adam" (L2 weight decay) or "adamw" (decoupled; none on biases, norms, scales)
    warmup_steps: int = 0  # linear warm-up from 0: step s < W runs at lr * s / (W - 1)
    schedule: str = "constant"  # after warm-up: "constant", or "cosine" from lr down to min_lr at the last step
    min_lr: float = 0.0
    ema_decay: float | None = None  # evaluate an exponential moving average of the weights (decay per step)
    ema_start: int = 0  # step of the phase at which the average starts from the weights of that moment

    def lr_at(self, step: int) -> float:
        """Learning rate of the phase's step `step` (0-based, counted within the phase)."""
        warm = self.warmup_steps
        if step < warm:
            return self.lr * step / max(warm - 1, 1)
        if self.schedule == "constant":
            return self.lr
        progress = (step - warm) / max(self.steps - warm, 1)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class PhaseContext:
    """What `start_phase` may use: the training videos and how to run inference on them."""

    dataset: PointDataset
    device: torch.device
    batch_size: int  # videos per inference batch
    amp: bool
    predict_cas: Callable[[], torch.Tensor]  # (N, C+1) `scores().cas` of every training snippet


def schedule_steps(steps: int, epochs: int | None, n_videos: int, batch_size: int) -> int:
    """Steps of a schedule given as steps, or as epochs over `n_videos` in batches of `batch_size`."""
    return epochs * math.ceil(n_videos / batch_size) if epochs else steps


class Method(nn.Module, Generic[Output]):
    """Base class: subclasses set `name` and `Options` and implement the computation (module doc); a subclass
    names its forward output type, `class SFNet(Method[SFNetOutput])`."""

    name: ClassVar[str] = ""
    Options: ClassVar[type] = object
    selection_key: ClassVar[str] = ""  # the option that sets `selection_subset` (named in messages)
    supervision: ClassVar[str] = "points"  # or "segments" (module doc)

    def __init__(self, options: Any, in_dim: int, n_classes: int):
        super().__init__()
        self.options = options
        self.in_dim = in_dim
        self.n_classes = n_classes  # C action classes; tensors are C+1 wide

    # ------------------------------------------------------------------ batching
    def training_sampler(self, dataset: PointDataset, batch_size: int, seed: int, phase: int = 0) -> Sampler:
        """Whole videos, padded to the batch's longest (methods with crops or resampling override this)."""
        return CropSampler(dataset, batch_size, seed, (int(dataset.n_snippets.max()),))

    @property
    def inference_length(self) -> int | None:
        """None: inference on whole videos; N: every video resampled to N snippets."""
        return None

    def training_length(self, longest: int) -> tuple[int, str]:
        """Snippets per video in a training batch when the longest video has `longest`, and the option
        that sets it (named by the memory check)."""
        return longest, ""

    # ------------------------------------------------------------------ schedule
    def phases(self, train: TrainSchedule, n_videos: int) -> tuple[Phase, ...]:
        """One phase: `train.steps` (or `train.epochs`) at `train.lr`, `train.batch_size`."""
        steps = schedule_steps(train.steps, train.epochs, n_videos, train.batch_size)
        return (Phase("train", steps, train.lr, train.batch_size, train.weight_decay),)

    def start_phase(self, index: int, context: PhaseContext) -> None:
        """Called at the first step of phase `index` (step 0 for the first), before its optimizer is built."""

    def phase_parameters(self, index: int) -> list[nn.Parameter]:
        """Parameters the optimizer of phase `index` trains (also called when a run resumes inside it, so a
        method that freezes a stage sets that up here, not only in `start_phase`)."""
        return [p for p in self.parameters() if p.requires_grad]

    def refresh_due(self, step: int) -> bool:
        """Whether `refresh_labels` runs before training step `step`."""
        return False

    def refresh_labels(
        self, step: int, dataset: PointDataset, predict_cas: Callable[[], torch.Tensor]
    ) -> LabelRefresh | None:
        """Mine labels into `dataset` (the training videos, without their ground truth) when due."""
        return None

    def plan_notes(self, steps: int) -> list[str]:
        """Warnings about this method's options for a run of `steps` steps (logged once)."""
        return []

    @property
    def selection_subset(self) -> str | None:
        """The subset whose in-run evaluations `observe_evaluation` receives now, or None (the default)."""
        return None

    def observe_evaluation(self, step: int, subset: str, average: float) -> None:
        """The average mAP on `selection_subset` of the weights after `step` steps (before the checkpoint of
        that evaluation is written, so what the method keeps is resumed exactly)."""

    # ------------------------------------------------------------------ computation
    def forward(self, features: torch.Tensor, mask: torch.Tensor, **extras: torch.Tensor) -> Output:
        raise NotImplementedError  # features (B,T,D), mask (B,T)

    def loss(self, output: Output, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def scores(self, output: Output, mask: torch.Tensor) -> Scores:
        raise NotImplementedError

    def detect(self, output: Output, videos: list[VideoScores]) -> list[Detections]:
        """Detections of each scored video of a batch (`videos[i].row` is its row in `output`)."""
        return [self.localize(v.cas, v.actionness, v.video_scores) for v in videos]

    def localize(self, cas: np.ndarray, actionness: np.ndarray | None, video_scores: np.ndarray) -> Detections:
        """cas (T, C+1), actionness (T,) or None, video_scores (C+1,) for one video of T real snippets."""
        raise NotImplementedError

    def inference_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights needed at inference (a method may drop auxiliary networks)."""
        return self.state_dict()
