"""HR-Pro's networks, the official model code: the stage-1 S-model (reliability-aware attention blocks
over snippets and class prototypes, conv embedding, sigmoid classifier) and the stage-2 I-model (RoI-Align
features of each proposal -> completeness score and start / end regression), with their forward outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from pointtal.methods.layers import Packing, conv3_rows, conv3_weight, dropout, linear, matmul_t

if TYPE_CHECKING:
    from pointtal.methods.hrpro.method import Options


@dataclass
class SnippetOutput:
    """Stage-1 forward: fused CAS, class scores before fusion, embeddings; the inputs for `detect`."""

    cas: torch.Tensor  # (B, T, C+1) sigmoid; column 0 background b, columns 1..C the fused s_c * (1 - b)
    class_scores: torch.Tensor  # (B, T, C) s_c before fusion (top-k pooled into video scores)
    embedded: torch.Tensor  # (B, T, D) embedded snippet features
    features: torch.Tensor  # (B, T, D) the input features (the I-model pools them)
    mask: torch.Tensor  # (B, T) bool
    memory: torch.Tensor | None = None  # (B, C, D) the memory each video saw (memory_update "video"), else None


@dataclass
class InstanceOutput:
    """Stage-2 forward on a batch of proposals."""

    iou: torch.Tensor  # (B, M) predicted completeness (sigmoid)
    start_reg: torch.Tensor  # (B, M) start offset, in proposal widths
    end_reg: torch.Tensor  # (B, M) end offset, in proposal widths


# ----------------------------------------------------------------------------- stage 1 network
class _FoldedProjections(torch.autograd.Function):
    """One weight and bias for a block's queries, keys and values.

    The query path is two affine maps in a row, the 1x1 `query` projection (A_q, c_q) and the attention's
    query in-projection (W_q, b_q): W_q (A_q x + c_q) + b_q = (W_q A_q) x + (W_q c_q + b_q); the key path
    likewise; values pass the in-projection W_v alone. Forward: [W_q A_q; W_k A_k; W_v] (3D, D) and
    [W_q c_q + b_q; W_k c_k + b_k; b_v] (3D,). Backward writes each parameter's gradient once (autograd
    through slices of the in-projection would zero-fill a (3D, D) gradient per slice)."""

    @staticmethod
    def forward(ctx, w_in, b_in, a_q, c_q, a_k, c_k):  # w_in (3D, D), b_in (3D,), a_* (D, D), c_* (D,)
        d = a_q.shape[0]
        w_q, w_k = w_in[:d], w_in[d : 2 * d]
        ctx.save_for_backward(w_in, a_q, c_q, a_k, c_k)
        weight = torch.cat([matmul_t(w_q, a_q.t()), matmul_t(w_k, a_k.t()), w_in[2 * d :]])  # (3D, D)
        bias = torch.cat([torch.addmv(b_in[:d], w_q, c_q), torch.addmv(b_in[d : 2 * d], w_k, c_k), b_in[2 * d :]])
        return weight, bias

    @staticmethod
    def backward(ctx, grad_w: torch.Tensor, grad_b: torch.Tensor):  # (3D, D), (3D,)
        w_in, a_q, c_q, a_k, c_k = ctx.saved_tensors
        d = a_q.shape[0]
        g_q, g_k, gb_q, gb_k = grad_w[:d], grad_w[d : 2 * d], grad_b[:d], grad_b[d : 2 * d]
        w_q, w_k = w_in[:d], w_in[d : 2 * d]
        need = ctx.needs_input_grad
        grad_in = None
        if need[0]:  # d/dW_q of W_q A_q and W_q c_q: G_q A_q^T + gb_q c_q^T
            grad_in = torch.cat(
                [
                    matmul_t(g_q, a_q).addr_(gb_q, c_q),
                    matmul_t(g_k, a_k).addr_(gb_k, c_k),
                    grad_w[2 * d :],
                ]
            )  # (3D, D)
        grad_a_q = matmul_t(w_q.t(), g_q.t()) if need[2] else None  # W_q^T G_q (D, D)
        grad_a_k = matmul_t(w_k.t(), g_k.t()) if need[4] else None
        grad_c_q = w_q.t().mv(gb_q) if need[3] else None  # (D,)
        grad_c_k = w_k.t().mv(gb_k) if need[5] else None
        return grad_in, grad_b if need[1] else None, grad_a_q, grad_c_q, grad_a_k, grad_c_k


class ReliabilityAwareBlock(nn.Module):
    """Post-norm attention block whose queries and keys pass a 1x1 projection first (values do not)."""

    def __init__(self, dim: int, heads: int, feedforward: int, dropout: float, attention_dropout: float):
        super().__init__()
        self.query = nn.Linear(dim, dim)  # the official 1x1 Conv1d (same init distribution)
        self.key = nn.Linear(dim, dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=attention_dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, feedforward)
        self.linear2 = nn.Linear(feedforward, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """x (B, L, D), padding (B, L) True on keys to ignore -> (B, L, D)."""
        attended, _ = self.attention(self.query(x), self.key(x), x, key_padding_mask=padding, need_weights=False)
        x = self.norm1(x + self.dropout1(attended))
        return self.norm2(x + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(x))))))

    def folded_projections(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The query, key and value projections as one (3D, D) weight and (3D,) bias (`_FoldedProjections`).

        Folding costs two (D, D) x (D, D) products (four more backward) and saves two of the (R, D) x (D, D)
        products of each of the query and key paths, forward and backward, so it pays when R > D
        (`SnippetModel.step_weights`). The same values up to float rounding; float32 under autocast too."""
        att = self.attention
        with torch.autocast(att.in_proj_weight.device.type, enabled=False):
            return _FoldedProjections.apply(
                att.in_proj_weight, att.in_proj_bias, self.query.weight, self.query.bias, self.key.weight, self.key.bias
            )

    def rows(
        self,
        x: torch.Tensor,
        layout: list[tuple[torch.Tensor, torch.Tensor]],
        folded: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The block on packed tokens x (R, D): every token-wise layer runs on the R real tokens only, the
        attention per group of `layout` ((G, W) row index into x, any row on padding; (G, W) keep mask).
        Equals `forward` on each group padded (the same MultiheadAttention arithmetic: in-projection, scaled
        dot-product attention with dropout, out-projection). `folded`: `folded_projections()`, computed once
        by the caller (one product for q, k and v); None runs the query and key paths as two products each."""
        d = x.shape[1]
        att = self.attention
        heads = att.num_heads
        if folded is not None:
            q, k, v = linear(x, *folded).split(d, dim=1)  # (R, D) each, column slices of one (R, 3D) product
        else:
            w, b = att.in_proj_weight, att.in_proj_bias
            q = linear(linear(x, self.query.weight, self.query.bias), w[:d], b[:d])  # (R, D)
            k = linear(linear(x, self.key.weight, self.key.bias), w[d : 2 * d], b[d : 2 * d])
            v = linear(x, w[2 * d :], b[2 * d :])
        flat = torch.cat([index.flatten() for index, _ in layout])  # (sum G*W,) one gather for all groups
        sizes = [index.numel() for index, _ in layout]
        where, values = [], []
        groups = zip(layout, q[flat].split(sizes), k[flat].split(sizes), v[flat].split(sizes), strict=True)
        for (index, keep), *parts in groups:  # a loop over length groups (a handful per batch)
            g, width = index.shape
            qh, kh, vh = (z.view(g, width, heads, d // heads).transpose(1, 2) for z in parts)  # (G, h, W, d/h)
            y = F.scaled_dot_product_attention(
                qh, kh, vh, attn_mask=keep[:, None, None, :], dropout_p=att.dropout if self.training else 0.0
            )  # (G, h, W, d/h)
            where.append(index[keep])
            values.append(y.transpose(1, 2).reshape(g, width, d)[keep])  # (real tokens of the group, D)
        out = x.new_empty(x.shape[0], d).index_copy(0, torch.cat(where), torch.cat(values))  # every row written
        attended = linear(out, att.out_proj.weight, att.out_proj.bias)  # (R, D)
        x = self.norm1(x + dropout(attended, self.dropout1.p, self.training))
        hidden = dropout(F.relu(linear(x, self.linear1.weight, self.linear1.bias)), self.dropout.p, self.training)
        return self.norm2(
            x + dropout(linear(hidden, self.linear2.weight, self.linear2.bias), self.dropout2.p, self.training)
        )


def length_groups(lengths: torch.Tensor, ratio: float = 1.25) -> list[torch.Tensor]:
    """Indices of the videos of `lengths` (B,) in groups, longest first, each holding the videos at least
    1/ratio as long as its longest (so a group's padding costs at most ratio^2 of its attention)."""
    order = torch.argsort(lengths, descending=True, stable=True)
    ordered = lengths[order].tolist()
    groups, start = [], 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i] * ratio < ordered[start]:
            groups.append(order[start:i])
            start = i
    return groups


@dataclass
class StepWeights:
    """`SnippetModel.step_weights`: weights in the layout the S-model's forward multiplies by."""

    folded: list[tuple[torch.Tensor, torch.Tensor] | None]  # per block: (3D, D) q/k/v weight, (3D,) bias, or None
    embedding: torch.Tensor  # (H, 3D) the embedding conv's weight (`conv3_weight`)


class SnippetModel(nn.Module):
    """The S-model: attention over snippets + prototype tokens, conv embedding, sigmoid classifier."""

    def __init__(self, o: Options, dim: int, n_classes: int):
        super().__init__()
        self.prototype_tokens = o.prototype_tokens
        self.blocks = nn.ModuleList(
            ReliabilityAwareBlock(dim, o.num_heads, o.dim_feedforward, o.rab_dropout, o.attention_dropout)
            for _ in range(o.rab_layers)
        )
        self.embedding = nn.Conv1d(dim, dim, 3, padding=1)
        self.classifier_dropout = nn.Dropout(o.dropout)
        self.classifier = nn.Linear(dim, n_classes + 1, bias=False)  # column 0 = background
        self.register_buffer("prototypes", torch.zeros(n_classes, dim))  # (C, D) the reliable memory

    def tokens(self) -> torch.Tensor:
        """(C, D) prototype tokens: "code" reads the (C, D) memory as (D, C) (official `view`), "rows" as is."""
        c, d = self.prototypes.shape
        return self.prototypes.reshape(d, c).t() if self.prototype_tokens == "code" else self.prototypes

    def step_weights(self, n_tokens: int) -> StepWeights:
        """The weights in the layout the forward multiplies by, for forwards over n_tokens tokens in all (made
        once and shared by the per-video training forwards of a step): each block's folded q/k/v projections
        where folding pays (n_tokens > D, `ReliabilityAwareBlock.folded_projections`), else None; the embedding
        conv's (H, 3D) weight (`conv3_weight`)."""
        dim = self.embedding.weight.shape[1]
        folded = [block.folded_projections() if n_tokens > dim else None for block in self.blocks]
        return StepWeights(folded, conv3_weight(self.embedding.weight))

    def forward(
        self,
        features: torch.Tensor,
        mask: torch.Tensor,
        weights: StepWeights | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, T, D), mask (B, T) prefix masks -> embedded (B, T, D), sigmoid scores (B, T, C+1).

        Each video attends over its own snippets and the C prototype tokens. The token-wise layers (query /
        key / value projections, out-projection, feed-forward, norms) run on the real tokens only, packed;
        attention costs T^2 per video, so videos attend in groups of similar length (`length_groups`: a batch
        of 16 THUMOS14 videos padded to its longest does ~20x the work). The blocks have no positional
        encoding and mask padded keys, so a video's output depends on neither its group nor the batch. The
        embedding conv runs over the videos laid end to end with a zero row between them (`Packing(gap=True)`,
        `conv3_rows`: one product, no FLOPs on padding). `weights`: `step_weights` of the tokens of all the forwards
        that share them (the per-video training forwards of a step); None: made here for this forward's tokens."""
        b, t, d = features.shape
        lengths = mask.sum(1)  # (B,)
        start = torch.cumsum(lengths, 0) - lengths  # (B,) first packed row of each video
        packing = Packing(mask, gap=True)
        x = features.flatten(0, 1).index_select(0, packing.position)  # (N, D) real snippets, video by video
        n = x.shape[0]
        if weights is None:
            weights = self.step_weights(n + b * self.prototypes.shape[0])
        if len(self.blocks):
            tokens = self.tokens().to(x.dtype)  # (C, D)
            c = tokens.shape[0]
            x = torch.cat([x, tokens.repeat(b, 1)])  # (N + B*C, D): video b's tokens at N + b*C ..
            layout = []
            for rows in length_groups(lengths):  # (G,) videos of similar length
                width = int(lengths[rows].max()) + c
                slot = torch.arange(width, device=x.device).unsqueeze(0)  # (1, W)
                own = lengths[rows].unsqueeze(1)  # (G, 1)
                snippet = start[rows].unsqueeze(1) + slot  # snippets first, then the C tokens
                token = n + rows.unsqueeze(1) * c + (slot - own)
                keep = slot < own + c  # (G, W)
                index = torch.where(slot < own, snippet, torch.where(keep, token, 0))  # padding reads row 0 (masked)
                layout.append((index, keep))
            for block, fold in zip(self.blocks, weights.folded, strict=True):
                x = block.rows(x, layout, fold)
            x = x[:n]  # (N, D)
        seq = x.new_zeros(packing.n_rows, d).index_copy(0, packing.row, x)  # (L, D): a zero row between videos
        h = F.relu(conv3_rows(seq, weights.embedding, self.embedding.bias, packing), inplace=True)  # (L, D), zero gaps
        embedded = packing.scatter(h)  # (B, T, D), 0 on padding
        dropped = dropout(embedded, self.classifier_dropout.p, self.training)
        scores = torch.sigmoid(self.classifier(dropped))  # (B, T, C+1)
        return embedded, scores


# ----------------------------------------------------------------------------- stage 2 (I-model)
def roi_pool(
    features: torch.Tensor, lengths: torch.Tensor, proposals: torch.Tensor, bins: int, extension: float
) -> torch.Tensor:
    """RoI-Align features of proposals widened by `extension` on each side (torchvision's roi_align on the
    (D, T, 1) map, aligned=False, adaptive sampling, as the official code with its zero padding).

    features (B, T, D), lengths (B,) real snippets, proposals (B, M, 2) snippet units -> (B, M, bins, D).
    Bin j of a proposal averages G = ceil(h / bins) linearly interpolated samples at y0 + (j + (i + 0.5) / G) h
    / bins, y0 = start - extension * width - 0.5, h = max((1 + 2 extension) width, 1); snippets outside the
    video are zeros. One sparse (M bins, T) x (T, D) product: no (samples, D) tensor is materialised.
    """
    b, t, d = features.shape
    m = proposals.shape[1]
    with torch.no_grad(), torch.autocast(features.device.type, enabled=False):
        props = proposals.float().reshape(-1, 2)  # (P, 2)
        width = props[:, 1] - props[:, 0]
        y0 = props[:, 0] - extension * width - 0.5
        height = torch.clamp((props[:, 1] + extension * width - 0.5) - y0, min=1.0)
        bin_h = height / bins
        grid = torch.ceil(height / bins).long().clamp(min=1)  # (P,) samples per bin
        per_prop = grid * bins
        pid = torch.repeat_interleave(torch.arange(len(props), device=features.device), per_prop)  # (S,)
        first = torch.cumsum(per_prop, 0) - per_prop
        j = torch.arange(len(pid), device=features.device) - first[pid]
        g = grid[pid]
        which_bin, sample = j // g, j % g
        y = y0[pid] + which_bin * bin_h[pid] + (sample + 0.5) * bin_h[pid] / g
        low = torch.floor(y)
        frac = y - low
        low = low.long()
        video = pid // m
        rows = torch.cat([low, low + 1])
        weight = torch.cat([1 - frac, frac]) / torch.cat([g, g]).float()
        out_row = torch.cat([pid * bins + which_bin] * 2)
        vid = torch.cat([video, video])
        inside = (rows >= 0) & (rows < lengths.to(rows.device)[vid]) & (weight != 0)
        matrix = torch.sparse_coo_tensor(
            torch.stack([out_row[inside], vid[inside] * t + rows[inside]]),
            weight[inside],
            (len(props) * bins, b * t),
            check_invariants=False,
        ).coalesce()  # (P * bins, B * T), indices in range
        pooled = torch.sparse.mm(matrix, features.float().reshape(b * t, d))  # (P * bins, D)
    return pooled.view(b, m, bins, d)


def _mlp(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))


class InstanceModel(nn.Module):
    """The I-model (boundary-completeness regressor): start / centre / end RoI parts -> completeness, offsets."""

    def __init__(self, dim: int, dropout: float, roi_size: int, extension: float):
        super().__init__()
        self.roi_size = roi_size
        self.extension = extension
        self.start_reg = _mlp(dim, dim // 2)
        self.end_reg = _mlp(dim, dim // 2)
        self.fusion = nn.Sequential(nn.Linear(3 * dim, dim), nn.ReLU(), nn.Dropout(dropout))
        self.completeness = _mlp(dim, dim // 2)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, proposals: torch.Tensor) -> InstanceOutput:
        """features (B, T, D), lengths (B,), proposals (B, M, 2) -> InstanceOutput of (B, M) tensors."""
        roi = roi_pool(features, lengths, proposals, self.roi_size, self.extension).to(features.dtype)
        edge = self.roi_size // 6
        start = roi[:, :, :edge].amax(2)  # (B, M, D)
        centre = roi[:, :, edge : edge * 5].amax(2)
        end = roi[:, :, edge * 5 :].amax(2)
        fused = self.fusion(torch.cat([centre - start, centre, centre - end], -1))  # (B, M, D)
        return InstanceOutput(
            torch.sigmoid(self.completeness(fused)[..., 0]), self.start_reg(start)[..., 0], self.end_reg(end)[..., 0]
        )


def refine(proposals: torch.Tensor, start_reg: torch.Tensor, end_reg: torch.Tensor) -> torch.Tensor:
    """Boundaries moved by the regressed offsets, in proposal widths: (B, M, 2)."""
    width = proposals[..., 1] - proposals[..., 0]
    return torch.stack([proposals[..., 0] + start_reg * width, proposals[..., 1] + end_reg * width], -1)
