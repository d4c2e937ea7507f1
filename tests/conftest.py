"""Shared fixtures: one tiny synthetic benchmark per test session; the figures pointtal.viz draws."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The tests' tiny products go through oneDNN too (as THUMOS14-sized ones do), so both product paths of
# `methods.layers` stay covered, in this process and in the commands it starts (tests compare their results bit
# for bit); set before pointtal is imported. `test_conv3_rows.py::test_onednn_size_gate` checks the shipped gate.
os.environ["POINTTAL_ONEDNN_MIN_MACS"] = "0"

# Tests sit in rooms that mirror the package (tests/data, tests/methods, ...); a test module imports another's
# helpers by module name (`from test_layouts import write_lacp`) from any room.
sys.path += [str(room) for room in sorted(Path(__file__).resolve().parent.iterdir()) if any(room.glob("test_*.py"))]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """The `tiny` synthetic preset (24 train + 12 test videos, 4 classes, 64-wide features), seed 0."""
    from pointtal.data.synthetic import generate

    out = tmp_path_factory.mktemp("tiny") / "data"
    generate(out, "tiny", seed=0, progress=False)
    return out


@pytest.fixture
def drawn(monkeypatch) -> list:
    """The matplotlib Figure of every pointtal.viz plot, in call order (captured when saved, then saved as
    usual), so a test can read back what was drawn: bars, spans, markers and curves."""
    import pointtal.viz

    figures = []
    save = pointtal.viz._save

    def capture(fig, path):
        figures.append(fig)
        return save(fig, path)

    monkeypatch.setattr(pointtal.viz, "_save", capture)
    return figures


def tiny_raw_config(data: Path, method: str = "sfnet", steps: int = 30, **train) -> dict:
    """A small, fast config on the tiny preset (raw mapping for `build_config`)."""
    clicks = [str(p) for p in sorted((data / "points").glob("annotator*.csv"))]
    raw = {
        "data": {
            "annotations": str(data / "annotations.json"),
            "features": str(data / "features"),
            "points": "weak" if method == "weak" else ("soda" if method == "soda" else clicks),
        },
        "method": {"name": method, "hidden": 16, **({"resample_t": 64} if method == "soda" else {})},
        "train": {
            "steps": steps,
            "batch_size": 4,
            "lr": 1e-3,
            "eval_every": 0,
            "checkpoint_every": 5,
            "log_every": 5,
            "device": "cpu",
            "progress": False,
            "report": False,
            **train,
        },
        "eval": {"batch_size": 8},
    }
    if method == "sfnet":
        raw["method"]["expand_step"] = steps // 2
    return raw


def interrupt_training_at(monkeypatch, stop: int) -> None:
    """Make `pointtal train` fail with KeyboardInterrupt when step `stop` begins (checkpoint.pt then holds
    step `stop` when train.checkpoint_every divides it)."""
    from pointtal.engine import trainer

    original = trainer.Trainer._train_step

    def step(self, index):
        if index == stop:
            raise KeyboardInterrupt
        return original(self, index)

    monkeypatch.setattr(trainer.Trainer, "_train_step", step)


@pytest.fixture(autouse=True)
def _restore_logger_levels():
    """Commands set package logger levels (`train --quiet`, `ablate` without --progress); put them back after
    each test so a later test's caplog sees the records it expects, whatever the test order."""
    import logging

    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict) if name.startswith("pointtal")]
    levels = {lg.name: lg.level for lg in [logging.getLogger("pointtal"), *loggers]}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("pointtal") and name not in levels:
            logging.getLogger(name).setLevel(logging.NOTSET)
