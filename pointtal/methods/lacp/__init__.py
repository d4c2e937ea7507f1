"""LACP (Lee & Byun, ICCV 2021), split along the official code: network.py (model.py), search.py (the seeds of
utils.select_seed and the optimal sequence search), losses.py (train.py's losses), method.py (Options and the
`LACP` method the engine drives). Every public name is re-exported here."""

from pointtal.methods.lacp.losses import (
    Runs,
    bce,
    feature_loss,
    focal_point_loss,
    pseudo_runs,
    sample_snippets,
    score_loss,
    video_loss,
)
from pointtal.methods.lacp.method import LACP, Options, padded
from pointtal.methods.lacp.network import LACPNet, LACPOutput, fuse, video_scores
from pointtal.methods.lacp.search import (
    Cores,
    Spans,
    beam_search_sequences,
    boundary_labels,
    oic,
    optimal_sequences,
    search_sequences,
    select_seeds,
    sequence_cores,
)

__all__ = [
    "LACP",
    "Cores",
    "LACPNet",
    "LACPOutput",
    "Options",
    "Runs",
    "Spans",
    "bce",
    "beam_search_sequences",
    "boundary_labels",
    "feature_loss",
    "focal_point_loss",
    "fuse",
    "oic",
    "optimal_sequences",
    "padded",
    "pseudo_runs",
    "sample_snippets",
    "score_loss",
    "search_sequences",
    "select_seeds",
    "sequence_cores",
    "video_loss",
    "video_scores",
]
