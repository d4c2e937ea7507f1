"""LACP's release: `DATASET/features/{train,test}/{rgb,flow}/<id>.npy`, two (T, 1024) streams joined rgb|flow.
Its `gt.json` (segment times as numeric strings, no durations), `fps_dict.json` and split files are read by
`published.py`."""

from __future__ import annotations

from pathlib import Path

from pointtal.data.layouts.common import STREAMS, Layout
from pointtal.data.layouts.splits import SplitFeatureStore
from pointtal.errors import InputError

NAME, TITLE = "lacp", "LACP"


def matches(split: Path) -> bool:
    """A split folder with rgb/ and flow/; one stream folder alone is an input error."""
    streams = [s for s in STREAMS if (split / s).is_dir()]
    if len(streams) == 1:
        other = STREAMS[1 - STREAMS.index(streams[0])]
        raise InputError(f"{split}: has {streams[0]}/ but no {other}/ (the LACP layout needs both streams)")
    return len(streams) == 2


def open_store(layout: Layout, trust_pickle: bool = False) -> SplitFeatureStore:
    return SplitFeatureStore(layout, STREAMS, trust_pickle=trust_pickle)
