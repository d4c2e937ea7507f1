"""extract.json: how a feature directory was made (fps, stride, backbone, flow, weights hashes, frame counts).

Read by training (the run keeps a copy and refuses features made at another fps/stride than data.fps /
data.stride) and by `pointtal detect` (new videos are extracted the same way). JSON only: no torch here.
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


def check_geometry(manifest: dict, fps: float, stride: int, where: str) -> None:
    """Features cut at another fps/stride than the run assumes would put every segment at the wrong time."""
    if float(manifest.get("fps", fps)) != float(fps) or int(manifest.get("stride", stride)) != int(stride):
        raise InputError(f"{where}: features were extracted at fps={manifest.get('fps')} "
                         f"stride={manifest.get('stride')} but the run uses data.fps={fps:g} data.stride={stride}; "
                         "re-extract with matching --fps/--stride or set data.fps/data.stride")


def record_in_run(features: str | Path, run_dir: Path, fps: float, stride: int) -> None:
    """Copy the features' extract.json into the run (checked against data.fps/stride); nothing if it has none."""
    if not features or not Path(features).is_dir():
        return
    manifest = read_manifest(features)
    if manifest is None:
        return
    check_geometry(manifest, fps, stride, str(Path(features) / MANIFEST))
    shutil.copyfile(Path(features) / MANIFEST, run_dir / MANIFEST)
