"""Figures: one video's timeline (ground truth, clicks, CAS, actionness, predictions), precision-recall
curves and per-class AP of segment detection, a study's metrics against the value it varies (`pointtal
ablate`), written in the format of the file's suffix (FIGURE_FORMATS).

A class has one colour in every figure: `class_color(index, n_classes)`.

Figures are `matplotlib.figure.Figure` objects rendered by the Agg canvas: nothing goes through pyplot,
so no figure stays registered and no global backend is switched. Sizes are fixed in pixels (`DPI` dots
per inch) so that a figure's pixel size depends only on its inputs' counts, never on text extents.
Times are seconds; APs are fractions in [0, 1] (drawn as percent).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from pointtal.data.annotations import BACKGROUND
from pointtal.evaluation.curves import PrecisionRecallCurves

DPI = 100
TIMELINE_PX = (1300, 700)
PR_CURVES_PX = (760, 560)
CLASS_AP_WIDTH_PX = 760
STUDY_PX = (640, 420)
MAX_CAS_CLASSES = 5  # CAS curves drawn: classes of the video's GT or predictions, highest peak first
MAX_PREDICTION_LANES = 5  # predicted classes given a lane, highest top score first
MAX_SEGMENT_LABELS = 6  # predicted segments labelled "class score", highest score first
MAX_SEGMENTS_PER_LANE = 8  # per predicted class: the best non-overlapping segments drawn solid, the rest faint
FAINT_ALPHA = 0.1  # opacity of the predictions not among a lane's best
FIGURE_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}  # file suffix -> matplotlib format
_BACKGROUND_GREY = "#8c8c8c"
_LABEL_FONT = 8
_CHAR_PX = 0.62 * _LABEL_FONT * DPI / 72  # rough width of one label character, in pixels
_LEGEND_FONT = 9


def class_color(index: int, n_classes: int) -> tuple[float, float, float, float]:
    """RGBA colour of action class `index` (0-based among `n_classes`): the same in every figure.

    tab10 without its grey (grey marks background) up to 9 classes; up to 20 (THUMOS14) tab20 without its
    greys, strong shades first, then two dark ones of tab20b; beyond that hues of `turbo` visited in
    golden-ratio steps so that neighbouring indices differ.
    """
    if not 0 <= index < n_classes:
        raise ValueError(f"class index {index} outside 0..{n_classes - 1}")
    if n_classes <= 9:
        return _colormap("tab10")([0, 1, 2, 3, 4, 5, 6, 8, 9][index])
    if n_classes <= 20:
        tab20 = [i for i in (*range(0, 20, 2), *range(1, 20, 2)) if i not in (14, 15)]  # 18, no greys
        return _colormap("tab20")(tab20[index]) if index < 18 else _colormap("tab20b")((0, 8)[index - 18])
    return _colormap("turbo")(0.05 + 0.9 * ((index * 0.6180339887) % 1.0))


def figure_format(path: str | Path) -> str:
    """The matplotlib format for `path`'s suffix; ValueError naming the suffixes that work otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise ValueError(f"{path}: unknown figure format {suffix or '(no suffix)'!r}; use {', '.join(FIGURE_FORMATS)}")
    return FIGURE_FORMATS[suffix]


def plot_timeline(path: str | Path, **inputs) -> Path:
    """`timeline_figure(**inputs)` written to `path` (format from its suffix); returns the path."""
    return _save(timeline_figure(**inputs), path)


def timeline_figure(
    *,
    video_id: str,
    duration_sec: float,
    classes: Sequence[str],
    ground_truth: Sequence[tuple[float, float, str]],
    points: Sequence[tuple[float, str]],
    cas: np.ndarray | None,
    actionness: np.ndarray | None,
    segments: Sequence[tuple[float, float, str, float]],
    snippet_sec: float,
) -> Figure:
    """One video over time (x in seconds): ground-truth instances, point labels, CAS curves, predictions.

    Args:
        video_id, duration_sec: title and x range.
        classes: (C,) action class names; class i is column i + 1 of `cas` (column 0 is background).
        ground_truth: (start_sec, end_sec, class_name) instances.
        points: (time_sec, class_name or "background") point labels; background points are grey.
        cas: (T, C+1) class activation sequence per snippet; snippet t covers
            [t * snippet_sec, (t + 1) * snippet_sec). Curves are drawn for at most `MAX_CAS_CLASSES`
            classes present in the ground truth or predictions, highest peak first. None (a method without
            a CAS, such as a detector): the panel is left out, and so is `actionness`.
        actionness: (T,) class-agnostic actionness as a probability in [0, 1], or None; drawn dashed on
            its own 0-1 axis (right), since the CAS axis may be in logits.
        segments: (start_sec, end_sec, class_name, score) predictions; one lane per class (at most
            `MAX_PREDICTION_LANES`). In each lane the `MAX_SEGMENTS_PER_LANE` best segments that do not
            overlap a better one are drawn with opacity proportional to score / the video's top score;
            the rest (overlapping proposals) are drawn faint behind them. The `MAX_SEGMENT_LABELS` best
            are labelled "class score".
        snippet_sec: seconds per snippet.

    Returns the figure; every class has its `class_color`.
    """
    classes = tuple(classes)
    cas = _check_timeline(classes, ground_truth, points, cas, actionness, segments, duration_sec, snippet_sec)
    if cas is None:
        actionness = None
    cas_classes = [] if cas is None else _cas_classes(classes, cas, ground_truth, segments)
    lane_classes = _prediction_lanes(segments)
    colors = _class_colors(
        classes,
        [*(g[2] for g in ground_truth), *cas_classes, *lane_classes, *(p[1] for p in points if p[1] != BACKGROUND)],
    )
    gt_lanes = _pack_lanes([(s, e) for s, e, _ in ground_truth])
    n_gt_lanes = max(gt_lanes, default=0) + 1

    fig = _figure(TIMELINE_PX)
    heights = [
        0.5 + 0.45 * n_gt_lanes,
        0.7,
        *([3.2] if cas is not None else []),
        0.5 + 0.45 * max(len(lane_classes), 1),
    ]
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    ax_gt = fig.add_subplot(grid[0])
    axes = [ax_gt, *(fig.add_subplot(grid[row], sharex=ax_gt) for row in range(1, len(heights)))]
    ax_points, ax_pred = axes[1], axes[-1]
    ax_gt.set_xlim(0.0, duration_sec)
    px_per_sec = TIMELINE_PX[0] * 0.86 / duration_sec  # the axes span about 86% of the width

    _draw_ground_truth(ax_gt, ground_truth, gt_lanes, n_gt_lanes, colors, px_per_sec)
    _draw_points(ax_points, points, colors)
    if cas is not None:
        _draw_cas(axes[2], classes, cas, actionness, cas_classes, ground_truth, colors, snippet_sec)
        axes[2].tick_params(labelbottom=False)
    hidden = _draw_predictions(ax_pred, segments, lane_classes, colors, px_per_sec)
    for ax in (ax_gt, ax_points):
        ax.tick_params(bottom=False, labelbottom=False)
    ax_pred.set_xlabel("time (s)")
    fig.align_ylabels(axes)

    handles = [Patch(color=colors[name], label=name) for name in colors]
    handles.append(Line2D([], [], marker="v", ls="", color="0.3", markeredgecolor="k", label="action click"))
    handles.append(Line2D([], [], marker="o", ls="", color=_BACKGROUND_GREY, label="background click"))
    if actionness is not None:
        handles.append(Line2D([], [], color="k", ls="--", lw=1.5, label="actionness"))
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=_legend_columns(handles, TIMELINE_PX[0]),
        fontsize=_LEGEND_FONT,
        frameon=False,
    )
    title = f"{video_id}  ({duration_sec:.1f} s" + (
        ")" if cas is None else f", {cas.shape[0]} snippets of {snippet_sec:.3g} s)"
    )
    if hidden:
        title += f"; {hidden} prediction{'s' if hidden > 1 else ''} of other classes not shown"
    fig.suptitle(title, x=0.01, ha="left", fontsize=11, wrap=True)
    return fig


def plot_pr_curves(path: str | Path, curves: PrecisionRecallCurves, tiou: Sequence[float] | None = None) -> Path:
    """Precision-recall of segment detection, one line per tIoU threshold in `tiou` (default: all of
    `curves.thresholds`).

    Each line is averaged over the evaluated classes: at every recall r, the mean over classes of the
    VOC-interpolated precision (a class's best precision at recall >= r, 0 once r exceeds the recall the
    class reaches). The area under a line is exactly the mAP at that threshold, shown in the legend.
    Returns the written PNG path.
    """
    indices = _threshold_indices(curves.thresholds, tiou)
    fig = _figure(PR_CURVES_PX)
    ax = fig.add_subplot()
    cmap = _colormap("viridis")
    for k, t in enumerate(indices):
        recall, precision = curves.mean_envelope(t)
        area = float(np.sum(np.diff(recall) * precision[1:]))
        color = cmap(0.9 * k / max(len(indices) - 1, 1))
        ax.plot(
            recall,
            precision,
            drawstyle="steps-pre",
            color=color,
            lw=1.8,
            label=f"tIoU {curves.thresholds[t]:g}: mAP {100 * area:.1f}%",
        )
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision (interpolated, mean over classes)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=9, framealpha=0.9)
    n_pred = sum(s.size for s in curves.scores)
    ax.set_title(
        f"Segment detection: {len(curves.classes)} classes, {int(curves.n_gt.sum())} instances, {n_pred} predictions",
        fontsize=11,
    )
    return _save(fig, path)


def plot_class_ap(
    path: str | Path,
    classes: Sequence[str],
    ap_per_class: np.ndarray,
    tiou: Sequence[float],
    all_classes: Sequence[str] | None = None,
) -> Path:
    """`class_ap_figure(classes, ap_per_class, tiou, all_classes)` written to `path`; returns the path."""
    return _save(class_ap_figure(classes, ap_per_class, tiou, all_classes), path)


def class_ap_figure(
    classes: Sequence[str], ap_per_class: np.ndarray, tiou: Sequence[float], all_classes: Sequence[str] | None = None
) -> Figure:
    """Per-class AP (%) as horizontal bars in each class's `class_color`, the mean over the `tiou`
    thresholds, best class on top. `all_classes` (default `classes`) is the dataset's class list, which
    fixes the colours when only some classes are evaluated.

    `ap_per_class` is (T, C) (like `DetectionResult.ap`): AP in [0, 1] per threshold and class; a (C,)
    array is taken as one threshold. With several thresholds a whisker spans the class's AP from the
    strictest to the loosest threshold. The dashed line is the mAP (mean over classes). The figure is
    `CLASS_AP_WIDTH_PX` wide and 140 + 26 * C pixels high.
    """
    classes = tuple(classes)
    thresholds = np.asarray(list(tiou), dtype=np.float64).reshape(-1)  # (T,)
    ap = np.asarray(ap_per_class, dtype=np.float64)
    if ap.ndim == 1:
        ap = ap[None, :]
    if ap.shape != (thresholds.size, len(classes)) or not classes:
        raise ValueError(f"ap_per_class has shape {ap.shape}, want (T, C) = ({thresholds.size}, {len(classes)})")
    mean = ap.mean(axis=0)  # (C,)
    order = np.argsort(-mean, kind="stable")[::-1]  # barh draws bottom-up: best class last, on top
    y = np.arange(len(classes))
    fig = _figure((CLASS_AP_WIDTH_PX, 140 + 26 * len(classes)))
    ax = fig.add_subplot()
    palette = _class_colors(tuple(all_classes or classes), classes)
    handles = [
        ax.barh(
            y, 100 * mean[order], height=0.7, color=[palette[classes[i]] for i in order], label=_mean_label(thresholds)
        )
    ]
    right = mean[order]  # (C,) where each bar's drawing ends: the value is written past it
    if thresholds.size > 1:
        strict, loose = int(np.argmax(thresholds)), int(np.argmin(thresholds))
        handles.append(
            ax.hlines(
                y,
                100 * ap[strict, order],
                100 * ap[loose, order],
                color="k",
                lw=1.2,
                label=f"AP at tIoU {thresholds[strict]:g} to {thresholds[loose]:g}",
            )
        )
        right = np.maximum(right, ap[:, order].max(axis=0))
    for yi, value, end in zip(y, mean[order], right, strict=True):
        ax.text(
            100 * end + 1.0,
            yi,
            f"{100 * value:.1f}",
            va="center",
            fontsize=8,
            zorder=4,
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        )
    overall = float(mean.mean())
    handles.append(ax.axvline(100 * overall, color="#c44e52", ls="--", lw=1.2, label=f"mAP {100 * overall:.1f}%"))
    ax.set_yticks(y, [classes[i] for i in order], fontsize=9)
    ax.set_ylim(-0.6, len(classes) - 0.4)
    ax.set_xlim(0.0, 110.0)
    ax.set_xticks(np.arange(0, 101, 20))
    ax.set_xlabel("AP (%)")
    ax.grid(axis="x", alpha=0.3)
    fig.legend(handles=handles, loc="outside upper center", fontsize=8, ncol=3, frameon=False)
    return fig


def plot_study(
    path: str | Path,
    x: Sequence[float],
    columns: dict[str, tuple[Sequence[float], Sequence[float]]],
    x_label: str,
    title: str,
) -> Path:
    """A study's metrics against the value it varies (SODA's M, lambda): one line per column
    (name -> (mean per row, sample std per row; NaN std draws no bar)), ± std error bars, in percent.
    Returns the written path."""
    fig = _figure(STUDY_PX)
    ax = fig.add_subplot()
    xs = np.asarray(list(x), dtype=np.float64)  # (R,)
    for (column, (mean, std)), marker in zip(columns.items(), "os^dv<>", strict=False):
        ax.errorbar(
            xs,
            np.asarray(mean, dtype=np.float64),
            yerr=np.nan_to_num(np.asarray(std, dtype=np.float64)),
            marker=marker,
            capsize=3,
            label=column,
        )
    ax.set_xlabel(x_label)
    ax.set_ylabel("mAP (%)")
    ax.set_xticks(xs)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


# --- helpers ---------------------------------------------------------------------------------------------


def _figure(size_px: tuple[int, int]) -> Figure:
    """A pyplot-free figure of exactly `size_px` (width, height) pixels at `DPI`."""
    width, height = ((px + 0.25) / DPI for px in size_px)  # + 0.25 px: the canvas truncates to int
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    """Write `fig` in the format of the path's suffix (an unknown suffix is refused before writing)."""
    path = Path(path)
    fmt = figure_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=fmt, dpi=DPI, facecolor="white")
    return path


def _colormap(name: str):
    from matplotlib import colormaps

    return colormaps[name]


def _class_colors(classes: Sequence[str], names: Sequence[str]) -> dict[str, tuple]:
    """`class_color` of each of `names` (in first-appearance order), by its index in the class list."""
    index = {name: i for i, name in enumerate(classes)}
    return {name: class_color(index[name], len(classes)) for name in dict.fromkeys(names)}


def _legend_columns(handles, width_px: int) -> int:
    """As many legend columns as fit across `width_px` given the longest label (so no entry is clipped)."""
    longest = max((len(h.get_label()) for h in handles), default=1)
    entry_px = (longest + 5) * 0.62 * _LEGEND_FONT * DPI / 72  # text plus marker and spacing
    return max(1, min(len(handles), int(0.95 * width_px // entry_px)))


def _mean_label(thresholds: np.ndarray) -> str:
    if thresholds.size == 1:
        return f"AP at tIoU {thresholds[0]:g}"
    return f"mean AP over tIoU {thresholds.min():g}-{thresholds.max():g} ({thresholds.size} thresholds)"


def _threshold_indices(thresholds: np.ndarray, wanted: Sequence[float] | None) -> list[int]:
    if wanted is None:
        return list(range(thresholds.size))
    indices = []
    for value in wanted:
        hits = np.flatnonzero(np.isclose(thresholds, value, rtol=0, atol=1e-9))
        if hits.size == 0:
            evaluated = ", ".join(f"{t:g}" for t in thresholds)
            raise ValueError(f"tIoU {value} has no curve; evaluated: {evaluated}")
        indices.append(int(hits[0]))
    return indices


def _check_timeline(classes, ground_truth, points, cas, actionness, segments, duration_sec, snippet_sec):
    """Validate the timeline inputs; return `cas` as a (T, C+1) float array (None stays None)."""
    if not duration_sec > 0 or not snippet_sec > 0:
        raise ValueError(f"duration_sec ({duration_sec}) and snippet_sec ({snippet_sec}) must be positive")
    if cas is not None:
        cas = np.asarray(cas, dtype=np.float64)
        if cas.ndim != 2 or cas.shape[1] != len(classes) + 1:
            raise ValueError(f"cas has shape {cas.shape}, want (T, C+1) = (T, {len(classes) + 1})")
        if actionness is not None and np.shape(actionness) != (cas.shape[0],):
            raise ValueError(f"actionness has shape {np.shape(actionness)}, want ({cas.shape[0]},)")
        if actionness is not None and np.size(actionness) and not 0 <= np.min(actionness) <= np.max(actionness) <= 1:
            raise ValueError("actionness must be a probability in [0, 1] (apply a sigmoid to logits)")
    known = set(classes)
    for what, names in (
        ("ground truth", [g[2] for g in ground_truth]),
        ("segments", [s[2] for s in segments]),
        ("points", [p[1] for p in points if p[1] != BACKGROUND]),
    ):
        unknown = sorted(set(names) - known)
        if unknown:
            raise ValueError(f"{what}: unknown classes {', '.join(unknown)}; classes: {', '.join(classes)}")
    return cas


def _cas_classes(classes, cas: np.ndarray, ground_truth, segments) -> list[str]:
    """Classes of the video's GT or predictions with the highest CAS peaks (at most MAX_CAS_CLASSES)."""
    present = {g[2] for g in ground_truth} | {s[2] for s in segments}
    if cas.shape[0] == 0:
        return []
    index = {name: i + 1 for i, name in enumerate(classes)}
    ranked = sorted(present, key=lambda name: (-float(cas[:, index[name]].max()), index[name]))
    return ranked[:MAX_CAS_CLASSES]


def _prediction_lanes(segments) -> list[str]:
    """Predicted classes, highest top score first (at most MAX_PREDICTION_LANES)."""
    best: dict[str, float] = {}
    for _, _, name, score in segments:
        best[name] = max(best.get(name, -np.inf), float(score))
    return sorted(best, key=lambda name: -best[name])[:MAX_PREDICTION_LANES]


def _pack_lanes(spans: Sequence[tuple[float, float]]) -> list[int]:
    """Lane of each span so that spans in one lane do not overlap (greedy, by start time)."""
    lanes = [0] * len(spans)
    lane_end: list[float] = []
    for i in sorted(range(len(spans)), key=lambda k: spans[k][0]):
        start, end = spans[i]
        free = next((lane for lane, e in enumerate(lane_end) if e <= start), len(lane_end))
        if free == len(lane_end):
            lane_end.append(end)
        lane_end[free] = end
        lanes[i] = free
    return lanes


def _row_axes(ax, label: str) -> None:
    ax.set_yticks([])
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)


def _draw_ground_truth(ax, ground_truth, lanes, n_lanes, colors, px_per_sec) -> None:
    """Coloured spans, one lane per level of overlap, class name written inside when it fits."""
    _row_axes(ax, "ground\ntruth")
    ax.set_ylim(n_lanes, 0)  # lane 0 on top
    for (start, end, name), lane in zip(ground_truth, lanes, strict=True):
        ax.broken_barh(
            [(start, end - start)], (lane + 0.12, 0.76), facecolors=colors[name], edgecolors="k", linewidth=0.6
        )
        if (end - start) * px_per_sec > len(name) * _CHAR_PX + 4:
            ax.text(
                (start + end) / 2,
                lane + 0.5,
                name,
                ha="center",
                va="center",
                fontsize=_LABEL_FONT,
                color="white",
                fontweight="bold",
                clip_on=True,
            )


def _draw_points(ax, points, colors) -> None:
    """Clicked times: coloured triangles for action points, grey circles for background points."""
    _row_axes(ax, "points")
    ax.set_ylim(0, 1)
    action = [(t, name) for t, name in points if name != BACKGROUND]
    background = [t for t, name in points if name == BACKGROUND]
    if background:
        ax.scatter(
            background,
            [0.5] * len(background),
            marker="o",
            s=30,
            color=_BACKGROUND_GREY,
            edgecolors="k",
            linewidths=0.4,
            zorder=2,
        )
    if action:
        ax.scatter(
            [t for t, _ in action],
            [0.5] * len(action),
            marker="v",
            s=60,
            color=[colors[name] for _, name in action],
            edgecolors="k",
            linewidths=0.6,
            zorder=3,
        )


def _draw_cas(ax, classes, cas, actionness, cas_classes, ground_truth, colors, snippet_sec) -> None:
    """CAS per snippet of the chosen classes (steps at snippet centres), actionness dashed, GT shaded."""
    ax.set_ylabel("CAS", rotation=0, ha="right", va="center", fontsize=10)
    for start, end, name in ground_truth:
        ax.axvspan(start, end, color=colors[name], alpha=0.12, lw=0)
    centers = (np.arange(cas.shape[0]) + 0.5) * snippet_sec  # (T,)
    index = {name: i + 1 for i, name in enumerate(classes)}
    for name in reversed(cas_classes):  # the highest peak drawn last, on top
        ax.plot(centers, cas[:, index[name]], drawstyle="steps-mid", color=colors[name], lw=1.5)
    shown = [cas[:, index[n]] for n in cas_classes]
    values = np.concatenate(shown) if shown else np.zeros(0)
    if values.size and values.min() >= 0 and values.max() <= 1:
        ax.set_ylim(0.0, 1.05)  # probabilities: a fixed scale makes videos comparable
    ax.grid(axis="y", alpha=0.3)
    ax.spines["top"].set_visible(False)
    if actionness is not None:  # a probability: its own 0-1 axis, whatever the CAS scale
        ax_act = ax.twinx()
        ax_act.plot(
            centers,
            np.asarray(actionness, dtype=np.float64),
            drawstyle="steps-mid",
            color="k",
            ls="--",
            lw=1.3,
            gid="actionness",
        )
        ax_act.set_ylim(0.0, 1.0)
        ax_act.set_ylabel("actionness", fontsize=10)
        ax_act.spines["top"].set_visible(False)
    else:
        ax.spines["right"].set_visible(False)


def _draw_predictions(ax, segments, lane_classes, colors, px_per_sec) -> int:
    """One lane per class; opacity by score; best segments labelled. Returns the number not shown."""
    _row_axes(ax, "predictions")
    n_lanes = max(len(lane_classes), 1)
    ax.set_ylim(n_lanes, 0)
    lane = {name: i for i, name in enumerate(lane_classes)}
    ax.yaxis.tick_right()  # lane names on the right, the row title on the left
    ax.set_yticks([i + 0.5 for i in range(len(lane_classes))], lane_classes, fontsize=8)
    ax.tick_params(axis="y", length=0)
    shown = [s for s in segments if s[2] in lane]
    if not shown:
        return len(segments)
    top = max(float(s[3]) for s in shown)
    scale = top if top > 0 else 1.0
    best, rest = _lane_best(shown)
    for name in lane_classes:  # overlapping proposals faint, behind
        faint = [(s, e - s) for s, e, n, _ in rest if n == name]
        if faint:
            ax.broken_barh(
                faint,
                (lane[name] + 0.15, 0.7),
                facecolors=[to_rgba(colors[name], FAINT_ALPHA)],
                edgecolors="none",
                gid=f"faint:{name}",
                zorder=1,
            )
    for start, end, name, score in sorted(best, key=lambda s: s[3]):  # best drawn last, on top
        alpha = float(np.clip(0.25 + 0.75 * score / scale, 0.25, 1.0))
        ax.broken_barh(
            [(start, end - start)],
            (lane[name] + 0.15, 0.7),
            facecolors=[to_rgba(colors[name], alpha)],
            edgecolors=[to_rgba("k", 0.6)],
            linewidth=0.5,
            gid=f"best:{name}",
            zorder=2,
        )
    _label_segments(ax, best, lane, px_per_sec)
    return len(segments) - len(shown)


def _lane_best(segments) -> tuple[list, list]:
    """(best, rest): per class, greedily by descending score, at most MAX_SEGMENTS_PER_LANE segments that
    overlap no better kept one (NMS at tIoU 0), so a lane reads as separate detections."""
    best, rest, kept = [], [], {}
    for seg in sorted(segments, key=lambda s: -s[3]):
        start, end, name, _ = seg
        mine = kept.setdefault(name, [])
        if len(mine) < MAX_SEGMENTS_PER_LANE and all(end <= a or b <= start for a, b in mine):
            mine.append((start, end))
            best.append(seg)
        else:
            rest.append(seg)
    return best, rest


def _label_segments(ax, segments, lane, px_per_sec) -> None:
    """'class score' over the best segments (at most MAX_SEGMENT_LABELS), by descending score, skipping
    any whose label would overlap one already placed in its lane."""
    placed: dict[int, list[tuple[float, float]]] = {}
    x_min, x_max = ax.get_xlim()
    n_placed = 0
    for start, end, name, score in sorted(segments, key=lambda s: -s[3]):
        if n_placed == MAX_SEGMENT_LABELS:
            break
        text = f"{name} {score:.2f}"
        half = (len(text) * _CHAR_PX + 6) / px_per_sec / 2
        mid = float(np.clip((start + end) / 2, x_min + half, x_max - half))
        taken = placed.setdefault(lane[name], [])
        if any(mid - half < b and a < mid + half for a, b in taken):
            continue
        taken.append((mid - half, mid + half))
        n_placed += 1
        ax.text(
            mid,
            lane[name] + 0.5,
            text,
            ha="center",
            va="center",
            fontsize=_LABEL_FONT,
            clip_on=True,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        )
