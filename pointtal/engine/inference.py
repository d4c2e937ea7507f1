"""Inference: features -> per-video scores -> detections in seconds, batched and streamed over videos."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from pointtal.data.dataset import PointDataset
from pointtal.data.features import SnippetGeometry
from pointtal.data.samplers import resample_index, unresample
from pointtal.engine.memory import keep_freed_memory
from pointtal.localization.detections import check_detections
from pointtal.methods.base import Detections, Method, VideoScores


@dataclass
class Predictions:
    """Each video's `Detections` in seconds, plus its video scores where the method has them, keyed by video id;
    `segments` / `frames` are their ActivityNet result entries (what the JSON files hold)."""

    classes: tuple[str, ...] = ()  # class c of a detection is classes[c - 1]
    detections: dict[str, Detections] = field(default_factory=dict)  # id -> Detections in seconds
    video_scores: dict[str, np.ndarray] = field(default_factory=dict)  # id -> (C+1,); empty: method has none

    @property
    def segments(self) -> dict[str, list[dict]]:
        """ActivityNet segment entries per video ({"label", "score", "segment": [start, end]} in seconds)."""
        return {video_id: found.entries(self.classes)[0] for video_id, found in self.detections.items()}

    @property
    def frames(self) -> dict[str, list[dict]]:
        """ActivityNet single-frame entries per video ({"label", "score", "frame"} in seconds)."""
        return {video_id: found.entries(self.classes)[1] for video_id, found in self.detections.items()}

    def results_json(self, frames: bool = False, protocol: dict | None = None) -> dict:
        """ActivityNet results JSON; `protocol` (Protocol.to_json of the run) is recorded beside the results,
        so `pointtal evaluate` applies the run's protocol to the file by default."""
        doc = {"version": "pointtal", "external_data": {}, "results": self.frames if frames else self.segments}
        if protocol is not None:
            doc["protocol"] = protocol
        return doc


def resolve_device(name: str, key: str = "device") -> torch.device:
    """`auto` picks CUDA when available, else CPU; a name this machine does not have is an InputError.

    Work on the CPU also keeps freed memory for reuse from here on (`memory.keep_freed_memory`): without it,
    page faults on fresh activations take a quarter of a CPU training step."""
    from pointtal.config import check_device
    from pointtal.errors import InputError

    check_device(name, key)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        keep_freed_memory()
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"{key}={name!r} but no CUDA device is available; use auto or cpu")
    device = torch.device(name)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(
            f"{key}={name!r} but this machine has {torch.cuda.device_count()} CUDA device(s) "
            f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})"
        )
    return device


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA; nothing on CPU (full-precision, deterministic)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


SORT_WINDOW = 8  # batches whose videos are sorted by length together (bounds memory: items stay streamed)


def _windows(items: Iterable[tuple[str, np.ndarray]], size: int) -> Iterator[list[tuple[str, np.ndarray]]]:
    """Consecutive lists of at most `size` items."""
    chunk: list[tuple[str, np.ndarray]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def length_sorted_batches(lengths: list[int], size: int) -> list[list[int]]:
    """Positions of `lengths` grouped into batches of at most `size`, longest first, so that a batch pads
    its videos to a length close to their own (THUMOS14 test batches of 16 in list order are 3.6x padding)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # stable: ties keep input order
    return [order[start : start + size] for start in range(0, len(order), size)]


def _inputs(chunk, length: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded (B, T, D) features and (B, T) mask: whole videos, or each resampled to `length` snippets."""
    lengths = np.array([a.shape[0] for _, a in chunk], dtype=np.int64)
    if length is not None:
        index = resample_index(lengths, length, None)  # (B, S)
        features = np.stack([np.asarray(a[i], dtype=np.float32) for (_, a), i in zip(chunk, index, strict=True)])
        return torch.from_numpy(features), torch.ones(index.shape, dtype=torch.bool)
    features = np.zeros((len(chunk), lengths.max(), chunk[0][1].shape[1]), dtype=np.float32)  # (B, T, D)
    for row, (_, array) in enumerate(chunk):
        features[row, : array.shape[0]] = array
    mask = torch.arange(lengths.max())[None, :] < torch.from_numpy(lengths)[:, None]  # (B, T)
    return torch.from_numpy(features), mask


Scored = tuple[VideoScores, Detections | None]


@torch.no_grad()
def _scored(
    method: Method,
    items: Iterable[tuple[str, np.ndarray]],
    batch_size: int,
    device: torch.device,
    amp: bool,
    detect: bool,
) -> Iterator[Scored]:
    """(scores, detections or None) of each (video_id, (T, D) features) item, in input order.

    Items are read `SORT_WINDOW` batches at a time and batched by length within that window (whole-video
    inference pads every video to its batch's longest), then yielded back in input order. A video's results
    do not depend on its batch companions, so this changes speed only.
    """
    method.eval()
    length = method.inference_length
    for window in _windows(items, batch_size * SORT_WINDOW):
        # resampled inputs all have the same length: nothing to sort, batches keep input order
        lengths = [0 if length is not None else array.shape[0] for _, array in window]
        results: list[Scored | None] = [None] * len(window)
        for positions in length_sorted_batches(lengths, batch_size):
            chunk = [window[i] for i in positions]
            for i, result in zip(positions, _score_batch(method, chunk, device, amp, detect), strict=True):
                results[i] = result
        yield from results


def _score_batch(method: Method, chunk, device: torch.device, amp: bool, detect: bool) -> list[Scored]:
    """Scores (and detections) of one batch of (video_id, (T, D) features) items, in order."""
    length = method.inference_length
    features, mask = _inputs(chunk, length)
    features, mask = features.to(device), mask.to(device)
    with autocast(device, amp):
        output = method(features, mask)
        scores = method.scores(output, mask)
    cas, act, video = (
        None if x is None else x.float().cpu().numpy() for x in (scores.cas, scores.actionness, scores.video_scores)
    )  # (B, T, C+1), (B, T), (B, C+1)
    videos = []
    for row, (video_id, array) in enumerate(chunk):
        n = array.shape[0]
        video_cas, video_act = (
            None if x is None else unresample(x[row], n) if length is not None else x[row, :n] for x in (cas, act)
        )
        videos.append(VideoScores(video_id, video_cas, video_act, None if video is None else video[row], row, n))
    if not detect:
        return [(v, None) for v in videos]
    with autocast(device, amp):
        found = method.detect(output, videos)
    # the method/engine boundary: a method's invalid segment is its own error here, never written
    checked = [
        check_detections(f, method.n_classes, method.name, v.video_id) for v, f in zip(videos, found, strict=True)
    ]
    return list(zip(videos, checked, strict=True))


def detect_videos(
    method: Method, items: Iterable[tuple[str, np.ndarray]], *, batch_size: int, device: torch.device, amp: bool = True
) -> Iterator[tuple[VideoScores, Detections]]:
    """(scores, detections in snippet units) of each item, in input order; the method is put in eval mode."""
    yield from _scored(method, items, batch_size, device, amp, detect=True)


def score_videos(
    method: Method, items: Iterable[tuple[str, np.ndarray]], *, batch_size: int, device: torch.device, amp: bool = True
) -> Iterator[VideoScores]:
    """Scores of each (video_id, (T, D) features) item, in input order; the method is put in eval mode."""
    for scored, _ in _scored(method, items, batch_size, device, amp, detect=False):
        yield scored


def dataset_items(dataset: PointDataset) -> Iterator[tuple[str, np.ndarray]]:
    for index, video_id in enumerate(dataset.video_ids):
        yield video_id, dataset.video_features(index).numpy()


def flat_cas(method: Method, dataset: PointDataset, **kwargs) -> torch.Tensor:
    """(N, C+1) `scores().cas` of every snippet of a dataset, in its flat layout (for label mining; a method
    that mines labels produces a CAS)."""
    rows = []
    for scored in score_videos(method, dataset_items(dataset), **kwargs):
        if scored.cas is None:
            raise RuntimeError(f"method '{method.name}' mines labels from a CAS but its scores() has none")
        rows.append(torch.from_numpy(scored.cas))
    return torch.cat(rows)


def predict(
    method: Method,
    items: Iterable[tuple[str, np.ndarray]],
    geometries: dict[str, SnippetGeometry],
    classes: tuple[str, ...],
    *,
    batch_size: int,
    device: torch.device,
    amp: bool = True,
    keep: list[VideoScores] | None = None,
) -> Predictions:
    """Segments and single frames for every item, in seconds; each video's scores are appended to `keep`
    when given (the raw outputs `predict --save-raw` writes)."""
    out = Predictions(tuple(classes))
    for scored, found in _scored(method, items, batch_size, device, amp, detect=True):
        if keep is not None:
            keep.append(scored)
        out.detections[scored.video_id] = found.in_seconds(geometries[scored.video_id])
        if scored.video_scores is not None:
            out.video_scores[scored.video_id] = scored.video_scores
    return out
