"""ActionFormer's network: conv embedding, a transformer stem and a down-sampling transformer pyramid with local
windowed attention, and the classification / regression heads shared by every pyramid level.

Layout: (B, C, T) inside the network (channels first, as 1-D convolutions want), `mask` (B, T) bool.

Padding never reaches a real position: every convolution zeroes its input at padded positions first, attention
ignores padded keys, and the outputs at padded positions are zeroed. A video's outputs are therefore those of
the video followed by zeros at every layer, whatever its batch pads it to (the official code lets the
LayerNorm bias at padded positions into the boundary convolutions; a video's results there depended on whether
it was padded at all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def local_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor, half: int
) -> torch.Tensor:
    """Each query t attends to the real keys t' with |t - t'| <= half; cost O(T x window), no T x T matrix.

    q, k, v (B, H, T, c) with q already scaled; key_mask (B, T) bool. Queries are taken in chunks of
    Q = 2 * half; a chunk's keys are the Q + 2 * half around it, so the scores are (B, H, T / Q, Q, Q + 2 * half).
    Returns (B, H, T, c); a query without any real key in its window gets 0.
    """
    b, h, t, c = q.shape
    size = max(2 * half, 1)  # Q
    padded = math.ceil(t / size) * size
    n = padded // size
    span = size + 2 * half
    q = F.pad(q, (0, 0, 0, padded - t)).view(b, h, n, size, c)  # (B, H, n, Q, c)
    k = F.pad(k, (0, 0, half, padded - t + half)).unfold(2, span, size)  # (B, H, n, c, Q+2h)
    v = F.pad(v, (0, 0, half, padded - t + half)).unfold(2, span, size)  # (B, H, n, c, Q+2h)
    keys = F.pad(key_mask, (half, padded - t + half)).unfold(1, span, size)  # (B, n, Q+2h)
    offset = torch.arange(span, device=q.device)[None, :] - torch.arange(size, device=q.device)[:, None]
    band = (offset >= 0) & (offset <= 2 * half)  # (Q, Q+2h): key j of the chunk is within half of query i
    allowed = band[None, None] & keys[:, :, None, :]  # (B, n, Q, Q+2h)
    scores = q @ k  # (B, H, n, Q, Q+2h)
    scores = scores.masked_fill(~allowed[:, None], torch.finfo(scores.dtype).min)
    weights = scores.softmax(-1) * allowed[:, None]  # a query with no allowed key: all zeros
    out = weights @ v.transpose(-1, -2)  # (B, H, n, Q, c)
    return out.reshape(b, h, padded, c)[:, :, :t]


def down_mask(mask: torch.Tensor, stride: int) -> torch.Tensor:
    """(B, T) -> (B, ceil(T / stride)): position j of the coarser level stands for position j * stride."""
    return mask[:, ::stride]


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of (B, C, T)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))  # (C,)
        self.bias = nn.Parameter(torch.zeros(channels))  # (C,)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.transpose(1, 2), x.shape[1:2], self.weight, self.bias, self.eps).transpose(1, 2)


class Pointwise(nn.Linear):
    """A 1x1 convolution of (B, C, T) as one matmul (PyTorch's CPU kernel-1 Conv1d takes a slow im2col path);
    nn.Linear's initialisation is that of a kernel-1 Conv1d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, T) -> (B, C_out, T)
        out = torch.matmul(self.weight, x)
        return out if self.bias is None else out + self.bias[:, None]


class MaskedConv(nn.Module):
    """1-D convolution (odd kernel, 'same' padding) that reads zeros at padded positions and writes zeros there."""

    def __init__(self, in_dim: int, out_dim: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = True):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(in_dim, out_dim, kernel, stride, kernel // 2, groups=groups, bias=bias)
        if bias:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out_mask = down_mask(mask, self.stride)
        out = self.conv(x * mask[:, None, :].to(x.dtype))  # (B, C_out, T / stride)
        return out * out_mask[:, None, :].to(out.dtype), out_mask


class LayerScaleDropPath(nn.Module):
    """Per-channel scale (initialised to 1e-4) then stochastic depth: a sample's branch is dropped with
    probability `p` in training and the kept ones scaled by 1 / (1 - p)."""

    def __init__(self, channels: int, p: float, init: float = 1e-4):
        super().__init__()
        self.scale = nn.Parameter(torch.full((channels,), init))  # (C,)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.scale[None, :, None]
        if not self.training or self.p == 0:
            return x
        keep = torch.floor(1 - self.p + torch.rand(x.shape[0], 1, 1, dtype=x.dtype, device=x.device))  # (B, 1, 1)
        return x / (1 - self.p) * keep


class WindowAttention(nn.Module):
    """Multi-head local attention whose queries, keys and values pass a depthwise convolution (stride `stride`,
    so the block can down-sample) and a LayerNorm before their 1x1 projections."""

    def __init__(self, dim: int, heads: int, window: int, stride: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError("width must be a multiple of heads")
        kernel = stride + 1 if stride > 1 else 3
        self.heads, self.half = heads, window // 2
        self.convs = nn.ModuleList(MaskedConv(dim, dim, kernel, stride, groups=dim, bias=False) for _ in range(3))
        self.norms = nn.ModuleList(ChannelNorm(dim) for _ in range(3))
        self.projections = nn.ModuleList(Pointwise(dim, dim) for _ in range(3))  # query, key, value
        self.out = Pointwise(dim, dim)
        self.drop = nn.Dropout(dropout)

    def split(self, y: torch.Tensor) -> torch.Tensor:  # (B, C, T') -> (B, H, T', C / H)
        return y.view(y.shape[0], self.heads, y.shape[1] // self.heads, -1).transpose(2, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, _ = x.shape
        layers = zip(self.convs, self.norms, self.projections, strict=True)
        q, k, v = (proj(norm(conv(x, mask)[0])) for conv, norm, proj in layers)  # (B, C, T') each
        out_mask = down_mask(mask, self.convs[0].stride)
        scale = (c // self.heads) ** -0.5
        out = local_attention(self.split(q) * scale, self.split(k), self.split(v), out_mask, self.half)  # (B, H, T', c)
        out = out.transpose(2, 3).reshape(b, c, -1)  # (B, C, T')
        return self.drop(self.out(out)) * out_mask[:, None, :].to(out.dtype), out_mask


class TransformerBlock(nn.Module):
    """The official block: x -> pool(x) + attention(LN(x)), then + MLP(LN(.)), both branches with layer scale
    and drop-path; `stride` 2 halves the length (max-pool on the skip path)."""

    def __init__(self, dim: int, heads: int, window: int, stride: int, dropout: float, drop_path: float):
        super().__init__()
        self.norm1, self.norm2 = ChannelNorm(dim), ChannelNorm(dim)
        self.attention = WindowAttention(dim, heads, window, stride, dropout)
        self.pool = nn.MaxPool1d(stride + 1, stride, (stride + 1) // 2) if stride > 1 else nn.Identity()
        self.mlp = nn.Sequential(
            Pointwise(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), Pointwise(4 * dim, dim), nn.Dropout(dropout)
        )
        self.path_attention = LayerScaleDropPath(dim, drop_path)
        self.path_mlp = LayerScaleDropPath(dim, drop_path)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attended, out_mask = self.attention(self.norm1(x), mask)
        keep = out_mask[:, None, :].to(x.dtype)  # (B, 1, T')
        out = self.pool(x * mask[:, None, :].to(x.dtype)) * keep + self.path_attention(attended)
        return out + self.path_mlp(self.mlp(self.norm2(out)) * keep), out_mask


class Backbone(nn.Module):
    """Conv embedding (kernel 3, LayerNorm, ReLU), stem blocks at full rate, then one down-sampling block per
    further pyramid level. Returns the levels' features (B, C, T / 2^l) and masks (B, T / 2^l)."""

    def __init__(
        self,
        in_dim: int,
        dim: int,
        embed_layers: int,
        embed_kernel: int,
        stem_layers: int,
        pyramid_layers: int,
        scale: int,
        heads: int,
        window: int,
        dropout: float,
        drop_path: float,
    ):
        super().__init__()
        self.embed = nn.ModuleList(
            MaskedConv(in_dim if i == 0 else dim, dim, embed_kernel, bias=False) for i in range(embed_layers)
        )
        self.embed_norms = nn.ModuleList(ChannelNorm(dim) for _ in range(embed_layers))
        self.stem = nn.ModuleList(
            TransformerBlock(dim, heads, window, 1, dropout, drop_path) for _ in range(stem_layers)
        )
        self.pyramid = nn.ModuleList(
            TransformerBlock(dim, heads, window, scale, dropout, drop_path) for _ in range(pyramid_layers)
        )
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Linear)) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        for conv, norm in zip(self.embed, self.embed_norms, strict=True):
            x = torch.relu(norm(conv(x, mask)[0]))
        for block in self.stem:
            x, mask = block(x, mask)
        features, masks = [x], [mask]
        for block in self.pyramid:
            x, mask = block(x, mask)
            features.append(x)
            masks.append(mask)
        return features, masks


class Head(nn.Module):
    """Convolutions (kernel k, LayerNorm, ReLU) then an output convolution, shared by all pyramid levels."""

    def __init__(self, dim: int, hidden: int, out_dim: int, layers: int, kernel: int):
        super().__init__()
        self.convs = nn.ModuleList(
            MaskedConv(dim if i == 0 else hidden, hidden, kernel, bias=False) for i in range(layers - 1)
        )
        self.norms = nn.ModuleList(ChannelNorm(hidden) for _ in range(layers - 1))
        self.out = MaskedConv(hidden, out_dim, kernel)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = torch.relu(norm(conv(x, mask)[0]))
        return self.out(x, mask)[0]


@dataclass
class DetectorOutput:
    """The heads' outputs over all pyramid levels, concatenated level by level (P points in all)."""

    logits: torch.Tensor  # (B, P, C) classification logits
    offsets: torch.Tensor  # (B, P, 2) distances to start / end, in units of the point's level stride (>= 0)
    mask: torch.Tensor  # (B, P) bool, real points
    lengths: tuple[int, ...]  # points per level (padded length / 2^l)


class ActionFormerNet(nn.Module):
    """Backbone, per-level LayerNorm (the identity neck), classification head with prior bias and regression
    head with a learnable scale per level."""

    def __init__(self, in_dim: int, n_classes: int, o) -> None:
        super().__init__()
        self.input_drop = nn.Dropout1d(o.input_dropout)  # whole feature channels (OpenTAD: 0.2)
        self.backbone = Backbone(
            in_dim,
            o.embed_dim,
            o.embed_layers,
            o.embed_kernel,
            o.stem_layers,
            o.pyramid_layers,
            o.scale,
            o.heads,
            o.window,
            o.dropout,
            o.drop_path,
        )
        levels = o.pyramid_layers + 1
        self.neck = nn.ModuleList(ChannelNorm(o.embed_dim) for _ in range(levels))
        self.classify = Head(o.embed_dim, o.head_dim, n_classes, o.head_layers, o.head_kernel)
        self.regress = Head(o.embed_dim, o.head_dim, 2, o.head_layers, o.head_kernel)
        self.level_scales = nn.Parameter(torch.ones(levels))  # (L,) one learnable scale per level
        nn.init.constant_(self.classify.out.conv.bias, -math.log((1 - o.prior) / o.prior))
        self.divisor = o.scale**o.pyramid_layers  # the padded length must divide by this

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> DetectorOutput:
        """features (B, T, D), mask (B, T); T is padded up to a multiple of `divisor` here."""
        t = features.shape[1]
        padded = math.ceil(t / self.divisor) * self.divisor
        x = self.input_drop(F.pad(features, (0, 0, 0, padded - t)).transpose(1, 2))  # (B, D, T')
        mask = F.pad(mask, (0, padded - t))  # (B, T')
        levels, masks = self.backbone(x, mask)
        logits, offsets = [], []
        for level, (feature, level_mask) in enumerate(zip(levels, masks, strict=True)):
            feature = self.neck[level](feature)
            logits.append(self.classify(feature, level_mask).transpose(1, 2))  # (B, T_l, C)
            offsets.append(torch.relu(self.level_scales[level] * self.regress(feature, level_mask)).transpose(1, 2))
        return DetectorOutput(
            torch.cat(logits, 1), torch.cat(offsets, 1), torch.cat(masks, 1), tuple(m.shape[1] for m in masks)
        )
