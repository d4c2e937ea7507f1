"""Output guard: no command overwrites one of its own inputs, or a file pointtal did not write.

Every command that writes declares its outputs and inputs once, before any work, with `check_outputs`:

* an output that is the same file as an input (same path, a symlink or a hard link: `os.path.samefile`) is
  refused always; two outputs that are the same file are refused too;
* an output path that is a directory, or lies under a file, is refused (one line instead of a traceback);
* an existing output that is not pointtal's own is refused unless the command got `--overwrite`;
* a directory among the inputs (a feature directory, a run directory) protects the files inside it: an output
  that is an existing file there is refused always, unless pointtal wrote it (a new file written into it is not
  refused either).

"pointtal's own" is recorded next to the files, in a manifest `.pointtal-outputs.json` of the output's
directory: `record_output` stores the name and SHA-256 of a file just written, so rerunning a command onto its
own previous output (predict onto the same predictions.json) needs no flag, while a file the user wrote or
edited since is protected. A run directory written by `pointtal train` is marked as a whole (`mark_run_dir`):
its files change while training, so they are owned by name, not by content. A features folder is owned through
its extract.json (`pointtal.video.manifest.plan_extraction`): `extract` and `detect --features-dir` pass its files
here only for the input checks.

tests/test_output_guard.py reads every subcommand and option from the CLI's parser and checks each output option
against this guard, so a command added without it fails the suite.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path

from pointtal.atomic import file_sha256, write_text_atomic
from pointtal.errors import InputError

MANIFEST = ".pointtal-outputs.json"
RUN_STATE = (
    "config.yaml",
    "checkpoint.pt",
    "best.pt",
    "metrics.jsonl",
    "report.md",
    "config_changes.jsonl",
    "extract.json",
)  # extract.json: how the run's features were made (read by `pointtal detect`)
RUN_FILES = (
    *RUN_STATE,
    "predictions.json",
    "frames.json",
    "wandb.json",
)  # what `pointtal train` writes into a run directory
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when `a` and `b` name one file: equal resolved paths, or (both existing) one inode."""
    a, b = Path(a), Path(b)
    try:
        a_exists, b_exists = a.exists(), b.exists()
        if a_exists and b_exists:
            return os.path.samefile(a, b)
        if a_exists != b_exists:  # one file exists and the other does not: two names of one file cannot
            return False
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_outputs(
    outputs: dict[str, str | Path | None] | list[tuple[str, str | Path | None]],
    inputs: dict[str, str | Path | None] = (),
    overwrite: bool = False,
    remedy: str = "pass --overwrite to replace it, or choose another path",
) -> None:
    """Refuse, before any work, outputs that would destroy data (see module doc).

    `outputs` and `inputs` map a label for messages (an option such as '--out', or a role such as
    'ground truth') to a path; None entries are skipped (`outputs` may also be (label, path) pairs, when
    one option writes several files). Directories among the inputs protect every file inside them (an
    output written into a feature directory is refused only if it is one of its files). Each input is
    looked at once, so thousands of outputs and inputs (a features folder) cost thousands of stats.
    """
    pairs = outputs.items() if isinstance(outputs, dict) else outputs
    outs = [(label, Path(p)) for label, p in pairs if p is not None]
    ins = [(label, Path(p)) for label, p in dict(inputs).items() if p is not None]
    known: dict[object, str] = {}  # same_file's identity of every input -> its (first) label
    for in_label, source in ins:
        known.setdefault(_identity(source), in_label)
    directories = [(in_label, source) for in_label, source in ins if source.is_dir()]
    seen: dict[object, str] = {}
    for label, path in outs:
        _check_writable_place(label, path)
        identity = _identity(path)
        if identity in known:
            raise InputError(
                f"{label} {path}: is the {known[identity]} this command reads; "
                "write to another file (an input is never overwritten)"
            )
        for in_label, source in directories:
            if _inside(path, source) and not is_own_output(path):
                raise InputError(
                    f"{label} {path}: is a file of the {in_label} this command reads; "
                    "write to another file (an input is never overwritten)"
                )
        if identity in seen:
            raise InputError(f"{label} {path}: same file as {seen[identity]}; give two different files")
        seen[identity] = label
        if path.exists() and not overwrite and not is_own_output(path):
            raise InputError(f"{label} {path}: exists and was not written by pointtal (or was edited since); {remedy}")


def _identity(path: Path) -> object:
    """What `same_file` compares: (device, inode) of an existing file, else its resolved path."""
    try:
        st = path.stat()
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", path.resolve())


def _inside(path: Path, directory: Path) -> bool:
    """Whether `path` is an existing file somewhere under the existing directory `directory` (by path, through
    symlinks, or as a hard link of one of its files)."""
    if not (directory.is_dir() and path.is_file()):
        return False
    if path.resolve().is_relative_to(directory.resolve()):
        return True
    target = path.stat()
    if target.st_nlink < 2:
        return False
    for root, _, names in os.walk(directory):  # rare: a file with several names; look for it inside
        for name in names:
            try:
                other = os.stat(os.path.join(root, name), follow_symlinks=False)
            except OSError:
                continue
            if (other.st_dev, other.st_ino) == (target.st_dev, target.st_ino):
                return True
    return False


def _check_writable_place(label: str, path: Path) -> None:
    if path.is_dir():
        raise InputError(f"{label} {path}: is a directory; give a file name")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{label} {path}: {parent} is a file, not a directory")
            break


def run_inputs(run_dir: str | Path, config_file: str | Path | None = None) -> dict[str, Path]:
    """The files of a run directory that commands reading the run must never overwrite (its predictions may
    be rewritten), plus the ground truth, class list, point files and feature directory its config.yaml names
    (best effort)."""
    run_dir = Path(run_dir)
    inputs = {f"run's {name}": run_dir / name for name in RUN_STATE}
    try:
        import yaml

        data = yaml.safe_load((Path(config_file) if config_file else run_dir / "config.yaml").read_text("utf-8"))
        for key in ("annotations", "class_list", "features", "video_names", "points"):
            value = data["data"].get(key)
            values = value if isinstance(value, list) else [value]
            for i, item in enumerate(values):
                if isinstance(item, str) and item and (Path(item).suffix or key == "features"):
                    where = f"[{i}]" if isinstance(value, list) else ""
                    inputs[f"run's data.{key}{where}"] = Path(item)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError):
        pass  # unreadable config: the command itself reports it
    return inputs


def is_own_output(path: str | Path) -> bool:
    """Whether `path` is a file pointtal wrote and nobody changed since (or a file of a run directory)."""
    path = Path(path)
    manifest = _read_manifest(path.parent)
    if manifest.get("run") and path.name in RUN_FILES:
        return True
    entry = manifest.get("files", {}).get(path.name)
    return isinstance(entry, dict) and path.is_file() and entry.get("sha256") == file_sha256(path)


def record_output(path: str | Path, command: str) -> None:
    """Remember that `command` just wrote `path` (its content hash), so a rerun may replace it."""
    path = Path(path)
    manifest = _read_manifest(path.parent)
    files = {name: entry for name, entry in manifest.get("files", {}).items() if (path.parent / name).exists()}
    files[path.name] = {"sha256": file_sha256(path), "command": command}
    _write_manifest(path.parent, {**manifest, "files": files})


def mark_run_dir(run_dir: str | Path) -> None:
    """Mark `run_dir` as written by `pointtal train`: its RUN_FILES are pointtal's own."""
    run_dir = Path(run_dir)
    manifest = _read_manifest(run_dir)
    if not manifest.get("run"):
        _write_manifest(run_dir, {**manifest, "run": True})


def is_run_dir(run_dir: str | Path) -> bool:
    return bool(_read_manifest(Path(run_dir)).get("run"))


def check_writable_dir(directory: str | Path) -> None:
    """Create `directory` and write, fsync and remove a small probe file there; a full, read-only or
    foreign directory becomes one InputError now instead of a traceback after loading all data."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".pointtal-probe.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(b"\0" * 65536)
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            Path(probe).unlink(missing_ok=True)
    except OSError as err:
        if err.errno in DISK_ERRNOS or isinstance(err, (FileExistsError, NotADirectoryError)):
            raise InputError(f"{directory}: cannot write there ({describe_os_error(err)})") from None
        raise


def describe_os_error(err: OSError) -> str:
    """'no space left on device' rather than '[Errno 28] No space left on device: ...'."""
    return (err.strerror or type(err).__name__).lower()


def _read_manifest(directory: Path) -> dict:
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_manifest(directory: Path, manifest: dict) -> None:
    write_text_atomic(directory / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
