"""The weakly supervised baseline (docs/methods.md §2.2, "Weak mode"): SF-Net's two-stream classification network
trained from video-level labels only; points are ignored.

Loss: L_vid (RGB + flow + fused, as SF-Net) + center_weight * L_center, where L_center is a W-TALC-style
center loss on attention-pooled features, kept simple:
  * attention a[t, c] = softmax over the valid snippets of the fused CAS logit of class c; as in the SF-Net
    reference code, snippets with below-average attention (a < 1/T_i) are zeroed and the rest renormalised;
  * pooled feature f_{i,c} = sum_t a[t, c] * [h_rgb ‖ h_flow][t] for every class c present in video i
    (h = classification-branch features after dropout, B x T x 2H);
  * centres are an exponential moving average of the pooled features of each class (a buffer updated in
    `loss` while training, momentum `center_momentum`; a class's first batch sets its centre), so they need
    no optimizer of their own;
  * L_center = mean over (video, class) pairs and feature dimensions of (f_{i,c} - centre_c)^2;
  * before `center_multilabel_step`, only single-label videos contribute (the reference code's warm-up).

Inference: the SF-Net localizer with w_act = 0 (there is no actionness branch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from pointtal.applies import Applies
from pointtal.data.samplers import CropSampler
from pointtal.methods.base import Batch, Detections, Method, PointDataset, Scores, check_options
from pointtal.methods.layers import masked_mean
from pointtal.methods.two_stream import (
    SFNetOutput,
    sfnet_detections,
    two_stream_net,
    video_loss,
    video_probabilities,
)


@dataclass(frozen=True)
class Options:
    """Weak-baseline switches (network and L_vid as SF-Net; center loss; SF-Net inference without act)."""

    t_max: int = 750  # random crop of this many snippets on even steps (as SF-Net)
    t_max_alt: int = 2800  # ... and of this many on odd steps
    hidden: int | None = None  # H, None = D/2
    dropout: float = 0.7
    conv_backbone: bool = False  # dilated temporal convs instead of FC layers
    conv_dilations: tuple[int, ...] = (3, 3)
    topk_divisor: int = 8  # L_vid: k = ceil(T_i / topk_divisor)
    min_video_len: int = 5  # L_vid skips shorter videos
    center_weight: float = 0.1  # weight of the center loss (0 disables it)
    center_momentum: float = 0.1  # EMA step of the class centres
    center_multilabel_step: int = 500  # before this step only single-label videos feed the center loss
    score_space: Literal["logit", "prob"] = "logit"  # what `scores` hands to localize (see sfnet.py)
    adjust: float = 1.0
    class_topk_divisor: int = 12
    class_ratio: float = 1.5
    min_segment_len: int = 2

    # keys that apply only under a condition (pointtal.config.check_applicable refuses them elsewhere)
    APPLIES: ClassVar[tuple[Applies, ...]] = (
        Applies("conv_dilations", "conv_backbone", (True,), "the FC classification branch has no convolutions"),
        *(
            Applies(key, "center_weight", (0.0,), "the center loss is off", excluded=True)
            for key in ("center_momentum", "center_multilabel_step")
        ),
    )

    def __post_init__(self):
        check_options(
            self,
            [
                (self.t_max > 0, "t_max", "must be > 0"),
                (self.t_max_alt > 0, "t_max_alt", "must be > 0"),
                (0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)"),
                (self.hidden is None or self.hidden > 0, "hidden", "must be > 0"),
                (
                    len(self.conv_dilations) > 0 and min(self.conv_dilations) >= 1,
                    "conv_dilations",
                    "must be >= 1 (each, in a non-empty list)",
                ),
                (self.topk_divisor > 0, "topk_divisor", "must be > 0"),
                (self.min_video_len >= 0, "min_video_len", "must be >= 0"),
                (self.center_weight >= 0.0, "center_weight", "must be >= 0"),
                (0.0 < self.center_momentum <= 1.0, "center_momentum", "must be in (0, 1]"),
                (self.center_multilabel_step >= 0, "center_multilabel_step", "must be >= 0"),
                (self.adjust >= 0, "adjust", "must be >= 0"),
                (self.class_topk_divisor > 0, "class_topk_divisor", "must be > 0"),
                (self.class_ratio > 0, "class_ratio", "must be > 0"),
                (self.min_segment_len >= 1, "min_segment_len", "must be >= 1"),
            ],
        )


def attention_pool(output: SFNetOutput, mask: torch.Tensor) -> torch.Tensor:
    """Per-class attention-pooled features (B, K, 2H) from the fused CAS (see module docstring)."""
    logits = output.cas.float().masked_fill(~mask.unsqueeze(-1), float("-inf"))  # (B, T, K)
    attention = torch.softmax(logits, dim=1).nan_to_num(0.0)  # (B, T, K); empty videos give 0
    lengths = mask.sum(1).clamp(min=1).to(attention.dtype)  # (B,)
    average = torch.minimum(1.0 / lengths.view(-1, 1, 1), attention.amax(1, keepdim=True))  # rounding-safe
    attention = attention * (attention >= average)
    attention = attention / attention.sum(1, keepdim=True).clamp(min=1e-12)
    pooled = [torch.einsum("btk,bth->bkh", attention, h.float()) for h in (output.hidden_rgb, output.hidden_flow)]
    return torch.cat(pooled, dim=-1)  # (B, K, 2H)


def center_pairs(video_labels: torch.Tensor, mask: torch.Tensor, single_label_only: bool) -> torch.Tensor:
    """(B, K) bool: the (video, action class) pairs that feed the center loss."""
    present = video_labels > 0
    present[:, 0] = False
    used = present & (mask.sum(1) > 0).unsqueeze(1)
    if single_label_only:
        used &= (present.sum(1) == 1).unsqueeze(1)
    return used


class Weak(Method[SFNetOutput]):
    """Weakly supervised baseline: video labels only (L_vid + center loss), CAS-only localization."""

    name = "weak"
    Options = Options

    def __init__(self, options: Options, in_dim: int, n_classes: int):
        super().__init__(options, in_dim, n_classes)
        self.net = two_stream_net(options, in_dim, n_classes, actionness=False)
        width = 2 * (options.hidden or in_dim // 2)
        self.register_buffer("centers", torch.zeros(n_classes + 1, width))  # (K, 2H) EMA class centres
        self.register_buffer("center_seen", torch.zeros(n_classes + 1, dtype=torch.bool))  # (K,)

    def training_sampler(self, dataset: PointDataset, batch_size: int, seed: int, phase: int = 0) -> CropSampler:
        """Random windows of `t_max` snippets on even steps and `t_max_alt` on odd ones (§2.4)."""
        return CropSampler(dataset, batch_size, seed, (self.options.t_max, self.options.t_max_alt))

    def training_length(self, longest: int) -> tuple[int, str]:
        o = self.options
        return min(longest, max(o.t_max, o.t_max_alt)), "method.t_max"

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> SFNetOutput:
        return self.net(features, mask)

    def loss(self, output: SFNetOutput, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        o = self.options
        l_vid = sum(
            video_loss(cas, batch.mask, batch.video_labels, o.topk_divisor, o.min_video_len)
            for cas, _ in output.streams()
        )
        l_center = output.cas.new_zeros((), dtype=torch.float32)
        if o.center_weight > 0:
            l_center = self._center_loss(output, batch, step)
        total = l_vid + o.center_weight * l_center
        return {"total": total, "video": l_vid.detach(), "center": l_center.detach()}

    def _center_loss(self, output: SFNetOutput, batch: Batch, step: int) -> torch.Tensor:
        """Mean squared distance of the pooled features to their (pre-update) class centres; EMA update."""
        pooled = attention_pool(output, batch.mask)  # (B, K, 2H)
        pairs = center_pairs(batch.video_labels, batch.mask, step < self.options.center_multilabel_step)
        centers = self.centers.detach()
        distance = ((pooled - centers.unsqueeze(0)) ** 2).mean(-1)  # (B, K)
        seen = self.center_seen.unsqueeze(0).expand_as(pairs)
        loss = masked_mean(distance, pairs & seen)  # a class's first batch only sets its centre
        if self.training:
            self._update_centers(pooled.detach(), pairs)
        return loss

    @torch.no_grad()
    def _update_centers(self, pooled: torch.Tensor, pairs: torch.Tensor) -> None:
        """EMA of each class's batch-mean pooled feature; a class seen for the first time takes it as is."""
        weight = pairs.to(pooled.dtype)  # (B, K)
        count = weight.sum(0)  # (K,)
        batch_mean = torch.einsum("bk,bkh->kh", weight, pooled) / count.clamp(min=1).unsqueeze(1)  # (K, 2H)
        step = torch.where(self.center_seen, self.options.center_momentum, 1.0).unsqueeze(1)  # (K, 1)
        step = step * (count > 0).unsqueeze(1)
        self.centers.add_(step * (batch_mean - self.centers))
        self.center_seen |= count > 0

    def scores(self, output: SFNetOutput, mask: torch.Tensor) -> Scores:
        cas = output.cas.float()
        if self.options.score_space == "prob":
            cas = F.softmax(cas, dim=-1)
        return Scores(cas=cas, video_scores=video_probabilities(output, mask, self.options.topk_divisor))

    def localize(self, cas: np.ndarray, actionness: np.ndarray | None, video_scores: np.ndarray) -> Detections:
        return sfnet_detections(self.options, cas, None, w_act=0.0)  # no actionness branch
