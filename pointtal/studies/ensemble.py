"""Inference-time ensembles of two trained SODA runs (docs/methods.md §3.5, the "is it just an ensemble?" study).

`ensemble_scores` fuses two models' scores of a batch by one of ENSEMBLE_RULES; the rest of the module runs
it over two trained runs.

Pipeline: score the test videos with each model (`score_videos`, master network, scores on the video's real
snippets) -> fuse each video's scores with `ensemble_scores(rule)` -> localize with the first model's SODA
`localize` -> segments in seconds -> evaluate. Scoring is done once per model; any number of rules is then
fused from the same scores.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from pointtal.engine.evaluate import evaluate_predictions
from pointtal.engine.inference import (
    Predictions,
    VideoScores,
    dataset_items,
    resolve_device,
    score_videos,
)
from pointtal.engine.predictor import LoadedRun, load_trained
from pointtal.engine.setup import RunData, load_run_data
from pointtal.errors import InputError
from pointtal.localization.detections import check_detections
from pointtal.methods.base import Scores
from pointtal.methods.layers import masked_topk_mean, topk_counts

log = logging.getLogger(__name__)

ENSEMBLE_RULES = (
    "score_mean_cas_max",
    "score_mean_cas_mean",
    "score_max_cas_max",
    "score_max_cas_mean",
    "cas_mean_then_scores",
)


def ensemble_scores(
    scores_a: Scores, scores_b: Scores, rule: str, mask: torch.Tensor | None = None, eta: float | None = None
) -> Scores:
    """Fuse two independently trained models' scores (the "is it just an ensemble?" ablation).

    rules: "score_{mean,max}_cas_{max,mean}" combine video scores and CAS element-wise by mean or max;
    "cas_mean_then_scores" averages the CAS, then takes as video score the top-k mean (k = max(1,
    floor(T_valid * eta))) of the averaged softmax CAS [choice: no second softmax, these are already
    probabilities]; eta is the SODA run's `method.eta`, required by that rule. mask (B, T) marks valid snippets
    (default: all).
    """
    if rule not in ENSEMBLE_RULES:
        raise ValueError(f"ensemble rule {rule!r} is not one of {', '.join(ENSEMBLE_RULES)}")
    cas_a, cas_b = scores_a.cas, scores_b.cas  # (B, T, C+1)
    if rule == "cas_mean_then_scores":
        cas = (cas_a + cas_b) / 2
        if mask is None:
            mask = torch.ones(cas.shape[:2], dtype=torch.bool, device=cas.device)
        if eta is None:
            raise ValueError("ensemble rule 'cas_mean_then_scores' needs eta (the SODA run's method.eta)")
        k = topk_counts(mask.sum(1).double() * eta, 1.0, "floor")  # (B,) SODA's rule: max(1, floor(T * eta))
        return Scores(cas=cas, video_scores=masked_topk_mean(cas, mask, k))
    _, score_rule, _, cas_rule = rule.split("_")
    combine = {"mean": lambda a, b: (a + b) / 2, "max": torch.maximum}
    return Scores(
        cas=combine[cas_rule](cas_a, cas_b),
        video_scores=combine[score_rule](scores_a.video_scores, scores_b.video_scores),
    )


@dataclass
class ScoredRun:
    """One trained run and its scores of every test video (same video order for every run of a pair)."""

    run: LoadedRun
    scores: list[VideoScores]


def score_run(loaded: LoadedRun, data: RunData, device: torch.device) -> ScoredRun:
    """Master-network scores of each test video of `data`, on the video's real snippets."""
    c = loaded.config
    loaded.method.to(device)
    scored = list(
        score_videos(
            loaded.method, dataset_items(data.test), batch_size=c.eval.batch_size, device=device, amp=c.train.amp
        )
    )
    return ScoredRun(loaded, scored)


def fuse_predictions(a: ScoredRun, b: ScoredRun, rule: str, data: RunData) -> Predictions:
    """Fuse two runs' per-video scores by `rule` (one of ENSEMBLE_RULES) and localize with run a's method."""
    if rule not in ENSEMBLE_RULES:
        raise InputError(f"ensemble rule {rule!r} is unknown; valid: {', '.join(ENSEMBLE_RULES)}")
    method = a.run.method
    eta = method.options.eta  # load_pair: SODA runs only
    geometries = dict(zip(data.test.video_ids, data.test.geometries, strict=False))
    out = Predictions(data.classes)
    for sa, sb in zip(a.scores, b.scores, strict=True):
        assert sa.video_id == sb.video_id and sa.cas.shape == sb.cas.shape, "runs scored different videos"
        fused = ensemble_scores(_as_scores(sa), _as_scores(sb), rule, eta=eta)
        cas = fused.cas[0].numpy()  # (T, C+1)
        video_scores = fused.video_scores[0].numpy()  # (C+1,)
        found = check_detections(method.localize(cas, None, video_scores), method.n_classes, method.name, sa.video_id)
        out.detections[sa.video_id] = found.in_seconds(geometries[sa.video_id])
        out.video_scores[sa.video_id] = video_scores
    return out


def _as_scores(scored: VideoScores) -> Scores:
    """One video's numpy scores as a batch of one: cas (1, T, C+1), video_scores (1, C+1), dtypes kept
    (the resampled-back CAS is float64, exactly what single-model inference localizes)."""
    return Scores(cas=torch.from_numpy(scored.cas)[None], video_scores=torch.from_numpy(scored.video_scores)[None])


def load_pair(
    run_a: str | Path, run_b: str | Path, device: str | torch.device | None = None
) -> tuple[ScoredRun, ScoredRun, RunData]:
    """Load and score two SODA runs trained on the same data; returns both scored runs and the test data."""
    loaded = [load_trained(path) for path in (run_a, run_b)]
    for path, run in zip((run_a, run_b), loaded, strict=False):
        if run.config.method != "soda":
            raise InputError(f"{path}: ensembles fuse SODA runs; this run is method.name={run.config.method}")
    da, db = loaded[0].config.data, loaded[1].config.data
    if (da.annotations, da.features, da.test_subset) != (db.annotations, db.features, db.test_subset) or loaded[
        0
    ].classes != loaded[1].classes:
        raise InputError(f"{run_a} and {run_b} were trained on different data; ensembles need the same test set")
    target = (
        resolve_device(device) if isinstance(device, str) else (device or resolve_device(loaded[0].config.train.device))
    )
    data = load_run_data(loaded[0].config, train=False)
    return score_run(loaded[0], data, target), score_run(loaded[1], data, target), data


def evaluate_fusions(
    a: ScoredRun, b: ScoredRun, data: RunData, rules: Sequence[str]
) -> dict[str, tuple[Predictions, dict]]:
    """rule -> (fused predictions, metrics record) for each rule; record["step"] is run a's step."""
    out = {}
    for rule in rules:
        predictions = fuse_predictions(a, b, rule, data)
        record = {
            "step": a.run.step,
            **evaluate_predictions(data.gt, data.test.video_ids, predictions, a.run.config.eval.tiou),
        }
        out[rule] = (predictions, record)
    return out
