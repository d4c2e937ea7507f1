"""Figures: PNGs of the promised size whose drawn data (bars, spans, markers, curves, read back from the
figure's artists) are the inputs and segment_map's numbers; PR curves agreeing with segment_map; --plots."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from matplotlib.image import imread

from pointtal.cli import main
from pointtal.evaluation import SegmentTable, interpolated_ap, segment_map, segment_pr_curves
from pointtal.viz import MAX_CAS_CLASSES, _cas_classes, plot_class_ap, plot_pr_curves, plot_timeline

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLASSES = ("Jump", "Lift", "Swing", "Throw")
TIOUS = (0.1, 0.3, 0.5, 0.7)


def assert_png(path, width: int, height: int) -> None:
    """Exists, is a PNG of width x height pixels, and is not a single flat colour."""
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = imread(path)
    assert pixels.shape[:2] == (height, width)
    assert float(pixels[..., :3].std()) > 0.05  # far from blank: text, lines and colour fills


def spans(ax) -> list[tuple[float, float]]:
    """(start, end) x extents of every bar an axes' broken_barh collections draw, in drawing order."""
    return [
        (float(p.vertices[:, 0].min()), float(p.vertices[:, 0].max()))
        for c in ax.collections
        for p in c.get_paths()
        if len(p.vertices) == 5
    ]


def random_case(seed: int, n_videos: int = 6, n_pred: int = 120):
    """Ground truth and jittered predictions (some wrong labels, coarse scores: ties) as SegmentTables."""
    rng = np.random.default_rng(seed)
    gt = {}
    for v in range(n_videos):
        starts = np.sort(rng.uniform(0, 90, rng.integers(1, 6)))
        gt[f"v{v}"] = [(float(s), float(s + rng.uniform(1, 10)), CLASSES[rng.integers(3)]) for s in starts]
    rows = [(vid, s, e, c) for vid, items in gt.items() for s, e, c in items]
    pred = {}
    for k in rng.integers(0, len(rows), n_pred):
        vid, s, e, c = rows[k]
        if rng.random() < 0.2:
            c = CLASSES[rng.integers(len(CLASSES))]
        a, b = s + rng.normal(0, 2), e + rng.normal(0, 2)
        pred.setdefault(vid, []).append((a, max(b, a + 0.5), c, round(float(rng.random()), 1)))
    return SegmentTable.from_mapping(gt, CLASSES), SegmentTable.from_mapping(pred, CLASSES)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pr_curves_give_segment_map_ap(seed):
    gt, pred = random_case(seed)
    result = segment_map(gt, pred, TIOUS)
    curves = segment_pr_curves(gt, pred, TIOUS)
    assert curves.classes == result.classes
    np.testing.assert_allclose(curves.ap(), result.ap, rtol=0, atol=1e-12)
    for t in range(len(TIOUS)):  # the plotted class-mean curve has the mAP as its area
        recall, precision = curves.mean_envelope(t)
        assert float(np.sum(np.diff(recall) * precision[1:])) == pytest.approx(result.map[t], abs=1e-12)
    for c, scores in enumerate(curves.scores):
        assert np.all(np.diff(scores) <= 0)
        assert curves.precision[c].shape == curves.recall[c].shape == (len(TIOUS), scores.size)


def test_pr_curves_by_hand():
    gt = SegmentTable.from_mapping({"v": [(0, 10, "a"), (20, 30, "a")]}, ["a", "b"])
    pred = SegmentTable.from_mapping({"v": [(0, 10, "a", 0.9), (40, 50, "a", 0.8), (21, 30, "a", 0.7)]}, ["a", "b"])
    curves = segment_pr_curves(gt, pred, (0.5, 0.95))
    assert curves.classes == ("a",)  # "b" has no ground truth: not evaluated
    np.testing.assert_allclose(curves.precision[0], [[1, 1 / 2, 2 / 3], [1, 1 / 2, 1 / 3]])
    np.testing.assert_allclose(curves.recall[0], [[1 / 2, 1 / 2, 1], [1 / 2, 1 / 2, 1 / 2]])
    # VOC: 0.5 * 1 + 0.5 * 2/3 at tIoU 0.5; only the first half of recall at 0.95
    np.testing.assert_allclose(curves.ap()[:, 0], [0.5 + 1 / 3, 0.5])
    assert interpolated_ap(np.zeros(0), np.zeros(0)) == 0.0


def timeline_inputs(rng, n_snippets: int = 150, snippet_sec: float = 0.64):
    t = (np.arange(n_snippets) + 0.5) * snippet_sec
    cas = rng.uniform(0, 0.1, (n_snippets, len(CLASSES) + 1))  # (T, C+1)
    ground_truth = [(10.0, 18.0, "Jump"), (15.0, 22.0, "Throw"), (50.0, 60.0, "Jump")]  # two overlap
    for start, end, name in ground_truth:
        cas[(t >= start) & (t <= end), CLASSES.index(name) + 1] = 0.9
    return {
        "video_id": "video_test_0001",
        "duration_sec": n_snippets * snippet_sec,
        "classes": CLASSES,
        "ground_truth": ground_truth,
        "points": [(13.0, "Jump"), (19.5, "Throw"), (55.1, "Jump"), (35.0, "background"), (80.0, "background")],
        "cas": cas,
        "actionness": cas[:, 1:].max(axis=1),
        "segments": [
            (9.0, 19.0, "Jump", 0.91),
            (48.0, 62.0, "Jump", 0.74),
            (16.0, 21.0, "Throw", 0.55),
            (70.0, 75.0, "Lift", 0.12),
            (49.0, 58.0, "Jump", 0.30),
        ],
        "snippet_sec": snippet_sec,
    }


def test_timeline_png(tmp_path, drawn):
    target = tmp_path / "deep" / "dir" / "timeline.png"
    inputs = timeline_inputs(np.random.default_rng(0))
    path = plot_timeline(target, **inputs)
    assert path == target
    assert_png(path, 1300, 700)
    assert "matplotlib.pyplot" not in sys.modules or not sys.modules["matplotlib.pyplot"].get_fignums()
    ax_gt, ax_points, ax_cas, ax_pred, ax_act = drawn[0].axes  # actionness on its own twin axis
    # ground truth: one span per instance, exactly where it is
    assert spans(ax_gt) == [(s, e) for s, e, _ in inputs["ground_truth"]]
    # points: background circles then action triangles, at the clicked times
    times = [list(c.get_offsets()[:, 0]) for c in ax_points.collections]
    assert times == [[35.0, 80.0], [13.0, 19.5, 55.1]]
    # CAS: a step curve per class of the video, the highest peak drawn last, then the dashed actionness
    centers = (np.arange(inputs["cas"].shape[0]) + 0.5) * inputs["snippet_sec"]
    lines = ax_cas.get_lines()
    for line in [*lines, *ax_act.get_lines()]:
        np.testing.assert_array_equal(line.get_xdata(), centers)
    drawn_columns = sorted(
        next(c for c in range(1, 5) if np.array_equal(line.get_ydata(), inputs["cas"][:, c])) for line in lines
    )
    assert drawn_columns == [1, 2, 4]  # Jump, Lift, Throw: the classes of the ground truth and predictions
    (act_line,) = ax_act.get_lines()
    np.testing.assert_array_equal(act_line.get_ydata(), inputs["actionness"])
    assert act_line.get_linestyle() == "--" and ax_act.get_ylim() == (0.0, 1.0)
    # predictions: every segment drawn once; the one overlapping a better Jump first (faint), then the
    # non-overlapping ones lowest score first (the best on top)
    assert spans(ax_pred) == [(49.0, 58.0), (70.0, 75.0), (16.0, 21.0), (48.0, 62.0), (9.0, 19.0)]


def test_timeline_without_predictions_points_or_actionness(tmp_path, drawn):
    inputs = timeline_inputs(np.random.default_rng(1))
    inputs.update(points=[], segments=[], actionness=None, ground_truth=[])
    assert_png(plot_timeline(tmp_path / "empty.png", **inputs), 1300, 700)
    axes = drawn[0].axes
    assert len(axes) == 4  # no actionness axis
    ax_gt, ax_points, ax_cas, ax_pred = axes
    assert spans(ax_gt) == spans(ax_pred) == [] and not ax_points.collections
    assert ax_cas.get_lines() == []  # no class of the video to draw a CAS curve for


def test_timeline_rejects_bad_shapes(tmp_path):
    inputs = timeline_inputs(np.random.default_rng(2))
    with pytest.raises(ValueError, match="want \\(T, C\\+1\\)"):
        plot_timeline(tmp_path / "x.png", **{**inputs, "cas": inputs["cas"][:, 1:]})
    with pytest.raises(ValueError, match="unknown classes Run"):
        plot_timeline(tmp_path / "x.png", **{**inputs, "segments": [(1.0, 2.0, "Run", 0.5)]})
    assert not (tmp_path / "x.png").exists()


def test_cas_curves_only_for_classes_of_the_video():
    classes = tuple(f"c{i}" for i in range(8))
    cas = np.zeros((10, 9))
    cas[:, 1:] = np.arange(1, 9) / 10  # peaks grow with the class index; c7 highest
    ground_truth = [(0.0, 1.0, f"c{i}") for i in (0, 1, 2, 3)]
    segments = [(0.0, 1.0, f"c{i}", 0.5) for i in (4, 5)]
    chosen = _cas_classes(classes, cas, ground_truth, segments)
    assert chosen == ["c5", "c4", "c3", "c2", "c1"]  # c6, c7 absent from the video; c0 lowest peak
    assert len(chosen) == MAX_CAS_CLASSES


def test_pr_and_class_ap_png(tmp_path, drawn):
    gt, pred = random_case(3)
    result = segment_map(gt, pred, TIOUS)
    curves = segment_pr_curves(gt, pred, TIOUS)
    assert_png(plot_pr_curves(tmp_path / "pr.png", curves, None), 760, 560)
    assert_png(plot_pr_curves(tmp_path / "pr_05.png", curves, [0.5]), 760, 560)
    # each drawn PR line encloses segment_map's mAP at its threshold, and its legend says so
    for fig, wanted in zip(drawn, [list(range(len(TIOUS))), [TIOUS.index(0.5)]], strict=True):
        ax = fig.axes[0]
        lines = ax.get_lines()
        assert len(lines) == len(wanted)
        for line, label, t in zip(lines, ax.get_legend().get_texts(), wanted, strict=True):
            recall, precision = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
            assert float(np.sum(np.diff(recall) * precision[1:])) == pytest.approx(result.map[t], abs=1e-12)
            assert label.get_text() == f"tIoU {TIOUS[t]:g}: mAP {100 * result.map[t]:.1f}%"
    with pytest.raises(ValueError, match="tIoU 0.9 has no curve"):
        plot_pr_curves(tmp_path / "pr_09.png", curves, [0.9])
    n = len(result.classes)
    assert_png(plot_class_ap(tmp_path / "ap.png", result.classes, result.ap, TIOUS), 760, 140 + 26 * n)
    # bars: each class's AP averaged over the thresholds (a plain loop), best class on top; dashed line: mAP
    ax = drawn[2].axes[0]
    mean_ap = {
        name: 100 * sum(result.ap[t][c] for t in range(len(TIOUS))) / len(TIOUS)
        for c, name in enumerate(result.classes)
    }
    bars = sorted((p.get_y(), p.get_width()) for p in ax.patches)  # bottom to top
    labels = [tick.get_text() for tick in ax.get_yticklabels()]
    assert [w for _, w in bars] == pytest.approx([mean_ap[name] for name in labels])
    assert [w for _, w in bars] == sorted(w for _, w in bars)
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_xdata()[0] == pytest.approx(100 * result.average)
    assert_png(plot_class_ap(tmp_path / "ap1.png", ["a"], np.array([0.4]), [0.5]), 760, 166)
    assert [p.get_width() for p in drawn[3].axes[0].patches] == pytest.approx([40.0])  # by hand
    with pytest.raises(ValueError, match="want \\(T, C\\)"):
        plot_class_ap(tmp_path / "bad.png", result.classes, result.ap.T, TIOUS)


def _write_case(tmp_path, gt: SegmentTable, pred: SegmentTable):
    database = {v: {"subset": "test", "duration": 120.0, "annotations": []} for v in gt.video_ids}
    for i in range(len(gt)):
        database[gt.video_ids[gt.video[i]]]["annotations"].append(
            {"segment": [gt.start_sec[i], gt.end_sec[i]], "label": gt.classes[gt.label[i]]}
        )
    results: dict = {}
    for i in range(len(pred)):
        results.setdefault(pred.video_ids[pred.video[i]], []).append(
            {
                "segment": [pred.start_sec[i], pred.end_sec[i]],
                "label": pred.classes[pred.label[i]],
                "score": pred.score[i],
            }
        )
    gt_path, pred_path, class_path = tmp_path / "gt.json", tmp_path / "pred.json", tmp_path / "classes.txt"
    gt_path.write_text(json.dumps({"database": database}))
    pred_path.write_text(json.dumps({"results": results}))
    class_path.write_text("\n".join(gt.classes) + "\n")
    return gt_path, pred_path, class_path


def test_cli_evaluate_plots(tmp_path, capsys):
    gt_path, pred_path, class_path = _write_case(tmp_path, *random_case(4))
    out = tmp_path / "plots"
    assert (
        main(
            [
                "evaluate",
                str(gt_path),
                str(pred_path),
                "--class-list",
                str(class_path),
                "--tiou",
                "0.3,0.5,0.7",
                "--plots",
                str(out),
            ]
        )
        == 0
    )
    assert "pr_curves.png" in capsys.readouterr().out
    assert_png(out / "pr_curves.png", 760, 560)
    assert (out / "class_ap.png").read_bytes()[:8] == PNG_SIGNATURE
    assert main(["evaluate", str(gt_path), str(pred_path), "--frames", "--plots", str(out)]) == 2
    assert "--plots applies to segment predictions" in capsys.readouterr().err
