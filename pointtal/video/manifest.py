"""extract.json: how a feature directory was made (fps, stride, backbone, flow, weights hashes, frame counts).

Read by training (the run keeps a copy and refuses features made at another fps/stride than data.fps /
data.stride) and by `pointtal detect` (new videos are extracted the same way). JSON only: no torch here.

A folder and its extract.json never disagree: `plan_extraction` refuses any extraction after which the
manifest would not describe every `<video_id>.npy` of the folder with the settings it was made with (a feature
file it does not list, or other settings for some of the videos only), and training checks the folder against
its manifest (`check_files`) before reading it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pointtal.errors import InputError

MANIFEST = "extract.json"


def read_manifest(directory: str | Path) -> dict | None:
    """The directory's extract.json, or None when it has none."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("videos"), dict):
        raise InputError(f"{path}: expected an object with a 'videos' mapping")
    return manifest


def plan_extraction(out_dir: Path, settings: dict | None, ids: list[str], overwrite: bool, option: str = "--out",
                    ) -> tuple[dict | None, list[str], bool]:
    """Before any work: (the existing manifest to extend or None, the ids to extract, whether the settings
    change), or InputError when the folder would end up holding features its extract.json does not describe.

    * Same settings (or a new folder): videos with features are skipped (re-extracted with `overwrite`).
    * Other settings are refused without `overwrite`; with it, every video of the folder is re-extracted, so
      all of them must be among `ids` (otherwise refused, naming the missing ones).
    * A `<video_id>.npy` the manifest does not list (not made here, or by a run cut short) is refused without
      `overwrite`; with it, it is re-extracted when among `ids` and refused otherwise.

    `settings` None checks the files only (before the settings are known).
    """
    old = read_manifest(out_dir) if out_dir.is_dir() else None
    present = {p.name[: -len(".npy")] for p in out_dir.glob("*.npy")} if out_dir.is_dir() else set()
    differ = [f"{k}={old.get(k)!r} (now {v!r})" for k, v in (settings or {}).items()
              if old is not None and old.get(k) != v]
    if differ and not overwrite:
        raise InputError(f"{out_dir / MANIFEST}: features there were extracted with other settings: "
                         f"{'; '.join(differ[:3])}; use another {option} or pass --overwrite (re-extracts all "
                         "its videos)")
    given = set(ids)
    if differ:
        missing = sorted(present - given)
        if missing:
            raise InputError(f"{option} {out_dir}: other settings ({'; '.join(differ[:2])}) mean re-extracting every "
                             f"video of the folder, but {len(missing)} of its videos are not among the VIDEOs "
                             f"given ({_first(missing)}); give them all, or use another {option}")
    described = set(old["videos"]) if old is not None and not differ else set()
    undescribed = sorted(present - described)
    stray = undescribed if not overwrite else sorted(set(undescribed) - given)
    if stray:
        remedy = "pass --overwrite to re-extract it, " if not overwrite and stray[0] in given else ""
        raise InputError(f"{out_dir / (stray[0] + '.npy')}: a feature file that {MANIFEST} does not describe "
                         f"({len(stray)} such files); {remedy}move it away, or choose another {option}")
    todo = [v for v in ids if overwrite or v not in present]
    return (None if differ else old), todo, bool(differ)


def check_files(directory: str | Path) -> None:
    """InputError when the folder's extract.json does not describe its feature files as they are: a
    `<video_id>.npy` it does not list, or one whose snippet count differs from the recorded one (made with
    other settings, e.g. another stride). Nothing to check without an extract.json."""
    import numpy as np

    directory = Path(directory)
    manifest = read_manifest(directory) if directory.is_dir() else None
    if manifest is None:
        return
    problems = []
    for path in sorted(directory.glob("*.npy")):
        entry = manifest["videos"].get(path.name[: -len(".npy")])
        if not isinstance(entry, dict):
            problems.append(f"{path.name} is not listed")
            continue
        try:
            rows = np.load(path, mmap_mode="r", allow_pickle=False).shape[0]
        except (ValueError, OSError, IndexError):
            continue  # not a plain array: the feature store names it when it is read
        if entry.get("snippets") is not None and rows != entry["snippets"]:
            problems.append(f"{path.name} has {rows} snippets, extract.json records {entry['snippets']}")
    if problems:
        raise InputError(
            f"{directory / MANIFEST}: does not describe the feature files beside it ({len(problems)} files: "
            f"{'; '.join(problems[:3])}): they may have been made with other settings than its "
            f"fps={manifest.get('fps')} stride={manifest.get('stride')}; re-extract the folder "
            "(pointtal extract ALL_ITS_VIDEOS --out DIR --overwrite), or remove extract.json if the files were "
            "made elsewhere")


def _first(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


def check_geometry(manifest: dict, fps: float, stride: int, where: str) -> None:
    """Features cut at another fps/stride than the run assumes would put every segment at the wrong time."""
    if float(manifest.get("fps", fps)) != float(fps) or int(manifest.get("stride", stride)) != int(stride):
        raise InputError(f"{where}: features were extracted at fps={manifest.get('fps')} "
                         f"stride={manifest.get('stride')} but the run uses data.fps={fps:g} data.stride={stride}; "
                         "re-extract with matching --fps/--stride or set data.fps/data.stride")


def record_in_run(features: str | Path, run_dir: Path, fps: float, stride: int) -> None:
    """Copy the features' extract.json into the run (checked against data.fps/stride and against the folder's
    files, `check_files`); nothing if it has none."""
    if not features or not Path(features).is_dir():
        return
    manifest = read_manifest(features)
    if manifest is None:
        return
    check_geometry(manifest, fps, stride, str(Path(features) / MANIFEST))
    check_files(features)
    shutil.copyfile(Path(features) / MANIFEST, run_dir / MANIFEST)
