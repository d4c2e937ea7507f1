"""Dataset assembly: every video of a subset in one flat in-memory layout, and batch samplers.

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
from pointtal.data.batch import Batch
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
    return SnippetGeometry(video.fps if video.fps else fps, stride)


def load_features(
    videos: Sequence[Video], store: FeatureStore, source: str
) -> tuple[list[Video], list[np.ndarray]]:
    """Features of the videos that have a file; missing ones are reported (count + first names), never silent."""
    present = [v for v in videos if v.video_id in store]
    missing = [v.video_id for v in videos if v.video_id not in store]
    if missing:
        log.warning(
            "%s: %d of %d videos have no feature file and are skipped (first: %s)",
            source, len(missing), len(videos), ", ".join(missing[:3]),
        )
    if not present:
        raise InputError(f"{store.root}: none of the {len(videos)} videos of {source} has a feature file")
    return present, [store.load(v.video_id) for v in present]


def truth_rows(video: Video, geometry: SnippetGeometry, n: int, class_index: dict[str, int]) -> np.ndarray:
    """(n, C+1) multi-hot ground truth of one video's snippets; column 0 marks snippets in no instance."""
    rows = np.zeros((n, len(class_index) + 1), dtype=np.float32)  # (T, C+1)
    for inst in video.instances:
        start = min(geometry.to_snippet(inst.start_sec), n - 1)
        end = max(start + 1, min(int(np.ceil(inst.end_sec * geometry.fps / geometry.stride)), n))
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
        [v.video_id for v in videos], geometries, offsets, features, video_labels,
        torch.zeros(int(offsets[-1]), n_classes + 1), truth,
    )
    if points is not None:
        dataset.set_point_labels(point_label_rows(dataset, points, n_classes))
        dataset.point_times = point_times(dataset, points)
    return dataset


LENGTH_RATIO = 2.0  # features this many times longer (or shorter) than the duration says: wrong fps or stride


def warn_length_mismatch(videos: Sequence[Video], geometries: Sequence[SnippetGeometry], lengths: np.ndarray,
                         source: str) -> None:
    """Say once when feature lengths disagree with the ground-truth durations by LENGTH_RATIO or more.

    Such features were extracted at another fps / stride than the config says (or belong to other videos):
    every instance and point would then sit at the wrong snippets without any error.
    """
    expected = np.array([g.n_snippets(v.duration_sec) for v, g in zip(videos, geometries, strict=True)], dtype=np.float64)
    ratio = lengths / expected  # (V,)
    off = np.flatnonzero((ratio >= LENGTH_RATIO) | (ratio <= 1 / LENGTH_RATIO))
    if not len(off):
        return
    i = int(off[np.argmax(np.abs(np.log(ratio[off])))])
    g = geometries[i]
    log.warning(
        "%s: %d of %d videos have features %.0fx or more off their duration (worst: '%s', %d snippets = %.1f s "
        "at fps %g / stride %d, duration %.1f s); check data.fps and data.stride",
        source, len(off), len(videos), LENGTH_RATIO, videos[i].video_id, lengths[i],
        lengths[i] * g.snippet_sec, g.fps, g.stride, videos[i].duration_sec,
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


# ----------------------------------------------------------------------------- sampling
def epoch_order(n_videos: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n_videos)


def batch_videos(n_videos: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Video indices of a step: consecutive slices of a stream of seeded per-epoch permutations."""
    positions = np.arange(step * batch_size, (step + 1) * batch_size)
    epochs, within = np.divmod(positions, n_videos)
    orders = {int(e): epoch_order(n_videos, seed, int(e)) for e in np.unique(epochs)}
    return np.array([orders[int(e)][i] for e, i in zip(epochs, within, strict=False)], dtype=np.int64)


def iterator_videos(n_videos: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Video indices of a step as the official LACP / HR-Pro loops read them: a fresh seeded permutation every
    max(1, n_videos // batch_size) steps (their loader's iterator is re-created then), read batch_size videos a
    step; the n_videos % batch_size videos left in each permutation are not read (fewer videos than a batch:
    all of them every step)."""
    epoch, k = divmod(step, max(1, n_videos // batch_size))
    return epoch_order(n_videos, seed, epoch)[k * batch_size : (k + 1) * batch_size]


def step_videos(n_videos: int, batch_size: int, seed: int, step: int, order: str = "stream") -> np.ndarray:
    """A step's videos: "stream" (`batch_videos`) or "iterator" (`iterator_videos`)."""
    pick = iterator_videos if order == "iterator" else batch_videos
    return pick(n_videos, batch_size, seed, step)


def crop_index(lengths: np.ndarray, window: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """SF-Net crops: a random window of `window` snippets per video. Returns snippet index (B, T) and mask."""
    kept = np.minimum(lengths, window)  # (B,)
    starts = np.floor(rng.random(len(lengths)) * (lengths - kept + 1)).astype(np.int64)
    grid = np.arange(kept.max())[None, :]  # (1, T)
    mask = grid < kept[:, None]  # (B, T)
    return np.where(mask, starts[:, None] + grid, -1), mask


def resample_index(lengths: np.ndarray, size: int, rng: np.random.Generator | None) -> np.ndarray:
    """SODA fixed-T sampling: one index per equal bin, random offset in training, bin start at test. (B, size)."""
    edges = np.arange(size + 1)[None, :] / size * lengths[:, None]  # (B, size+1)
    offset = rng.random((len(lengths), size)) if rng is not None else 0.0
    index = np.floor(edges[:, :-1] + offset * (edges[:, 1:] - edges[:, :-1])).astype(np.int64)
    return np.minimum(index, lengths[:, None] - 1)


def resample_positions(length: int, size: int) -> np.ndarray:
    """Fractional snippet positions the deterministic resampling's outputs stand for (bin centres). (size,)"""
    return (np.arange(size) + 0.5) * length / size - 0.5


def gather_batch(dataset: PointDataset, videos: np.ndarray, snippet: np.ndarray, mask: np.ndarray) -> Batch:
    """One gather of features and labels for videos (B,) at snippet indices (B, T) where mask (B, T)."""
    flat = torch.from_numpy(np.where(mask, dataset.offsets[videos][:, None] + snippet, 0))  # (B, T)
    mask_t = torch.from_numpy(mask)
    padding = ~mask_t.unsqueeze(-1)  # (B, T, 1)
    point_labels = _rows(dataset.point_labels, flat).masked_fill_(padding, 0)  # (B, T, C+1)
    return Batch(
        features=_rows(dataset.features, flat).masked_fill_(padding, 0),  # (B, T, D)
        mask=mask_t,
        video_labels=dataset.video_labels[torch.from_numpy(videos)],
        point_labels=point_labels,
        point_mask=(point_labels.sum(-1) > 0) & mask_t,
        video_index=torch.from_numpy(videos),
        snippet_index=torch.from_numpy(np.where(mask, snippet, -1)),
    )


def _rows(table: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """table (N, W) rows at flat indices (B, T) -> (B, T, W); index_select is several times faster than table[flat]."""
    return table.index_select(0, flat.flatten()).view(*flat.shape, table.shape[1])


def unresample(values: np.ndarray, length: int) -> np.ndarray:
    """Map (S, ...) values of the deterministic resampling of a `length`-snippet video back to (length, ...),
    linearly between the positions `resample_positions` gives them."""
    size = values.shape[0]
    position = np.interp(np.arange(length), resample_positions(length, size), np.arange(size))  # (length,)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, size - 1)
    weight = (position - low).reshape(-1, *([1] * (values.ndim - 1)))
    return values[low] * (1 - weight) + values[high] * weight


def _shard(dataset: PointDataset, videos: np.ndarray, snippet: np.ndarray, mask: np.ndarray, rank: int,
           world: int) -> Batch:
    """This rank's part of a global batch, cut to its longest real row."""
    videos, snippet, mask = videos[rank::world], snippet[rank::world], mask[rank::world]
    keep = int(mask.sum(1).max())
    return gather_batch(dataset, videos, snippet[:, :keep], mask[:, :keep])


@dataclass(frozen=True)
class CropSampler:
    """Training batches of random windows (SF-Net): step -> Batch, deterministic in (seed, step).

    Step `s` crops every video longer than `windows[s % len(windows)]` snippets to a random window of that
    length (SF-Net alternates a 750-snippet window with a 2800-snippet one, in effect whole videos).
    """

    dataset: PointDataset
    batch_size: int
    seed: int
    windows: tuple[int, ...]
    order: str = "stream"  # which videos a step reads: "stream" or "iterator" (`step_videos`)

    def __call__(self, step: int, rank: int = 0, world: int = 1) -> Batch:
        """The step's global batch (random draws made for all of it), then this rank's shard."""
        videos = step_videos(len(self.dataset), self.batch_size, self.seed, step, self.order)
        rng = np.random.default_rng([self.seed, step, 7])
        lengths = self.dataset.n_snippets[videos]
        snippet, mask = crop_index(lengths, self.windows[step % len(self.windows)], rng)
        return _shard(self.dataset, videos, snippet, mask, rank, world)


@dataclass(frozen=True)
class ResampleSampler:
    """Training batches of videos resampled to `size` snippets, one random snippet per equal bin (SODA)."""

    dataset: PointDataset
    batch_size: int
    seed: int
    size: int

    def __call__(self, step: int, rank: int = 0, world: int = 1) -> Batch:
        videos = batch_videos(len(self.dataset), self.batch_size, self.seed, step)
        rng = np.random.default_rng([self.seed, step, 7])
        snippet = resample_index(self.dataset.n_snippets[videos], self.size, rng)  # (B, size)
        return _shard(self.dataset, videos, snippet, np.ones_like(snippet, dtype=bool), rank, world)


def perturb_index(lengths: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """LACP's and HR-Pro's official random_perturb for every video: (B, size) snippet indices.

    Bin i starts at s_i = i * L / size; its snippet is uniform over [int(s_i), int(s_{i+1})] (both included),
    the last bin's over [int(s_{size-1}), L-1]; a video of exactly `size` snippets is taken as it is.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.arange(size)[None, :] * lengths[:, None] / size  # (B, size)
    lo = np.floor(starts).astype(np.int64)
    hi = np.concatenate([lo[:, 1:], lengths[:, None] - 1], axis=1)  # inclusive upper ends
    hi = np.maximum(hi, lo)
    index = lo + np.floor(rng.random(lo.shape) * (hi - lo + 1)).astype(np.int64)
    index = np.minimum(index, hi)
    exact = lengths == size
    index[exact] = np.arange(size)
    return index


@dataclass(frozen=True)
class PerturbSampler:
    """Training batches of `size` snippets per video drawn by `perturb_index`; deterministic in (seed, step)."""

    dataset: PointDataset
    batch_size: int
    seed: int
    size: int
    keep_short: bool = False  # HR-Pro: a video of at most `size` snippets is taken whole (LACP: resampled up)
    order: str = "stream"  # which videos a step reads: "stream" or "iterator" (`step_videos`)

    def __call__(self, step: int, rank: int = 0, world: int = 1) -> Batch:
        videos = step_videos(len(self.dataset), self.batch_size, self.seed, step, self.order)
        rng = np.random.default_rng([self.seed, step, 7])
        lengths = self.dataset.n_snippets[videos]
        snippet = perturb_index(lengths, self.size, rng)  # (B, size)
        mask = np.ones_like(snippet, dtype=bool)
        if self.keep_short:
            grid = np.arange(self.size)[None, :]
            short = (lengths <= self.size)[:, None]
            mask = ~short | (grid < lengths[:, None])  # (B, size)
            snippet = np.where(short, np.where(mask, grid, -1), snippet)
        return _shard(self.dataset, videos, snippet, mask, rank, world)
