"""Slow, obviously-correct reference evaluators: a line-by-line transcription of ActivityNet's official
`eval_detection.py` (`compute_average_precision_detection`, `interpolated_prec_rec`, `segment_iou`) with
pandas replaced by plain lists/dicts, and the single-frame variant of docs/evaluation.md.

Two deliberate deviations, both required by docs/evaluation.md to make results deterministic:
* predictions are sorted with a *stable* sort on descending score (ties keep input order), where the
  official `argsort()[::-1]` leaves ties arbitrary;
* ground truths are visited with `argsort(kind="stable")[::-1]` (ties: later annotation first), which is
  what the official `argsort()[::-1]` gives with numpy's classic (insertion-sort for small arrays) sort.

Used by tests/evaluation/test_evaluation.py and bench/eval_speed.py. Rows are plain tuples:
ground truth `(video_id, start, end, label)`, predictions `(video_id, start, end, label, score)`,
points `(video_id, time, label, score)`.
"""

from __future__ import annotations

import numpy as np


def interpolated_prec_rec(prec, rec):
    """Interpolated AP - VOCdevkit from VOC 2011."""
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    for i in range(len(mprec) - 1)[::-1]:
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
    ap = np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx])
    return ap


def segment_iou(target_segment, candidate_segments):
    tt1 = np.maximum(target_segment[0], candidate_segments[:, 0])
    tt2 = np.minimum(target_segment[1], candidate_segments[:, 1])
    segments_intersection = (tt2 - tt1).clip(0)
    segments_union = (
        (candidate_segments[:, 1] - candidate_segments[:, 0])
        + (target_segment[1] - target_segment[0])
        - segments_intersection
    )
    return segments_intersection.astype(float) / segments_union


def point_distance(time, candidate_segments):
    """Normalised distance of a point to each instance; 2 outside."""
    start, end = candidate_segments[:, 0], candidate_segments[:, 1]
    mid = (start + end) / 2
    inside = (start <= time) & (time <= end)
    return np.where(inside, np.abs(time - mid) / (end - start) * 2, 2.0)


def compute_average_precision_detection(ground_truth, prediction, tiou_thresholds, frames=False):
    """AP per threshold of one class. ground_truth: [(video, start, end)], prediction: [(video, start,
    end, score)] or, with frames=True, [(video, time, score)] and thresholds on the distance."""
    npos = float(len(ground_truth))
    lock_gt = np.ones((len(tiou_thresholds), len(ground_truth))) * -1
    scores = np.array([p[-1] for p in prediction], dtype=float)
    sort_idx = np.argsort(-scores, kind="stable")  # deviation: stable
    prediction = [prediction[i] for i in sort_idx]

    tp = np.zeros((len(tiou_thresholds), len(prediction)))
    fp = np.zeros((len(tiou_thresholds), len(prediction)))

    ground_truth_gbvn = {}  # video -> original row indices, in order (pandas groupby keeps row order)
    for row, gt in enumerate(ground_truth):
        ground_truth_gbvn.setdefault(gt[0], []).append(row)

    for idx, this_pred in enumerate(prediction):
        if this_pred[0] not in ground_truth_gbvn:
            fp[:, idx] = 1
            continue
        this_gt_index = ground_truth_gbvn[this_pred[0]]
        this_gt = np.array([[ground_truth[r][1], ground_truth[r][2]] for r in this_gt_index], dtype=float)
        if frames:
            tiou_arr = -point_distance(float(this_pred[1]), this_gt)  # higher is better
        else:
            tiou_arr = segment_iou(np.array([this_pred[1], this_pred[2]], dtype=float), this_gt)
        tiou_sorted_idx = tiou_arr.argsort(kind="stable")[::-1]  # deviation: stable
        for tidx, tiou_thr in enumerate(tiou_thresholds):
            thr = -tiou_thr if frames else tiou_thr
            for jdx in tiou_sorted_idx:
                if tiou_arr[jdx] < thr:
                    fp[tidx, idx] = 1
                    break
                if lock_gt[tidx, this_gt_index[jdx]] >= 0:
                    continue
                tp[tidx, idx] = 1
                lock_gt[tidx, this_gt_index[jdx]] = idx
                break
            if fp[tidx, idx] == 0 and tp[tidx, idx] == 0:
                fp[tidx, idx] = 1

    tp_cumsum = np.cumsum(tp, axis=1).astype(float)
    fp_cumsum = np.cumsum(fp, axis=1).astype(float)
    recall_cumsum = tp_cumsum / npos
    precision_cumsum = tp_cumsum / (tp_cumsum + fp_cumsum)

    ap = np.zeros(len(tiou_thresholds))
    for tidx in range(len(tiou_thresholds)):
        ap[tidx] = interpolated_prec_rec(precision_cumsum[tidx, :], recall_cumsum[tidx, :])
    return ap


def reference_map(gt_rows, pred_rows, thresholds, frames=False):
    """Per-class AP over the classes present in the ground truth, like the official wrapper.

    Returns (classes in first-appearance order, ap (T, C)). A class without predictions has AP 0;
    predictions of classes without ground truth are ignored.
    """
    classes = list(dict.fromkeys(row[3] for row in gt_rows))
    ap = np.zeros((len(thresholds), len(classes)))
    label_at = 2 if frames else 3
    for c, name in enumerate(classes):
        gt = [(r[0], r[1], r[2]) for r in gt_rows if r[3] == name]
        if frames:
            pred = [(p[0], p[1], p[3]) for p in pred_rows if p[label_at] == name]
        else:
            pred = [(p[0], p[1], p[2], p[4]) for p in pred_rows if p[label_at] == name]
        if pred:
            ap[:, c] = compute_average_precision_detection(gt, pred, thresholds, frames=frames)
    return classes, ap


def reference_average_recall(gt_rows, proposal_rows, tiou_thresholds, max_avg_nr_proposals=100):
    """Transcription of the official `eval_proposal.average_recall_vs_avg_nr_proposals`, loops over
    videos, pandas replaced by dicts. Rows: ground truth `(video_id, start, end, ...)`, proposals
    `(video_id, start, end, ..., score)` (labels ignored). Deviation as above: proposals of a video are
    sorted with a stable sort on descending score (ties keep input order).

    Returns (recall (T, 100), average recall (100,), proposals per video (100,), AUC as the official
    code prints it, in percent).
    """
    tiou_thresholds = np.asarray(tiou_thresholds, dtype=float)
    video_lst = list(dict.fromkeys(row[0] for row in gt_rows))
    ratio = max_avg_nr_proposals * float(len(video_lst)) / len(proposal_rows)
    ground_truth_gbvn, proposals_gbvn = {}, {}
    for row in gt_rows:
        ground_truth_gbvn.setdefault(row[0], []).append((row[1], row[2]))
    for row in proposal_rows:
        proposals_gbvn.setdefault(row[0], []).append((row[1], row[2], row[-1]))

    score_lst = []
    total_nr_proposals = 0
    for videoid in video_lst:
        this_video_ground_truth = np.array(ground_truth_gbvn[videoid], dtype=float)
        if videoid not in proposals_gbvn:
            score_lst.append(np.zeros((this_video_ground_truth.shape[0], 1)))
            continue
        rows = proposals_gbvn[videoid]
        scores = np.array([r[2] for r in rows], dtype=float)
        sort_idx = np.argsort(-scores, kind="stable")  # deviation: stable
        this_video_proposals = np.array([(r[0], r[1]) for r in rows], dtype=float)[sort_idx, :]
        nr_proposals = np.minimum(int(this_video_proposals.shape[0] * ratio), this_video_proposals.shape[0])
        total_nr_proposals += nr_proposals
        this_video_proposals = this_video_proposals[:nr_proposals, :]
        tiou = np.empty((this_video_ground_truth.shape[0], this_video_proposals.shape[0]))
        for i in range(this_video_proposals.shape[0]):  # wrapper_segment_iou
            tiou[:, i] = segment_iou(this_video_proposals[i, :], this_video_ground_truth)
        score_lst.append(tiou)

    pcn_lst = np.arange(1, 101) / 100.0 * (max_avg_nr_proposals * float(len(video_lst)) / total_nr_proposals)
    matches = np.empty((len(video_lst), pcn_lst.shape[0]))
    positives = np.empty(len(video_lst))
    recall = np.empty((tiou_thresholds.shape[0], pcn_lst.shape[0]))
    for ridx, tiou in enumerate(tiou_thresholds):
        for i, score in enumerate(score_lst):
            positives[i] = score.shape[0]
            true_positives_tiou = score >= tiou
            pcn_proposals = np.minimum((score.shape[1] * pcn_lst).astype(int), score.shape[1])
            for j, nr_proposals in enumerate(pcn_proposals):
                matches[i, j] = np.count_nonzero((true_positives_tiou[:, :nr_proposals]).sum(axis=1))
        recall[ridx, :] = matches.sum(axis=0) / positives.sum()
    avg_recall = recall.mean(axis=0)
    proposals_per_video = pcn_lst * (float(total_nr_proposals) / len(video_lst))
    area = np.trapezoid(avg_recall, proposals_per_video)
    return recall, avg_recall, proposals_per_video, 100.0 * float(area) / proposals_per_video[-1]


def reference_average_from_files(annotations, predictions, thresholds, subset="test"):
    """Average mAP (percent) of a predictions.json against an ActivityNet-layout ground truth's `subset`,
    computed by `reference_map` alone: the figure a run's metrics.jsonl should report for those predictions."""
    import json

    database = json.loads(open(annotations, encoding="utf-8").read())["database"]
    gt_rows = [
        (vid, a["segment"][0], a["segment"][1], a["label"])
        for vid, entry in database.items()
        if entry["subset"] == subset
        for a in entry["annotations"]
    ]
    results = json.loads(open(predictions, encoding="utf-8").read())["results"]
    pred_rows = [
        (vid, p["segment"][0], p["segment"][1], p["label"], p["score"])
        for vid, entries in results.items()
        for p in entries
    ]
    _, ap = reference_map(gt_rows, pred_rows, list(thresholds))
    return 100.0 * float(ap.mean())
