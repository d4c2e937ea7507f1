"""Training whose stderr is a file or pipe prints a line every log_every steps and at each evaluation;
--quiet prints none of them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import tiny_raw_config

from pointtal.engine.logs import StepLog, format_duration

REPO = Path(__file__).resolve().parents[2]
STEP_LINE = re.compile(r"^step (\d+)/12 loss (\d+\.\d{4}) (\d+\.\d\d) steps/s ETA (\d+s|\d+m\d\ds|\d+h\d\dm)$")
EVAL_LINE = re.compile(r"^step (\d+): mAP@0\.1=\d+\.\d\d .* avg=\d+\.\d\d \(\d+\.\d s\)$")


def _train(tiny_data: Path, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    raw = tiny_raw_config(tiny_data, "sfnet", steps=12, eval_every=6, log_every=5, progress=True)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "pointtal", "train", str(config), "--out", str(tmp_path / "run"), *flags]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)


def test_training_to_a_pipe_logs_steps_and_evaluations(tiny_data, tmp_path):
    lines = _train(tiny_data, tmp_path).stderr.splitlines()
    steps = [STEP_LINE.match(line) for line in lines if line.startswith("step ") and "/12 " in line]
    assert all(steps), lines
    assert [int(m.group(1)) for m in steps] == [5, 10, 12]  # every log_every steps and the last one
    assert all(float(m.group(3)) > 0 for m in steps)
    assert steps[-1].group(4) == "0s"  # nothing left at the last step
    evaluations = [
        EVAL_LINE.match(line) for line in lines if re.match(r"^step \d+: ", line) and "label mining" not in line
    ]
    assert all(evaluations) and [int(m.group(1)) for m in evaluations] == [6, 12], lines
    assert "\r" not in "".join(lines)  # no progress bar without a terminal


def test_quiet_training_prints_no_step_or_evaluation_line(tiny_data, tmp_path):
    result = _train(tiny_data, tmp_path, "--quiet")
    assert not [line for line in result.stderr.splitlines() if line.startswith("step ")], result.stderr
    assert "step 12:" in result.stdout  # the result itself still goes to stdout


def test_step_log_rate_and_eta_come_from_the_clock_since_the_last_line(caplog):
    now = [100.0]
    log = StepLog(total=100, start=0, every=10, enabled=True, clock=lambda: now[0])
    caplog.set_level("INFO", logger="pointtal.engine.logs")
    now[0] = 105.0  # 10 steps in 5 s
    log.step(10, 0.5)
    log.step(11, 0.5)  # not a multiple of 10: no line
    log.restart(11)  # an evaluation ran: its time is left out
    now[0] = 200.0
    log.step(20, 0.25)  # 9 steps in 95 s
    assert [r.getMessage() for r in caplog.records] == [
        "step 10/100 loss 0.5000 2.00 steps/s ETA 45s",
        f"step 20/100 loss 0.2500 {9 / 95:.2f} steps/s ETA {format_duration(80 / (9 / 95))}",
    ]
    assert format_duration(80 / (9 / 95)) == "14m04s"
    assert format_duration(3 * 3600 + 7 * 60 + 5) == "3h07m"
    StepLog(total=100, start=0, every=10, enabled=False).step(10, 1.0)
    assert len(caplog.records) == 2
