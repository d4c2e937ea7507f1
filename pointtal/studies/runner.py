"""The one engine behind `pointtal ablate` and `pointtal sweep`: plan a study's runs, run them (here, in parallel
processes, or as submitit jobs), and rewrite the table as each run finishes.

Plan. Every (seed, variant) is one run directory OUT/<table>/<variant>/seed<k>/. A variant whose config differs
from an earlier variant's (same seed) only in inference-only keys (pointtal.engine.raw.inference_keys: the
localizer's thresholds, NMS, eval.tiou) is *derived*: the earlier run is trained once and this one re-localizes
its raw outputs (RUN_DIR/raw/; network methods: rescores its checkpoint) and re-evaluates -- nothing is
trained for it. A fused variant (SODA's table 7)
fuses two trained runs at inference. Every other variant is trained.

Idempotent and crash-safe. Before any work every run directory is checked (a different config there is an
error). A finished run (predictions.json + metrics.jsonl) is reused; a run with a checkpoint.pt resumes from it;
a finished run of the identical config elsewhere under OUT is copied (into a temporary directory, renamed into
place). Each run is trained under its lock (studies.locks): a run another live study process (or job) holds is
waited for and then read, never trained a second time; a lock left by a killed process is stale and taken over.

Launchers. `jobs=1` trains in this process. `jobs=N` starts up to N `python -m pointtal.studies.job` processes
at once, each with cpu_count // N CPU threads and, when CUDA devices are visible, its own device
(CUDA_VISIBLE_DEVICES, slot i -> device i mod the device count); each writes RUN_DIR.log. `launcher="slurm"`
(or "submitit-local", submitit's LocalExecutor, for a machine without Slurm) submits each run as a submitit
job (logs under OUT/submitit/). A run that fails is reported in the table as failed, with its log path; the
others go on.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pointtal.atomic import write_text_atomic
from pointtal.config import Config
from pointtal.errors import InputError
from pointtal.studies.job import TAKEN_EXIT, final_record, status_path, train_locked
from pointtal.studies.locks import RunLock, held_by_other, release_if_job

log = logging.getLogger(__name__)

LAUNCHERS = ("local", "slurm", "submitit-local")
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Task:
    """One run of a study."""

    variant: object  # ablation.Variant
    seed: int
    run_dir: Path
    config: Config | None  # None for a fused variant
    kind: str  # "train" | "derive" | "fuse"
    source: Path | None = None  # derive: the trained run whose raw outputs it re-localizes


@dataclass
class Launch:
    """How a study's training runs are run (see module doc)."""

    jobs: int = 1
    launcher: str = "local"
    partition: str | None = None
    gpus: int | None = None  # GPUs per Slurm job
    time_min: int | None = None  # Slurm time limit per job, minutes
    folder: Path | None = None  # submitit logs (default OUT/submitit)
    extra: dict = field(default_factory=dict)  # more submitit parameters


# ----------------------------------------------------------------------------- planning
def training_key(config: Config) -> str:
    """The config with its inference-only and cosmetic keys left out: runs with equal keys train the same."""
    from pointtal.engine.raw import inference_keys

    raw = config.to_dict()
    for key in (*inference_keys(config), "train.progress", "train.report"):
        section, name = key.split(".", 1)
        raw.get(section, {}).pop(name, None)
    return json.dumps(raw, sort_keys=True, default=str)


def plan_tasks(study, configs: dict, out_dir: Path, seeds: Sequence[int], source: Path | None = None) -> list[Task]:
    """Seed-major tasks; within a seed a variant equal to an earlier one up to inference-only keys derives.
    With `source` (a finished run) every variant derives from it."""

    tasks = []
    for seed in seeds:
        trained: dict[str, Path] = {}
        for variant in study.variants:
            run_dir = out_dir / study.key / variant.name / f"seed{seed}"
            if variant.fuse:
                tasks.append(Task(variant, seed, run_dir, None, "fuse"))
                continue
            config = configs[(variant.name, seed)]
            if source is not None:
                tasks.append(Task(variant, seed, run_dir, config, "derive", source))
                continue
            key = training_key(config)
            if key in trained:
                tasks.append(Task(variant, seed, run_dir, config, "derive", trained[key]))
            else:
                trained.setdefault(key, run_dir)
                tasks.append(Task(variant, seed, run_dir, config, "train"))
    return tasks


def check_run_dirs(tasks: Sequence[Task]) -> None:
    """A run directory holding a run of another config is an error, before any run starts."""
    from pointtal.studies.ablation import _same_config

    for task in tasks:
        if (
            task.config is not None
            and (task.run_dir / "config.yaml").is_file()
            and not _same_config(task.run_dir, task.config)
        ):
            raise InputError(
                f"{task.run_dir}: holds a run with a different config than this study would train "
                f"(changed --set, --grid or CONFIG?); use another --out"
            )


# ----------------------------------------------------------------------------- launchers
@dataclass
class Done:
    task: Task
    status: str  # trained | resumed | reused | taken | failed
    metrics: dict | None
    log: Path | None = None
    error: str = ""


def _job_path(task: Task) -> Path:
    return task.run_dir.with_name(task.run_dir.name + ".job.json")


def _job_file(task: Task, threads: int | None) -> Path:
    path = _job_path(task)
    spec = {"run_dir": str(task.run_dir.resolve()), "config": task.config.to_dict(), "threads": threads}
    write_text_atomic(path, json.dumps(spec, indent=1))
    return path


def _log_path(task: Task) -> Path:
    return task.run_dir.with_name(task.run_dir.name + ".log")


class Inline:
    """Train in this process, one run at a time; the run's log records (and a failure's traceback) also go
    to RUN_DIR.log."""

    slots = 1

    def __init__(self):
        self.done: list[Done] = []

    def start(self, task: Task) -> None:
        log_path = _log_path(task)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        package = logging.getLogger("pointtal")
        package.addHandler(handler)
        try:
            status, record = train_locked(task.run_dir, task.config)
        except Exception as err:  # one run's failure is reported in the table; the study goes on
            log.debug("%s failed", task.run_dir, exc_info=True)
            handler.handle(
                logging.makeLogRecord(
                    {
                        "levelno": logging.ERROR,
                        "levelname": "ERROR",
                        "name": __name__,
                        "msg": f"run failed: {type(err).__name__}: {err}",
                    }
                )
            )
            self.done.append(Done(task, "failed", None, log_path, f"{type(err).__name__}: {err}"))
            return
        finally:
            package.removeHandler(handler)
            handler.close()
        self.done.append(Done(task, status, record, log_path))

    def poll(self) -> list[Done]:
        done, self.done = self.done, []
        return done

    @property
    def running(self) -> int:
        return len(self.done)  # a finished run holds the one slot until it is reported (its table written)


def visible_gpus() -> list[str]:
    """CUDA devices this process may hand out (CUDA_VISIBLE_DEVICES entries, else 0..count-1)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d for d in listed.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class Processes:
    """Up to `jobs` `python -m pointtal.studies.job` processes at once (module doc)."""

    def __init__(self, jobs: int, uses_cuda: bool):
        self.slots = jobs
        self.threads = max(1, cpu_count() // jobs)
        self.gpus = visible_gpus() if uses_cuda else []
        self.free = list(range(jobs))
        self.procs: list[tuple[subprocess.Popen, Task, int, Path]] = []

    def start(self, task: Task) -> None:
        slot = self.free.pop(0)
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
        log_path = _log_path(task)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        job = _job_file(task, self.threads)
        status_path(job).unlink(missing_ok=True)  # a status left by an earlier job of this run
        with open(log_path, "ab") as handle:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pointtal.studies.job", str(job)],
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.procs.append((proc, task, slot, log_path))

    def poll(self) -> list[Done]:
        done, still = [], []
        for proc, task, slot, log_path in self.procs:
            code = proc.poll()
            if code is None:
                still.append((proc, task, slot, log_path))
                continue
            self.free.append(slot)
            record = final_record(task.run_dir)
            if code == TAKEN_EXIT:
                done.append(Done(task, "taken", None, log_path))
            elif code == 0 and record is not None:
                done.append(Done(task, _job_status(_job_path(task)), record, log_path))
            else:
                done.append(Done(task, "failed", None, log_path, f"exit code {code}"))
        self.procs = still
        return done

    @property
    def running(self) -> int:
        return len(self.procs)


def _job_status(job_path: Path) -> str:
    """The status a job process left beside its JOB.json (`{"status": ...}`), or "trained"."""
    try:
        return str(json.loads(status_path(job_path).read_text(encoding="utf-8"))["status"])
    except (OSError, ValueError, KeyError, TypeError):
        return "trained"


class Submitit:
    """Each run a submitit job: Slurm, or submitit's LocalExecutor (`submitit-local`)."""

    def __init__(self, launch: Launch, out_dir: Path, uses_cuda: bool):
        try:
            import submitit
        except ImportError:
            raise InputError(f"--launcher {launch.launcher} needs submitit: pip install 'pointtal[slurm]'") from None
        folder = launch.folder or out_dir / "submitit"
        if launch.launcher == "slurm":
            self.executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
            params = {
                "timeout_min": launch.time_min or 60,
                "gpus_per_node": launch.gpus or 0,
                **({"slurm_partition": launch.partition} if launch.partition else {}),
            }
        else:
            self.executor = submitit.LocalExecutor(folder=folder)
            params = {"timeout_min": launch.time_min or 60}
            if not uses_cuda:
                params["visible_gpus"] = ()
        self.executor.update_parameters(**params, **launch.extra)
        self.slots = launch.jobs
        self.jobs: list = []

    def start(self, task: Task) -> None:
        from pointtal.studies.job import run_job

        job = self.executor.submit(run_job, str(_job_file(task, None)))
        self.jobs.append((job, task))

    def poll(self) -> list[Done]:
        done, still = [], []
        for job, task in self.jobs:
            if not job.done():
                still.append((job, task))
                continue
            release_if_job(task.run_dir, job.job_id)  # a job killed at its time limit leaves its lock
            log_path = Path(job.paths.stderr)
            error = job.exception()
            if error is not None:
                line = str(error).strip().splitlines()
                done.append(Done(task, "failed", None, log_path, line[-1] if line else type(error).__name__))
                continue
            result = job.result()
            done.append(Done(task, result["status"], result["metrics"], log_path))
        self.jobs = still
        return done

    @property
    def running(self) -> int:
        return len(self.jobs)


def make_launcher(launch: Launch, out_dir: Path, tasks: Sequence[Task]):
    uses_cuda = any(t.config is not None and t.config.train.device != "cpu" for t in tasks if t.kind == "train")
    if launch.launcher in ("slurm", "submitit-local"):
        return Submitit(launch, out_dir, uses_cuda)
    if launch.jobs == 1:
        return Inline()
    return Processes(launch.jobs, uses_cuda)


# ----------------------------------------------------------------------------- running
def _copy_twin(task: Task, twin: Path) -> bool:
    """Copy a finished identical run into place (temporary directory, then rename); False if another process
    holds the run."""
    with_lock = RunLock(task.run_dir)
    if not with_lock.acquire():
        return False
    try:
        if not task.run_dir.exists():
            tmp = task.run_dir.with_name(f".{task.run_dir.name}.copy-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(twin, tmp)
            os.replace(tmp, task.run_dir)
        return True
    finally:
        with_lock.release()


def execute(tasks: Sequence[Task], out_dir: Path, launch: Launch, report: Callable[[Done, float], None]) -> None:
    """Run every task (module doc), calling `report(done, seconds)` as each one ends."""
    from pointtal.studies.ablation import _find_twin

    started: dict[Path, float] = {}
    queue: list[Task] = []
    waiting: list[Task] = []  # held by another process: read when its lock is released
    for task in tasks:
        if task.kind != "train":
            continue
        finished = final_record(task.run_dir)
        if finished is not None:
            report(Done(task, "reused", finished), 0.0)
            continue
        if not task.run_dir.exists():
            twin = _find_twin(out_dir, task.run_dir, task.config, task.seed)
            if twin is not None and _copy_twin(task, twin):
                report(Done(task, f"copied from {twin.relative_to(out_dir)}", final_record(task.run_dir)), 0.0)
                continue
        queue.append(task)
    launcher = make_launcher(launch, out_dir, queue) if queue else None
    while queue or waiting or (launcher is not None and launcher.running):
        for task in list(waiting):
            if held_by_other(task.run_dir) is None:
                waiting.remove(task)
                record = final_record(task.run_dir)
                if record is not None:
                    report(Done(task, "reused (trained by another process)", record), 0.0)
                else:
                    queue.insert(0, task)  # its owner stopped before the end: resume it here
        while queue and launcher.running < launcher.slots:
            task = queue.pop(0)
            holder = held_by_other(task.run_dir)
            if holder is not None:
                log.info(
                    "%s: trained by another process (%s pid %s); waiting for it",
                    task.run_dir,
                    holder.get("host"),
                    holder.get("pid"),
                )
                waiting.append(task)
                continue
            started[task.run_dir] = time.perf_counter()
            launcher.start(task)
        for done in launcher.poll():
            if done.status == "taken":
                waiting.append(done.task)
                continue
            report(done, time.perf_counter() - started.get(done.task.run_dir, time.perf_counter()))
        if queue or waiting or launcher.running:
            time.sleep(POLL_SECONDS if launcher.running or waiting else 0)
    pair_cache: dict = {}
    for task in tasks:
        if task.kind != "train":
            begin = time.perf_counter()
            report(_inference_task(task, pair_cache), time.perf_counter() - begin)


def _inference_task(task: Task, pair_cache: dict) -> Done:
    """A derived or fused run (trains nothing), under its lock; a run another process holds is waited for."""
    from pointtal.studies.ablation import _fused_run

    lock = RunLock(task.run_dir)
    while not lock.acquire():
        time.sleep(POLL_SECONDS)
    try:
        if task.kind == "fuse":
            members = {name: task.run_dir.parent.parent / name / f"seed{task.seed}" for name in task.variant.members}
            missing = [str(p) for p in members.values() if final_record(p) is None]
            if missing:
                return Done(task, "failed", None, None, f"member run not finished: {missing[0]}")
            record, status = _fused_run(task.run_dir, task.variant, members, pair_cache)
            return Done(task, status, record)
        finished = final_record(task.run_dir)
        if finished is not None and (task.run_dir / "derived.json").is_file():
            return Done(task, "reused", finished)
        if final_record(task.source) is None:
            return Done(task, "failed", None, None, f"source run not finished: {task.source}")
        from pointtal.engine.raw import derive_run

        record = derive_run(task.source, task.config, task.run_dir)
        return Done(task, f"derived from {task.source.parent.name}", record)
    finally:
        lock.release()
