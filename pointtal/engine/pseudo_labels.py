"""Pseudo-labels: a run's predicted segments written as ActivityNet-layout ground truth (docs/formats.md).

`pointtal predict RUN --pseudo-labels OUT.json --subset S` turns the segments predicted for the videos of
subset S into that subset's ground truth, so that a fully supervised detector (ActionFormer, OpenTAD) or
pointtal's `full` scheme (`data.annotations=OUT.json`, `data.points=full`) can train on them.

Which segments become instances (`select_segments`): those whose score lies at least `threshold` of the
way from the video's lowest to its top segment score, `(score - low) / (top - low) >= threshold`; the top
segment is always kept. The rule is invariant to any increasing affine map of a video's scores, because
segment scores have neither a common scale nor a common offset: SODA's outer-inner contrast + 0.2 s_c lies
around [-1, 1.2] with 0 meaning "no contrast", SF-Net's peak CAS + video score is in logits by default, with
an offset that moves every detection of a video together (a fraction of the top score would keep all of
them). The segments are the method's own detections, after its own NMS, so no second suppression is
applied. DEFAULT_THRESHOLD = 0.5 keeps the upper half of each video's score range (BENCHMARKS.md,
"Pseudo-labels", compares thresholds on the tiny synthetic set).

The file: every video of the input ground truth, in its order. Videos of S that were predicted get the
kept segments as `annotations` (clipped to [0, duration]; a segment empty after clipping is dropped);
videos of S without a feature file (not predicted) are left out, since no label for them exists; videos of
every other subset keep their own ground-truth instances (the test subset stays for evaluation).
`duration`, `subset` and `fps` (where the input has one) are the input's. Every instance carries
`label_id`, the class's 0-based index in the run's class list (ActionFormer's THUMOS14 reader wants it;
pointtal ignores it) and pseudo instances their `score`. `pseudo_labels` records the run, its step, the subset
and the threshold. A class left without any instance in the whole file disappears from the classes pointtal
derives from it: train on it with the run's class list (`data.class_list`) then.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def pseudo_ground_truth(gt: GroundTruth, segments: dict[str, list[dict]], subset: str, threshold: float,
                        provenance: dict) -> dict:
    """The ground-truth JSON (see module doc) from `gt` and the predicted `segments` of subset `subset`
    (video id -> result entries in seconds)."""
    label_id = {name: i for i, name in enumerate(gt.classes)}
    database = {}
    for video_id, video in gt.videos.items():
        if video.subset == subset:
            if video_id not in segments:
                continue  # not predicted (no features): no label to give
            instances = []
            for s in select_segments(segments[video_id], threshold):
                start, end = max(0.0, float(s["segment"][0])), min(video.duration_sec, float(s["segment"][1]))
                if start < end:
                    instances.append({"segment": [start, end], "label": s["label"],
                                      "label_id": label_id[s["label"]], "score": float(s["score"])})
        else:
            instances = [{"segment": [i.start_sec, i.end_sec], "label": i.label, "label_id": label_id[i.label]}
                         for i in video.instances]
        entry = {"subset": video.subset, "duration": video.duration_sec}
        if video.fps is not None:
            entry["fps"] = video.fps
        entry["annotations"] = instances
        database[video_id] = entry
    return {"version": "pointtal pseudo-labels", "pseudo_labels": {**provenance, "subset": subset,
                                                                   "threshold": threshold},
            "database": database}
