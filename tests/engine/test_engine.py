"""The training engine: runs end to end, resumes exactly after SIGKILL, writes atomically, fails clearly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_raw_config
from reference_eval import reference_average_from_files

from pointtal.cli import main
from pointtal.config import build_config
from pointtal.engine.checkpoint import load_checkpoint, save_checkpoint
from pointtal.engine.logs import read_metrics
from pointtal.engine.setup import load_run_data
from pointtal.engine.trainer import train
from pointtal.errors import InputError


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def _same_weights(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", ["sfnet", "soda", "weak"])
def test_train_writes_the_run_directory(tiny_data, tmp_path, method):
    raw = tiny_raw_config(tiny_data, method, steps=12, eval_every=6)
    result = train(build_config(raw), tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.yaml", "checkpoint.pt", "best.pt", "metrics.jsonl", "predictions.json", "frames.json"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").iterdir()), "no TensorBoard events"
    records = read_metrics(run)
    assert [r["step"] for r in records] == [6, 12]
    assert result.metrics == records[-1]
    assert set(records[-1]) >= {"mAP@0.1", "mAP@0.5", "mAP@0.7", "average", "cmAP", "frame_mAP"}
    # the reported average is the one the slow reference evaluator gives for the written predictions
    want = reference_average_from_files(
        tiny_data / "annotations.json", run / "predictions.json", build_config(raw).eval.tiou
    )
    assert records[-1]["average"] == pytest.approx(want, abs=1e-6)
    predictions = json.loads((run / "predictions.json").read_text())
    assert set(predictions["results"]) == {
        v
        for v, e in json.loads((tiny_data / "annotations.json").read_text())["database"].items()
        if e["subset"] == "test"
    }
    saved = load_checkpoint(run / "checkpoint.pt")
    assert saved["step"] == 12 and saved["classes"] and saved["version"]
    assert yaml.safe_load((run / "config.yaml").read_text())["method"]["name"] == method


@pytest.mark.slow  # three training runs
def test_same_seed_same_weights_other_seed_differs(tiny_data, tmp_path):
    runs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train(build_config(tiny_raw_config(tiny_data, "sfnet", steps=8, seed=seed)), tmp_path / name)
        runs.append(_weights(tmp_path / name / "checkpoint.pt"))
    assert _same_weights(runs[0], runs[1])
    assert not _same_weights(runs[0], runs[2])


def test_anchor_expansion_is_logged_with_precision(tiny_data, tmp_path, caplog, monkeypatch):
    from pointtal.methods.sfnet import SFNet

    refreshes = []

    def keep(self, *args, __f=SFNet.refresh_labels, **kwargs):
        refreshes.append(__f(self, *args, **kwargs))
        return refreshes[-1]

    monkeypatch.setattr(SFNet, "refresh_labels", keep)
    caplog.set_level("INFO")
    train(build_config(tiny_raw_config(tiny_data, "sfnet", steps=8)), tmp_path / "run")
    lines = [r.getMessage() for r in caplog.records if "label mining" in r.getMessage()]
    (refresh,) = refreshes  # one expansion, at step 4 of 8
    truth = load_run_data(build_config(tiny_raw_config(tiny_data, "sfnet", steps=8)), train=True).train.truth_labels
    precision = refresh.precision(truth)  # the tiny data's truth gives a precision
    assert refresh.added > 0 and 0.0 < precision <= 1.0
    assert lines == [f"step 4: label mining: {refresh.added} pseudo frames/labels added, precision {precision:.3f}"]


def test_refuses_to_overwrite_a_run_and_resume_needs_a_checkpoint(tiny_data, tmp_path):
    config = build_config(tiny_raw_config(tiny_data, "weak", steps=2))
    train(config, tmp_path / "run")
    with pytest.raises(InputError, match="already holds a run"):
        train(config, tmp_path / "run")
    with pytest.raises(InputError, match="nothing to resume"):
        train(config, tmp_path / "empty", resume=True)


# ------------------------------------------------------------------ crash safety and exact resume
def _write_config(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _train_cmd(config: Path, run: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pointtal", "train", str(config), "--out", str(run), *extra]


def _kill_after_checkpoint(cmd: list[str], run: Path, extra_delay: float) -> int:
    """Start training, SIGKILL it `extra_delay` s after its first checkpoint appears; return its exit code."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (run / "checkpoint.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(extra_delay)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


@pytest.fixture(scope="module")
def crash_setup(tiny_data, tmp_path_factory):
    """An uninterrupted reference run (SF-Net with anchor expansion mid-way) and its config file."""
    tmp = tmp_path_factory.mktemp("crash")
    raw = tiny_raw_config(
        tiny_data, "sfnet", steps=600, checkpoint_every=3, eval_every=300
    )  # long enough to be killed 1.1 s after its first checkpoint on an idle machine
    config = _write_config(tmp, raw)
    subprocess.run(_train_cmd(config, tmp / "reference"), check=True, capture_output=True)
    return config, _weights(tmp / "reference" / "checkpoint.pt"), tmp


@pytest.mark.slow  # trains in subprocesses and kills them
@pytest.mark.parametrize("delay", [0.0, 0.4, 1.1])
def test_sigkill_then_resume_ends_with_identical_weights(crash_setup, tmp_path, delay):
    config, reference, _ = crash_setup
    run = tmp_path / "run"
    code = _kill_after_checkpoint(_train_cmd(config, run), run, delay)
    assert code == -signal.SIGKILL, "training finished before it could be killed: make the run longer"
    saved = load_checkpoint(run / "checkpoint.pt")  # always loadable, whatever the moment of the kill
    assert 0 < saved["step"] < 600
    done = subprocess.run(_train_cmd(config, run, "--resume"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _same_weights(_weights(run / "checkpoint.pt"), reference)
    steps = [r["step"] for r in read_metrics(run)]
    assert steps == sorted(set(steps)) and steps[-1] == 600, "metrics.jsonl repeated or lost evaluations"


def test_save_is_atomic_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"model": {"w": torch.ones(2)}, "step": 1, "config": {}, "classes": [], "in_dim": 2}, path)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint({"model": {}, "step": 2, "config": {}, "classes": [], "in_dim": 2}, path)
    assert load_checkpoint(path)["step"] == 1, "a failed save damaged the previous checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"], "temp file left behind"


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "pickle"])
def test_damaged_checkpoint_is_a_clear_error(tiny_data, tmp_path, capsys, damage):
    run = tmp_path / "run"
    train(build_config(tiny_raw_config(tiny_data, "weak", steps=2)), run)
    path = run / "checkpoint.pt"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(4096))
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a pickle that would run code if loaded without weights_only
        import pickle

        marker = tmp_path / "pwned"

        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        torch.save({"model": Evil()}, path, _use_new_zipfile_serialization=True, pickle_module=pickle)
    with pytest.raises(InputError, match="checkpoint"):
        load_checkpoint(path)
    code = main(["predict", str(run), "--out", str(tmp_path / "p.json"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(path) in err
    assert not (tmp_path / "pwned").exists()


def test_predict_cli_matches_the_runs_own_predictions(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    train(build_config(tiny_raw_config(tiny_data, "sfnet", steps=6)), run)
    out = tmp_path / "pred.json"
    frames = tmp_path / "frames.json"
    assert main(["predict", str(run), "--out", str(out), "--frames-out", str(frames), "--no-progress"]) == 0
    assert json.loads(out.read_text()) == json.loads((run / "predictions.json").read_text())
    assert json.loads(frames.read_text()) == json.loads((run / "frames.json").read_text())
    assert "12 videos" in capsys.readouterr().out


def test_train_cli_bad_config_is_one_line(tiny_data, tmp_path, capsys):
    config = _write_config(tmp_path, tiny_raw_config(tiny_data, "sfnet"))
    cases = [
        ["--set", "method.no_such_key=1"],
        ["--set", "train.steps=-3"],
        ["--set", "data.features=" + str(tmp_path / "missing")],
        ["--set", "data.train_subset=nope"],
        ["--set", "method.name=nonsense"],
    ]
    for extra in cases:
        code = main(["train", str(config), "--out", str(tmp_path / "run"), *extra])
        err = capsys.readouterr().err.strip()
        assert code != 0, extra
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        key = extra[1].split("=")[0].split(".")[-1]
        assert key in err or "missing" in err, err
