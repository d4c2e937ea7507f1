"""In-run evaluation does not change what is trained: with the same config and seed, a run that evaluates every
two steps (or every step) ends with the same weights, method state and predictions files as one that evaluates
only at the end, for every method."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_raw_config
from test_actionformer import detector_config
from test_hrpro import _hrpro_raw, _state_equal

from pointtal.config import Config, build_config
from pointtal.engine.checkpoint import load_checkpoint
from pointtal.engine.logs import read_metrics
from pointtal.engine.trainer import train
from pointtal.methods import METHODS


def _config(data: Path, method: str, eval_every: int) -> Config:
    """A few steps of `method` on the tiny preset, with each method's own training-time machinery inside them:
    SF-Net's expansion (step 3), LACP's searches (steps 2, 4, 6; their labels reach training at step 6, the
    official iterator's re-creation), HR-Pro's two stages (4 + 3 steps), ActionFormer's warm-up and EMA."""
    if method == "actionformer":
        config = detector_config(data, steps=6)
        return build_config({**config.to_dict(), "train": {**config.to_dict()["train"], "eval_every": eval_every}})
    if method == "hrpro":
        return build_config(_hrpro_raw(data, 4, 1, eval_every=eval_every))
    raw = tiny_raw_config(data, method, steps=8 if method == "lacp" else 6, eval_every=eval_every)
    if method == "lacp":
        raw["method"].update(hidden=32, search_start=2, search_freq=2)
    return build_config(raw)


def _outcome(run: Path) -> tuple[dict, bytes, bytes]:
    saved = load_checkpoint(run / "checkpoint.pt")
    state = {"model": saved["model"], **({"ema": saved["ema"]} if "ema" in saved else {})}
    return state, (run / "predictions.json").read_bytes(), (run / "frames.json").read_bytes()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_final_weights_and_predictions_do_not_depend_on_in_run_evaluation(tiny_data, tmp_path, method):
    train(_config(tiny_data, method, 0), tmp_path / "quiet")
    result = train(_config(tiny_data, method, 2), tmp_path / "evaluating")
    steps = [record["step"] for record in read_metrics(tmp_path / "evaluating")]
    assert steps == [*range(2, result.step, 2), result.step]  # it did evaluate, in both of HR-Pro's stages too
    quiet, evaluating = _outcome(tmp_path / "quiet"), _outcome(tmp_path / "evaluating")
    assert _state_equal(quiet[0], evaluating[0]), "final weights / method state differ"
    assert quiet[1] == evaluating[1], "predictions.json differs"
    assert quiet[2] == evaluating[2], "frames.json differs"


def test_evaluation_that_draws_random_numbers_leaves_training_untouched(tiny_data, tmp_path, monkeypatch):
    """A method whose inference draws from every global generator (a random tie-break, say): evaluating every
    step leaves torch's, numpy's and Python's generators where training left them, at every step (SF-Net's
    dropout draws from torch's, so a consumed draw would change the weights)."""
    sfnet = METHODS["sfnet"]
    seen: dict[str, list[tuple]] = {"quiet": [], "evaluating": []}  # run -> (step, generator states) per step
    current = ["quiet"]

    def detect(self, output, videos, __f=sfnet.detect):
        torch.rand(3), np.random.rand(3), random.random()
        return __f(self, output, videos)

    def loss(self, output, batch, step, __f=sfnet.loss):
        _, keys, position, *_ = np.random.get_state()
        seen[current[0]].append((step, torch.get_rng_state().clone(), (keys.copy(), position), random.getstate()))
        return __f(self, output, batch, step)

    monkeypatch.setattr(sfnet, "detect", detect)
    monkeypatch.setattr(sfnet, "loss", loss)
    for name, every in (("quiet", 0), ("evaluating", 1)):
        current[0] = name
        np.random.seed(0), random.seed(0)  # the engine seeds torch's generator only: both runs start alike
        train(_config(tiny_data, "sfnet", every), tmp_path / name)
    assert [s[0] for s in seen["quiet"]] == [s[0] for s in seen["evaluating"]] == list(range(6))
    for (step, torch_a, numpy_a, python_a), (_, torch_b, numpy_b, python_b) in zip(*seen.values(), strict=True):
        assert torch.equal(torch_a, torch_b), f"torch generator moved before step {step}"
        assert np.array_equal(numpy_a[0], numpy_b[0]) and numpy_a[1] == numpy_b[1], f"numpy moved before step {step}"
        assert python_a == python_b, f"python generator moved before step {step}"
    assert _state_equal(_outcome(tmp_path / "quiet")[0], _outcome(tmp_path / "evaluating")[0])
    assert _outcome(tmp_path / "quiet")[1:] == _outcome(tmp_path / "evaluating")[1:]
