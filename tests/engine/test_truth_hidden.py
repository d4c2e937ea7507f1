"""No point-supervised method sees the training videos' ground truth: the engine keeps it for logging the
precision of mined labels, out of the reach of losses, samplers and label mining (issue 21)."""

from __future__ import annotations

import logging
import re

import pytest
import torch
from conftest import tiny_raw_config

from pointtal.config import build_config
from pointtal.engine.setup import load_run_data
from pointtal.engine.trainer import train
from pointtal.methods import METHODS


def spy_on_datasets(monkeypatch, cls) -> tuple[list, list]:
    """Record every dataset a method of class `cls` is handed (training_sampler, refresh_labels, start_phase)
    and every LabelRefresh it returns."""
    seen, refreshes = [], []
    sampler, refresh, start = cls.training_sampler, cls.refresh_labels, cls.start_phase

    def training_sampler(self, dataset, *args, **kwargs):
        seen.append(("training_sampler", dataset))
        return sampler(self, dataset, *args, **kwargs)

    def refresh_labels(self, step, dataset, predict_cas):
        seen.append(("refresh_labels", dataset))
        result = refresh(self, step, dataset, predict_cas)
        if result is not None:
            refreshes.append(result)
        return result

    def start_phase(self, index, context):
        seen.append(("start_phase", context.dataset))
        return start(self, index, context)

    monkeypatch.setattr(cls, "training_sampler", training_sampler)
    monkeypatch.setattr(cls, "refresh_labels", refresh_labels)
    monkeypatch.setattr(cls, "start_phase", start_phase)
    return seen, refreshes


@pytest.mark.parametrize(
    "name, method", [("sfnet", {"expand_step": 3}), ("lacp", {"search_freq": 3, "search_start": 3})]
)
def test_label_mining_methods_never_see_training_truth(name, method, tiny_data, tmp_path, monkeypatch, caplog):
    raw = tiny_raw_config(tiny_data, name, steps=6)
    raw["method"].update(method)
    config = build_config(raw)
    data = load_run_data(config)
    truth = data.train.truth_labels.clone()
    assert truth[:, 1:].sum() > 0  # the run has ground truth to hide
    seen, refreshes = spy_on_datasets(monkeypatch, METHODS[name])
    with caplog.at_level(logging.INFO, logger="pointtal"):
        train(config, tmp_path / "run", data=data)
    calls = {what for what, _ in seen}
    assert {"training_sampler", "refresh_labels"} <= calls
    for what, dataset in seen:  # a method that reads the truth gets None
        assert getattr(dataset, "truth_labels", None) is None, what
        assert len(dataset) == len(data.train) and torch.equal(dataset.features, data.train.features)
    assert torch.equal(data.train.truth_labels, truth)  # the caller's dataset keeps it
    # the engine still logs the mined labels' precision, computed against the truth it kept
    assert refreshes and refreshes[0].mined is not None and refreshes[0].mined.shape == truth.shape
    mined = refreshes[0].mined
    want = float((mined & (truth > 0)).sum()) / int(mined.sum())
    logged = re.findall(r"label mining: (\d+) pseudo frames/labels added, precision ([0-9.]+)", caplog.text)
    assert logged and float(logged[0][1]) == pytest.approx(want, abs=5e-4)
    assert int(logged[0][0]) == refreshes[0].added


def test_label_refresh_precision_against_a_hand_count():
    from pointtal.methods.base import LabelRefresh

    mined = torch.zeros(5, 3, dtype=torch.bool)
    mined[0, 1] = mined[1, 1] = mined[2, 2] = mined[3, 0] = True  # 4 labels
    truth = torch.zeros(5, 3)
    truth[0, 1] = truth[2, 1] = truth[3, 0] = 1  # right: (0, 1) and (3, 0); wrong: (1, 1), (2, 2)
    refresh = LabelRefresh(added=4, reinitialize=False, mined=mined)
    assert refresh.precision(truth) == 0.5
    assert refresh.precision(None) is None
    assert LabelRefresh(added=0, reinitialize=False, mined=torch.zeros(5, 3, dtype=torch.bool)).precision(truth) is None
