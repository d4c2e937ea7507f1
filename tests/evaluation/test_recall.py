"""AR@AN (ActivityNet proposal protocol): the vectorised `average_recall` against a per-video loop
transcription of the official `eval_proposal.py`, and a case computed by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from pointtal.data.annotations import load_ground_truth
from pointtal.evaluation import ANET_TIOUS, THUMOS_TIOUS, SegmentTable, average_recall

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_eval import reference_average_recall  # noqa: E402

GT_PATH = Path(__file__).resolve().parents[2] / "pointtal" / "data" / "vendor" / "thumos14" / "groundtruth.json"


@pytest.fixture(scope="module")
def thumos_rows():
    gt = load_ground_truth(GT_PATH)
    rows = [(v.video_id, i.start_sec, i.end_sec, i.label) for v in gt.subset("test") for i in v.instances]
    return gt.classes, rows


def _random_proposals(rng, gt_rows, n, n_videos):
    """Jittered ground truth of the first `n_videos` videos (uneven counts per video), 5% on a video without
    ground truth, coarse scores (ties) and coarse boundaries (tIoU exactly at thresholds)."""
    videos = list(dict.fromkeys(r[0] for r in gt_rows))[:n_videos]
    pool = [r for r in gt_rows if r[0] in set(videos)]
    rows = []
    for k in rng.integers(0, len(pool), n):
        video, start, end, label = pool[k]
        if rng.random() < 0.05:
            video = "video_without_gt"
        length = end - start
        a = round(start + rng.normal(0, 0.5) * length, 1)
        b = max(round(end + rng.normal(0, 0.5) * length, 1), a + 0.1)
        rows.append((video, a, b, label, round(float(rng.random()), 2)))
    return videos, rows


def _tables(gt_rows, proposal_rows, classes):
    gt = SegmentTable.from_columns(*zip(*gt_rows, strict=True), None, classes)
    proposals = SegmentTable.from_columns(*zip(*proposal_rows, strict=True), classes=classes)
    return gt, proposals


@pytest.mark.parametrize(
    ("seed", "n", "n_videos", "tious", "max_avg"),
    [
        (0, 3000, 40, ANET_TIOUS, 100),
        (1, 800, 60, ANET_TIOUS, 100),  # fewer proposals than 100 per video: every video keeps them all
        (2, 5000, 25, THUMOS_TIOUS, 100),
        (3, 2000, 30, ANET_TIOUS, 50),
        (4, 4000, 212, (0.5, 0.3, 0.7), 100),  # unsorted thresholds
    ],
)
def test_average_recall_equals_official_transcription(thumos_rows, seed, n, n_videos, tious, max_avg):
    classes, all_gt = thumos_rows
    videos, proposals = _random_proposals(np.random.default_rng(seed), all_gt, n, n_videos)
    gt_rows = [r for r in all_gt if r[0] in set(videos)]
    gt, table = _tables(gt_rows, proposals, classes)
    result = average_recall(gt, table, tious, max_avg)
    recall, avg, per_video, auc = reference_average_recall(gt_rows, proposals, tious, max_avg)
    assert 0 < avg[-1] < 1  # a case where recall moves
    np.testing.assert_allclose(result.recall, recall, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.average_recall, avg, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.proposals_per_video, per_video, rtol=0, atol=1e-12)
    assert abs(100 * result.auc - auc) <= 1e-12
    assert result.at(max_avg) == result.average_recall[-1]


def test_average_recall_by_hand():
    """Two videos, M = 2 (budgets AN = 0.02, 0.04, ..., 2.0), thresholds 0.5 and 0.8.

    v1: ground truth [0, 10] and [20, 30]; proposals by score: [0, 9] (tIoU 0.9 with the first),
        [20, 25] (tIoU 0.5 with the second), [40, 50] (nothing). v2: ground truth [0, 4]; proposal [0, 2]
        (tIoU 0.5). N = 4 proposals, V = 2: each video keeps floor(n_v * 2 * 2 / 4) = n_v, K = 4.
    Budget j looks at floor(n_v * (j + 1) / 100) proposals: v1 sees 1 proposal from j = 33 (3 * 34 / 100
    >= 1), 2 from j = 66, 3 at j = 99; v2 sees 1 at j = 99 only.
    At 0.5: 1 of 3 instances from j = 33, 2 from j = 66, 3 at j = 99. At 0.8: 1 of 3 from j = 33 on.
    """
    classes = ("a",)
    gt_rows = [("v1", 0.0, 10.0, "a"), ("v1", 20.0, 30.0, "a"), ("v2", 0.0, 4.0, "a")]
    proposals = [
        ("v1", 40.0, 50.0, "a", 0.1),
        ("v1", 0.0, 9.0, "a", 0.9),
        ("v1", 20.0, 25.0, "a", 0.5),
        ("v2", 0.0, 2.0, "a", 0.7),
    ]
    gt, table = _tables(gt_rows, proposals, classes)
    result = average_recall(gt, table, (0.5, 0.8), max_avg_proposals=2)
    j = np.arange(100)
    at_half = np.where(j >= 33, 1, 0) + np.where(j >= 66, 1, 0) + np.where(j == 99, 1, 0)
    at_08 = np.where(j >= 33, 1, 0)
    np.testing.assert_array_equal(result.recall, np.stack([at_half, at_08]) / 3)
    np.testing.assert_allclose(result.proposals_per_video, (j + 1) / 50, rtol=1e-15)
    assert result.at(2) == pytest.approx(2 / 3)  # (3/3 + 1/3) / 2
    assert result.at(1) == pytest.approx(1 / 3)  # j = 49: (1/3 + 1/3) / 2
    assert result.counts["kept_proposals"] == 4


def test_average_recall_truncates_each_video_in_proportion():
    """M = 1 with 4 proposals on 2 videos: v1 keeps floor(3 * 1 * 2 / 4) = 1 proposal (its best), v2
    keeps floor(1 * 0.5) = 0: the second-best proposal of v1, a perfect match, never counts."""
    classes = ("a",)
    gt_rows = [("v1", 0.0, 10.0, "a"), ("v1", 20.0, 30.0, "a"), ("v2", 0.0, 4.0, "a")]
    proposals = [
        ("v1", 0.0, 10.0, "a", 0.9),
        ("v1", 20.0, 30.0, "a", 0.8),
        ("v1", 50.0, 60.0, "a", 0.1),
        ("v2", 0.0, 4.0, "a", 0.7),
    ]
    gt, table = _tables(gt_rows, proposals, classes)
    result = average_recall(gt, table, (0.5,), max_avg_proposals=1)
    assert result.counts["kept_proposals"] == 1
    assert result.average_recall[-1] == pytest.approx(1 / 3)
    assert result.average_recall[:49].max() == 0  # budget floor(1 * (j + 1) / 100 * 2) >= 1 needs j >= 49
    assert result.average_recall[49] == pytest.approx(1 / 3)


def test_score_ties_keep_input_order():
    """Two proposals with the same score on a video that keeps one: the first listed is the one kept."""
    classes = ("a",)
    gt_rows = [("v1", 0.0, 10.0, "a"), ("v2", 0.0, 10.0, "a")]
    first_good = [("v1", 0.0, 10.0, "a", 0.5), ("v1", 50.0, 60.0, "a", 0.5), ("v2", 90.0, 95.0, "a", 0.5)]
    first_bad = [first_good[1], first_good[0], first_good[2]]
    for rows, expect in ((first_good, 0.5), (first_bad, 0.0)):
        gt, table = _tables(gt_rows, rows, classes)
        result = average_recall(gt, table, (0.5,), max_avg_proposals=1)  # v1 keeps floor(2 * 2 / 3) = 1
        assert result.average_recall[-1] == expect
