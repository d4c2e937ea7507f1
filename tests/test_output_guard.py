"""Every command that writes goes through the one output guard (issue 18, class 2), checked as a property of
the CLI itself: the subcommands and their options are read from the argparse parser, so a new command or a new
option that takes a value cannot skip this file. Every output option must be listed in OUTPUTS (and is then
tested) or in NOT_OUTPUTS (an input or a plain value); for each output option:

(a) pointing it at one of the command's inputs is refused (with --overwrite too, where the command has it),
(b) pointing it at an existing file pointtal did not write is refused without --overwrite,

each time in one error line naming the path, with the target's bytes unchanged and before any work starts: the
command's expensive step (loading a run, extracting, training, serving) is replaced by one that fails the test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

from pointtal.cli import build_parser, main

# (command, option or positional dest) -> "file" | "dir"
OUTPUTS = {
    ("demo", "--out"): "dir",
    ("synth", "out_dir"): "dir",
    ("annotate", "--out"): "file",
    ("annotate", "--json"): "file",
    ("annotate", "--merge"): "file",
    ("train", "--out"): "dir",
    ("predict", "--out"): "file",
    ("predict", "--frames-out"): "file",
    ("predict", "--pseudo-labels"): "file",
    ("evaluate", "--json"): "file",
    ("evaluate", "--plots"): "dir",
    ("visualize", "--out"): "file",
    ("ablate", "--out"): "dir",
    ("sweep", "--out"): "dir",
    ("label", "--out"): "file",
    ("extract", "--out"): "dir",
    ("detect", "--out"): "file",
    ("detect", "--plot"): "file",
    ("detect", "--features-dir"): "dir",
}
EXTRACT_VALUES = {"--rgb-weights", "--flow-weights", "--raft-weights", "--device"}
# every other option taking free text (not int/float, no choices): read by the command, or a plain value
NOT_OUTPUTS = {
    "demo": set(),
    "synth": set(),
    "annotate": {
        "ground_truth",
        "--check",
        "--fps-dict",
        "--subset",
        "--background-label",
        "--features",
        "--import",
        "--export",
        "--format",
        "--agreement",
    },
    "train": {"config", "--set"},
    "predict": {"run_dir", "--checkpoint", "--features", "--annotations", "--subset", "--device"},
    "evaluate": {
        "ground_truth",
        "predictions",
        "--subset",
        "--tiou",
        "--distance",
        "--exclude-videos",
        "--ambiguous",
        "--class-list",
        "--recall-tiou",
        "--protocol",
    },
    "visualize": {"run_dir", "--video", "--checkpoint", "--features", "--device"},
    "ablate": {
        "config",
        "--table",
        "--set",
        "--metric",
        "--partition",
        "--dataset",
    },  # --dataset: names of directories under --out
    "sweep": {"config", "--grid", "--set", "--metric", "--partition", "--name"},
    "label": {
        "videos_dir",
        "--classes",
        "--annotator",
        "--host",
        "--predictions",
        "--ground-truth",
        "--background-label",
    },
    "extract": {"videos", *EXTRACT_VALUES},
    "detect": {"run_dir", "videos", "--checkpoint", *EXTRACT_VALUES},
}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser, _ = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _name(action: argparse.Action) -> str:
    return action.option_strings[0] if action.option_strings else action.dest


def _free_text_options(sub: argparse.ArgumentParser) -> set[str]:
    """Options that take a value which may be a path: not a flag, not a number, not a fixed choice."""
    return {
        _name(a)
        for a in sub._actions
        if a.nargs != 0 and a.type not in (int, float) and a.choices is None and a.dest != "help"
    }


def test_every_option_of_every_command_is_classified():
    subs = _subparsers()
    assert set(subs) == set(NOT_OUTPUTS), "a command was added or removed: classify its options here"
    for command, sub in subs.items():
        outputs = {option for (cmd, option) in OUTPUTS if cmd == command}
        for option in _free_text_options(sub):
            assert option in outputs or option in NOT_OUTPUTS[command], (
                f"pointtal {command} {option}: classify it in tests/test_output_guard.py: an output (OUTPUTS, "
                "then the guard is tested on it) or an input / plain value (NOT_OUTPUTS)"
            )
        for option in outputs:
            assert option in {_name(a) for a in sub._actions}, f"pointtal {command} {option}: no such option"
        assert not outputs & NOT_OUTPUTS[command]


# ------------------------------------------------------------------------------------------- the inputs


class WorkStarted(Exception):
    """Raised by the stand-in of a command's expensive step: the guard let the command start working."""


def _work(*_, **__):
    raise WorkStarted("the command started working before refusing its output")


@dataclass
class Case:
    argv: list[str]  # the command line without the output option under test
    inputs: list[Path]  # what the command reads (files, and directories it reads)
    writes: dict[str, str] = field(default_factory=dict)  # dir option -> a file name it writes there
    overwrite: str | None = "--overwrite"  # the flag that allows replacing a foreign file, if the command has one
    work: tuple[str, ...] = ()  # "module:attr" stand-ins raising WorkStarted
    extra: dict[str, list[str]] = field(default_factory=dict)  # option -> more args it needs


GT = {
    "version": "t",
    "database": {
        "v1": {
            "subset": "validation",
            "duration": 4.0,
            "fps": 25,
            "annotations": [{"segment": [1.0, 2.0], "label": "jump"}],
        },
        "v2": {"subset": "test", "duration": 4.0, "fps": 25, "annotations": [{"segment": [0.5, 1.5], "label": "jump"}]},
    },
}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Tiny inputs of every command: a ground truth, features, clicks, a config, a run directory, a video
    (only its name is read before the guard), a class list, predictions."""
    root = tmp_path_factory.mktemp("world")
    (root / "gt.json").write_text(json.dumps(GT))
    (root / "features").mkdir()
    for vid in GT["database"]:
        np.save(root / "features" / f"{vid}.npy", np.zeros((6, 4), np.float32))
    (root / "clicks.csv").write_text("v1,1.5,jump\n")
    (root / "classes.txt").write_text("jump\n")
    (root / "predictions.json").write_text(
        json.dumps({"results": {"v2": [{"label": "jump", "score": 0.9, "segment": [0.5, 1.5]}]}})
    )
    (root / "videos").mkdir()
    (root / "videos" / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not decoded before the guard")
    raw = {
        "data": {
            "annotations": str(root / "gt.json"),
            "features": str(root / "features"),
            "points": [str(root / "clicks.csv")],
            "fps": 25,
            "stride": 16,
        },
        "method": {"name": "sfnet", "hidden": 8},
        "train": {"steps": 1, "device": "cpu", "progress": False, "report": False, "eval_every": 0},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(raw))
    run = root / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(raw))
    for name in ("checkpoint.pt", "best.pt"):
        (run / name).write_bytes(b"PK\x03\x04 a 200 MB checkpoint")
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    (run / "extract.json").write_text(json.dumps({"fps": 25, "stride": 16, "videos": {}}))
    (run / ".pointtal-outputs.json").write_text(json.dumps({"run": True}))
    return root


def _cases(w: Path) -> dict[str, Case]:
    run, video = w / "run", w / "videos" / "clip.mp4"
    run_files = [run / n for n in ("checkpoint.pt", "best.pt", "config.yaml", "metrics.jsonl", "extract.json")]
    data = [w / "gt.json", w / "clicks.csv", w / "features" / "v1.npy"]
    small = ["--random-init", "--resize", "16", "--crop", "16", "--no-progress"]
    return {
        "demo": Case(
            ["demo", "--quick"],
            [],
            {"--out": "notes.txt"},
            None,
            ("pointtal.data.synthetic:generate", "pointtal.engine.trainer:train"),
        ),
        "synth": Case(["synth", "--preset", "tiny", "--no-progress"], [], {"out_dir": "annotations.json"}),
        "annotate": Case(
            ["annotate", str(w / "gt.json")],
            [w / "gt.json"],
            extra={
                "--out": ["--scheme", "sfnet-uniform"],
                "--json": ["--agreement", str(w / "clicks.csv"), str(w / "clicks.csv")],
                "--merge": ["--agreement", str(w / "clicks.csv"), str(w / "clicks.csv")],
            },
        ),
        "train": Case(
            ["train", str(w / "config.yaml")],
            [w / "config.yaml", *data, w / "features"],
            {"--out": "config.yaml"},
            None,
            ("pointtal.engine.trainer:load_run_data",),
        ),
        "predict": Case(
            ["predict", str(run), "--no-progress"],
            [*run_files, *data],
            work=("pointtal.engine.predictor:predict_run",),
            extra={"--frames-out": ["--out", str(w / "fresh_predictions.json")]},
        ),
        "evaluate": Case(
            [
                "evaluate",
                str(w / "gt.json"),
                str(w / "predictions.json"),
                "--subset",
                "test",
                "--class-list",
                str(w / "classes.txt"),
            ],
            [w / "gt.json", w / "predictions.json", w / "classes.txt"],
            {"--plots": "pr_curves.png"},
        ),
        "visualize": Case(
            ["visualize", str(run), "--video", "v2"],
            [*run_files, *data],
            work=("pointtal.engine.predictor:load_trained",),
        ),
        "ablate": Case(
            ["ablate", str(w / "config.yaml"), "--table", "4", "--seeds", "1"],
            [w / "config.yaml", w / "gt.json"],
            {"--out": "table_4.md"},
            None,
            ("pointtal.cli.ablate:run_study",),
        ),
        "sweep": Case(
            ["sweep", str(w / "config.yaml"), "--grid", "train.lr=0.1,0.2", "--seeds", "1"],
            [w / "config.yaml", w / "gt.json"],
            {"--out": "table_sweep.md"},
            None,
            ("pointtal.cli.sweep:run_study",),
        ),
        "label": Case(
            [
                "label",
                str(w / "videos"),
                "--classes",
                str(w / "classes.txt"),
                "--port",
                "0",
                "--ground-truth",
                str(w / "gt.json"),
            ],
            [w / "classes.txt", w / "gt.json", video],
            overwrite=None,
            work=("pointtal.cli.label:make_server",),
        ),
        "extract": Case(
            ["extract", str(video), *small], [video], {"--out": "clip.npy"}, work=("pointtal.video.extract:Extractor",)
        ),
        "detect": Case(
            ["detect", str(run), str(video), *small],
            [*run_files, *data, video, run, w / "features"],
            {"--features-dir": "clip.npy"},
            work=("pointtal.engine.predictor:load_trained", "pointtal.video.extract:Extractor"),
            extra={
                "--plot": ["--out", str(w / "fresh_detections.json")],
                "--features-dir": ["--out", str(w / "fresh_detections2.json")],
            },
        ),
    }


def _suffix(command: str, option: str) -> str:
    sub = _subparsers()[command]
    metavar = next(a.metavar for a in sub._actions if _name(a) == option) or ""
    return Path(metavar).suffix or ".out"


def _argv(case: Case, option: str, value: Path) -> list[str]:
    args = [*case.argv, *case.extra.get(option, [])]
    return [*args, str(value)] if not option.startswith("-") else [*args, option, str(value)]


def _digest(path: Path) -> str:
    if path.is_dir():
        return "dir:" + ",".join(sorted(p.name for p in path.iterdir()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused(capsys, monkeypatch, case: Case, argv: list[str], target: Path, named: Path | None = None) -> str:
    """Run `argv`: it must exit 2 with one error line naming `named` (default `target`; a file under it is
    named too), before any work, and leave `target` as it was."""
    import importlib

    for spec in case.work:
        module, attr = spec.split(":")
        monkeypatch.setattr(importlib.import_module(module), attr, _work)
    before = _digest(target)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, f"{argv}: exit {code}, stderr {err}"
    assert len(err) == 1 and str(named or target) in err[0], (argv, err)
    assert _digest(target) == before, f"{target} changed"
    return err[0]


PARAMS = sorted(OUTPUTS)


@pytest.mark.parametrize("command, option", PARAMS, ids=[f"{c}{o}" for c, o in PARAMS])
def test_an_output_is_never_one_of_the_inputs(world, tmp_path, capsys, monkeypatch, command, option):
    case = _cases(world)[command]
    if not case.inputs:
        assert command in ("demo", "synth")  # they read no file
        return
    for i, source in enumerate(case.inputs):
        if OUTPUTS[command, option] == "file" and source.is_dir():
            continue  # a file output pointed at a directory is refused by the place check (tested below)
        names = [source]
        if source.is_file():  # the same file under another name: a symlink and a hard link
            (tmp_path / f"link{i}{source.suffix}").symlink_to(source)
            os.link(source, tmp_path / f"hard{i}{source.suffix}")
            names += [tmp_path / f"link{i}{source.suffix}", tmp_path / f"hard{i}{source.suffix}"]
        for name in names:
            for extra in ([], [case.overwrite]) if case.overwrite else ([],):
                _refused(capsys, monkeypatch, case, [*_argv(case, option, name), *extra], source, named=name)


@pytest.mark.parametrize("command, option", PARAMS, ids=[f"{c}{o}" for c, o in PARAMS])
def test_a_foreign_file_is_kept_without_overwrite(world, tmp_path, capsys, monkeypatch, command, option):
    case = _cases(world)[command]
    if OUTPUTS[command, option] == "file":
        target = tmp_path / f"notes{_suffix(command, option)}"
        target.write_text("my notes, not a pointtal output\n")
        _refused(capsys, monkeypatch, case, _argv(case, option, target), target)
    else:
        folder = tmp_path / "folder"
        folder.mkdir()
        target = folder / case.writes[option]
        target.write_text("my notes, not a pointtal output\n")
        _refused(capsys, monkeypatch, case, _argv(case, option, folder), target, named=folder)
        assert target.read_text() == "my notes, not a pointtal output\n"


def test_a_file_output_pointed_at_a_directory_is_one_line(world, tmp_path, capsys, monkeypatch):
    for (command, option), kind in OUTPUTS.items():
        if kind == "file":
            case = _cases(world)[command]
            _refused(capsys, monkeypatch, case, _argv(case, option, tmp_path), tmp_path)


def test_a_directory_input_protects_its_files_but_not_pointtal_outputs_in_it(tmp_path):
    from pointtal.errors import InputError
    from pointtal.outputs import check_outputs, record_output

    features = tmp_path / "features"
    (features / "sub").mkdir(parents=True)
    (features / "sub" / "v.npy").write_bytes(b"features")
    os.link(features / "sub" / "v.npy", tmp_path / "hard.npy")
    (tmp_path / "link.npy").symlink_to(features / "sub" / "v.npy")
    for out in (features / "sub" / "v.npy", tmp_path / "hard.npy", tmp_path / "link.npy"):
        with pytest.raises(InputError, match="is a file of the --features this command reads"):
            check_outputs({"--out": out}, {"--features": features}, overwrite=True)
    check_outputs({"--out": features / "new.json"}, {"--features": features})  # a new file: written beside them
    (features / "p.json").write_text("{}")
    record_output(features / "p.json", "predict")
    check_outputs({"--out": features / "p.json"}, {"--features": features})  # pointtal's own: rewritten
    assert (features / "sub" / "v.npy").read_bytes() == b"features"
