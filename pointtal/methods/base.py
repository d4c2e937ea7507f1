"""The contract between the engine and a method. The engine knows nothing else about a method.

A method is an `nn.Module` with:
  * `forward(features, mask)` -> a small named output (any object the method's `loss`/`scores` accept);
  * `loss(output, batch, step)` -> dict of scalar tensors, key "total" is optimised, the rest are logged;
  * `scores(output, mask)` -> `Scores` (what the localizer and visualizer read: per-snippet class scores in the
    method's score space -- logits or probabilities, e.g. SF-Net's `score_space` -- and video probabilities);
  * `localize(cas, actionness, video_scores)` -> `Detections` for one video, in snippet units (numpy);
  * optionally `refresh_labels(step, dataset, predict_cas)` for label mining (SF-Net anchor expansion);
    `predict_cas()` returns `scores().cas` of every training snippet, (N, C+1) in the dataset's flat layout.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from pointtal.errors import InputError


def check_options(options: Any, checks: Iterable[tuple[bool, str, str]]) -> None:
    """Validate a method's Options: the first failed `(ok, key, why)` raises InputError naming
    `method.<key>=<value>` (the CLI prints it as one line)."""
    for ok, key, why in checks:
        if not ok:
            raise InputError(f"method.{key}={getattr(options, key)!r} {why}")


@dataclass
class Scores:
    """Per-snippet and per-video scores of a batch."""

    cas: torch.Tensor  # (B, T, C+1) class scores used for localization, logits or probabilities (column 0 = bg)
    video_scores: torch.Tensor  # (B, C+1) video-level class probabilities
    actionness: torch.Tensor | None = None  # (B, T) or None when the method has no actionness


@dataclass
class Detections:
    """Detections of one video in snippet units (fractional allowed); classes are 1..C."""

    segments: np.ndarray  # (N, 4) float64: start_snippet, end_snippet, class, score
    frames: np.ndarray  # (K, 3) float64: snippet, class, score

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4)), np.zeros((0, 3)))


@dataclass(frozen=True)
class LabelRefresh:
    """What a label-mining step did (logged by the engine)."""

    added: int
    precision: float | None
    reinitialize: bool


class Method(nn.Module):
    """Base class: subclasses set `name`, `Options` (a frozen dataclass) and `sampling`."""

    name: ClassVar[str] = ""
    Options: ClassVar[type] = object
    # How the engine forms training batches: "crop" (SF-Net random windows) or "resample" (SODA fixed T).
    sampling: ClassVar[str] = "crop"
    # Training step at which `refresh_labels` runs (None: never).
    refresh_step: int | None = None

    def __init__(self, options: Any, in_dim: int, n_classes: int):
        super().__init__()
        self.options = options
        self.in_dim = in_dim
        self.n_classes = n_classes  # C action classes; tensors are C+1 wide

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> Any:  # features (B,T,D), mask (B,T)
        raise NotImplementedError

    def loss(self, output: Any, batch: Any, step: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def scores(self, output: Any, mask: torch.Tensor) -> Scores:
        raise NotImplementedError

    def localize(self, cas: np.ndarray, actionness: np.ndarray | None, video_scores: np.ndarray) -> Detections:
        """cas (T, C+1), actionness (T,) or None, video_scores (C+1,) for one video of T real snippets."""
        raise NotImplementedError

    def refresh_labels(self, step: int, dataset: Any, predict_cas) -> LabelRefresh | None:
        return None

    def inference_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights needed at inference (a method may drop auxiliary networks)."""
        return self.state_dict()
