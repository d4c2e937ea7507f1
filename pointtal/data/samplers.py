"""Training batches: which videos a step reads, which of their snippets, and one gather into a `Batch`.

A sampler is a callable `(step, rank, world) -> Batch`, deterministic in (seed, step) so that a resumed run sees
the same data; a method's `training_sampler` returns one. The shared ones live here: random crop windows
(SF-Net, the weak baseline, LACP's whole videos), fixed-length resampling (SODA) and LACP's / HR-Pro's
`random_perturb`; a sampler only one method uses sits with that method (ActionFormer's truncation, HR-Pro's
proposal batches).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from pointtal.data.batch import Batch
from pointtal.data.dataset import PointDataset


class Sampler(Protocol):
    """A method's training batches: step -> this rank's share of the step's global batch."""

    def __call__(self, step: int, rank: int = 0, world: int = 1) -> Batch: ...


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


def _shard(
    dataset: PointDataset, videos: np.ndarray, snippet: np.ndarray, mask: np.ndarray, rank: int, world: int
) -> Batch:
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
