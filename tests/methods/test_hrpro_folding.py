"""HR-Pro's folded q/k/v projections (`ReliabilityAwareBlock.folded_projections`) and the per-step weights of
`SnippetModel.step_weights`: the folded block equals the two-product block in values and every gradient, the
fold's own backward is its exact derivative, and folding is used only where it saves products."""

from __future__ import annotations

import pytest
import torch

from pointtal.methods.hrpro import HRPro, Options
from pointtal.methods.hrpro.network import ReliabilityAwareBlock, _FoldedProjections
from pointtal.methods.layers import conv3_weight


def _block(dim: int = 16, dtype=torch.float32) -> ReliabilityAwareBlock:
    torch.manual_seed(0)
    return ReliabilityAwareBlock(dim, 2, 8, dropout=0.0, attention_dropout=0.0).to(dtype).train()


def _one_group(n: int, dim: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.arange(n)[None, :], torch.ones(1, n, dtype=torch.bool))]  # one video of n tokens


def test_fold_backward_is_the_exact_derivative():
    block = _block(6, torch.float64)
    att = block.attention
    inputs = [att.in_proj_weight, att.in_proj_bias, block.query.weight, block.query.bias, block.key.weight]
    inputs.append(block.key.bias)
    assert torch.autograd.gradcheck(_FoldedProjections.apply, inputs)


def test_fold_is_the_composition_of_the_two_affine_maps():
    block = _block(8, torch.float64)
    weight, bias = block.folded_projections()  # (3D, D), (3D,)
    x = torch.randn(5, 8, dtype=torch.float64)
    w, b = block.attention.in_proj_weight, block.attention.in_proj_bias
    q = (x @ block.query.weight.t() + block.query.bias) @ w[:8].t() + b[:8]
    k = (x @ block.key.weight.t() + block.key.bias) @ w[8:16].t() + b[8:16]
    v = x @ w[16:].t() + b[16:]
    torch.testing.assert_close(x @ weight.t() + bias, torch.cat([q, k, v], 1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tokens", [40, 300])  # below and above the oneDNN size gate the tests lower to 0
def test_folded_block_equals_the_two_product_block_with_every_gradient(tokens):
    block = _block(16)
    x = torch.randn(tokens, 16, generator=torch.Generator().manual_seed(1), requires_grad=True)
    upstream = torch.randn(tokens, 16, generator=torch.Generator().manual_seed(2))
    layout = _one_group(tokens, 16)
    results = []
    for folded in (None, block.folded_projections()):
        block.zero_grad(set_to_none=True)
        x.grad = None
        out = block.rows(x, layout, folded)
        (out * upstream).sum().backward()
        results.append((out.detach(), x.grad.clone(), {k: p.grad.clone() for k, p in block.named_parameters()}))
    (plain, plain_dx, plain_grads), (fold, fold_dx, fold_grads) = results
    torch.testing.assert_close(fold, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fold_dx, plain_dx, rtol=1e-4, atol=1e-5)
    assert set(fold_grads) == set(plain_grads)
    for name, grad in plain_grads.items():
        assert grad.abs().sum() > 0, name  # every parameter takes part, so the comparison means something
        torch.testing.assert_close(fold_grads[name], grad, rtol=1e-4, atol=1e-5, msg=name)


def test_step_weights_fold_only_where_it_saves_products():
    torch.manual_seed(0)
    method = HRPro(Options(num_heads=2, dim_feedforward=8, rab_layers=2), 16, 3)
    assert method.snippet.step_weights(16).folded == [None, None]  # R <= D: folding costs more than it saves
    shared = method.snippet.step_weights(17)
    assert all(weight.shape == (48, 16) and bias.shape == (48,) for weight, bias in shared.folded)
    torch.testing.assert_close(shared.embedding, conv3_weight(method.snippet.embedding.weight), rtol=0, atol=0)
    # one (H, 3D) conv weight made per step: column k*D + i holds tap k of input channel i
    w = method.snippet.embedding.weight
    assert torch.equal(shared.embedding[:, 2 * 16 + 5], w[:, 5, 2])


def test_per_video_training_forward_makes_the_step_weights_once(monkeypatch):
    """The official per-video forwards (memory_update "video") share one fold and one conv layout per step."""
    torch.manual_seed(0)
    method = HRPro(Options(num_heads=2, dim_feedforward=8, dropout=0.0, rab_dropout=0.0), 16, 3).train()
    calls = []
    made = method.snippet.step_weights
    monkeypatch.setattr(method.snippet, "step_weights", lambda n: calls.append(n) or made(n))
    lengths = torch.tensor([9, 5, 7])
    mask = torch.arange(9)[None, :] < lengths[:, None]
    features = torch.randn(3, 9, 16) * mask[..., None]
    points = torch.zeros(3, 9, 3)
    points[:, 1, 0] = 1
    method(features, mask, points=points, labels=torch.ones(3, 3))
    assert calls == [int(lengths.sum()) + 3 * 3]  # the batch's snippets and each video's C prototype tokens
