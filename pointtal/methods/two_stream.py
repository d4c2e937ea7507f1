"""SF-Net's two-stream classification network (§2.1), its video-level loss and scores (§2.2) and its localizer
call: the pieces SF-Net (`methods/sfnet.py`) and the weakly supervised baseline (`methods/weak.py`, the same
network trained from video labels alone) share, so neither method imports the other's internals.

Shapes: B videos, T snippets (padded; `mask` marks real ones), D feature width (RGB half ‖ flow half), H hidden
width (D/2 unless set), K = C+1 columns (0 = background).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pointtal.errors import InputError
from pointtal.localization.sfnet import localize_sfnet
from pointtal.methods.base import Detections
from pointtal.methods.layers import (
    Packing,
    TemporalConv,
    dropout,
    linear,
    masked_mean,
    masked_topk_mean,
    project,
    soft_cross_entropy,
    topk_counts,
    xavier_init_,
)

# ----------------------------------------------------------------------------- network


@dataclass
class SFNetOutput:
    """Forward result; every tensor is a logit (B, T, ...) and may hold junk on padded snippets."""

    cas_rgb: torch.Tensor  # (B, T, K)
    cas_flow: torch.Tensor  # (B, T, K)
    cas: torch.Tensor  # (B, T, K) fused: cas_rgb * w_rgb + cas_flow * w_flow
    act_rgb: torch.Tensor | None  # (B, T), None without the actionness branch
    act_flow: torch.Tensor | None  # (B, T)
    act: torch.Tensor | None  # (B, T) fused: a_rgb * v_rgb + a_flow * v_flow
    hidden_rows: tuple[torch.Tensor, torch.Tensor]  # RGB, flow classification features (N, H), after dropout
    packing: Packing  # where the N real snippets sit in (B, T)

    @property
    def hidden_rgb(self) -> torch.Tensor:
        """(B, T, H) RGB classification-branch features, zeros on padding (scattered on demand: inference
        never pays for this H-wide tensor)."""
        return self.packing.scatter(self.hidden_rows[0])

    @property
    def hidden_flow(self) -> torch.Tensor:
        """(B, T, H) flow classification-branch features, zeros on padding."""
        return self.packing.scatter(self.hidden_rows[1])

    def streams(self) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """(cas, act) of the RGB, flow and fused outputs, the three outputs every loss is applied to."""
        return [(self.cas_rgb, self.act_rgb), (self.cas_flow, self.act_flow), (self.cas, self.act)]


class Stream(nn.Module):
    """One stream: classification branch (2 FC or dilated convs, ReLU, dropout, linear to K) and actionness
    branch (2 kernel-3 temporal convs, ReLU, linear to 1)."""

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        n_outputs: int,
        dropout: float,
        actionness: bool,
        dilations: tuple[int, ...] | None,
    ):
        super().__init__()
        self.dropout = dropout
        self.conv_backbone = dilations is not None
        if dilations is None:
            self.cls_layers = nn.ModuleList([nn.Linear(in_dim, hidden), nn.Linear(hidden, hidden)])
        else:
            widths = [in_dim] + [hidden] * len(dilations)
            self.cls_layers = nn.ModuleList(
                TemporalConv(w_in, w_out, 3, d)
                for w_in, w_out, d in zip(widths[:-1], widths[1:], dilations, strict=True)
            )
        self.classifier = nn.Linear(hidden, n_outputs)
        if actionness:
            self.act_layers = nn.ModuleList([TemporalConv(in_dim, hidden, 3), TemporalConv(hidden, hidden, 3)])
            self.act_head = nn.Linear(hidden, 1)
        else:
            self.act_layers, self.act_head = None, None

    def forward(self, rows: torch.Tensor, packing: Packing) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """rows (N, D/2) = the batch's real snippets (`packing.rows`) -> hidden (N, H), cas (N, K), act (N,).

        Every layer runs on real snippets only (a temporal conv reads its neighbours through `packing`), so
        padding costs neither FLOPs nor memory; the result equals running the layers on the zero-padded batch.
        The first layers of both branches read the input through `project` (one oneDNN product each on CPU;
        their weight gradients share one transposed copy of the input)."""
        firsts = [self.cls_layers[0]] + ([self.act_layers[0]] if self.act_layers is not None else [])
        projected = project(firsts, rows)  # [(N, k*H)] per branch
        columns = not rows.requires_grad  # the input's products need only weight gradients
        if self.conv_backbone:
            first = self.cls_layers[0].taps(projected[0], packing, columns)  # (N, H)
            h = _conv_stack(self.cls_layers, first, packing)  # (N, H)
        else:
            h = F.relu(projected[0] + self.cls_layers[0].bias, inplace=True)  # (N, H)
            for layer in self.cls_layers[1:]:
                h = F.relu(linear(h, layer.weight, layer.bias), inplace=True)
        h = dropout(h, self.dropout, self.training)  # on CPU a rand mask (layers.dropout)
        cas = linear(h, self.classifier.weight, self.classifier.bias)  # (N, K)
        if self.act_layers is None:
            return h, cas, None
        a = _conv_stack(self.act_layers, self.act_layers[0].taps(projected[1], packing, columns), packing)  # (N, H)
        return h, cas, self.act_head(a).squeeze(-1)  # (N,)


def _conv_stack(layers: nn.ModuleList, first: torch.Tensor, packing: Packing) -> torch.Tensor:
    """ReLU of the first conv's output `first` (N, H), then ReLU(conv) of each further layer on the real
    snippets only, so every conv sees zeros beyond each video's end as in a single-video forward."""
    x = F.relu(first, inplace=True)  # in place on the fresh tap sum
    for layer in layers[1:]:
        x = F.relu(layer.rows(x, packing), inplace=True)  # (N, H)
    return x


class TwoStreamNet(nn.Module):
    """RGB and flow streams on the two halves of the features, fused with learned weights (§2.1)."""

    def __init__(
        self,
        in_dim: int,
        n_outputs: int,
        hidden: int | None,
        dropout: float,
        actionness: bool,
        dilations: tuple[int, ...] | None,
    ):
        super().__init__()
        if in_dim % 2 != 0 or in_dim < 2:
            raise InputError(f"features: width {in_dim} is not even; SF-Net expects RGB ‖ flow halves")
        half = in_dim // 2
        hidden = hidden or half
        self.half = half
        self.rgb = Stream(half, hidden, n_outputs, dropout, actionness, dilations)
        self.flow = Stream(half, hidden, n_outputs, dropout, actionness, dilations)
        xavier_init_(self)
        self.cas_weights = nn.Parameter(torch.ones(2, n_outputs))  # (2, K): w_rgb, w_flow, init 1
        self.act_weights = nn.Parameter(torch.zeros(2)) if actionness else None  # v_rgb, v_flow, init 0

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> SFNetOutput:
        """features (B, T, D), mask (B, T) bool -> SFNetOutput."""
        packing = Packing(mask)
        # (N, D/2) real snippets of each half, each row-major (oneDNN's weight-gradient product reads them
        # transposed); padding never reaches a layer
        rgb, flow = packing.rows(features[..., : self.half]), packing.rows(features[..., self.half :])
        h_rgb, cas_rgb, act_rgb = self.rgb(rgb, packing)  # (N, H), (N, K), (N,)
        h_flow, cas_flow, act_flow = self.flow(flow, packing)
        cas = cas_rgb * self.cas_weights[0] + cas_flow * self.cas_weights[1]  # (N, K)
        acts = [None] * 3
        if act_rgb is not None:
            act = act_rgb * self.act_weights[0] + act_flow * self.act_weights[1]  # (N,)
            acts = [packing.scatter(a) for a in (act_rgb, act_flow, act)]  # (B, T) each
        cas_rgb, cas_flow, cas = (packing.scatter(c) for c in (cas_rgb, cas_flow, cas))  # (B, T, K) each
        return SFNetOutput(cas_rgb, cas_flow, cas, acts[0], acts[1], acts[2], (h_rgb, h_flow), packing)


# ----------------------------------------------------------------------------- video level (§2.2)


def video_loss(
    cas: torch.Tensor, mask: torch.Tensor, video_labels: torch.Tensor, topk_divisor: float, min_video_len: int
) -> torch.Tensor:
    """L_vid: CE of softmax(top-k mean over the valid length) vs y / sum(y), background label y_0 = 0.

    cas (B, T, K) logits, mask (B, T), video_labels (B, K). Videos shorter than `min_video_len` or with no
    action label are skipped; the loss is the mean over the others (0 if none).
    """
    lengths = mask.sum(1)  # (B,)
    target = video_labels.float().clone()
    target[:, 0] = 0.0  # background label 0
    n_positive = target.sum(1)  # (B,)
    used = (lengths >= min_video_len) & (n_positive > 0)  # (B,)
    k_max = math.ceil(cas.shape[1] / topk_divisor)  # static bound: no device sync
    pooled = masked_topk_mean(cas.float(), mask, topk_counts(lengths, topk_divisor, "ceil"), k_max)  # (B, K)
    ce = soft_cross_entropy(pooled, target / n_positive.clamp(min=1).unsqueeze(1))  # (B,)
    return masked_mean(ce, used)


def video_probabilities(output: SFNetOutput, mask: torch.Tensor, topk_divisor: float) -> torch.Tensor:
    """Video scores (B, K): mean over the RGB, flow and fused outputs of softmax(top-k mean of the CAS) —
    the reference code's classification score (it sums the three)."""
    k, k_max = topk_counts(mask.sum(1), topk_divisor, "ceil"), math.ceil(mask.shape[1] / topk_divisor)
    probs = [F.softmax(masked_topk_mean(cas.float(), mask, k, k_max), dim=-1) for cas, _ in output.streams()]
    return torch.stack(probs).mean(0)


# ----------------------------------------------------------------------------- construction and localization


def two_stream_net(options: Any, in_dim: int, n_classes: int, actionness: bool) -> TwoStreamNet:
    """The two-stream network of SF-Net's (or the weak baseline's) options: C+1 outputs, FC or conv branch."""
    dilations = tuple(options.conv_dilations) if options.conv_backbone else None
    return TwoStreamNet(in_dim, n_classes + 1, options.hidden, options.dropout, actionness, dilations)


def sfnet_detections(options: Any, cas: np.ndarray, actionness: np.ndarray | None, w_act: float) -> Detections:
    """SF-Net's localizer with the inference options SF-Net and the weak baseline share (adjust,
    class_topk_divisor, class_ratio, min_segment_len); cas (T, C+1), actionness (T,) or None."""
    return localize_sfnet(
        cas,
        actionness,
        w_act=w_act,
        adjust=options.adjust,
        class_topk_divisor=options.class_topk_divisor,
        class_ratio=options.class_ratio,
        min_segment_len=options.min_segment_len,
    )
