"""Agreement of several annotators' click files, with and without a ground truth, and a consensus file.

numpy only. A click is a `pointtal.data.points.Point` (video, time in seconds, label).

With a ground truth (`truth_report`), per annotator:
* hit rate: share of ground-truth instances with at least one click of their class inside ([start, end], ends
  included), over the videos given;
* clicks outside every instance (of any class), and clicks inside instances of other classes only;
* the relative position (t - start) / (end - start) of each click within an instance of its class (the instance
  whose centre is nearest when several hold it), as a 10-bin histogram over [0, 1] (the SF-Net paper's figure);
* the same hit rate and outside count per class.

Without one:
* `match_pairs`: clicks of two annotators on the same video with the same label are matched one to one when
  |t_a - t_b| <= tolerance, greedily by distance (smallest first; ties by the order of a's then b's clicks sorted
  by time);
* `snippet_alpha`: Krippendorff's alpha for nominal data on snippet labels. Snippet s of a video spans
  [s * stride / fps, (s + 1) * stride / fps); an annotator's label of the snippet is the label of their click
  nearest to the snippet's centre when that click is within `tolerance` seconds of it, else "none". The units
  are the snippets that at least one annotator labels (not "none"): every annotator gives each unit a value, so
  m_u = A (the number of annotators). With N_uc the number of annotators giving value c to unit u,
      o_ck = sum_u N_uc (N_uk - [c = k]) / (A - 1)        (coincidences),   n_c = sum_k o_ck,   n = sum_c n_c,
      alpha = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k.
  alpha is 1 for perfect agreement, about 0 for chance; NaN where it is undefined (no unit, or one value only).

`merge_clicks`: per (video, label), clicks of different annotators are grouped greedily: pairs of clicks of
different annotators within the tolerance, smallest distance first, join their groups when the two groups share
no annotator and the joined group spans at most the tolerance (so every two clicks of a group are within it). A
group with clicks of at least `min_agree` annotators becomes one click at the median of its times; the others
are dropped and counted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pointtal.data.annotations import Video
from pointtal.data.points import Point

BINS = 10
NONE = "none"


def _by_video_label(points: Sequence[Point]) -> dict[tuple[str, str], np.ndarray]:
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for p in points:
        groups[p.video_id, p.label].append(p.time_sec)
    return {k: np.sort(np.asarray(v, dtype=np.float64)) for k, v in groups.items()}


# ------------------------------------------------------------------------------------------- with ground truth


@dataclass(frozen=True)
class TruthStats:
    clicks: int  # action clicks on the videos given (background clicks left out)
    background: int  # background clicks, not scored
    elsewhere: int  # clicks on videos outside those given
    instances: int
    hit: int
    outside: int  # clicks outside every instance
    other_class: int  # clicks inside instances of other classes only
    histogram: tuple[int, ...]  # BINS counts of relative positions of clicks inside an instance of their class
    per_class: dict[str, dict[str, int]]  # label -> instances, hit, clicks, outside

    @property
    def hit_rate(self) -> float:
        return self.hit / self.instances if self.instances else float("nan")

    def as_dict(self) -> dict:
        return {
            "clicks": self.clicks,
            "background_clicks": self.background,
            "clicks_elsewhere": self.elsewhere,
            "instances": self.instances,
            "hit": self.hit,
            "hit_rate": self.hit_rate,
            "outside": self.outside,
            "other_class": self.other_class,
            "histogram": list(self.histogram),
            "per_class": self.per_class,
        }


def truth_report(points: Sequence[Point], videos: Mapping[str, Video], background_label: str) -> TruthStats:
    """Hit rate, outside clicks and the position histogram of one annotator's clicks against `videos`."""
    histogram = np.zeros(BINS, dtype=np.int64)
    per_class: dict[str, dict[str, int]] = defaultdict(lambda: {"instances": 0, "hit": 0, "clicks": 0, "outside": 0})
    clicks = [p for p in points if p.label != background_label]
    inside = [p for p in clicks if p.video_id in videos]
    outside = other = hit = n_instances = 0
    grouped: dict[str, list[Point]] = defaultdict(list)
    for p in inside:
        grouped[p.video_id].append(p)
    for video_id, video in videos.items():
        starts = np.array([i.start_sec for i in video.instances], dtype=np.float64)  # (I,)
        ends = np.array([i.end_sec for i in video.instances], dtype=np.float64)  # (I,)
        labels = np.array([i.label for i in video.instances], dtype=object)  # (I,)
        vpoints = grouped.get(video_id, [])
        times = np.array([p.time_sec for p in vpoints], dtype=np.float64)  # (P,)
        plabels = np.array([p.label for p in vpoints], dtype=object)  # (P,)
        within = (times[:, None] >= starts[None, :]) & (times[:, None] <= ends[None, :])  # (P, I)
        same = within & (plabels[:, None] == labels[None, :])  # (P, I)
        hits = same.any(axis=0)  # (I,)
        n_instances += len(starts)
        hit += int(hits.sum())
        out = ~within.any(axis=1)  # (P,)
        outside += int(out.sum())
        other += int((within.any(axis=1) & ~same.any(axis=1)).sum())
        for label, was_hit in zip(labels, hits, strict=True):
            per_class[label]["instances"] += 1
            per_class[label]["hit"] += int(was_hit)
        for label, was_out in zip(plabels, out, strict=True):
            per_class[label]["clicks"] += 1
            per_class[label]["outside"] += int(was_out)
        scored = same.any(axis=1)  # (P,)
        if scored.any():
            centre = (starts + ends) / 2
            dist = np.where(same, np.abs(times[:, None] - centre[None, :]), np.inf)  # (P, I)
            pick = dist.argmin(axis=1)[scored]
            length = np.maximum(ends[pick] - starts[pick], 1e-12)
            rel = np.clip((times[scored] - starts[pick]) / length, 0.0, 1.0)
            histogram += np.bincount(np.minimum((rel * BINS).astype(np.int64), BINS - 1), minlength=BINS)
    return TruthStats(
        clicks=len(inside),
        background=len(points) - len(clicks),
        elsewhere=len(clicks) - len(inside),
        instances=n_instances,
        hit=hit,
        outside=outside,
        other_class=other,
        histogram=tuple(int(c) for c in histogram),
        per_class={k: dict(v) for k, v in sorted(per_class.items())},
    )


# ------------------------------------------------------------------------------------------- pairwise matching


def greedy_match(a: np.ndarray, b: np.ndarray, tolerance: float) -> list[tuple[int, int]]:
    """One-to-one matches (i, j) between sorted times `a` and `b` with |a_i - b_j| <= tolerance, greedily by
    distance (ties: smaller i, then smaller j)."""
    dist = np.abs(a[:, None] - b[None, :])  # (A, B)
    ii, jj = np.nonzero(dist <= tolerance)
    order = np.lexsort((jj, ii, dist[ii, jj]))
    used_a, used_b, out = set(), set(), []
    for k in order:
        i, j = int(ii[k]), int(jj[k])
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            out.append((i, j))
    return out


@dataclass(frozen=True)
class PairStats:
    clicks_a: int
    clicks_b: int
    matched: int
    mean_offset: float  # mean |t_a - t_b| of matched clicks, seconds

    def as_dict(self) -> dict:
        return {
            "clicks_a": self.clicks_a,
            "clicks_b": self.clicks_b,
            "matched": self.matched,
            "share_a": self.matched / self.clicks_a if self.clicks_a else float("nan"),
            "share_b": self.matched / self.clicks_b if self.clicks_b else float("nan"),
            "mean_offset_sec": self.mean_offset,
        }


def match_pairs(a: Sequence[Point], b: Sequence[Point], tolerance: float) -> PairStats:
    """Clicks of a and b matched per (video, label) within `tolerance` seconds (see the module docstring)."""
    ga, gb = _by_video_label(a), _by_video_label(b)
    offsets = []
    for key, ta in ga.items():
        tb = gb.get(key)
        if tb is None:
            continue
        offsets += [abs(ta[i] - tb[j]) for i, j in greedy_match(ta, tb, tolerance)]
    return PairStats(len(a), len(b), len(offsets), float(np.mean(offsets)) if offsets else float("nan"))


# ------------------------------------------------------------------------------------------------ alpha


def snippet_labels(
    points: Sequence[Point], video_id: str, n_snippets: int, seconds_per_snippet: float, tolerance: float
) -> np.ndarray:
    """(n_snippets,) object array: the label of the click nearest each snippet centre within `tolerance`, else
    NONE."""
    out = np.full(n_snippets, NONE, dtype=object)
    mine = [p for p in points if p.video_id == video_id]
    if not mine or n_snippets == 0:
        return out
    times = np.array([p.time_sec for p in mine])  # (P,)
    labels = np.array([p.label for p in mine], dtype=object)  # (P,)
    centres = (np.arange(n_snippets) + 0.5) * seconds_per_snippet  # (S,)
    dist = np.abs(centres[:, None] - times[None, :])  # (S, P)
    nearest = dist.argmin(axis=1)
    close = dist[np.arange(n_snippets), nearest] <= tolerance
    out[close] = labels[nearest[close]]
    return out


def nominal_alpha(values: np.ndarray) -> float:
    """Krippendorff's alpha (nominal) of a (units, annotators) array of values, every cell filled."""
    units, raters = values.shape
    if units == 0 or raters < 2:
        return float("nan")
    cats, codes = np.unique(values.astype(str), return_inverse=True)
    codes = codes.reshape(units, raters)
    counts = np.zeros((units, len(cats)), dtype=np.float64)  # (U, C): N_uc
    np.add.at(counts, (np.repeat(np.arange(units), raters), codes.ravel()), 1.0)
    coincidence = (counts.T @ counts - np.diag(counts.sum(axis=0))) / (raters - 1)  # (C, C): o_ck
    n_c = coincidence.sum(axis=1)
    n = n_c.sum()
    off = ~np.eye(len(cats), dtype=bool)
    expected = (np.outer(n_c, n_c)[off]).sum()
    if expected == 0:
        return float("nan")
    return float(1.0 - (n - 1) * coincidence[off].sum() / expected)


def snippet_alpha(
    annotators: Sequence[Sequence[Point]], durations: Mapping[str, float], fps: float, stride: int, tolerance: float
) -> tuple[float, int]:
    """(alpha, units) over the videos of `durations` (video -> seconds); see the module docstring."""
    step = stride / fps
    rows = []
    for video_id, duration in sorted(durations.items()):
        n = max(int(np.ceil(duration / step)), 0) if np.isfinite(duration) else 0
        labels = np.stack([snippet_labels(pts, video_id, n, step, tolerance) for pts in annotators], axis=1)
        rows.append(labels[(labels != NONE).any(axis=1)])  # (U_v, A)
    values = np.concatenate(rows) if rows else np.empty((0, len(annotators)), dtype=object)
    return nominal_alpha(values), len(values)


# ------------------------------------------------------------------------------------------------- merge


@dataclass(frozen=True)
class MergeReport:
    groups: int
    kept: int
    dropped_groups: dict[int, int]  # number of agreeing annotators -> groups dropped
    dropped_clicks: tuple[int, ...]  # per annotator: their clicks in dropped groups

    def as_dict(self) -> dict:
        return {
            "groups": self.groups,
            "kept": self.kept,
            "dropped_groups_by_agreement": {str(k): v for k, v in sorted(self.dropped_groups.items())},
            "dropped_clicks_per_annotator": list(self.dropped_clicks),
        }


def _groups(times: np.ndarray, owners: np.ndarray, tolerance: float) -> list[list[int]]:
    """Greedy grouping of clicks (times, owners) of one (video, label) (see the module docstring)."""
    group = list(range(len(times)))
    members = {i: [i] for i in range(len(times))}
    dist = np.abs(times[:, None] - times[None, :])
    ii, jj = np.nonzero(
        (dist <= tolerance)
        & (owners[:, None] != owners[None, :])
        & (np.arange(len(times))[:, None] < np.arange(len(times))[None, :])
    )
    for k in np.lexsort((jj, ii, dist[ii, jj])):
        gi, gj = group[int(ii[k])], group[int(jj[k])]
        if gi == gj:
            continue
        joined = members[gi] + members[gj]
        if set(owners[members[gi]]) & set(owners[members[gj]]):
            continue
        if times[joined].max() - times[joined].min() > tolerance:
            continue
        for m in members.pop(gj):
            group[m] = gi
        members[gi] = joined
    return list(members.values())


def merge_clicks(
    annotators: Sequence[Sequence[Point]], tolerance: float, min_agree: int
) -> tuple[list[Point], MergeReport]:
    """A consensus click file: groups of at least `min_agree` annotators' clicks -> one click at their median."""
    pooled: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
    for owner, points in enumerate(annotators):
        for p in points:
            pooled[p.video_id, p.label].append((p.time_sec, owner))
    merged, n_groups, dropped = [], 0, defaultdict(int)
    dropped_clicks = np.zeros(len(annotators), dtype=np.int64)
    for (video_id, label), items in sorted(pooled.items()):
        items.sort()
        times = np.array([t for t, _ in items])
        owners = np.array([o for _, o in items])
        for members in _groups(times, owners, tolerance):
            n_groups += 1
            if len(members) >= min_agree:
                merged.append(Point(video_id, float(np.median(times[members])), label))
            else:
                dropped[len(members)] += 1
                np.add.at(dropped_clicks, owners[members], 1)
    return merged, MergeReport(n_groups, len(merged), dict(dropped), tuple(int(c) for c in dropped_clicks))
