"""Pseudo action snippets and background seeds around the action points: the official `utils.select_seed`
that LACP and HR-Pro share (HR-Pro's code carries LACP's function over), batched (no loop over videos).

LACP calls it on the fused CAS's background column with 0/1 points and keeps the seeds as bool
(`methods/lacp.select_seeds`); HR-Pro calls it as it is (`methods/hrpro` imports it).
"""

from __future__ import annotations

import math

import torch


def select_seeds(
    background: torch.Tensor,
    points: torch.Tensor,
    mask: torch.Tensor,
    act_thresh: float = 0.1,
    bkg_thresh: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo action snippets and background seeds from the background score and the action points.

    background (B, T) in [0, 1]; points (B, T, C) {0, 1} action points; mask (B, T). Returns act_seed
    (B, T, C) (the points plus snippets that inherit a neighbouring point's row) and bkg_seed (B, T) {0, 1}.
    Per video with at least one point, the snippets between points form regions:
      * before the first point: seeds from 0 up to the last snippet with b >= bkg_thresh, else up to the
        region's arg-max of b; after the last point: from the first such snippet (else the arg-max) to the end;
      * between two points: from the first to the last such snippet when there are at least two, else the
        arg-max alone;
    then from each point, walking away from it inside its regions, snippets with b <= act_thresh that are
    not seeds take the point's row until the first one that fails. Ties of the arg-max go to the first.
    """
    b, t = background.shape
    device = background.device
    time = torch.arange(t, device=device).expand(b, t)  # (B, T)
    is_point = (points.sum(-1) > 0) & mask  # (B, T)
    n_points = is_point.sum(1, keepdim=True)  # (B, 1)
    region = torch.cumsum(is_point.long(), 1)  # (B, T) points at or before t: region 0..P of a free snippet
    free = mask & ~is_point & (n_points > 0)
    key = (torch.arange(b, device=device)[:, None] * (t + 1) + region)[free]  # (F,)
    n_keys = b * (t + 1)
    tf, bf = time[free], background[free]
    strong = bf >= bkg_thresh

    def reduce(values, keys, init, how):
        return torch.full((n_keys,), init, dtype=values.dtype, device=device).scatter_reduce(
            0, keys, values, how, include_self=True
        )

    first_strong = reduce(tf[strong], key[strong], t, "amin")[key]  # (F,)
    last_strong = reduce(tf[strong], key[strong], -1, "amax")[key]
    n_strong = reduce(strong.long(), key, 0, "sum")[key]
    peak = reduce(bf, key, -math.inf, "amax")[key]
    at_peak = bf == peak
    arg_peak = reduce(tf[at_peak], key[at_peak], t, "amin")[key]
    reg = region[free]
    left, right = reg == 0, reg == n_points.expand(b, t)[free]
    seed_left = torch.where(n_strong > 0, tf <= last_strong, tf <= arg_peak)
    seed_right = torch.where(n_strong > 0, tf >= first_strong, tf >= arg_peak)
    seed_mid = torch.where(n_strong >= 2, (tf >= first_strong) & (tf <= last_strong), tf == arg_peak)
    seed_free = torch.where(left, seed_left, torch.where(right, seed_right, seed_mid))
    bkg_seed = torch.zeros(b, t, dtype=torch.bool, device=device)
    bkg_seed[free] = seed_free

    blocker = free & ~((background <= act_thresh) & ~bkg_seed)  # (B, T) a walk stops here
    point_pos = torch.where(is_point, time, -1)
    prev_point = torch.cummax(point_pos, 1).values  # (B, T) last point at or before t (-1: none)
    next_point = torch.flip(torch.cummin(torch.flip(torch.where(is_point, time, t), [1]), 1).values, [1])
    last_block = torch.cummax(torch.where(blocker, time, -1), 1).values  # (B, T)
    next_block = torch.flip(torch.cummin(torch.flip(torch.where(blocker, time, t), [1]), 1).values, [1])
    forward = free & (prev_point >= 0) & (last_block < prev_point)
    backward = free & (next_point < t) & (next_block > next_point) & ~forward
    source = torch.where(forward, prev_point, torch.where(backward, next_point, time))  # (B, T)
    inherited = torch.gather(points, 1, source.unsqueeze(-1).expand_as(points))  # (B, T, C)
    act_seed = torch.where((forward | backward).unsqueeze(-1), inherited, points)
    return act_seed, bkg_seed.to(background.dtype)
