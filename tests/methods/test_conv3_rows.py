"""`layers.conv3_rows` on gapped `Packing` rows equals nn.Conv1d run on each video alone, values and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pointtal.methods import layers
from pointtal.methods.layers import Packing, conv3_rows

TOL = {"atol": 1e-5, "rtol": 1e-5}


def masks() -> dict[str, torch.Tensor]:
    prefix = torch.zeros(4, 9, dtype=torch.bool)
    for b, n in enumerate([9, 1, 5, 0]):  # a full video, a one-snippet video, a short one, an empty one
        prefix[b, :n] = True
    holes = torch.tensor([[1, 1, 0, 1, 1, 1, 0, 0, 1], [0, 1, 1, 1, 0, 1, 0, 1, 1]], dtype=torch.bool)
    return {"prefix": prefix, "holes": holes}


def runs_of(mask: torch.Tensor) -> list[tuple[int, int, int]]:
    """(video, start, end) of every maximal run of real snippets: the loop reference's unit."""
    out = []
    for b, row in enumerate(mask.tolist()):
        t = 0
        while t < len(row):
            if row[t]:
                end = t
                while end < len(row) and row[end]:
                    end += 1
                out.append((b, t, end))
                t = end
            t += 1
    return out


def reference(x: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Conv1d(kernel 3, padding 1) of every run alone, a plain loop; zeros on padding."""
    out = x.new_zeros(*mask.shape, weight.shape[0])
    for b, start, end in runs_of(mask):
        piece = x[b, start:end].t().unsqueeze(0)  # (1, D, t)
        out[b, start:end] = F.conv1d(piece, weight, bias, padding=1)[0].t()
    return out


@pytest.mark.parametrize("which", ["prefix", "holes"])
@pytest.mark.parametrize("path", ["onednn", "matmul"])
def test_conv3_rows_equals_conv1d_per_video(which, path, monkeypatch):
    if path == "matmul":  # the path CUDA and autocast take
        monkeypatch.setattr(layers, "_onednn_mm", lambda a, b: a @ b.t())
    torch.manual_seed(0)
    mask = masks()[which]
    b, t = mask.shape
    x = torch.randn(b, t, 6, requires_grad=True)
    weight = torch.randn(5, 6, 3, requires_grad=True)
    bias = torch.randn(5, requires_grad=True)
    upstream = torch.randn(b, t, 5)

    packing = Packing(mask, gap=True)
    rows = packing.rows(x)
    assert rows.shape[0] == int(mask.sum()) + len(runs_of(mask)) + 1
    assert rows.index_select(0, packing.gaps).abs().sum() == 0
    y = conv3_rows(rows, weight, bias, packing)
    assert y.index_select(0, packing.gaps).abs().sum() == 0  # zero on gap rows: convs stack
    out = packing.scatter(y)
    grads = torch.autograd.grad((out * upstream).sum(), (x, weight, bias))

    ref = reference(x, mask, weight, bias)
    ref_grads = torch.autograd.grad((ref * upstream).sum(), (x, weight, bias))
    torch.testing.assert_close(out, ref, **TOL)
    for got, want, name in zip(grads, ref_grads, ["x", "weight", "bias"], strict=True):
        torch.testing.assert_close(got, want, **TOL, msg=lambda m, n=name: f"grad {n}: {m}")


def test_stacked_conv3_rows_equal_two_conv1d_layers():
    """Two convs with ReLU between them: the second sees zeros past every video's ends, as alone."""
    torch.manual_seed(1)
    mask = masks()["prefix"]
    x = torch.randn(*mask.shape, 4)
    w1, b1, w2 = torch.randn(6, 4, 3), torch.randn(6), torch.randn(3, 6, 3, requires_grad=True)
    packing = Packing(mask, gap=True)
    y = conv3_rows(F.relu(conv3_rows(packing.rows(x), w1, b1, packing)), w2, None, packing)
    ref = reference(F.relu(reference(x, mask, w1, b1)), mask, w2, None)
    torch.testing.assert_close(packing.scatter(y), ref, **TOL)


def test_gradient_reaching_gap_rows_is_ignored():
    """An upstream gradient on a gap row (which the conv set to zero) must not reach the weights."""
    torch.manual_seed(2)
    mask = masks()["prefix"]
    packing = Packing(mask, gap=True)
    rows = packing.rows(torch.randn(*mask.shape, 4))
    weight = torch.randn(3, 4, 3, requires_grad=True)
    y = conv3_rows(rows, weight, None, packing)
    upstream = torch.zeros_like(y)
    upstream[packing.gaps] = 1.0
    (grad,) = torch.autograd.grad((y * upstream).sum(), weight)
    assert grad.abs().max() == 0


def test_onednn_size_gate(monkeypatch):
    """Small products take F.linear / matmul (oneDNN's per-call cost made the tiny demo 2-3x slower); products of
    at least ONEDNN_MIN_MACS multiply-adds take oneDNN."""
    monkeypatch.setattr(layers, "ONEDNN_MIN_MACS", 1 << 22)  # the shipped value; tests/conftest.py lowers it to 0
    calls = []
    real = layers._onednn_mm
    monkeypatch.setattr(layers, "_onednn_mm", lambda a, b: calls.append(a.shape) or real(a, b))
    small, small_w = torch.randn(100, 64), torch.randn(32, 64)  # 204,800 MACs
    torch.testing.assert_close(layers.linear(small, small_w), small @ small_w.t())
    assert calls == []
    large, large_w = torch.randn(1024, 64), torch.randn(64, 64)  # exactly 1 << 22 MACs
    torch.testing.assert_close(layers.linear(large, large_w), large @ large_w.t(), rtol=1e-5, atol=1e-5)
    assert calls == [(1024, 64)]
