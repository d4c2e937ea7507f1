"""extract.json: how a feature directory was made (fps, stride, backbone, flow, weights hashes, frame counts).

Read by training (the run keeps a copy and refuses features made at another fps/stride than data.fps /
data.stride) and by `pointtal detect` (new videos are extracted the same way). JSON only: no torch here.

A folder and its extract.json never disagree: `plan_extraction` refuses any extraction after which the
manifest would not describe every `<video_id>.npy` of the folder with the settings it was made with (a feature
file it does not list, or other settings for some of the videos only), and training checks the folder against
its manifest (`check_files`) before reading it.

Reading, checking and copying a manifest (what training needs) live below the engine in
`pointtal.data.manifest` and are re-exported here; this module adds the extraction plan.
"""

from __future__ import annotations

from pathlib import Path

from pointtal.data.manifest import (
    MANIFEST,
    check_files,
    check_geometry,
    layout_of,
    present_videos,
    read_manifest,
    record_in_run,
)
from pointtal.errors import InputError

__all__ = ["MANIFEST", "check_files", "check_geometry", "plan_extraction", "read_manifest", "record_in_run"]


def plan_extraction(
    out_dir: Path,
    settings: dict | None,
    ids: list[str],
    overwrite: bool,
    option: str = "--out",
) -> tuple[dict | None, list[str], bool]:
    """Before any work: (the existing manifest to extend or None, the ids to extract, whether the settings
    change), or InputError when the folder would end up holding features its extract.json does not describe.

    * Same settings (or a new folder): videos with features are skipped (re-extracted with `overwrite`).
    * Other settings are refused without `overwrite`; with it, every video of the folder is re-extracted, so
      all of them must be among `ids` (otherwise refused, naming the missing ones).
    * A `<video_id>.npy` the manifest does not list (not made here, or by a run cut short) is refused without
      `overwrite`; with it, it is re-extracted when among `ids` and refused otherwise.

    `settings` None checks the files only (before the settings are known). A folder holds one feature layout
    (`settings["layout"]`, absent: pointtal's): another one is refused, with or without `overwrite`.
    """
    old = read_manifest(out_dir) if out_dir.is_dir() else None
    layout = layout_of(settings or {})
    if old is not None and layout_of(old) != layout:
        raise InputError(
            f"{out_dir / MANIFEST}: the folder holds features in the {layout_of(old)} layout, not "
            f"{layout}; a folder holds one layout: use another {option}"
        )
    present = present_videos(out_dir, layout) if out_dir.is_dir() else set()
    differ = [
        f"{k}={old.get(k)!r} (now {v!r})" for k, v in (settings or {}).items() if old is not None and old.get(k) != v
    ]
    if differ and not overwrite:
        raise InputError(
            f"{out_dir / MANIFEST}: features there were extracted with other settings: "
            f"{'; '.join(differ[:3])}; use another {option} or pass --overwrite (re-extracts all "
            "its videos)"
        )
    given = set(ids)
    if differ:
        missing = sorted(present - given)
        if missing:
            raise InputError(
                f"{option} {out_dir}: other settings ({'; '.join(differ[:2])}) mean re-extracting every "
                f"video of the folder, but {len(missing)} of its videos are not among the VIDEOs "
                f"given ({_first(missing)}); give them all, or use another {option}"
            )
    described = set(old["videos"]) if old is not None and not differ else set()
    undescribed = sorted(present - described)
    stray = undescribed if not overwrite else sorted(set(undescribed) - given)
    if stray:
        remedy = "pass --overwrite to re-extract it, " if not overwrite and stray[0] in given else ""
        raise InputError(
            f"{out_dir / (stray[0] + '.npy')}: a feature file that {MANIFEST} does not describe "
            f"({len(stray)} such files); {remedy}move it away, or choose another {option}"
        )
    todo = [v for v in ids if overwrite or v not in present]
    return (None if differ else old), todo, bool(differ)


def _first(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")
