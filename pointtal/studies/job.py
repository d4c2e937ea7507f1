"""One study run as a job: train (or resume) a run directory under its lock. Run in the study process
(`--jobs 1`), as `python -m pointtal.studies.job JOB.json` (`--jobs N`), or as a submitit job (`--launcher`).

JOB.json (written atomically by the study process beside the run directory): {"run_dir": ..., "config": the
resolved config mapping, "threads": CPU threads or null}. The job takes the run's lock (studies.locks): a run
another live process holds is not touched (status "taken"; exit code 3 as a command). A finished run is
reused, a run with a checkpoint resumes from it, any other is trained from scratch: a run is never trained twice.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TAKEN_EXIT = 3  # exit code of `python -m pointtal.studies.job` when another process holds the run


def final_record(run_dir: Path) -> dict | None:
    """The last record of `metrics.jsonl` when the run is finished (predictions.json written), else None."""
    from pointtal.engine.logs import read_metrics

    if not (run_dir / "predictions.json").is_file():
        return None
    records = read_metrics(run_dir)
    return records[-1] if records else None


def train_locked(run_dir: Path, config) -> tuple[str, dict | None]:
    """(status, final record): "reused" | "trained" | "resumed", or ("taken", None) when another live process
    holds the run's lock."""
    from pointtal.studies.locks import RunLock

    lock = RunLock(run_dir)
    if not lock.acquire():
        return "taken", None
    try:
        finished = final_record(run_dir)
        if finished is not None:
            return "reused", finished
        from pointtal.engine.trainer import train

        resume = (run_dir / "checkpoint.pt").is_file()
        result = train(config, run_dir, resume=resume)
        return ("resumed" if resume else "trained"), result.metrics
    finally:
        lock.release()


def run_job(job_path: str) -> dict:
    """Run JOB.json (module doc); returns {"status", "metrics"} (what a submitit job hands back)."""
    from pointtal.config import build_config

    spec = json.loads(Path(job_path).read_text(encoding="utf-8"))
    if spec.get("threads"):
        import torch

        torch.set_num_threads(int(spec["threads"]))
    config = build_config(spec["config"], str(job_path))
    status, record = train_locked(Path(spec["run_dir"]), config)
    return {"status": status, "metrics": record}


def status_path(job_path: str | Path) -> Path:
    """Where a job process leaves its status for the study process: beside JOB.json."""
    return Path(job_path).with_suffix(".status.json")


def main(argv: list[str]) -> int:
    import logging

    from pointtal.atomic import write_json

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    outcome = run_job(argv[0])
    write_json(status_path(argv[0]), {"status": outcome["status"]})
    return TAKEN_EXIT if outcome["status"] == "taken" else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
