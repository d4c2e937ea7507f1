"""An evaluation protocol: which test videos are left out, which ambiguous segments discard predictions, and
at which tIoU thresholds mAP is computed (docs/evaluation.md, "Protocols").

The same predictions give different numbers under different protocols (THUMOS14: 47.6 with every test video,
48.3 without the three LACP and HR-Pro leave out), so a run records its protocol once (`RUN/protocol.json`,
and the `protocol` entry of the predictions files it writes), applies it in its own evaluations, and
`pointtal evaluate` applies it to those files by default; every table says which protocol it reports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pointtal.atomic import loads_unique
from pointtal.errors import DuplicateKey, InputError

THUMOS14_EXCLUDED = ("video_test_0000270", "video_test_0001292", "video_test_0001496")
# OpenTAD's THUMOS14 annotation file leaves out two test videos "following G-TAD / VSGN": 270 (wrong annotations)
# and 1292 (no annotation); tools/prepare_data/thumos/README.md of sming256/OpenTAD.
OPENTAD_THUMOS14_EXCLUDED = ("video_test_0000270", "video_test_0001292")
# Named video lists (`--exclude-videos NAME`, `data.exclude_videos: NAME`): the THUMOS14 test videos that LACP,
# HR-Pro and the methods before them leave out (LACP's README: "We excluded three test videos (270, 1292, 1496)
# as previous work did"; `thumos14` is that list, `thumos14-lacp` and `thumos14-hrpro` name it by its users),
# and the two that OpenTAD leaves out (`thumos14-opentad`).
NAMED_EXCLUSIONS = {
    "thumos14": THUMOS14_EXCLUDED,
    "thumos14-lacp": THUMOS14_EXCLUDED,
    "thumos14-hrpro": THUMOS14_EXCLUDED,
    "thumos14-opentad": OPENTAD_THUMOS14_EXCLUDED,
}
VENDOR = Path(__file__).resolve().parent.parent / "data" / "vendor"
# Named ambiguous-segment files (`--ambiguous NAME`, `data.ambiguous: NAME`): THUMOS14's Ambiguous_test.txt as
# HR-Pro's release ships it (the same lines as the THUMOS14 annotation download).
NAMED_AMBIGUOUS = {"thumos14": VENDOR / "thumos14" / "ambiguous_test.txt"}


def excluded_videos(values: Iterable[str]) -> tuple[str, ...]:
    """Video ids with the names of NAMED_EXCLUSIONS expanded, sorted and without repeats."""
    ids = set()
    for value in values:
        ids.update(NAMED_EXCLUSIONS.get(value.lower(), (value,)) if isinstance(value, str) else (value,))
    return tuple(sorted(ids))


def ambiguous_path(value: str | None) -> str | None:
    """The file of `data.ambiguous` / `--ambiguous`: a NAMED_AMBIGUOUS name or a path (None: no filter)."""
    if not value:
        return None
    named = NAMED_AMBIGUOUS.get(str(value).lower())
    return str(named) if named is not None else str(value)


@dataclass(frozen=True)
class Protocol:
    """What a number of a run means: videos left out, the ambiguous-segments file, the tIoU thresholds."""

    exclude_videos: tuple[str, ...] = ()
    ambiguous: str | None = None  # path of a 'video_id start end' file; None: no filter
    tiou: tuple[float, ...] = ()

    def describe(self) -> str:
        """One line for table headers and reports."""
        if self.exclude_videos:
            shown = ", ".join(v.rsplit("_", 1)[-1].lstrip("0") or v for v in self.exclude_videos[:5])
            more = ", ..." if len(self.exclude_videos) > 5 else ""
            excluded = f"{len(self.exclude_videos)} video(s) excluded ({shown}{more})"
        else:
            excluded = "no video excluded"
        ambiguous = (
            f"ambiguous segments of {Path(self.ambiguous).name} discarded" if self.ambiguous else "no ambiguous filter"
        )
        tiou = f"; tIoU {_span(self.tiou)}" if self.tiou else ""  # single frames: distances, not tIoU
        return f"protocol: {excluded}; {ambiguous}{tiou}"

    def to_json(self) -> dict:
        return {
            "exclude_videos": list(self.exclude_videos),
            "ambiguous": self.ambiguous,
            "tiou": [float(t) for t in self.tiou],
        }

    @classmethod
    def from_json(cls, doc, source: str) -> Protocol:
        """The protocol recorded in a run's protocol.json or a predictions file; a malformed one names `source`."""
        try:
            exclude = doc["exclude_videos"]
            ambiguous = doc["ambiguous"]
            tiou = doc["tiou"]
            ok = (
                isinstance(exclude, list)
                and all(isinstance(v, str) for v in exclude)
                and (ambiguous is None or isinstance(ambiguous, str))
                and isinstance(tiou, list)
                and all(_is_threshold(t) for t in tiou)
            )
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise InputError(
                f"{source}: 'protocol' must be {{'exclude_videos': [ids], 'ambiguous': path or null, "
                "'tiou': [thresholds in (0, 1]]}"
            )
        return cls(tuple(exclude), ambiguous, tuple(float(t) for t in tiou))


def _is_threshold(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and 0 < value <= 1


def _span(thresholds) -> str:
    values = [float(t) for t in thresholds]
    if len(values) > 2:
        steps = {round(b - a, 9) for a, b in zip(values, values[1:], strict=False)}
        if len(steps) == 1:
            return f"{values[0]:g}:{values[-1]:g}:{steps.pop():g}"
    return ",".join(f"{v:g}" for v in values)


def read_protocol(path: str | Path) -> Protocol:
    """A run's `protocol.json` (or any JSON file with a top-level 'protocol' entry, like a predictions file)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: protocol file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a JSON protocol file ({err})") from None
    if isinstance(doc, dict) and "protocol" in doc:
        doc = doc["protocol"]
    return Protocol.from_json(doc, str(path))


def recorded_protocol(path: str | Path) -> Protocol | None:
    """The protocol a pointtal predictions file records (its top-level 'protocol' entry), or None for a file
    without one (any other tool's); an unreadable file is left to the predictions reader, which names it."""
    try:
        doc = loads_unique(Path(path).read_bytes())
    except (OSError, ValueError, RecursionError, DuplicateKey):
        return None
    if not isinstance(doc, dict) or "protocol" not in doc:
        return None
    return Protocol.from_json(doc["protocol"], f"{path}: 'protocol'")
