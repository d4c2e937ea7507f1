"""HR-Pro's stage-2 batches: the steps per epoch of the official stage-2 loader, the training proposals
and pseudo labels of the reliability ranking, and the sampler that draws the proposal batches."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pointtal.data.dataset import PointDataset
from pointtal.data.samplers import gather_batch, step_videos

if TYPE_CHECKING:
    from pointtal.methods.hrpro.method import Options


# ----------------------------------------------------------------------------- stage 2 batches
def stage2_steps_per_epoch(n_videos: int, o: Options) -> int:
    """Stage-2 steps per epoch: full batches only (drop_last, the official; one batch of every video when there
    are fewer than a batch, where the official loader has none), or ceil(n / batch) over a video stream."""
    if o.stage2_drop_last:
        return max(1, n_videos // o.stage2_batch_size)
    return math.ceil(n_videos / o.stage2_batch_size)


@dataclass(frozen=True)
class WithPoints:
    """A stage-1 sampler whose batches also carry the action points (B, T, C) and video labels (B, C) in
    `extras`, so the per-video memory updates can run in `forward`."""

    sampler: Any

    def __call__(self, step: int, rank: int = 0, world: int = 1):
        batch = self.sampler(step, rank, world)
        batch.extras = {
            **batch.extras,
            "points": ((batch.point_labels[..., 1:] > 0) & batch.mask.unsqueeze(-1)).float(),
            "labels": batch.video_labels[:, 1:].float(),
        }
        return batch


@dataclass
class TrainingProposals:
    """Stage-2 training data of every training video, flat with offsets (the ranking's result)."""

    proposals: torch.Tensor  # (sum M_v, 2) stage-1 proposals then negative proposals, snippet units
    proposal_offsets: torch.Tensor  # (V+1,) long
    pseudo: torch.Tensor  # (sum K_v, 2) reliable proposals (pseudo labels)
    pseudo_offsets: torch.Tensor  # (V+1,) long


@dataclass(frozen=True)
class ProposalSampler:
    """Stage-2 batches: whole videos (a seeded stream of per-epoch permutations) with their proposals
    (a random `max_proposal` of them beyond that), pseudo labels and the score loss's random draws in
    `Batch.extras`; deterministic in (seed, step)."""

    dataset: PointDataset
    batch_size: int
    seed: int
    data: TrainingProposals
    max_proposal: int
    drop_last: bool = False  # each epoch a fresh permutation cut into full batches (the official loader)

    def __call__(self, step: int, rank: int = 0, world: int = 1):
        order = "iterator" if self.drop_last else "stream"  # drop_last: the official loader, re-shuffled each epoch
        videos = step_videos(len(self.dataset), self.batch_size, self.seed, step, order)[rank::world]
        rng = np.random.default_rng([self.seed, step, 11])
        lengths = self.dataset.n_snippets[videos]
        snippet = np.arange(lengths.max())[None, :].repeat(len(videos), 0)
        mask = snippet < lengths[:, None]
        batch = gather_batch(self.dataset, videos, np.where(mask, snippet, -1), mask)
        offsets, pseudo_offsets = self.data.proposal_offsets.numpy(), self.data.pseudo_offsets.numpy()
        picks = []
        for v in videos:  # index lists of the batch's videos (the tensors below are built once)
            count = int(offsets[v + 1] - offsets[v])
            pick = rng.permutation(count)[: self.max_proposal] if count > self.max_proposal else np.arange(count)
            picks.append(offsets[v] + pick)
        batch.extras = {
            **_pad_rows(self.data.proposals, picks, "proposals"),
            **_pad_rows(
                self.data.pseudo, [np.arange(pseudo_offsets[v], pseudo_offsets[v + 1]) for v in videos], "pseudo"
            ),
        }
        batch.extras["proposal_draw"] = torch.from_numpy(rng.random(batch.extras["proposals_mask"].shape)).float()
        return batch


def _pad_rows(table: torch.Tensor, picks: list[np.ndarray], name: str) -> dict[str, torch.Tensor]:
    """Rows `picks[i]` of table (N, 2) padded along a new axis: {name: (B, M, 2), name_mask: (B, M)}."""
    width = max(1, max(len(p) for p in picks))
    index = np.zeros((len(picks), width), dtype=np.int64)
    mask = np.zeros((len(picks), width), dtype=bool)
    for row, p in enumerate(picks):
        index[row, : len(p)], mask[row, : len(p)] = p, True
    rows = table[torch.from_numpy(index)] if len(table) else torch.zeros(len(picks), width, 2)
    mask_t = torch.from_numpy(mask)
    return {name: torch.where(mask_t.unsqueeze(-1), rows, torch.tensor([0.0, 1.0])), f"{name}_mask": mask_t}
