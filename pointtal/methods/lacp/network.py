"""LACP's network, the official model.py: a kernel-3 temporal conv embedding and a 1x1 classifier giving the
sigmoid CAS (background first), the fused CAS, and the top-k video scores of the MIL head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from pointtal.methods.layers import Packing, conv3_rows, dropout, linear, topk_counts, topk_or_mean

if TYPE_CHECKING:
    pass


# ----------------------------------------------------------------------------- network (model.py)


@dataclass
class LACPOutput:
    """Forward result (padded positions hold junk)."""

    cas: torch.Tensor  # (B, T, K) sigmoid CAS, column 0 = background (not fused)
    embedded: torch.Tensor  # (L, H) embedding after ReLU, before dropout: the real snippets' rows, zero gap rows
    packing: Packing  # where snippet (b, t) sits in `embedded`

    @property
    def column(self) -> torch.Tensor:
        """(B*T,) long: the row of `embedded` holding snippet (b, t) (-1 on padding)."""
        return self.packing.slot

    @property
    def fused(self) -> torch.Tensor:
        return fuse(self.cas)

    @property
    def features(self) -> torch.Tensor:
        """(B, T, H) embedding, zeros on padding (scattered on demand; the feature loss reads `embedded`)."""
        return self.packing.scatter(self.embedded)


def fuse(cas: torch.Tensor) -> torch.Tensor:
    """(B, T, K) sigmoid CAS -> fused: action columns times 1 - P(background), background column kept."""
    bg = cas[..., :1]
    return torch.cat([bg, cas[..., 1:] * (1 - bg)], dim=-1)


class LACPNet(nn.Module):
    """Conv1d(D -> H, k=3, pad 1) + ReLU, dropout, Conv1d(H -> K, k=1, no bias); PyTorch default init.

    Computed on the batch's real snippets only, with a zero row between videos (`Packing(gap=True)`): the kernel-3
    conv is one (L, 3D) x (3D, H) product on the unfolded view of those rows (`layers.conv3_rows`: oneDNN on
    CPU), which equals the Conv1d of each video alone; padding costs no FLOPs (a quarter of a batch of T/2..T
    videos)."""

    def __init__(self, in_dim: int, hidden: int, n_outputs: int, dropout: float):
        super().__init__()
        self.embed = nn.Conv1d(in_dim, hidden, kernel_size=3, padding=1)
        self.classifier = nn.Conv1d(hidden, n_outputs, kernel_size=1, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> LACPOutput:
        """features (B, T, D), mask (B, T) -> cas (B, T, K) and the embedding of the real snippets."""
        packing = Packing(mask, gap=True)
        rows = packing.rows(features)  # (L, D): real snippets, a zero row before each video and after the last
        h = F.relu(conv3_rows(rows, self.embed.weight, self.embed.bias, packing), inplace=True)  # (L, H), zero gaps
        dropped = dropout(h, self.dropout.p, self.training)  # (L, H)
        logits = linear(dropped, self.classifier.weight[:, :, 0].to(h.dtype))  # (L, K): classes, bg last
        cas = torch.sigmoid(torch.cat([logits[:, -1:], logits[:, :-1]], dim=-1).float())  # (L, K) bg first
        return LACPOutput(packing.scatter(cas), h, packing)


def video_scores(cas: torch.Tensor, mask: torch.Tensor, r_act: int, labels: torch.Tensor | None = None) -> torch.Tensor:
    """(B, C) video scores from the un-fused sigmoid CAS (B, T, K): top-k mean, k = max(1, T_i // r_act); in
    training (labels (B, C)) the official code uses the mean over all snippets for the classes absent from the
    video (`layers.topk_or_mean`, shared with HR-Pro)."""
    k = topk_counts(mask.sum(1), r_act, "floor")  # (B,)
    return topk_or_mean(cas[..., 1:], mask, k, labels, max(mask.shape[1] // r_act, 1))
