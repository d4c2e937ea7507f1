"""Small layers and loss helpers shared by the methods (batched, padding-aware, no Python loops over videos).

Shapes: B videos, T snippets (padded), D/H channel widths, K = C+1 classes (column 0 = background).
Every helper that reduces over time takes the `(B, T)` bool `mask` (True on real snippets) so padding never
reaches a loss.

Contents:
  * `xavier_init_(module)`                 - Xavier-uniform weights, zero biases (Linear, Conv1d, TemporalConv)
  * `TemporalConv`                         - "same" zero-padded temporal convolution on (B, T, D) tensors,
                                             or on a batch's real snippets only (`rows`, `taps`)
  * `Packing(mask, gap)`                   - (B, T, D) <-> (N, D) real snippets and their temporal neighbours,
                                             so padding costs neither FLOPs nor memory traffic (66-71% of a
                                             padded THUMOS14 training batch, 72% of a test batch is padding)
  * `Packing(mask, gap=True)`, `conv3_rows` - the same rows with a zero row between runs, so that a kernel-3
                                             conv is one product on an unfolded view (no tap sum, no copy)
  * `project(layers, rows)`                - the input products of several layers that read the same rows
  * `linear(x, weight, bias)`              - F.linear; float32 on CPU through oneDNN (about twice torch's
                                             MKL sgemm rate on AMD CPUs), same arithmetic
  * `topk_counts(lengths, divisor, rounding)` - k = ceil or floor of T_i / divisor, at least 1, per video
                                             (each method passes its paper's rounding)
  * `masked_topk_mean(x, mask, k, k_max)`  - per-video, per-class mean of the k_i largest values over time
  * `topk_or_mean(x, mask, k, labels)`     - video scores: top-k mean; in training, absent classes the mean
  * `soft_cross_entropy(logits, target)`   - -sum(target * log_softmax(logits)) over the last axis
  * `masked_mean(values, mask)`            - mean over the True entries (0 when there are none), no NaN
  * `select_hardest(scores, pool, count)`  - the `count` highest-scoring pool entries of a whole batch
  * `dropout(x, p, training)`              - F.dropout; on CPU a torch.rand mask (3x faster than bernoulli_)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


def xavier_init_(module: nn.Module) -> None:
    """Xavier-uniform init of every Linear / Conv1d / TemporalConv weight in `module`, zero biases."""
    for layer in module.modules():
        if isinstance(layer, TemporalConv):
            layer.reset_parameters(xavier=True)
        elif isinstance(layer, (nn.Linear, nn.Conv1d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class _ShiftSum(torch.autograd.Function):
    """y[:, t] = sum_j z[:, t + (j - c) * d, j] with zeros outside [0, T): the tap sum of a temporal conv.

    Written as a Function so the backward is one buffer write instead of autograd's pad/slice chain.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, dilation: int) -> torch.Tensor:  # z (B, T, k, H)
        kernel = z.shape[2]
        ctx.dilation, ctx.kernel = dilation, kernel
        center = kernel // 2
        y = z[:, :, center].clone()  # (B, T, H)
        for j in range(kernel):
            shift = (j - center) * dilation
            if j == center or abs(shift) >= z.shape[1]:
                continue
            if shift < 0:  # tap j reads the snippet `-shift` steps earlier
                y[:, -shift:] += z[:, :shift, j]
            else:
                y[:, :-shift] += z[:, shift:, j]
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):  # grad_y (B, T, H)
        return _shift_sum_backward(grad_y, ctx.kernel, ctx.dilation), None


def _shift_sum_backward(grad_y: torch.Tensor, kernel: int, dilation: int) -> torch.Tensor:
    """Gradient of `_ShiftSum` w.r.t. z: each tap receives grad_y shifted back by its offset (zeros beyond)."""
    b, t, h = grad_y.shape
    center = kernel // 2
    grad_z = grad_y.new_empty(b, t, kernel, h)  # (B, T, k, H), every element written below
    for j in range(kernel):
        shift = (j - center) * dilation
        if abs(shift) >= t:
            grad_z[:, :, j] = 0
        elif shift == 0:
            grad_z[:, :, j] = grad_y
        elif shift < 0:
            grad_z[:, :shift, j] = grad_y[:, -shift:]
            grad_z[:, shift:, j] = 0
        else:
            grad_z[:, shift:, j] = grad_y[:, :-shift]
            grad_z[:, :shift, j] = 0
    return grad_z


class TemporalConv(nn.Module):
    """Temporal convolution with zero "same" padding on time-major (B, T, D) tensors -> (B, T, H).

    Equivalent to `nn.Conv1d(D, H, kernel, padding=dilation * (kernel // 2), dilation=dilation)` applied to
    `x.transpose(1, 2)`, computed as one matmul `x @ W` to (B, T, kernel*H) followed by a shifted tap sum.
    That keeps the (B, T, D) layout the rest of the network uses (no transposes) and runs at matmul speed.
    The weight is stored as (D, kernel, H) so `W` is a view (Conv1d's (H, D, kernel) weight is
    `weight.permute(2, 0, 1)`); init follows Conv1d's fan-in/out. Zero the padded snippets of `x`
    beforehand so a video's edge sees zeros exactly as in a single-video forward. `kernel` must be odd.
    """

    def __init__(self, in_dim: int, out_dim: int, kernel: int = 3, dilation: int = 1, bias: bool = True):
        super().__init__()
        if kernel % 2 != 1 or dilation < 1:
            raise ValueError(f"TemporalConv: kernel must be odd and dilation >= 1, got {kernel}, {dilation}")
        self.kernel = kernel
        self.dilation = dilation
        self.weight = nn.Parameter(torch.empty(in_dim, kernel, out_dim))  # (D, k, H)
        self.bias = nn.Parameter(torch.empty(out_dim)) if bias else None
        self.reset_parameters()

    def reset_parameters(self, xavier: bool = False) -> None:
        """Conv1d's default init (uniform +-1/sqrt(fan_in)), or Xavier-uniform weights and zero biases."""
        in_dim, kernel, out_dim = self.weight.shape
        fan_in, fan_out = in_dim * kernel, out_dim * kernel
        bound = math.sqrt(6.0 / (fan_in + fan_out)) if xavier else 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            if xavier:
                nn.init.zeros_(self.bias)
            else:
                nn.init.uniform_(self.bias, -1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (B, T, D)
        b, t, in_dim = x.shape
        out_dim = self.weight.shape[2]
        z = torch.matmul(x, self.weight.view(in_dim, self.kernel * out_dim))  # (B, T, k*H)
        y = _ShiftSum.apply(z.view(b, t, self.kernel, out_dim), self.dilation)  # (B, T, H), a fresh tensor
        return y if self.bias is None else y.add_(self.bias)  # in place: the tap sum saves nothing

    def rows(self, rows: torch.Tensor, packing: Packing) -> torch.Tensor:
        """The conv of a batch given only its real snippets: rows (N, D) = `packing.rows(x)` -> (N, H), equal to
        `forward(x)` on the real snippets of the zero-padded x; nothing is computed on padding."""
        return self.taps(linear(rows, self.weight.flatten(1).t()), packing)

    def taps(self, projected: torch.Tensor, packing: Packing, grad_columns: bool = False) -> torch.Tensor:
        """Tap sum and bias of projected real snippets (N, k*H) (`rows @ W`, see `project`) -> (N, H).
        `grad_columns`: hand `projected` its gradient column-major on CPU (a (k*H, N) row-major block seen
        transposed), the layout the weight-gradient product reads; for projections of rows that need no gradient
        (the network's input), where nothing else reads it."""
        shifts = [(j - self.kernel // 2) * self.dilation for j in range(self.kernel)]
        z = projected.unflatten(-1, (self.kernel, -1))  # (N, k, H)
        y = _PackedTaps.apply(z, packing, shifts, grad_columns)  # (N, H), fresh
        return y if self.bias is None else y.add_(self.bias)

    def extra_repr(self) -> str:
        in_dim, kernel, out_dim = self.weight.shape
        return f"{in_dim}, {out_dim}, kernel={kernel}, dilation={self.dilation}"


class Packing:
    """Where the real snippets of a padded batch go when packed into rows, in mask order.

    mask (B, T) bool, True on real snippets (any pattern, not only a prefix): N real snippets in R runs (a video,
    or each piece of one cut by padding).
      * gap=False: L = N rows, row n the n-th real snippet (`rows(x)` is `x[mask]`); `neighbours` / `misplaced`
        give the temporal neighbours that `TemporalConv.rows` / `taps` read (SF-Net).
      * gap=True: L = N + R + 1 rows, one zero row before every run and one after the last. A kernel-3 conv then
        reads each row's neighbours at rows r - 1 and r + 1 with zeros past every run's ends, exactly as Conv1d
        on each video alone, and its unfolded input (L - 2, 3D) is a strided view of the rows with no copy
        (`conv3_rows`: no tap sum, no (N, 3H) intermediate; LACP, HR-Pro). `neighbours` / `misplaced` refuse.

    `position` (N,) flat index b*T + t of each real snippet, `row` (N,) its row, `n_rows` L, `slot` (B*T,) each
    snippet's row (-1 on padding), `source` (L,) the flat snippet each row copies (0 on gaps, then zeroed), `gaps`
    (R + 1,) the zero rows (empty for gap=False). Built once per forward: its `nonzero` is the network's only host
    synchronisation on CUDA (N sizes every packed tensor; gap=True adds two: L and `gaps`); the indices
    `neighbours` derives are cached, so the layers index without boolean masks and without syncs.
    """

    def __init__(self, mask: torch.Tensor, gap: bool = False):
        b, t = mask.shape
        self.mask, self.gap = mask, gap
        real = mask.flatten()  # (B*T,)
        self.position = real.nonzero().squeeze(1)  # (N,) flat index b*T + t of each real snippet, in order
        n = self.position.numel()
        self.row = torch.arange(n, device=mask.device)  # (N,) each real snippet's row
        self.n_rows = n
        if gap:
            follows_real = torch.zeros_like(real)  # (B*T,) the snippet before is real, in the same video
            follows_real.view(b, t)[:, 1:] = mask[:, :-1]
            starts = (real & ~follows_real).long().cumsum(0)  # (B*T,) runs begun up to each snippet
            self.row += starts[self.position]
            self.n_rows = n + (int(starts[-1]) if starts.numel() else 0) + 1
        self.slot = torch.full((b * t,), -1, dtype=torch.long, device=mask.device)  # (B*T,) row or -1
        self.slot[self.position] = self.row
        self.source, self.gaps = self.position, self.position.new_empty(0)  # (L,), (0,)
        if gap:
            self.source = self.position.new_zeros(self.n_rows).index_copy_(0, self.row, self.position)  # (L,)
            is_gap = torch.ones(self.n_rows, dtype=torch.bool, device=mask.device)  # (L,)
            is_gap[self.row] = False
            self.gaps = is_gap.nonzero().squeeze(1)  # (R + 1,) the zero rows
        self._neighbours: dict[tuple[int, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}
        self._misplaced: dict[int, torch.Tensor] = {}

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, D) -> (L, D): the real snippets in mask order (with gaps: a zero row before each run and after
        the last)."""
        rows = x.flatten(0, 1).index_select(0, self.source)  # (L, D)
        return rows.index_fill_(0, self.gaps, 0) if self.gap else rows

    def scatter(self, rows: torch.Tensor) -> torch.Tensor:
        """Inverse of `rows`: rows (L, ...) -> (B, T, ...) with zeros on padding (gap rows are dropped)."""
        b, t = self.mask.shape
        real = rows.index_select(0, self.row) if self.gap else rows  # (N, ...)
        out = rows.new_zeros(b * t, *rows.shape[1:]).index_copy(0, self.position, real)  # (B*T, ...)
        return out.unflatten(0, (b, t))

    def neighbours(self, shift: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Row n's neighbour `shift` snippets later in its own video: source (N,) long packed row (n itself
        where that snippet is padding or outside the video) and weight (N, 1) of `dtype`, 1 where it is real.
        gap=False only (a gapped packing's conv is `conv3_rows`): ValueError otherwise."""
        if self.gap:
            raise ValueError("Packing.neighbours: not defined for a gapped packing (gap=True); use conv3_rows")
        key = (shift, dtype)
        if key not in self._neighbours:
            b, t = self.mask.shape
            time = self.position % t + shift  # (N,)
            inside = (time >= 0) & (time < t)
            source = self.slot[(self.position + shift).clamp(0, b * t - 1)]
            real = inside & (source >= 0)
            rows = torch.arange(self.position.numel(), device=self.position.device)
            self._neighbours[key] = (torch.where(real, source, rows), real.unsqueeze(1).to(dtype))
        return self._neighbours[key]

    def misplaced(self, shift: int) -> torch.Tensor:
        """(M,) long: the rows n whose neighbour `shift` snippets later is not the real row n + shift (a video's
        edge, padding, a hole); every other row's neighbour is simply row n + shift. A host sync (`nonzero`).
        gap=False only, as `neighbours`."""
        if shift not in self._misplaced:
            source, weight = self.neighbours(shift, torch.float32)
            rows = torch.arange(source.numel(), device=source.device)
            self._misplaced[shift] = ((source != rows + shift) | (weight.squeeze(1) == 0)).nonzero().squeeze(1)
        return self._misplaced[shift]


class _PackedTaps(torch.autograd.Function):
    """y[n] = sum_j w_j[n] * z[source_j[n], j]: the tap sum of a temporal conv on packed rows (see `Packing`).

    z (N, k, H) -> (N, H). Row n's tap j reads the snippet `shifts[j]` steps away in its own video, zero where
    that is padding or outside the video, exactly as the zero-padded (B, T) tap sum does, with the same
    additions in the same order. The backward is the same sum read the other way: tap j's source is tap -j's
    reader. On CPU each tap is one shifted slice of all rows (row n reads row n + shift) and only the few rows
    where that is wrong (`Packing.misplaced`: video edges, holes) are recomputed by gathers, bit for bit the
    same; elsewhere every row gathers (no host sync).
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, packing: Packing, shifts: list[int], grad_columns: bool = False) -> torch.Tensor:
        ctx.packing, ctx.shifts, ctx.grad_columns = packing, shifts, grad_columns
        center = shifts.index(0)
        if z.device.type != "cpu":
            return _gathered_taps(z, packing, shifts, None)
        if len(shifts) == 1:
            return z[:, center].clone()
        y = z.new_empty(z.shape[0], z.shape[2])  # (N, H); rows no slice writes are misplaced, written below
        first = True
        for j, shift in enumerate(shifts):
            if shift == 0:
                continue
            # row n reads row n + shift: readers z[lo:hi], sources z[lo + shift:hi + shift]
            lo = max(0, -shift)
            hi = max(lo, z.shape[0] - max(0, shift))
            if first:  # center + first tap in one pass
                torch.add(z[lo:hi, center], z[lo + shift : hi + shift, j], out=y[lo:hi])
                first = False
            else:
                y[lo:hi] += z[lo + shift : hi + shift, j]
        rows = torch.cat([packing.misplaced(shift) for shift in shifts if shift != 0]).unique()  # (M,)
        return y.index_copy_(0, rows, _gathered_taps(z, packing, shifts, rows))

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):  # grad_y (N, H)
        packing, shifts = ctx.packing, ctx.shifts
        n, h = grad_y.shape
        if ctx.grad_columns and grad_y.device.type == "cpu":  # the same copies on column-major views
            grad_y = grad_y.t().contiguous().t()  # (N, H), stored (H, N)
            grad_z = grad_y.new_empty(len(shifts), h, n).permute(2, 0, 1)  # (N, k, H), stored (k, H, N)
        else:
            grad_z = grad_y.new_empty(n, len(shifts), h)  # (N, k, H)
        for j, shift in enumerate(shifts):
            if shift == 0:
                grad_z[:, j] = grad_y
                continue
            source, weight = packing.neighbours(-shift, grad_y.dtype)  # row m's reader through tap j
            if grad_y.device.type != "cpu":
                torch.mul(grad_y.index_select(0, source), weight, out=grad_z[:, j])
                continue
            back = min(abs(shift), n)
            if shift > 0:  # row m's reader is row m - shift
                grad_z[back:, j] = grad_y[: n - back]
                grad_z[:back, j] = 0
            else:
                grad_z[: n - back, j] = grad_y[back:]
                grad_z[n - back :, j] = 0
            rows = packing.misplaced(-shift)
            grad_z[:, j].index_copy_(0, rows, grad_y.index_select(0, source[rows]) * weight[rows])
        return grad_z, None, None, None


def _gathered_taps(z: torch.Tensor, packing: Packing, shifts: list[int], rows: torch.Tensor | None) -> torch.Tensor:
    """The tap sum of `_PackedTaps` by gathers, for all rows of z (N, k, H) or only `rows` (M,) -> (N or M, H)."""
    center = shifts.index(0)
    y = z[:, center].clone() if rows is None else z[:, center].index_select(0, rows)  # fresh
    for j, shift in enumerate(shifts):
        if shift != 0:
            source, weight = packing.neighbours(shift, z.dtype)
            if rows is not None:
                source, weight = source[rows], weight[rows]
            y.addcmul_(z[:, j].index_select(0, source), weight)
    return y


def project(layers: Sequence[nn.Module], rows: torch.Tensor) -> list[torch.Tensor]:
    """`rows @ W` of several layers (`nn.Linear` without bias, or `TemporalConv` before its tap sum) that read the
    same rows (N, D): [(N, k_i * H_i)]. Feed a TemporalConv's part to its `taps`. Float32 on CPU: one oneDNN
    product per layer, and the weight gradients share one transposed copy of the rows (`_SharedRowsProducts`)."""
    weights = [layer.weight.flatten(1).t() if isinstance(layer, TemporalConv) else layer.weight for layer in layers]
    if all(_onednn_applies(rows, w) for w in weights):
        return list(_SharedRowsProducts.apply(rows, *weights))  # (O_i, D) each
    return [F.linear(rows, w) for w in weights]


def _dense_onednn_linear():
    """torch's oneDNN linear on dense (and strided) float32 tensors, or None where this build lacks it."""
    try:
        return torch.ops.mkldnn._linear_pointwise.default
    except (AttributeError, RuntimeError):
        return None


_DENSE_ONEDNN = _dense_onednn_linear()


def _onednn_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (M, K) @ b (N, K)^T in float32 through oneDNN -> (M, N) dense. Strided operands (transposes) are read
    in place: no contiguous copy and no conversion to oneDNN tensors (those cost 15-20 % of the product's time on
    a (9000, 2048) x (2048, 6144) layer); the products are the same as through `mkldnn_linear`. `b` must be
    row-major or the transpose of a row-major matrix: other strides (e.g. the transpose of a column slice) send
    oneDNN to its reference kernel, thousands of times slower, so they are copied first."""
    if _DENSE_ONEDNN is not None:
        if not (b.is_contiguous() or b.t().is_contiguous()):
            b = b.contiguous()
        return _DENSE_ONEDNN(a, b, None, "none", [], "")
    return torch._C._nn.mkldnn_linear(a.contiguous().to_mkldnn(), b.contiguous().to_mkldnn()).to_dense()


class _OneDNNLinear(torch.autograd.Function):
    """y = x W^T + b with the forward and both backward products through oneDNN (float32, CPU)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        y = _onednn_mm(x, weight)  # (N, O)
        return y if bias is None else y.add_(bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_x = _onednn_mm(grad, weight.t()) if ctx.needs_input_grad[0] else None  # (N, I)
        grad_w = _weight_gradient(grad, x, weight) if ctx.needs_input_grad[1] else None  # (O, I)
        grad_b = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def _weight_gradient(
    grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, x_t: torch.Tensor | None = None
) -> torch.Tensor:
    """grad^T x through oneDNN for grad (N, O), x (N, I) -> (O, I), laid out as `weight` (row-major, or the
    transpose of a row-major (I, O) as a TemporalConv's taps: then autograd needs no copy to store it). oneDNN
    copies a transposed first operand row-major; for O > I the second is made row-major too (`x_t` = x^T when
    the caller has it): with N in the tens of thousands that runs ~10 % faster than leaving x transposed, and
    twice as fast as any form whose second operand is the transposed (N, O) gradient."""
    if grad.shape[1] <= x.shape[1]:
        return _onednn_mm(grad.t(), x.t())
    grad_t, x_t = grad.t().contiguous(), x.t().contiguous() if x_t is None else x_t  # (O, N), (I, N)
    if weight.t().is_contiguous() and not weight.is_contiguous():
        return _onednn_mm(x_t, grad_t).t()  # (I, O) row-major, as the weight's storage
    return _onednn_mm(grad_t, x_t)


class _SharedRowsProducts(torch.autograd.Function):
    """[x W_i^T] for x (N, I) and weights W_i (O_i, I) through oneDNN, one product each: no concatenated weight
    or gradient; the weight gradients (`_weight_gradient`) share one row-major copy of x^T."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, *weights: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ctx.save_for_backward(x, *weights)
        return tuple(_onednn_mm(x, w) for w in weights)  # (N, O_i) each

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        x, *weights = ctx.saved_tensors
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = sum(_onednn_mm(g, w.t()) for g, w in zip(grads, weights, strict=True))  # (N, I)
        x_t = x.t().contiguous() if any(ctx.needs_input_grad[1:]) else None  # (I, N), shared
        grad_ws = [
            _weight_gradient(g, x, w, x_t) if need else None  # (O_i, I)
            for g, w, need in zip(grads, weights, ctx.needs_input_grad[1:], strict=True)
        ]
        return grad_x, *grad_ws


# below ~4M multiply-adds a oneDNN call's fixed cost exceeds its gain over MKL (POINTTAL_ONEDNN_MIN_MACS overrides)
ONEDNN_MIN_MACS = int(os.environ.get("POINTTAL_ONEDNN_MIN_MACS", 1 << 22))


def _onednn_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether `linear` runs x (N, I) @ weight (O, I)^T through oneDNN: float32 on CPU, outside autocast, and large
    enough (`ONEDNN_MIN_MACS`): on small products (the tiny demo's) its per-call cost made steps 2-3x slower."""
    return (
        x.device.type == "cpu"
        and x.dim() == 2
        and x.shape[0] * x.shape[1] * weight.shape[0] >= ONEDNN_MIN_MACS
        and x.dtype == weight.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and not torch.is_autocast_enabled("cpu")
    )


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias) for x (N, I). Float32 on CPU (outside autocast) runs through oneDNN: the same
    float32 products, at about twice the rate of torch's MKL sgemm on AMD CPUs (1.7x forward + backward on a
    (3600, 2048) x (2048, 2048) layer, one thread); elsewhere F.linear."""
    if _onednn_applies(x, weight):
        return _OneDNNLinear.apply(x, weight, bias)
    return F.linear(x, weight, bias)


def topk_counts(lengths: torch.Tensor, divisor: float, rounding: Literal["ceil", "floor"]) -> torch.Tensor:
    """k_i = ceil(T_i / divisor) or floor(T_i / divisor), at least 1, for (B,) valid lengths -> (B,) long.

    The quotient is taken in float64; "floor" adds 1e-9 first, so a product such as 100 * 0.29
    (28.999999999999996) passed as lengths with divisor 1 floors to 29, and integer T_i // r_act is exact.
    SF-Net: ceil(T / 8); LACP and HR-Pro: max(1, T // r_act); SODA: max(1, floor(T * eta)).
    """
    ratio = lengths.to(torch.float64) / divisor  # (B,)
    k = torch.ceil(ratio) if rounding == "ceil" else torch.floor(ratio + 1e-9)
    return k.long().clamp(min=1)


def masked_topk_mean(
    values: torch.Tensor, mask: torch.Tensor, k: torch.Tensor, k_max: int | None = None
) -> torch.Tensor:
    """Per video and class, the mean of the k_i largest values over the valid snippets.

    values (B, T, K), mask (B, T) bool, k (B,) long with 1 <= k_i <= T_i -> (B, K). `k_max` is a static
    upper bound of k (e.g. ceil(T / 8) for the padded T; default: k.max(), which synchronises with the
    device). One `topk(k_max)` over time with padding as -inf, then a weighted sum whose weights are 1/k_i on
    the first k_i ranks; no loop over videos. Videos with T_i = 0 give 0.
    """
    t = values.shape[1]
    k_max = min(int(k.max()) if k_max is None else k_max, t)
    filled = values.masked_fill(~mask.unsqueeze(-1), float("-inf"))
    top = filled.topk(k_max, dim=1).values  # (B, k_max, K), descending
    keep = torch.arange(k_max, device=values.device).unsqueeze(0) < k.unsqueeze(1)  # (B, k_max)
    top = torch.where(keep.unsqueeze(-1), top, torch.zeros((), dtype=values.dtype, device=values.device))
    return top.sum(1) / k.clamp(min=1).unsqueeze(1).to(values.dtype)


def topk_or_mean(
    values: torch.Tensor,
    mask: torch.Tensor,
    k: torch.Tensor,
    labels: torch.Tensor | None = None,
    k_max: int | None = None,
) -> torch.Tensor:
    """(B, C) video scores of values (B, T, C): the top-k mean (`masked_topk_mean`); with labels (B, C) {0, 1}
    (LACP's and HR-Pro's training form), the classes absent from a video take the mean over its valid
    snippets instead."""
    top = masked_topk_mean(values, mask, k, k_max)  # (B, C)
    if labels is None:
        return top
    keep = mask.unsqueeze(-1).to(values.dtype)  # (B, T, 1)
    mean = (values * keep).sum(1) / mask.sum(1).clamp(min=1).unsqueeze(1).to(values.dtype)  # (B, C)
    return top * labels + mean * (1 - labels)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-sum_c target[..., c] * log_softmax(logits)[..., c]: (..., K), (..., K) -> (...)."""
    return -(target * F.log_softmax(logits.float(), dim=-1)).sum(-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over the True entries of the same-shaped `mask`; 0 (with grad) when none are True."""
    total = torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device)).sum()
    return total / mask.sum().clamp(min=1).to(values.dtype)


def select_hardest(scores: torch.Tensor, pool: torch.Tensor, count: torch.Tensor | int) -> torch.Tensor:
    """Bool mask of the `count` entries of `pool` with the highest `scores`, ranked over the whole tensor.

    scores, pool: same shape (e.g. (B, T)); count: scalar (tensor or int) <= pool.sum(). Used for
    batch-level hard-example mining (SF-Net pools the unlabelled snippets of every video of the batch).
    Ranks come from one descending sort scattered back, so `count` may stay on the device.
    """
    flat = scores.detach().flatten().float().masked_fill(~pool.flatten(), float("-inf"))
    order = flat.argsort(descending=True, stable=True)  # (N,)
    rank = torch.empty_like(order).scatter_(0, order, torch.arange(order.numel(), device=order.device))
    return ((rank < count) & pool.flatten()).view(scores.shape)


def matmul_t(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (M, K) @ b (N, K)^T -> (M, N): oneDNN where `linear` would use it (`_onednn_applies`), else torch.matmul.
    Either operand may be a transpose of a row-major matrix (read in place)."""
    return _onednn_mm(a, b) if _onednn_applies(a, b) else a @ b.t()


class _Conv3Rows(torch.autograd.Function):
    """Conv1d(kernel 3, padding 1) over gapped `Packing` rows as one product on the unfolded input view."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, gaps: torch.Tensor):
        n_rows, d = x.shape  # weight (H, 3D): `conv3_weight`
        x = x.contiguous()
        unfolded = x.as_strided((n_rows - 2, 3 * d), (d, 1))  # (L-2, 3D): row r holds x[r], x[r+1], x[r+2]
        inner = matmul_t(unfolded, weight.to(x.dtype))  # (L-2, H): the conv at rows 1..L-2
        if bias is not None:
            inner = inner.add_(bias.to(inner.dtype))
        y = F.pad(inner, (0, 0, 1, 1)).index_fill_(0, gaps, 0)  # (L, H), zero on gap rows
        ctx.save_for_backward(x, weight, gaps)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):  # grad_y (L, H)
        x, weight, gaps = ctx.saved_tensors
        n_rows, d = x.shape
        grad = grad_y[1:-1]  # (L-2, H); the gap rows were set to zero, so they pass no gradient
        if bool(grad_y.index_select(0, gaps).ne(0).any()):
            grad = grad.index_fill(0, gaps[1:-1] - 1, 0)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            grad_t = grad.t().contiguous()  # (H, L-2), made once for the three products (each would copy it)
            taps = [matmul_t(grad_t, x[k : k + n_rows - 2].t().to(grad.dtype)) for k in range(3)]  # 3 x (H, D)
            grad_w = torch.cat(taps, dim=1).to(weight.dtype)  # (H, 3D)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(0)
        if ctx.needs_input_grad[0]:
            grad_x = grad.new_zeros(n_rows, d)  # (L, D): tap k of output row r read x row r + k
            for k in range(3):  # three (L-2, H) x (H, D) products: no (L, 3H) or (L-2, 3D) intermediate
                tap = weight[:, k * d : (k + 1) * d].contiguous().to(grad.dtype)  # (H, D) row-major: a row-block copy
                grad_x[k : k + n_rows - 2] += matmul_t(grad, tap.t())
        return grad_x, grad_w, grad_b, None


def conv3_weight(weight: torch.Tensor) -> torch.Tensor:
    """nn.Conv1d's kernel-3 weight (H, D, 3) -> the (H, 3D) layout `conv3_rows` multiplies by (column k*D + i is
    weight[:, i, k]); a copy, differentiable. Make it once where several calls share a weight (HR-Pro's
    per-video forwards): each conversion and its backward are a strided pass over the weight."""
    h, d, _ = weight.shape
    return weight.permute(0, 2, 1).reshape(h, 3 * d)


def conv3_rows(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, packing: Packing):
    """Conv1d(D -> H, kernel 3, padding 1) of every video alone, on `Packing(mask, gap=True)` rows: x (L, D) with
    zero gap rows, weight (H, D, 3) as nn.Conv1d's (or already `conv3_weight`'s (H, 3D)), bias (H,) or None ->
    (L, H), zero on gap rows, so convs stack.

    One (L-2, 3D) x (3D, H) product on the unfolded view of x (oneDNN on CPU) and, backward, three (H, L-2) x
    (L-2, D) products for the weight (plus, where x needs a gradient, three (L-2, H) x (H, D) products added to
    x's rows at their tap offsets). A packing without gaps (gap=False) is refused: its videos touch."""
    if not packing.gap:
        raise ValueError("conv3_rows: the packing must have gap rows (Packing(mask, gap=True))")
    return _Conv3Rows.apply(x, conv3_weight(weight) if weight.dim() == 3 else weight, bias, packing.gaps)


class _RandDropout(torch.autograd.Function):
    """Dropout whose keep mask is `torch.rand(...) >= p` (kept with probability 1 - p, as F.dropout's bernoulli),
    stored as bool; kept values are scaled by 1 / (1 - p)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        keep = torch.rand(x.shape, dtype=torch.float32, device=x.device) >= p  # same shape as x, bool
        ctx.save_for_backward(keep)
        ctx.scale = 1.0 / (1.0 - p)
        return (x * keep).mul_(ctx.scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return (grad * keep).mul_(ctx.scale), None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """F.dropout(x, p, training). On CPU the mask comes from `torch.rand` (one draw per element, 3x faster there
    than bernoulli_: 0.12 s instead of 0.30 s on a (9100, 2048) LACP activation) and is kept as bool; the
    distribution is the same, the random stream is not. Elsewhere, and at p = 0 or 1, F.dropout."""
    if not training or x.device.type != "cpu" or not 0.0 < p < 1.0:
        return F.dropout(x, p, training)
    return _RandDropout.apply(x, p)
