"""The padded training/inference batch every method consumes."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch


@dataclass
class Batch:
    """B videos padded to T snippets. Column 0 of every (C+1)-wide tensor is background."""

    features: torch.Tensor  # (B, T, D) float32
    mask: torch.Tensor  # (B, T) bool, True on real snippets
    video_labels: torch.Tensor  # (B, C+1) float {0,1}; column 0 is 0 (methods choose their background label)
    point_labels: torch.Tensor  # (B, T, C+1) float; a labelled snippet's row is the mean of its one-hots, else 0
    point_mask: torch.Tensor  # (B, T) bool, True where the snippet carries a point (action or background)
    video_index: torch.Tensor  # (B,) long, index of each video in its dataset
    snippet_index: torch.Tensor  # (B, T) long, the video's own snippet index at each position (-1 on padding)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # method-specific inputs, passed to forward
    targets: dict[str, torch.Tensor] = field(default_factory=dict)  # method-specific loss targets (not to forward)

    def to(self, device: torch.device | str) -> Batch:
        named = ("extras", "targets")
        moved = {
            f.name: getattr(self, f.name).to(device, non_blocking=True) for f in fields(self) if f.name not in named
        }
        return Batch(
            **moved,
            **{name: {k: v.to(device, non_blocking=True) for k, v in getattr(self, name).items()} for name in named},
        )


def make_batch(
    features: torch.Tensor,
    mask: torch.Tensor,
    video_labels: torch.Tensor,
    point_labels: torch.Tensor,
    video_index: torch.Tensor | None = None,
    snippet_index: torch.Tensor | None = None,
) -> Batch:
    """Build a Batch from its tensors (tests and tools); point_mask is derived from point_labels."""
    b, t = mask.shape
    if video_index is None:
        video_index = torch.arange(b)
    if snippet_index is None:
        snippet_index = torch.where(mask, torch.arange(t).expand(b, t), torch.full((b, t), -1))
    point_mask = (point_labels.sum(-1) > 0) & mask
    return Batch(features, mask, video_labels, point_labels, point_mask, video_index, snippet_index)
