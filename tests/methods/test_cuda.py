"""The CUDA paths (skipped without a GPU; `bench/gpu_check.sh` runs this file on one): the packed SF-Net
network synchronises with the host once per forward, gives the CPU's scores, and trains with bf16 autocast."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import tiny_raw_config
from reference_eval import reference_average_from_files

from pointtal.config import build_config
from pointtal.data.batch import make_batch
from pointtal.engine.inference import score_videos
from pointtal.engine.trainer import train
from pointtal.methods import build_method
from pointtal.methods.sfnet import Options

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
LENGTHS = [40, 7, 130, 1, 64, 90]


def _method(conv_backbone: bool = False):
    torch.manual_seed(0)
    method = build_method("sfnet", Options(hidden=32, conv_backbone=conv_backbone), 24, 4)
    with torch.no_grad():
        method.net.act_weights.copy_(torch.tensor([0.5, -0.3]))
    return method


def _batch(device):
    g = torch.Generator().manual_seed(1)
    t = max(LENGTHS)
    mask = torch.arange(t)[None] < torch.tensor(LENGTHS)[:, None]
    features = torch.rand(len(LENGTHS), t, 24, generator=g) * mask.unsqueeze(-1)
    labels = torch.zeros(len(LENGTHS), t, 5)
    labels[:, 0, 1] = 1.0
    video_labels = torch.zeros(len(LENGTHS), 5)
    video_labels[:, 1] = 1.0
    return make_batch(features, mask, video_labels, labels).to(device)


@pytest.mark.parametrize("conv_backbone", [False, True])
def test_forward_synchronises_with_the_host_at_most_once(conv_backbone):
    method = _method(conv_backbone).cuda().train()
    batch = _batch("cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            method(batch.features, batch.mask)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= 1, [str(w.message) for w in syncs]


def test_cuda_scores_equal_cpu_scores():
    rng = np.random.default_rng(0)
    items = [(f"v{i}", rng.random((t, 24), dtype=np.float32)) for i, t in enumerate(LENGTHS)]
    kwargs = dict(batch_size=4, amp=False)
    method = _method()
    cpu = list(score_videos(method, items, device=torch.device("cpu"), **kwargs))
    gpu = list(score_videos(method.cuda(), items, device=torch.device("cuda"), **kwargs))
    for a, b in zip(cpu, gpu, strict=True):
        assert a.video_id == b.video_id
        np.testing.assert_allclose(b.cas, a.cas, rtol=1e-3, atol=1e-3)  # TF32 matmuls may differ slightly
        np.testing.assert_allclose(b.actionness, a.actionness, rtol=1e-3, atol=1e-3)


def test_backward_on_cuda_equals_cpu():
    grads = []
    for device in ("cpu", "cuda"):
        method = _method(conv_backbone=True).to(device).train()
        method.net.rgb.dropout = method.net.flow.dropout = 0.0  # deterministic across devices
        batch = _batch(device)
        method.loss(method(batch.features, batch.mask), batch, 0)["total"].backward()
        grads.append({k: p.grad.detach().cpu() for k, p in method.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for key in grads[0]:
        torch.testing.assert_close(grads[1][key], grads[0][key], rtol=2e-3, atol=2e-4, msg=key)


@pytest.mark.parametrize("method", ["sfnet", "soda", "weak"])
def test_training_on_cuda_with_bf16_runs_and_evaluates(tiny_data, tmp_path, method):
    raw = tiny_raw_config(tiny_data, method, steps=6, device="cuda", amp=True)
    result = train(build_config(raw), tmp_path / "run")
    assert result.step == 6
    want = reference_average_from_files(
        tiny_data / "annotations.json", tmp_path / "run" / "predictions.json", build_config(raw).eval.tiou
    )  # the slow reference on its predictions
    assert result.metrics["average"] == pytest.approx(want, abs=1e-6)
