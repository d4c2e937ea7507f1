"""extract.json as training reads it: the manifest of a feature directory (how it was made: fps, stride,
backbone, flow, weights hashes, frame counts), checked against the run's data.fps / data.stride and against the
folder's files, and copied into the run. JSON and file code only: no torch, no video decoding.

The extraction side (which videos to extract, refusing a folder its manifest would not describe) is
`pointtal.video.manifest`, which imports these from here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pointtal.errors import InputError

MANIFEST = "extract.json"
DEFAULT_LAYOUT = "pointtal"  # the feature layout of a manifest without a 'layout' key


def layout_of(manifest: dict) -> str:
    """The feature layout a manifest (or extraction settings) records: `pointtal` unless it says otherwise."""
    return manifest.get("layout") or DEFAULT_LAYOUT


def present_videos(directory: Path, layout: str) -> set[str]:
    """Ids of the videos with a feature file of `layout` in `directory`."""
    from pointtal.data.layouts import LAYOUTS

    named = (LAYOUTS[layout].video_of(p.name) for p in directory.glob("*.npy"))
    return {found[0] for found in named if found is not None}


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


def check_files(directory: str | Path) -> None:
    """InputError when the folder's extract.json does not describe its feature files as they are: a
    `<video_id>.npy` it does not list, or one whose snippet count differs from the recorded one (made with
    other settings, e.g. another stride). In the video_features layout (`layout` in the manifest) a video's
    files are `<id>_rgb.npy`, `<id>_flow.npy` and the others `layouts/video_features.py` names. Nothing to
    check without an extract.json."""
    import numpy as np

    directory = Path(directory)
    manifest = read_manifest(directory) if directory.is_dir() else None
    if manifest is None:
        return
    from pointtal.data.layouts import LAYOUTS

    problems = []
    for path in sorted(directory.glob("*.npy")):
        found = LAYOUTS[layout_of(manifest)].video_of(path.name)
        entry = manifest["videos"].get(found[0]) if found is not None else None
        if not isinstance(entry, dict):
            problems.append(f"{path.name} is not listed")
            continue
        if not found[1]:
            continue  # a file beside the features (video_features' fps, timestamps)
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
            "made elsewhere"
        )


def check_geometry(manifest: dict, fps: float, stride: int, where: str) -> None:
    """Features cut at another fps/stride than the run assumes would put every segment at the wrong time."""
    if float(manifest.get("fps", fps)) != float(fps) or int(manifest.get("stride", stride)) != int(stride):
        raise InputError(
            f"{where}: features were extracted at fps={manifest.get('fps')} "
            f"stride={manifest.get('stride')} but the run uses data.fps={fps:g} data.stride={stride}; "
            "re-extract with matching --fps/--stride or set data.fps/data.stride"
        )


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
