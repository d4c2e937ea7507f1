"""Pseudo-labels: a run's predicted segments written as ActivityNet-layout ground truth (docs/formats.md).

`pointtal predict RUN --pseudo-labels OUT.json --subset S` turns the segments predicted for the videos of
subset S into that subset's ground truth, so that a fully supervised detector (ActionFormer, OpenTAD) or
pointtal's `full` scheme (`data.annotations=OUT.json`, `data.points=full`) can train on them.

Which segments become instances, per video of S, in three steps:

1. Classes (`video_classes`): only segments of the classes the video is known to contain from the run's own
   supervision, the classes of its action points (`engine.setup.point_classes`; weak supervision: its video
   labels), never from S's ground truth. A video without action points gets no instance. Videos outside the
   run's training subset have no points and are not filtered.
2. Threshold (`select_segments`): of those, the segments whose score lies at least `threshold` of the
   way from the video's lowest to its top segment score, `(score - low) / (top - low) >= threshold`; the top
   segment is always kept.
3. Overlaps (`suppress_overlaps`): same-class segments that overlap are suppressed greedily, highest score
   first: a segment is kept only if it shares no time (intersection > 0 s) with a kept segment of its class,
   so no two instances of one class overlap (a detector's ground truth cannot hold both). Suppression rather
   than merging, because merging nested proposals (HR-Pro's, LACP's at several thresholds) grows an instance to
   the union of all of them. `suppress=False` (`predict --pseudo-overlaps keep`) skips this step. BENCHMARKS.md, "Pseudo-labels: classes and overlaps", gives the effect of steps 1
   and 3 on precision and recall.

The threshold step alone: The rule is invariant to any increasing affine map of a video's scores, because
segment scores have neither a common scale nor a common offset: SODA's outer-inner contrast + 0.2 s_c lies
around [-1, 1.2] with 0 meaning "no contrast", SF-Net's peak CAS + video score is in logits by default, with
an offset that moves every detection of a video together (a fraction of the top score would keep all of
them). DEFAULT_THRESHOLD = 0.5 keeps the upper half of each video's score range (BENCHMARKS.md,
"Pseudo-labels", compares thresholds on the tiny synthetic set).

The file: every video of the input ground truth, in its order. Videos of S that were predicted get the
kept segments as `annotations` (clipped to [0, duration]; a segment empty after clipping is dropped);
videos of S without a feature file (not predicted) are left out, since no label for them exists; videos of
every other subset keep their own ground-truth instances (the test subset stays for evaluation).
`duration`, `subset` and `fps` (where the input has one) are the input's. Every instance carries
`label_id`, the class's 0-based index in the run's class list (ActionFormer's THUMOS14 reader wants it;
pointtal ignores it) and pseudo instances their `score`. `pseudo_labels` records the run, its step, the subset,
the threshold and the rules applied (`classes`: "points" or "all", `overlaps`: "suppressed" or "kept"). A class left without any instance in the whole file disappears from the classes pointtal
derives from it: train on it with the run's class list (`data.class_list`) then.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence

import numpy as np

from pointtal.data.annotations import GroundTruth

DEFAULT_THRESHOLD = 0.5


def select_segments(segments: Sequence[dict], threshold: float) -> list[dict]:
    """The result entries ({"label", "score", "segment"}) with (score - low) / (top - low) >= threshold,
    low and top the lowest and highest score of the video's segments, in input order. All scores equal (one
    segment, say): all kept. Empty in, empty out."""
    if not segments:
        return []
    scores = [float(s["score"]) for s in segments]
    low, top = min(scores), max(scores)
    cut = low + threshold * (top - low)  # threshold 1: the top segment(s); 0: every segment
    return [s for s, score in zip(segments, scores, strict=True) if score >= cut or score == top]


def suppress_overlaps(segments: Sequence[dict]) -> list[dict]:
    """The entries left when, per class and by descending score (ties: input order), an entry sharing time
    (intersection > 0 s) with a kept entry of its class is dropped; in input order. An entry with start >= end
    is dropped (it is no instance).

    O(N log N) per class: the kept intervals of a class never overlap, so sorted by start their ends are sorted
    too, and a candidate [a, b] overlaps one of them exactly when the last kept interval starting before b ends
    after a."""
    scores = np.array([float(s["score"]) for s in segments])  # (N,)
    bounds = np.array([s["segment"] for s in segments], dtype=np.float64).reshape(-1, 2)  # (N, 2) seconds
    keep = np.zeros(len(segments), dtype=bool)
    kept: dict[str, tuple[list[float], list[float]]] = {}  # class -> (starts, ends) of kept, sorted by start
    for i in np.argsort(-scores, kind="stable"):  # greedy: each decision depends on the kept set
        a, b = bounds[i]
        if not a < b:
            continue
        starts, ends = kept.setdefault(segments[i]["label"], ([], []))
        j = bisect.bisect_left(starts, b)  # kept intervals 0..j-1 start before b
        if j and ends[j - 1] > a:
            continue
        starts.insert(j, a)
        ends.insert(j, b)
        keep[i] = True
    return [s for s, k in zip(segments, keep, strict=True) if k]


def pseudo_ground_truth(
    gt: GroundTruth,
    segments: dict[str, list[dict]],
    subset: str,
    threshold: float,
    provenance: dict,
    video_classes: Mapping[str, set[str]] | None = None,
    suppress: bool = True,
) -> dict:
    """The ground-truth JSON (see module doc) from `gt` and the predicted `segments` of subset `subset`
    (video id -> result entries in seconds). `video_classes` (video id -> class names, from the run's points)
    keeps only those classes in the videos it lists (None: every class); `suppress` drops same-class overlaps."""
    subset = gt.subset_name(subset, "--subset")
    label_id = {name: i for i, name in enumerate(gt.classes)}
    database = {}
    for video_id, video in gt.videos.items():
        if video.subset == subset:
            if video_id not in segments:
                continue  # not predicted (no features): no label to give
            instances = []
            candidates = segments[video_id]
            if video_classes is not None and video_id in video_classes:
                candidates = [s for s in candidates if s["label"] in video_classes[video_id]]
            chosen = select_segments(candidates, threshold)
            for s in suppress_overlaps(chosen) if suppress else chosen:
                start, end = max(0.0, float(s["segment"][0])), min(video.duration_sec, float(s["segment"][1]))
                if start < end:
                    instances.append(
                        {
                            "segment": [start, end],
                            "label": s["label"],
                            "label_id": label_id[s["label"]],
                            "score": float(s["score"]),
                        }
                    )
        else:
            instances = [
                {"segment": [i.start_sec, i.end_sec], "label": i.label, "label_id": label_id[i.label]}
                for i in video.instances
            ]
        entry = {"subset": video.subset, "duration": video.duration_sec}
        if video.fps is not None:
            entry["fps"] = video.fps
        entry["annotations"] = instances
        database[video_id] = entry
    rules = {"classes": "all" if video_classes is None else "points", "overlaps": "suppressed" if suppress else "kept"}
    return {
        "version": "pointtal pseudo-labels",
        "pseudo_labels": {**provenance, "subset": subset, "threshold": threshold, **rules},
        "database": database,
    }
