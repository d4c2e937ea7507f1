"""The route from points to a detector in one run directory: teacher, pseudo labels, student.

A config with a `teacher:` section (pointtal.config.TeacherConfig; e.g. configs/thumos14_hrpro_actionformer.yaml)
trains, in one `pointtal train` run directory RUN:

1. the teacher, a point method (any: the engine names none), in RUN/teacher, a run directory of its own; or
   reuses `teacher.run`, a finished run of a point method on the same data (checked before any work);
2. its pseudo labels for the training videos, RUN/pseudo_labels.json: exactly the file that
   `pointtal predict TEACHER --pseudo-labels P.json` writes with the section's threshold and overlap rule;
3. the student (the config's own method, which trains on segments) in RUN itself, on those pseudo labels
   (`data.segments: teacher`), so that `predict`, `evaluate` and `visualize` read RUN as any run.

Each stage resumes: `pointtal train --out RUN --resume` continues the teacher where it stopped, rewrites the
pseudo labels while the student has not begun, and continues the student from its checkpoint. A finished
teacher is never retrained (a changed teacher key that would change its weights is refused, by name). RUN's
config.yaml is written at the start, so `--resume` needs no CONFIG whichever stage stopped.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from pointtal.config import Config, build_config, save_config
from pointtal.engine.checkpoint import load_checkpoint
from pointtal.engine.predictor import predict_run
from pointtal.engine.rundir import refuse_weight_changes
from pointtal.engine.setup import load_run_data
from pointtal.engine.trainer import TrainResult, train
from pointtal.errors import InputError
from pointtal.methods import METHODS
from pointtal.outputs import check_outputs, check_writable_dir, mark_run_dir, record_output, same_file

log = logging.getLogger(__name__)

TEACHER_DIR = "teacher"  # RUN/teacher: the teacher's run directory
PSEUDO_LABELS = "pseudo_labels.json"  # RUN/pseudo_labels.json: the student's training segments


def teacher_dir(config: Config, run_dir: Path) -> Path:
    """Where the route's teacher run is: `teacher.run`, or RUN/teacher."""
    return Path(config.teacher.run) if config.teacher.run else run_dir / TEACHER_DIR


def train_route(config: Config, run_dir: str | Path, *, resume: bool = False) -> TrainResult:
    """Run the three stages of the module doc into `run_dir`; returns the student's result."""
    run_dir = Path(run_dir)
    guard_route(config, run_dir, resume)
    teacher = teacher_dir(config, run_dir)
    if config.teacher.run is None:
        train_teacher(config.teacher.config, teacher)
    pseudo = run_dir / PSEUDO_LABELS
    student_started = (run_dir / "checkpoint.pt").is_file()
    if not student_started or not pseudo.is_file():
        write_pseudo_labels(config, teacher, pseudo)
    else:
        log.info("route: the student resumes on %s", pseudo)
    log.info("route: student (%s) in %s", config.method, run_dir)
    data = load_run_data(dataclasses.replace(config, data=dataclasses.replace(config.data, segments=str(pseudo))))
    return train(config, run_dir, resume=student_started, data=data)


def guard_route(config: Config, run_dir: Path, resume: bool) -> None:
    """Before any work: a new route needs a fresh RUN, a resumed one a started one whose trained stages keep
    their config; a reused teacher run is checked; RUN's config.yaml is written."""
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"--out {run_dir}: exists and is not a directory")
    started = any(
        path.is_file()
        for path in (run_dir / TEACHER_DIR / "checkpoint.pt", run_dir / "checkpoint.pt", run_dir / PSEUDO_LABELS)
    )
    if started and not resume:
        raise InputError(f"{run_dir}: already holds a run; pass --resume to continue it or choose another --out")
    if resume and not (run_dir / "config.yaml").is_file():
        raise InputError(f"{run_dir}: nothing to resume (no config.yaml: the route has not started there)")
    student = run_dir / "checkpoint.pt"
    if student.is_file():
        refuse_weight_changes(run_dir, load_checkpoint(student), config)  # before the teacher moves
    if config.teacher.run is not None:
        check_teacher_run(Path(config.teacher.run), config)
    check_writable_dir(run_dir)
    check_outputs(
        {"the route's pseudo labels": run_dir / PSEUDO_LABELS},
        {"data.annotations": config.data.annotations, "data.features": config.data.features},
        remedy="choose another --out",
    )
    mark_run_dir(run_dir)
    save_config(config, run_dir / "config.yaml")


def train_teacher(config: Config, directory: Path) -> None:
    """Stage 1: train the teacher in `directory`, resume it, or keep it when it has finished with this config."""
    checkpoint = directory / "checkpoint.pt"
    if checkpoint.is_file():
        saved = load_checkpoint(checkpoint)
        refuse_weight_changes(directory, saved, config)
        old = build_config(saved["config"], f"{checkpoint}: config").train
        same_schedule = (old.steps, old.epochs) == (config.train.steps, config.train.epochs)
        if (directory / "predictions.json").is_file() and same_schedule:
            log.info("route: teacher %s finished at step %d; not retrained", directory, int(saved["step"]))
            return
    log.info("route: teacher (%s) in %s", config.method, directory)
    train(config, directory, resume=checkpoint.is_file())


def write_pseudo_labels(config: Config, teacher: Path, pseudo: Path) -> None:
    """Stage 2: the teacher's pseudo labels for the training videos (`predict --pseudo-labels`)."""
    t = config.teacher
    summary = predict_run(
        teacher,
        subset=config.data.train_subset,
        device=config.train.device,
        progress=config.train.progress,
        pseudo_labels=str(pseudo),
        pseudo_threshold=t.pseudo_threshold,
        pseudo_suppress=t.pseudo_overlaps == "suppress",
    )
    record_output(pseudo, "train")
    log.info("route: pseudo labels %s: %s", pseudo, summary)


def check_teacher_run(path: Path, config: Config) -> None:
    """`teacher.run` is a finished `pointtal train` run of a point method on the route's data (one line naming
    the key otherwise)."""
    key = f"teacher.run={path}"
    if not path.is_dir():
        raise InputError(f"{key}: run directory not found")
    checkpoint = path / "checkpoint.pt"
    if not checkpoint.is_file():
        raise InputError(f"{key}: no checkpoint.pt; give the directory of a `pointtal train` run of a point method")
    if not (path / "predictions.json").is_file():
        raise InputError(
            f"{key}: the run has not finished (no predictions.json); finish it first "
            f"(pointtal train --out {path} --resume)"
        )
    try:
        teacher = build_config(load_checkpoint(checkpoint)["config"], f"{checkpoint}: config")
    except (InputError, KeyError, TypeError) as err:
        raise InputError(f"{key}: its checkpoint's config is not readable ({str(err).splitlines()[0][:160]})") from None
    if getattr(METHODS[teacher.method], "supervision", "points") != "points" or teacher.data.points == "full":
        what = f"method '{teacher.method}'" + (" on the ground truth" if teacher.data.points == "full" else "")
        raise InputError(f"{key}: a run of {what}; the teacher must be a point method trained on points")
    for name in ("annotations", "features"):
        mine, theirs = getattr(config.data, name), getattr(teacher.data, name)
        if mine and theirs and not same_file(mine, theirs):
            raise InputError(
                f"{key}: trained on data.{name}={theirs}, this route reads {mine}; give a teacher run of the same data"
            )
