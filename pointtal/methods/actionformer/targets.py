"""ActionFormer's training targets and losses, batched over videos and instances.

Units: the feature grid. Point i of pyramid level l sits at grid position i * 2^l (feature step i * 2^l, whose
window centre is snippet i * 2^l + 0.5); a segment [s, e) in snippet units is [s - 0.5, e - 0.5) on the grid.
Regression ranges are in feature steps; regression targets are distances to the segment's ends divided by the
level's stride.

Assignment (per point, per instance): the point is a candidate of an instance when it lies strictly inside
the instance's centre region (the instance clipped to its centre +- radius * stride) and the larger of its two
distances to the instance's ends lies in the level's range [low, high] (both ends included). Among its
candidates a point takes the shortest instance; classes of every candidate within 1e-3 of that length are
positive (a tie of two classes gives two positives), the regression target is that of the first shortest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Points:
    """Every pyramid point of a padded batch: position, regression range and stride. (P,) each."""

    position: torch.Tensor  # grid position (feature steps)
    low: torch.Tensor  # regression range, feature steps
    high: torch.Tensor
    stride: torch.Tensor  # the level's stride, 2^l


def pyramid_points(lengths: tuple[int, ...], ranges, scale: int, device) -> Points:
    """Points of levels with `lengths` points each; level l has stride scale^l and range `ranges[l]`."""
    strides = torch.cat([torch.full((n,), float(scale**level)) for level, n in enumerate(lengths)])  # (P,)
    index = torch.cat([torch.arange(n, dtype=torch.float32) for n in lengths])  # (P,)
    bounds = torch.tensor(ranges, dtype=torch.float32)  # (L, 2)
    level = torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(lengths)])  # (P,)
    return Points(*(t.to(device) for t in (index * strides, bounds[level, 0], bounds[level, 1], strides)))


@dataclass
class Targets:
    classes: torch.Tensor  # (B, P, C) float {0, 1}; a point with any 1 is positive
    offsets: torch.Tensor  # (B, P, 2) distances to start / end in units of the point's stride
    weight: torch.Tensor  # (B, P) confidence of the assigned instance (1 on negative points)


@torch.no_grad()
def assign_targets(
    points: Points, segments: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, n_classes: int, radius: float
) -> Targets:
    """segments (B, M, 2) on the grid, labels (B, M) in 1..C (0 = no instance in this row), weights (B, M)."""
    if segments.shape[1] == 0:  # no instance in the whole batch: one empty row
        segments, labels, weights = F.pad(segments, (0, 0, 0, 1)), F.pad(labels, (0, 1)), F.pad(weights, (0, 1))
    pos = points.position[None, :, None]  # (1, P, 1)
    start, end = segments[..., 0][:, None, :], segments[..., 1][:, None, :]  # (B, 1, M)
    left, right = pos - start, end - pos  # (B, P, M)
    centre = (start + end) / 2
    reach = points.stride[None, :, None] * radius  # (1, P, 1)
    inside = torch.minimum(pos - torch.maximum(centre - reach, start), torch.minimum(centre + reach, end) - pos) > 0
    farthest = torch.maximum(left, right)
    in_range = (farthest >= points.low[None, :, None]) & (farthest <= points.high[None, :, None])
    candidate = inside & in_range & (labels > 0)[:, None, :]  # (B, P, M)
    length = torch.where(candidate, (end - start).expand_as(left), torch.inf)  # (B, P, M)
    shortest, chosen = length.min(-1)  # (B, P)
    ties = (length <= shortest[..., None] + 1e-3) & torch.isfinite(length)  # (B, P, M)
    onehot = F.one_hot(labels.clamp(min=1) - 1, n_classes).to(segments.dtype)  # (B, M, C)
    classes = (ties.to(segments.dtype) @ onehot).clamp(max=1.0)  # (B, P, C)
    pick = chosen[..., None]  # (B, P, 1)
    offsets = torch.stack([left.gather(-1, pick)[..., 0], right.gather(-1, pick)[..., 0]], -1)  # (B, P, 2)
    positive = torch.isfinite(shortest)
    weight = torch.where(positive, weights.gather(1, chosen).to(segments.dtype), 1.0)  # (B, P)
    return Targets(classes, offsets / points.stride[None, :, None], weight)


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Element-wise focal loss (RetinaNet) of sigmoid logits against {0, 1} (or soft) targets, float32."""
    logits, targets = logits.float(), targets.float()
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def diou_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """1-D distance-IoU loss of (N, 2) offsets from one point (to start, to end; both >= 0): 1 - IoU plus the
    squared distance of the centres over the enclosing length. (N,) float32."""
    pred, target = pred.float(), target.float()
    inter = torch.minimum(pred[:, 0], target[:, 0]) + torch.minimum(pred[:, 1], target[:, 1])
    union = pred.sum(1) + target.sum(1) - inter
    iou = inter / union.clamp(min=eps)
    enclosing = torch.maximum(pred[:, 0], target[:, 0]) + torch.maximum(pred[:, 1], target[:, 1])
    centre_gap = 0.5 * ((pred[:, 1] - pred[:, 0]) - (target[:, 1] - target[:, 0]))
    return 1 - iou + (centre_gap / enclosing.clamp(min=eps)) ** 2
