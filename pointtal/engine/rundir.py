"""A run directory's guard: checked before any data is loaded, so a mistake costs nothing.

* A new run goes into a new or empty directory, a pointtal run directory without a checkpoint (a run that
  stopped before its first one), or a directory whose other files `pointtal train` does not write; it never
  replaces a file pointtal did not write (pointtal.outputs) or one of the run's own inputs.
* The directory must be writable: a small probe file is written and fsynced first (full or read-only disk).
* `--resume` continues a run with the config its checkpoint was trained with. Keys that change the weights
  (method, data, schedule, optimiser) are refused by name; keys that only change how the run is watched
  (RUNTIME_KEYS: device, progress bar, logging, evaluation cadence, the number of steps) may change and are recorded in
  `config_changes.jsonl` as `{"step": N, "changed": {key: [old, new]}}`, so `config.yaml` stays true to the
  weights.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pointtal.config import Config, build_config
from pointtal.engine.checkpoint import load_checkpoint
from pointtal.engine.tracking import check_installed
from pointtal.errors import InputError
from pointtal.outputs import RUN_FILES, check_outputs, check_writable_dir, is_run_dir, mark_run_dir, same_file

log = logging.getLogger(__name__)

RUNTIME_KEYS = frozenset(
    {
        "train.device",
        "train.progress",
        "train.report",
        "train.log_every",
        "train.checkpoint_every",
        "train.eval_every",
        "eval.batch_size",
        # the schedule's length only says where the loop stops (no learning-rate schedule reads it), so a run is
        # lengthened by resuming with more steps: its weights equal those of a run started with that many
        "train.steps",
        "train.epochs",
        "train.wandb",
        "train.wandb_project",
        "train.wandb_group",
        "train.wandb_tags",  # experiment tracking
    }
)  # keys that cannot change the weights of a run
# a route's (pointtal.engine.route) teacher keys that cannot change its weights; its schedule can, and with it the
# pseudo labels the student trains on
ROUTE_RUNTIME_KEYS = frozenset(f"teacher.{key}" for key in RUNTIME_KEYS - {"train.steps", "train.epochs"})
PATH_KEYS = frozenset(
    {
        f"{prefix}data.{key}"
        for prefix in ("", "teacher.")
        for key in ("annotations", "features", "class_list", "video_names")
    }
)
CHANGES_FILE = "config_changes.jsonl"


def guard_run_dir(config: Config, run_dir: Path, resume: bool, main: bool) -> dict | None:
    """Check `run_dir` for a new run or a resume (module doc); returns the checkpoint to resume, or None."""
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"--out {run_dir}: exists and is not a directory")
    if config.data.features and run_dir.is_dir() and same_file(run_dir, config.data.features):
        raise InputError(f"--out {run_dir}: is the data.features directory this run reads; choose another --out")
    check_installed(config)  # train.wandb on: the wandb package is there
    checkpoint = run_dir / "checkpoint.pt"
    saved = None
    if resume:
        if not checkpoint.is_file():
            raise InputError(f"{checkpoint}: nothing to resume (no checkpoint in the run directory)")
        saved = load_checkpoint(checkpoint)
        refuse_weight_changes(run_dir, saved, config)
    elif checkpoint.is_file():
        raise InputError(f"{run_dir}: already holds a run; pass --resume to continue it or choose another --out")
    elif not is_run_dir(run_dir):
        for name in RUN_FILES:
            check_outputs(
                {"--out": run_dir / name},
                config_inputs(config),
                remedy="choose another --out (a new run needs a new or empty directory)",
            )
    if main:
        check_writable_dir(run_dir)
        mark_run_dir(run_dir)
    return saved


def config_inputs(config: Config) -> dict[str, str]:
    """The files a run reads (named by config key), which its outputs must never be."""
    d = config.data
    inputs = {"data.annotations": d.annotations, "data.class_list": d.class_list, "data.video_names": d.video_names}
    points = (d.points,) if isinstance(d.points, str) else d.points
    inputs.update({f"data.points[{i}]": p for i, p in enumerate(points)})
    return {key: path for key, path in inputs.items() if path}


def config_changes(saved_raw: dict, config: Config) -> dict[str, tuple[Any, Any]]:
    """Flat keys whose value differs between the checkpoint's config and `config` -> (old, new).

    The saved config is re-validated first, so a key added to pointtal since (with its default) is no
    change; paths naming the same file are no change.
    """
    try:
        saved_raw = build_config(saved_raw, "checkpoint config").to_dict()
    except InputError:
        pass  # compare as stored: every differing key is named
    old, new = _flatten(saved_raw), _flatten(config.to_dict())
    changed = {}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b or (key in PATH_KEYS and a and b and same_file(a, b)):
            continue
        changed[key] = (a, b)
    return changed


def refuse_weight_changes(run_dir: Path, saved: dict, config: Config) -> dict[str, tuple[Any, Any]]:
    """InputError naming every changed key that is not a RUNTIME_KEY; returns the runtime changes."""
    changed = config_changes(saved.get("config") or {}, config)
    fixed = {k: v for k, v in changed.items() if k not in RUNTIME_KEYS | ROUTE_RUNTIME_KEYS}
    if fixed:
        listed = ", ".join(f"{k} ({_show(a)} -> {_show(b)})" for k, (a, b) in fixed.items())
        raise InputError(
            f"{run_dir}: --resume continues the run with the config its checkpoint was trained with, but "
            f"{listed} differ{'s' if len(fixed) == 1 else ''}; resume without changing "
            f"{'it' if len(fixed) == 1 else 'them'} (pointtal train --out {run_dir} --resume), "
            "or start a new run with another --out"
        )
    return changed


def record_runtime_changes(run_dir: Path, saved: dict, config: Config) -> None:
    """Append the allowed (runtime) changes of a resume, with the step they apply from, to CHANGES_FILE."""
    changed = config_changes(saved.get("config") or {}, config)
    if not changed:
        return
    step = int(saved["step"])
    with (run_dir / CHANGES_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"step": step, "changed": {k: list(v) for k, v in changed.items()}}) + "\n")
    log.info("resume from step %d with %s", step, ", ".join(f"{k}={_show(b)}" for k, (_, b) in changed.items()))


def _flatten(raw: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return flat


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return "unset" if value is None else str(value)
