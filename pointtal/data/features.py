"""The feature store (one interface over every layout) and the one place that converts seconds <-> snippet
indices. The readers of the published layouts live in `pointtal.data.layouts`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from pointtal.errors import InputError


@dataclass(frozen=True)
class SnippetGeometry:
    """Snippet `t` covers `[(t*stride + offset)/fps, ((t+1)*stride + offset)/fps)` seconds.

    `offset` (frames) is 0 for pointtal's features and the point releases; ActionFormer's and OpenTAD's THUMOS14
    features centre step i at `(i*stride + num_frames/2)/fps`, so their snippets start `num_frames/2 - stride/2`
    frames in (data/layouts/actionformer.py)."""

    fps: float
    stride: int
    offset: float = 0.0

    @property
    def snippet_sec(self) -> float:
        return self.stride / self.fps

    def to_units(self, seconds):
        """Time in snippet units (snippet t covers [t, t+1)); works on scalars and arrays."""
        return (np.asarray(seconds, dtype=np.float64) * self.fps - self.offset) / self.stride

    def to_snippet(self, seconds):
        """Index of the snippet containing `seconds` (floor); works on scalars and arrays."""
        if isinstance(seconds, (int, float)):
            return int(math.floor((seconds * self.fps - self.offset) / self.stride + 1e-9))
        return np.floor(self.to_units(seconds) + 1e-9).astype(np.int64)

    def to_seconds(self, snippets):
        """Start time of snippet index (fractional indices allowed)."""
        return (np.asarray(snippets, dtype=np.float64) * self.stride + self.offset) / self.fps

    def n_snippets(self, duration_sec: float) -> int:
        """Snippets a video of this duration yields (at least 1)."""
        return max(1, int(math.floor((duration_sec * self.fps - self.offset) / self.stride)))


MAX_ID_BYTES = 255 - len(".npy")  # NAME_MAX of Linux and macOS, less the suffix the feature file adds


def id_problem(video_id) -> str | None:
    """Why `video_id` cannot name one file inside a directory on Linux and macOS, or None when it can.

    Only what could leave the directory or cannot be a file name is refused: '/' (the separator), '\\' (the
    separator on Windows, where a dataset may be copied), NUL, the names '.' and '..', control characters (a
    newline or escape sequence in a name breaks CSV lines and terminals), text that is not Unicode, and names
    longer than NAME_MAX. Spaces, non-ASCII letters, ':' (an ordinary character at the POSIX layer of macOS),
    '~' and a leading '-' or '.' (ActivityNet ids start with '-') are accepted: they stay inside the directory.
    """
    if not isinstance(video_id, str):
        return f"it is a {type(video_id).__name__}, not text"
    if video_id == "":
        return "it is empty"
    if video_id in (".", ".."):
        return f"it is {video_id!r}, which names a directory, not a file"
    for char, why in (("/", "a path separator"), ("\\", "a path separator on Windows"), ("\0", "a NUL byte")):
        if char in video_id:
            return f"it contains {char!r} ({why})"
    control = next((c for c in video_id if ord(c) < 32 or ord(c) == 127), None)
    if control is not None:
        return f"it contains the control character U+{ord(control):04X}"
    try:
        size = len(video_id.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid Unicode (a lone surrogate)"
    if size > MAX_ID_BYTES:
        return f"it is {size} bytes in UTF-8; a file name holds at most {MAX_ID_BYTES} before '.npy'"
    return None


def check_video_id(video_id: str, source: str = "") -> str:
    """Video ids are file names: refuse exactly what could leave the feature directory, saying why."""
    problem = id_problem(video_id)
    if problem is not None:
        where = f"{source}: " if source else ""
        raise InputError(f"{where}video id {video_id!r} cannot be a feature file name: {problem}")
    return video_id


def validate_features(array: np.ndarray, video_id: str, path: Path | str, dim: int | None = None) -> np.ndarray:
    """Check rank, dtype, width, length and finiteness of one video's (T, D) features."""
    if array.dtype.kind != "f" or array.dtype.itemsize not in (2, 4, 8):  # either byte order: readers convert
        raise InputError(f"{path}: video '{video_id}' features have dtype {array.dtype}; expected float32/float16")
    if array.ndim != 2:
        raise InputError(f"{path}: video '{video_id}' features have shape {array.shape}; expected (T, D)")
    if array.shape[0] == 0:
        raise InputError(f"{path}: video '{video_id}' has zero snippets")
    if dim is not None and array.shape[1] != dim:
        raise InputError(f"{path}: video '{video_id}' features are {array.shape[1]} wide but other videos are {dim}")
    if not np.isfinite(array).all():
        raise InputError(f"{path}: video '{video_id}' features contain NaN or inf")
    return array


class FeatureReader(Protocol):
    """What a feature layout supplies to the store: its video ids and each video's arrays, one per stream.

    `arrays` returns the streams (memory-mapped where the layout allows it) in the order they are joined
    along D, each with the path to name in messages; a missing video or file is an InputError naming it."""

    root: Path
    streams: tuple[str, ...]  # stream names joined in this order; ("",) for one array per video

    def ids(self) -> list[str]: ...

    def __contains__(self, video_id: str) -> bool: ...

    def path(self, video_id: str) -> Path: ...  # the video's (first stream's) file

    def arrays(self, video_id: str, trust_pickle: bool) -> list[tuple[np.ndarray, Path]]: ...


class DirectoryReader:
    """pointtal's own layout: `DIR/<video_id>.npy`, one (T, D) array per video, looked up when asked for."""

    streams = ("",)

    def __init__(self, root: Path):
        self.root = root

    def path(self, video_id: str) -> Path:
        return self.root / f"{check_video_id(video_id, str(self.root))}.npy"

    def ids(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.npy"))

    def __contains__(self, video_id: str) -> bool:
        return self.path(video_id).is_file()

    def arrays(self, video_id: str, trust_pickle: bool) -> list[tuple[np.ndarray, Path]]:
        path = self.path(video_id)
        if not path.is_file():
            raise InputError(f"{path}: no feature file for video '{video_id}'")
        return [(read_npy(path, video_id, trust_pickle), path)]


class LegacyReader:
    """W-TALC / SF-Net single object array with a video-name list; needs pickle, so only with explicit opt-in."""

    streams = ("",)

    def __init__(self, root: Path, trust_pickle: bool, video_names):
        self.root = root
        if not trust_pickle:
            raise InputError(
                f"{root}: a single-array feature file needs pickle; pass --trust-pickle "
                "(data.trust_pickle=true) only for files you trust"
            )
        if video_names is None:
            raise InputError(f"{root}: the single-array layout needs data.video_names (videoname.npy)")
        arrays = _load_trusted(root, "single-array feature file")
        names = _load_trusted(Path(video_names), "video name list")
        if arrays.ndim != 1 or names.ndim != 1:
            raise InputError(
                f"{root}: expected 1-D arrays of per-video features and of video names, "
                f"got shapes {arrays.shape} and {names.shape}"
            )
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        if len(names) != len(arrays):
            raise InputError(f"{root}: {len(arrays)} arrays but {len(names)} video names")
        self._arrays = {name: np.asarray(arr) for name, arr in zip(names, arrays, strict=True)}

    def path(self, video_id: str) -> Path:
        return self.root

    def ids(self) -> list[str]:
        return sorted(self._arrays)

    def __contains__(self, video_id: str) -> bool:
        return video_id in self._arrays

    def arrays(self, video_id: str, trust_pickle: bool) -> list[tuple[np.ndarray, Path]]:
        if video_id not in self._arrays:
            raise InputError(f"{self.root}: no features for video '{video_id}'")
        return [(self._arrays[video_id], self.root)]


class FeatureStore:
    """Per-video `(T, D)` features behind one interface (`ids`, `in`, `load`, `length`, `dim`), whatever the
    layout: a `FeatureReader` (data/layouts/) finds each video's arrays; the store checks and joins them.

    Without a reader it opens pointtal's own layout, `DIR/<video_id>.npy` (memory-mapped), or a legacy single
    array when `root` is a file."""

    def __init__(
        self,
        root: str | Path,
        trust_pickle: bool = False,
        video_names: str | Path | None = None,
        reader: FeatureReader | None = None,
    ):
        self.root = Path(root)
        self.trust_pickle = trust_pickle
        if reader is None:
            if self.root.is_file():
                reader = LegacyReader(self.root, trust_pickle, video_names)
            elif not self.root.is_dir():
                raise InputError(f"{self.root}: feature directory not found")
            else:
                reader = DirectoryReader(self.root)
        self.reader = reader
        self._dim: int | None = None

    @property
    def streams(self) -> tuple[str, ...]:
        return self.reader.streams

    def path(self, video_id: str) -> Path:
        """The video's (first stream's) feature file."""
        return self.reader.path(video_id)

    def __contains__(self, video_id: str) -> bool:
        return video_id in self.reader

    def ids(self) -> list[str]:
        return self.reader.ids()

    def length(self, video_id: str) -> int:
        """T of a video without reading its numbers (the header of its first memory-mapped stream)."""
        array, path = self.reader.arrays(video_id, self.trust_pickle)[0]
        if array.ndim != 2 or array.shape[0] == 0:
            raise InputError(f"{path}: video '{video_id}' features have shape {array.shape}; expected (T, D), T > 0")
        return int(array.shape[0])

    def load(self, video_id: str, validate: bool = True) -> np.ndarray:
        """The video's `(T, D)` array: one memory-mapped file, or the layout's streams joined along D."""
        parts = self.reader.arrays(video_id, self.trust_pickle)
        if validate:
            one = len(parts) == 1
            for array, path in parts:
                validate_features(array, video_id, path, self._dim if one else None)
        joined = join_streams(parts, video_id)
        if validate and len(parts) > 1 and self._dim is not None and joined.shape[1] != self._dim:
            raise InputError(
                f"{parts[0][1]}: video '{video_id}' features are {joined.shape[1]} wide "
                f"(all streams) but other videos are {self._dim}"
            )
        self._dim = self._dim or int(joined.shape[1])
        return joined

    @property
    def dim(self) -> int | None:
        return self._dim


def join_streams(parts: list[tuple[np.ndarray, Path]], video_id: str) -> np.ndarray:
    """Streams joined along D in order (rgb|flow); they must cover the same snippets (equal T)."""
    if len(parts) == 1:
        return parts[0][0]
    arrays = [a for a, _ in parts]
    lengths = [a.shape[0] if a.ndim == 2 else None for a in arrays]
    if None in lengths or len(set(lengths)) > 1:
        shapes = ", ".join(f"{p.parent.name} {a.shape}" for a, p in parts)
        raise InputError(
            f"{parts[0][1].parent.parent}: video '{video_id}' streams differ in length ({shapes}); "
            "rgb and flow need the same number of snippets T"
        )
    return np.concatenate(arrays, axis=1)  # (T, D_1 + D_2 + ...)


def read_npy(path: Path, video_id: str, trust_pickle: bool = False) -> np.ndarray:
    """Memory-map a plain array; never unpickle unless `trust_pickle` (pickles can run code)."""
    where = f"{path}: video '{video_id}'"
    try:
        dtype = _npy_dtype(path)
        if dtype is None:
            raise InputError(f"{where}: not a .npy file (no NumPy header); write features with numpy.save")
        if dtype.hasobject:
            if not trust_pickle:
                raise InputError(
                    f"{where}: the .npy file holds pickled Python objects (dtype {dtype}); refusing to "
                    "unpickle it (pickles can run code): pass --trust-pickle (data.trust_pickle=true) only "
                    "for files you trust, or re-save the features as a float32 array"
                )
            return _unwrap_objects(_load_trusted(path, f"video '{video_id}' features"))
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"{where}: unreadable .npy file ({err})") from None


_NPY_MAGIC = b"\x93NUMPY"


def _npy_dtype(path: Path) -> np.dtype | None:
    """The dtype in a .npy header, or None when the file is not a .npy file; reads the header only."""
    with open(path, "rb") as handle:
        if handle.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
            return None
        handle.seek(0)
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(handle)[2]
        return np.lib.format.read_array_header_2_0(handle)[2]


def _load_trusted(path: Path, what: str) -> np.ndarray:
    """np.load with pickles allowed: only reached when the user opted in with trust_pickle."""
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    try:
        return np.load(path, allow_pickle=True, encoding="bytes")
    except Exception as err:  # unpickling fails in arbitrary ways on a corrupt file
        raise InputError(f"{path}: unreadable {what} ({type(err).__name__}: {err})") from None


def _unwrap_objects(array: np.ndarray) -> np.ndarray:
    """A trusted object array holding one video's numbers -> a numeric array (else left for validation)."""
    if array.dtype == object and array.ndim == 0:
        array = np.asarray(array.item())
    if array.dtype == object:
        try:
            array = np.asarray(array.tolist(), dtype=np.float32)
        except (TypeError, ValueError):
            pass  # validate_features names the dtype
    return array
