"""Inference batching: length-sorted batches over packed real snippets give the predictions of a dense,
per-video forward (no padding, no packing), in input order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pointtal.data.features import SnippetGeometry
from pointtal.engine.inference import length_sorted_batches, predict, score_videos
from pointtal.methods import build_method
from pointtal.methods.sfnet import Options as SFNetOptions
from pointtal.methods.sfnet import SFNetOutput

LENGTHS = [5, 300, 7, 90, 1, 64, 2, 181, 33, 12, 240]  # list order pads a batch of 4 to its longest


def test_length_sorted_batches_group_similar_lengths_longest_first():
    assert length_sorted_batches([5, 100, 7, 90, 6], 2) == [[1, 3], [2, 4], [0]]
    assert length_sorted_batches([3, 3, 3], 2) == [[0, 1], [2]]  # ties keep input order
    assert length_sorted_batches([], 4) == []


def _stream_dense(stream, x: torch.Tensor):
    """One SF-Net stream on one whole video, dense: x (1, T, D/2) -> cas (1, T, K), act (1, T)."""
    h = x
    for layer in stream.cls_layers:
        h = F.relu(layer(h))
    a = x
    for conv in stream.act_layers:
        a = F.relu(conv(a))  # TemporalConv.forward: zero "same" padding at the video's edges
    return stream.classifier(h), stream.act_head(a).squeeze(-1)


def _dense_scores(method, x: np.ndarray):
    """`method.scores` of one video from the dense per-video forward (the reference for the packed path)."""
    net = method.net
    features = torch.from_numpy(x)[None]  # (1, T, D)
    cas_rgb, act_rgb = _stream_dense(net.rgb, features[..., : net.half])
    cas_flow, act_flow = _stream_dense(net.flow, features[..., net.half :])
    cas = cas_rgb * net.cas_weights[0] + cas_flow * net.cas_weights[1]
    act = act_rgb * net.act_weights[0] + act_flow * net.act_weights[1]
    output = SFNetOutput(cas_rgb, cas_flow, cas, act_rgb, act_flow, act, (None, None), None)
    return method.scores(output, torch.ones(1, x.shape[0], dtype=torch.bool))


@pytest.mark.parametrize("conv_backbone", [False, True])
def test_batched_predictions_equal_a_dense_per_video_forward(conv_backbone):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    method = build_method("sfnet", SFNetOptions(hidden=24, conv_backbone=conv_backbone), 16, 3)
    with torch.no_grad():  # act weights start at 0: make actionness count in the scores
        method.net.act_weights.copy_(torch.tensor([0.7, -0.4]))
    items = [(f"v{i}", rng.random((t, 16), dtype=np.float32) * 2) for i, t in enumerate(LENGTHS)]
    kwargs = dict(device=torch.device("cpu"), amp=False)

    scored = list(score_videos(method, items, batch_size=4, **kwargs))
    assert [s.video_id for s in scored] == [v for v, _ in items]  # input order, not length order
    method.eval()
    with torch.no_grad():
        for (_, x), got in zip(items, scored, strict=True):
            want = _dense_scores(method, x)
            assert got.cas.shape == (x.shape[0], 4)
            np.testing.assert_allclose(got.cas, want.cas[0].numpy(), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(got.actionness, want.actionness[0].numpy(), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(got.video_scores, want.video_scores[0].numpy(), rtol=1e-5, atol=1e-6)

    geometries = {v: SnippetGeometry(25.0, 16) for v, _ in items}
    batched = predict(method, items, geometries, ("a", "b", "c"), batch_size=4, **kwargs)
    single = predict(method, items, geometries, ("a", "b", "c"), batch_size=1, **kwargs)  # no padding at all
    assert sum(len(v) for v in batched.segments.values()) > 0
    for video_id, _ in items:
        got, want = batched.segments[video_id], single.segments[video_id]
        assert [(d["label"], d["segment"]) for d in got] == [(d["label"], d["segment"]) for d in want]
        np.testing.assert_allclose([d["score"] for d in got], [d["score"] for d in want], rtol=1e-5)
