"""Every option of every command is checked before any work starts; options that cannot apply are errors.

A bad option gives exit code 2 and one line on stderr that names the option (no traceback), and nothing is
written and no work starts: the functions that do each command's work (train, predict, extract, synthesise,
evaluate, serve, ...) are replaced by a tripwire for these tests.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
from conftest import tiny_raw_config

from pointtal.cli import COMMANDS, build_parser, main


class WorkStarted(Exception):
    """Raised by the tripwire: a command got past its checks into its work."""


WORK = [  # (module, attribute): where each command's work begins
    ("pointtal.engine.trainer", "train"),
    ("pointtal.engine.predictor", "predict_run"),
    ("pointtal.video.extract", "extract_videos"),
    ("pointtal.cli.detect", "_detect"),  # detect: extraction and inference (listing the videos is no work)
    ("pointtal.data.synthetic", "generate"),
    ("pointtal.cli.synth", "generate"),
    ("pointtal.cli.ablate", "run_study"),
    ("pointtal.cli.sweep", "run_study"),
    ("pointtal.cli.label", "ClickStore"),
    ("pointtal.cli.label", "make_server"),
    ("pointtal.cli.evaluate", "load_truth"),
    ("pointtal.cli.annotate", "load_truth"),
    ("pointtal.engine.report", "draw_timeline"),
]


@pytest.fixture
def tripwire(monkeypatch):
    import importlib

    def work(*args, **kwargs):
        raise WorkStarted

    for module, name in WORK:
        monkeypatch.setattr(importlib.import_module(module), name, work)


def files_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------------------- every numeric option, every command

BASE = {  # argv that parses for each command (files need not exist: the checks come first)
    "demo": [],
    "synth": ["{tmp}/synth", "--preset", "tiny"],
    "annotate": ["{tmp}/gt.json", "--scheme", "soda", "--out", "{tmp}/p.csv"],
    "train": ["{tmp}/c.yaml", "--out", "{tmp}/run"],
    "predict": ["{tmp}/run", "--out", "{tmp}/p.json", "--pseudo-labels", "{tmp}/g.json"],
    "evaluate": ["{tmp}/gt.json", "{tmp}/p.json"],
    "visualize": ["{tmp}/run", "--video", "v", "--out", "{tmp}/f.png"],
    "ablate": ["{tmp}/c.yaml", "--table", "4", "--out", "{tmp}/ablate"],
    "sweep": ["{tmp}/c.yaml", "--grid", "train.lr=0.1,0.2", "--out", "{tmp}/sweep"],
    "label": ["{tmp}/videos", "--classes", "{tmp}/c.txt", "--out", "{tmp}/c.csv"],
    "extract": ["{tmp}/v.mp4", "--out", "{tmp}/features", "--random-init"],
    "detect": ["{tmp}/run", "{tmp}/v.mp4", "--out", "{tmp}/d.json"],
}


def command_actions(name: str) -> list[argparse.Action]:
    parser, _ = build_parser(name)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]._actions


NUMERIC = [
    (name, action.option_strings[-1], action.type)
    for name in COMMANDS
    for action in command_actions(name)
    if action.option_strings and action.type in (int, float)
]


def test_every_command_checks_before_it_runs():
    """Each command defines check_args (main calls it before run), and the numeric table below is not empty."""
    import importlib

    for name, module in COMMANDS.items():
        assert callable(getattr(importlib.import_module(module), "check_args", None)), name
    assert set(BASE) == set(COMMANDS)
    assert {("detect", "--top"), ("predict", "--batch-size"), ("label", "--port")} <= {n[:2] for n in NUMERIC}


@pytest.mark.parametrize("command, option, kind", NUMERIC, ids=[f"{n[0]}{n[1]}" for n in NUMERIC])
def test_every_numeric_option_refuses_values_out_of_its_range(tmp_path, capsys, tripwire, command, option, kind):
    """-1 is outside every numeric option's range (sizes, counts, seeds, rates, ports, fractions); a float
    option also refuses nan and inf. A new numeric option without a check reaches the tripwire here."""
    base = [a.format(tmp=tmp_path) for a in BASE[command]]
    for bad in ["-1"] + (["nan", "inf"] if kind is float else []):
        before = files_under(tmp_path)
        assert main([command, *base, f"{option}={bad}"]) == 2
        line = one_error_line(capsys)
        assert f"{option} {float(bad) if kind is float else int(bad)}" in line, line
        assert files_under(tmp_path) == before


# ------------------------------------------------------------------------------------- a table of bad options


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory) -> dict[str, Path]:
    """A tiny trained run, copied three times with an extract.json each: features from random weights (seed
    0), from weights files (TV-L1 flow), and from an RGB-only backbone with weights."""
    from pointtal.atomic import file_sha256
    from pointtal.config import build_config
    from pointtal.engine.trainer import train

    root = tmp_path_factory.mktemp("runs")
    train(build_config(tiny_raw_config(tiny_data, "weak", steps=2)), root / "trained")
    weights = root / "rgb.pt"
    weights.write_bytes(b"weights")
    base = {
        "fps": 25.0,
        "stride": 16,
        "backbone": "i3d",
        "dim": 2048,
        "flow": "tvl1",
        "resize": 256,
        "crop": 224,
        "videos": {},
    }
    recorded = {"file": "rgb.pt", "sha256": file_sha256(weights)}
    manifests = {
        "random": {**base, "weights": {"random_init_seed": 0}},
        "weighted": {**base, "weights": {"rgb": recorded, "flow": recorded}},
        "rgb_only": {**base, "backbone": "r2plus1d_18", "dim": 512, "flow": None, "weights": {"rgb": recorded}},
    }
    out = {"weights": weights}
    for name, manifest in manifests.items():
        shutil.copytree(root / "trained", root / name)
        (root / name / "extract.json").write_text(json.dumps(manifest))
        out[name] = root / name
    return out


def _files(tmp: Path) -> dict[str, Path]:
    (tmp / "videos").mkdir()
    (tmp / "videos" / "v.mp4").write_bytes(b"")
    (tmp / "c.txt").write_text("Jump\n")
    (tmp / "a_file").write_text("not a directory")
    (tmp / "soda.yaml").write_text("method:\n  name: soda\n")
    (tmp / "lacp.yaml").write_text("method:\n  name: lacp\n")
    return {"tmp": tmp, "video": tmp / "videos" / "v.mp4"}


# (id, argv, texts the one error line holds). {random}/{weighted}/{rgb_only}: runs; {weights}: a file.
BAD = [
    # detect: the cases
    (
        "detect-plot-txt",
        "detect {random} {video} --out {tmp}/d.json --plot {tmp}/x.txt",
        ["--plot", "unknown figure format '.txt'", ".png, .pdf, .svg"],
    ),
    ("detect-top-negative", "detect {random} {video} --out {tmp}/d.json --top -3", ["--top -3: must be >= 1"]),
    (
        "detect-other-seed",
        "detect {random} {video} --out {tmp}/d.json --random-init --seed 5",
        ["--seed 5: the run's features used random weights with seed 0", "extract.json"],
    ),
    (
        "detect-weights-on-random-run",
        "detect {random} {video} --out {tmp}/d.json --rgb-weights {weights}",
        ["--rgb-weights", "not used with random weights", "extract.json"],
    ),
    (
        "detect-random-on-weighted-run",
        "detect {weighted} {video} --out {tmp}/d.json --random-init",
        ["--random-init: the run's features were made with weights files"],
    ),
    (
        "detect-seed-on-weighted-run",
        "detect {weighted} {video} --out {tmp}/d.json --seed 3",
        ["--seed 3: applies to --random-init only"],
    ),
    (
        "detect-raft-on-tvl1-run",
        "detect {weighted} {video} --out {tmp}/d.json --raft-weights {weights}",
        ["--raft-weights", "applies to --flow raft; the flow is tvl1"],
    ),
    (
        "detect-flow-on-rgb-backbone",
        "detect {rgb_only} {video} --out {tmp}/d.json --flow-weights {weights}",
        ["--flow-weights", "backbone r2plus1d_18 is RGB only"],
    ),
    ("detect-batch-zero", "detect {random} {video} --out {tmp}/d.json --batch 0", ["--batch 0: must be >= 1"]),
    (
        "detect-crop-beyond-resize",
        "detect {random} {video} --out {tmp}/d.json --resize 64 --crop 128",
        ["--crop 128: must be <= --resize 64"],
    ),
    ("detect-device", "detect {random} {video} --out {tmp}/d.json --device gpu", ["--device gpu: is not a device"]),
    (
        "detect-features-dir-file",
        "detect {random} {video} --out {tmp}/d.json --features-dir {tmp}/a_file",
        ["--features-dir", "is a file"],
    ),
    # predict
    ("predict-batch-zero", "predict {random} --out {tmp}/p.json --batch-size 0", ["--batch-size 0: must be >= 1"]),
    (
        "predict-threshold-without-pseudo",
        "predict {random} --out {tmp}/p.json --pseudo-threshold 0.3",
        ["--pseudo-threshold 0.3: applies to --pseudo-labels"],
    ),
    (
        "predict-threshold-range",
        "predict {random} --pseudo-labels {tmp}/g.json --pseudo-threshold 1.5",
        ["--pseudo-threshold 1.5: must be in [0, 1]"],
    ),
    ("predict-device", "predict {random} --out {tmp}/p.json --device cuda:x", ["--device cuda:x"]),
    # extract
    (
        "extract-weights-with-random",
        "extract {video} --out {tmp}/f --random-init --rgb-weights {weights}",
        ["--rgb-weights", "not used with random weights"],
    ),
    (
        "extract-seed-without-random",
        "extract {video} --out {tmp}/f --seed 3 --rgb-weights {weights} --flow-weights {weights}",
        ["--seed 3: applies to --random-init only"],
    ),
    (
        "extract-flow-on-rgb-backbone",
        "extract {video} --out {tmp}/f --backbone r2plus1d_18 --random-init --flow raft",
        ["--flow raft: backbone r2plus1d_18 is RGB only"],
    ),
    (
        "extract-raft-model-with-tvl1",
        "extract {video} --out {tmp}/f --random-init --raft-model raft_large",
        ["--raft-model raft_large: applies to --flow raft; the flow is tvl1"],
    ),
    (
        "extract-fps-range",
        "extract {video} --out {tmp}/f --random-init --fps 5000",
        ["--fps 5000.0: must be in (0, 1000]"],
    ),
    ("extract-out-file", "extract {video} --out {tmp}/a_file --random-init", ["--out", "is a file"]),
    # annotate
    (
        "annotate-seed-with-check",
        "annotate {tmp}/gt.json --check {tmp}/p.csv --seed 3",
        ["--seed 3: applies when simulating points"],
    ),
    ("annotate-overwrite-with-check", "annotate {tmp}/gt.json --check {tmp}/p.csv --overwrite", ["--overwrite"]),
    (
        "annotate-jitter-on-soda",
        "annotate {tmp}/gt.json --scheme soda --out {tmp}/p.csv --jitter 0.1",
        ["--jitter 0.1: applies to --scheme sfnet-center-jitter, not soda"],
    ),
    (
        "annotate-start-ratio-range",
        "annotate {tmp}/gt.json --scheme sfnet-start --out {tmp}/p.csv --start-ratio 1.5",
        ["--start-ratio 1.5: must be in (0, 1]"],
    ),
    (
        "annotate-strict-when-simulating",
        "annotate {tmp}/gt.json --scheme sfnet-uniform --out {tmp}/p.csv --strict",
        ["--strict: applies to --check"],
    ),
    # evaluate
    ("evaluate-tiou-zero", "evaluate {tmp}/gt.json {tmp}/p.json --tiou 0,0.5", ["--tiou", "threshold 0.0 must be"]),
    (
        "evaluate-recall-tiou-alone",
        "evaluate {tmp}/gt.json {tmp}/p.json --recall-tiou 0.5",
        ["--recall-tiou 0.5: sets the thresholds of --recall / --proposals"],
    ),
    (
        "evaluate-overwrite-alone",
        "evaluate {tmp}/gt.json {tmp}/p.json --overwrite",
        ["--overwrite: applies to the files --json and --plots write"],
    ),
    ("evaluate-plots-file", "evaluate {tmp}/gt.json {tmp}/p.json --plots {tmp}/a_file", ["--plots", "is a file"]),
    # label
    (
        "label-port-range",
        "label {tmp}/videos --classes {tmp}/c.txt --out {tmp}/c.csv --port 70000",
        ["--port 70000: must be in [0, 65535]"],
    ),
    ("label-stats-with-port", "label --stats --out {tmp}/c.csv --port 9000", ["--port 9000: --stats only reports"]),
    ("label-stats-with-videos", "label {tmp}/videos --stats --out {tmp}/c.csv", ["VIDEOS_DIR", "--stats only"]),
    # synth, demo, visualize, ablate, train
    ("synth-odd-dim", "synth {tmp}/s --preset tiny --dim 3", ["--dim 3: must be even"]),
    ("synth-out-file", "synth {tmp}/a_file --preset tiny", ["OUT_DIR", "is a file"]),
    ("demo-out-file", "demo --out {tmp}/a_file", ["--out", "is a file"]),
    ("visualize-suffix", "visualize {random} --video v --out {tmp}/f.txt", ["--out", "unknown figure format '.txt'"]),
    ("visualize-device", "visualize {random} --video v --out {tmp}/f.png --device tpu", ["--device tpu"]),
    (
        "ablate-progress-dry-run",
        "ablate {tmp}/soda.yaml --table 4 --out {tmp}/ab --dry-run --progress",
        ["--progress: --dry-run trains nothing"],
    ),
    (
        "ablate-bad-knob-dry-run",
        "ablate {tmp}/soda.yaml --table 4 --out {tmp}/ab --dry-run --set method.eta=2",
        ["method.eta=2.0 must be in (0, 1]"],
    ),
    (
        "ablate-bad-knob",
        "ablate {tmp}/soda.yaml --table 4 --out {tmp}/ab --set method.nms_tiou=-1",
        ["method.nms_tiou=-1.0 must be in [0, 1]"],
    ),
    (
        "train-lacp-class-threshold",
        "train {tmp}/lacp.yaml --out {tmp}/run --set method.class_threshold=2",
        ["method.class_threshold=2.0 must be in [0, 1]", "lacp.yaml"],
    ),
    (
        "train-hrpro-thresholds",
        "train {tmp}/lacp.yaml --out {tmp}/run --set method.name=hrpro --set method.agnostic_thresholds=[5,-1]",
        ["method.agnostic_thresholds=(5.0, -1.0)", "each in [0, 1]"],
    ),
    ("train-out-file", "train {tmp}/lacp.yaml --out {tmp}/a_file", ["--out", "is a file"]),
]


def _argv(template: str, names: dict) -> list[str]:
    return [part.format(**names) for part in template.split()]


@pytest.mark.parametrize("argv, texts", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_options_are_one_line_before_any_work(tmp_path, capsys, tripwire, runs, argv, texts):
    names = {**_files(tmp_path), **runs}
    before = files_under(tmp_path)
    assert main(_argv(argv, names)) == 2
    line = one_error_line(capsys)
    for text in texts:
        assert text in line, (text, line)
    assert files_under(tmp_path) == before  # nothing written


# The same commands with options that do apply get past the checks (into the tripwire): the checks refuse
# what cannot apply, not more.
GOOD = [
    "detect {random} {video} --out {tmp}/d.json --random-init --seed 0 --top 1 --plot {tmp}/t.svg",
    "detect {weighted} {video} --out {tmp}/d.json --rgb-weights {weights} --flow-weights {weights}",
    "predict {random} --pseudo-labels {tmp}/g.json --pseudo-threshold 0.3 --batch-size 1",
    "extract {video} --out {tmp}/f --random-init --seed 3 --flow raft --raft-model raft_large",
    "annotate {tmp}/gt.json --scheme sfnet-center-jitter --out {tmp}/p.csv --jitter 0.1 --seed 2",
    "annotate {tmp}/gt.json --check {tmp}/p.csv --strict",
    "evaluate {tmp}/gt.json {tmp}/p.json --recall --recall-tiou 0.5 --json {tmp}/m.json --overwrite",
    "synth {tmp}/s --preset tiny --dim 8",
    "ablate {tmp}/soda.yaml --table 4 --out {tmp}/ab --set method.eta=0.5",
    "train {tmp}/lacp.yaml --out {tmp}/run --set method.class_threshold=0.4",
]


@pytest.mark.parametrize("argv", GOOD, ids=[g.split()[0] + str(i) for i, g in enumerate(GOOD)])
def test_options_that_apply_pass_the_checks(tmp_path, tripwire, runs, argv):
    with pytest.raises(WorkStarted):
        main(_argv(argv, {**_files(tmp_path), **runs}))


def test_numeric_messages_name_the_value_as_typed(tmp_path, capsys, tripwire):
    """nan and inf are refused as values, not crashes (math.isfinite in every number check)."""
    assert main(["label", "--stats", "--out", str(tmp_path / "c.csv"), "--fps", "nan"]) == 2
    assert "--fps nan: must be in (0, 1e+06]" in one_error_line(capsys)
