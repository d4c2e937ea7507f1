"""One lock per study run, so two study processes (or jobs) on one directory never train the same run.

The lock is a file `RUN_DIR.lock` beside the run directory, created with O_CREAT | O_EXCL (atomic on local
disks and on NFSv3+), holding the owner's host, pid and the pid's start time. A lock is stale when its owner is
on this host and that process is gone (or the pid now belongs to a process started later: pid reuse); a stale
lock is taken over by renaming it away first, so of two processes that both find it stale only one wins. A lock
held from another host is never judged stale here (its owner may be a running cluster job); it records the
Slurm job id, and the study process that submitted the job removes it once the job has ended. Delete such a
file by hand only if its job is known to be dead.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from pathlib import Path


def lock_path(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + ".lock")


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc), or None where unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return started is None or _start_time(pid) in (None, started)


def owner(path: Path) -> dict | None:
    """The lock's owner record, or None when there is no lock file (an unreadable one reads as {})."""
    try:
        return json.loads(path.read_text(encoding="utf-8") or "{}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


EMPTY_GRACE_SECONDS = 60.0  # a lock file still empty this long after its creation: its writer died in between


def is_stale(record: dict, path: Path | None = None) -> bool:
    """Whether a lock's owner is known to be gone: same host, process not running (or a reused pid); or an
    empty record (the owner died between creating and writing the file) older than EMPTY_GRACE_SECONDS."""
    if not record and path is not None:
        try:
            return time.time() - path.stat().st_mtime > EMPTY_GRACE_SECONDS
        except FileNotFoundError:
            return False
    if record.get("host") != socket.gethostname() or not isinstance(record.get("pid"), int):
        return False
    return not _alive(record["pid"], record.get("started"))


def held_by_other(run_dir: Path) -> dict | None:
    """The owner of a live lock on `run_dir` held by another process, else None (stale locks read as free)."""
    path = lock_path(run_dir)
    record = owner(path)
    if record is None or record.get("pid") == os.getpid() or is_stale(record, path):
        return None
    return record


class RunLock:
    """`with RunLock(run_dir):` holds the run's lock; `acquire()` returns False when a live owner holds it."""

    def __init__(self, run_dir: Path):
        self.path = lock_path(Path(run_dir))
        self.held = False

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": _start_time(os.getpid()),
            "job": os.environ.get("SLURM_JOB_ID"),
        }
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if not self._break_stale():
                    return False
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(record))
            self.held = True
            return True
        return False

    def _break_stale(self) -> bool:
        """Remove the lock file when its owner is gone; False when it is live (or another process won)."""
        record = owner(self.path)
        if record is None:
            return True  # released meanwhile: try again
        if not is_stale(record, self.path):
            return False
        aside = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.stale")
        try:
            os.rename(self.path, aside)  # atomic: one of several breakers gets the file
        except FileNotFoundError:
            return True
        if owner(aside) != record:  # renamed a fresh lock taken just now: put it back
            os.replace(aside, self.path)
            return False
        aside.unlink(missing_ok=True)
        return True

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        if not self.acquire():
            raise LockTaken(self.path)
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def release_if_job(run_dir: Path, job_id: str) -> bool:
    """Remove the lock of a cluster job that has ended (killed at its time limit, it could not release it)."""
    path = lock_path(Path(run_dir))
    record = owner(path)
    if record and record.get("job") is not None and str(record["job"]) == str(job_id):
        path.unlink(missing_ok=True)
        return True
    return False


class LockTaken(Exception):
    """Another live process holds the run's lock."""

    def __init__(self, path: Path):
        super().__init__(f"{path}: held by {owner(path)}")
        self.path = path
