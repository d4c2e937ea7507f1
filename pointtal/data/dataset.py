"""Dataset assembly: every video of a subset in one flat in-memory layout (batches: `data.samplers`).

All snippets of all videos are concatenated into one `(N, D)` feature tensor; video `v` owns rows
`offsets[v]:offsets[v+1]`. A batch is then one gather of an index tensor `(B, T)`, and point labels,
ground-truth labels and pseudo labels live in `(N, C+1)` tensors with the same layout.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pointtal.data.annotations import GroundTruth, Video
from pointtal.data.features import FeatureStore, SnippetGeometry
from pointtal.data.segments import SegmentTable
from pointtal.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PointTimes:
    """Every point of a dataset at its exact time (the snippet rows of `point_labels` round it down)."""

    video: np.ndarray  # (P,) int64 index of the point's video in the dataset
    position: np.ndarray  # (P,) float64 time in snippet units (seconds * fps / stride), in [0, T_v)
    class_index: np.ndarray  # (P,) int64, 0 = background

    def of_video(self, video: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions (P_v,), classes (P_v,)) of one video's points, in time order."""
        rows = np.flatnonzero(self.video == video)
        rows = rows[np.argsort(self.position[rows], kind="stable")]
        return self.position[rows], self.class_index[rows]


@dataclass
class PointDataset:
    """Videos of one subset in a flat snippet layout."""

    video_ids: list[str]
    geometries: list[SnippetGeometry]
    offsets: np.ndarray  # (V+1,) int64
    features: torch.Tensor  # (N, D) float32
    video_labels: torch.Tensor  # (V, C+1) float, column 0 = 0
    point_labels: torch.Tensor  # (N, C+1) float, mean of one-hots on labelled snippets, 0 rows elsewhere
    truth_labels: torch.Tensor | None  # (N, C+1) float multi-hot ground truth, column 0 = 1 outside instances
    point_times: PointTimes | None = None  # the points' exact times (None: only their snippets are known)
    segments: SegmentTable | None = None  # instances as segments, for methods with `supervision = "segments"`

    def __len__(self) -> int:
        return len(self.video_ids)

    @property
    def n_snippets(self) -> np.ndarray:  # (V,) int64
        return np.diff(self.offsets)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def set_point_labels(self, labels: torch.Tensor) -> None:
        """Replace the point labels (label mining); same (N, C+1) layout."""
        if labels.shape != self.point_labels.shape:
            raise ValueError(f"point labels must keep shape {tuple(self.point_labels.shape)}")
        self.point_labels = labels.to(self.point_labels.dtype)

    def video_features(self, index: int) -> torch.Tensor:  # (T_v, D)
        return self.features[self.offsets[index] : self.offsets[index + 1]]

    def without_truth(self) -> PointDataset:
        """The same videos, features and labels (shared, not copied) without `truth_labels`: what a method
        is handed for training, so no loss or label mining can read the training videos' ground truth."""
        return dataclasses.replace(self, truth_labels=None)


def geometry_for(video: Video, fps: float, stride: int) -> SnippetGeometry:
    """A video's own fps from the ground truth wins over the dataset default."""
    return SnippetGeometry(video.fps if video.fps else fps, stride, video.offset_frames)


def load_features(videos: Sequence[Video], store: FeatureStore, source: str) -> tuple[list[Video], list[np.ndarray]]:
    """Features of the videos that have a file; missing ones are reported (count + first names), never silent."""
    present = [v for v in videos if v.video_id in store]
    missing = [v.video_id for v in videos if v.video_id not in store]
    if missing:
        log.warning(
            "%s: %d of %d videos have no feature file and are skipped (first: %s)",
            source,
            len(missing),
            len(videos),
            ", ".join(missing[:3]),
        )
    if not present:
        raise InputError(f"{store.root}: none of the {len(videos)} videos of {source} has a feature file")
    return present, [store.load(v.video_id) for v in present]


def truth_rows(video: Video, geometry: SnippetGeometry, n: int, class_index: dict[str, int]) -> np.ndarray:
    """(n, C+1) multi-hot ground truth of one video's snippets; column 0 marks snippets in no instance."""
    rows = np.zeros((n, len(class_index) + 1), dtype=np.float32)  # (T, C+1)
    for inst in video.instances:
        start = max(0, min(geometry.to_snippet(inst.start_sec), n - 1))  # < 0: a window offset (actionformer.py)
        end = max(start + 1, min(int(np.ceil(geometry.to_units(inst.end_sec))), n))
        rows[start:end, class_index[inst.label]] = 1.0
    rows[:, 0] = rows[:, 1:].sum(1) == 0
    return rows


def build_dataset(
    gt: GroundTruth,
    subset: str,
    store: FeatureStore,
    fps: float,
    stride: int,
    points=None,
) -> PointDataset:
    """Assemble a subset. `points` is a MappedPoints (video_id, snippet, class_index arrays) or None."""
    videos, arrays = load_features(gt.subset(subset, "data.train_subset/test_subset"), store, f"subset '{subset}'")
    class_index = gt.class_index
    n_classes = len(gt.classes)
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    features = torch.from_numpy(np.concatenate([np.asarray(a, dtype=np.float32) for a in arrays]))  # (N, D)
    geometries = [geometry_for(v, fps, stride) for v in videos]
    warn_length_mismatch(videos, geometries, lengths, f"subset '{subset}'")
    video_labels = torch.zeros(len(videos), n_classes + 1)  # (V, C+1)
    for i, v in enumerate(videos):
        for inst in v.instances:
            video_labels[i, class_index[inst.label]] = 1.0
    truth = torch.from_numpy(
        np.concatenate([truth_rows(v, g, n, class_index) for v, g, n in zip(videos, geometries, lengths, strict=False)])
    )
    dataset = PointDataset(
        [v.video_id for v in videos],
        geometries,
        offsets,
        features,
        video_labels,
        torch.zeros(int(offsets[-1]), n_classes + 1),
        truth,
    )
    if points is not None:
        dataset.set_point_labels(point_label_rows(dataset, points, n_classes))
        dataset.point_times = point_times(dataset, points)
    return dataset


LENGTH_RATIO = 2.0  # features this many times longer (or shorter) than the duration says: wrong fps or stride


def warn_length_mismatch(
    videos: Sequence[Video], geometries: Sequence[SnippetGeometry], lengths: np.ndarray, source: str
) -> None:
    """Say once when feature lengths disagree with the ground-truth durations by LENGTH_RATIO or more.

    Such features were extracted at another fps / stride than the config says (or belong to other videos):
    every instance and point would then sit at the wrong snippets without any error.
    """
    expected = np.array(
        [g.n_snippets(v.duration_sec) for v, g in zip(videos, geometries, strict=True)], dtype=np.float64
    )
    ratio = lengths / expected  # (V,)
    off = np.flatnonzero((ratio >= LENGTH_RATIO) | (ratio <= 1 / LENGTH_RATIO))
    if not len(off):
        return
    i = int(off[np.argmax(np.abs(np.log(ratio[off])))])
    g = geometries[i]
    log.warning(
        "%s: %d of %d videos have features %.0fx or more off their duration (worst: '%s', %d snippets = %.1f s "
        "at fps %g / stride %d, duration %.1f s); check data.fps and data.stride",
        source,
        len(off),
        len(videos),
        LENGTH_RATIO,
        videos[i].video_id,
        lengths[i],
        lengths[i] * g.snippet_sec,
        g.fps,
        g.stride,
        videos[i].duration_sec,
    )


def point_label_rows(dataset: PointDataset, points, n_classes: int) -> torch.Tensor:
    """(N, C+1) mean-of-one-hots rows from mapped points; points past a video's feature length are dropped."""
    position = {vid: i for i, vid in enumerate(dataset.video_ids)}
    video = np.array([position.get(v, -1) for v in points.video_id], dtype=np.int64)
    snippet = np.asarray(points.snippet, dtype=np.int64)
    classes = np.asarray(points.class_index, dtype=np.int64)
    lengths = dataset.n_snippets
    keep = (video >= 0) & (snippet >= 0)
    keep[keep] &= snippet[keep] < lengths[video[keep]]
    dropped = int((video >= 0).sum() - keep.sum())
    if dropped:
        log.warning("%d points lie past the end of their video's features and are dropped", dropped)
    rows = torch.zeros(int(dataset.offsets[-1]), n_classes + 1)  # (N, C+1)
    flat = torch.from_numpy(dataset.offsets[video[keep]] + snippet[keep])
    rows.index_put_((flat, torch.from_numpy(classes[keep])), torch.ones(len(flat)), accumulate=True)
    rows = (rows > 0).float()  # several clicks of one class on a snippet count once
    total = rows.sum(1, keepdim=True)
    return torch.where(total > 0, rows / total.clamp(min=1), rows)


def point_times(dataset: PointDataset, points) -> PointTimes:
    """The exact times of the mapped points that `point_label_rows` keeps; a MappedPoints without them
    (`position` None) stands for each point by its snippet's centre."""
    position = {vid: i for i, vid in enumerate(dataset.video_ids)}
    video = np.array([position.get(v, -1) for v in points.video_id], dtype=np.int64)
    snippet = np.asarray(points.snippet, dtype=np.int64)
    exact = snippet + 0.5 if points.position is None else np.asarray(points.position, dtype=np.float64)
    keep = (video >= 0) & (snippet >= 0)
    keep[keep] &= snippet[keep] < dataset.n_snippets[video[keep]]
    return PointTimes(video[keep], exact[keep], np.asarray(points.class_index, dtype=np.int64)[keep])
