"""Figures a reader can read (issue 13): actionness on its own 0-1 axis, prediction lanes that show separate
detections, nothing clipped with THUMOS14's 20 classes, one colour per class in every figure, and the file
format the suffix asks for."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.text import Text

import pointtal.viz as viz
from pointtal.viz import (
    FAINT_ALPHA,
    MAX_SEGMENTS_PER_LANE,
    class_ap_figure,
    class_color,
    plot_class_ap,
    plot_timeline,
    timeline_figure,
)

THUMOS = (
    "BaseballPitch",
    "BasketballDunk",
    "Billiards",
    "CleanAndJerk",
    "CliffDiving",
    "CricketBowling",
    "CricketShot",
    "Diving",
    "FrisbeeCatch",
    "GolfSwing",
    "HammerThrow",
    "HighJump",
    "JavelinThrow",
    "LongJump",
    "PoleVault",
    "Shotput",
    "SoccerPenalty",
    "TennisSwing",
    "ThrowDiscus",
    "VolleyballSpiking",
)
SNIPPET_SEC = 0.64


def inputs(classes=THUMOS, present=THUMOS, n_snippets=400, segments=None, actionness=True, seed=0):
    """A video with one instance of each class in `present`, CAS logits in [-6, 6] and SODA-like
    proposals: many overlapping segments around each instance."""
    rng = np.random.default_rng(seed)
    duration = n_snippets * SNIPPET_SEC
    cas = rng.uniform(-6, 6, (n_snippets, len(classes) + 1))  # (T, C+1) logits
    step = duration / (len(present) + 1)
    ground_truth = [((k + 0.6) * step, (k + 1.2) * step, name) for k, name in enumerate(present)]
    if segments is None:
        segments = [
            (s + rng.normal(0, 2), e + rng.normal(0, 2) + 3, name, float(rng.uniform(0.1, 0.9)))
            for s, e, name in ground_truth[:5]
            for _ in range(25)
        ]
    return {
        "video_id": "video_test_0000896",
        "duration_sec": duration,
        "classes": classes,
        "ground_truth": ground_truth,
        "points": [(s + 1.0, name) for s, _, name in ground_truth],
        "cas": cas,
        "actionness": rng.uniform(0, 1, n_snippets) if actionness else None,
        "segments": segments,
        "snippet_sec": SNIPPET_SEC,
    }


def legend_colors(fig) -> dict[str, tuple]:
    """Legend label -> face colour of its patch (the class colours a figure uses)."""
    (legend,) = fig.legends
    return {
        h.get_label(): tuple(h.get_facecolor())
        for h in legend.legend_handles
        if hasattr(h, "get_facecolor") and h.get_label() in THUMOS
    }


def bar_colors(fig) -> dict[str, tuple]:
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    bars = sorted(ax.patches, key=lambda p: p.get_y())
    return {name: tuple(bar.get_facecolor()) for name, bar in zip(labels, bars, strict=True)}


# ------------------------------------------------------------------------------------------ actionness


def test_actionness_has_its_own_zero_one_axis():
    fig = timeline_figure(**inputs())
    (line,) = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "actionness"]
    assert line.axes.get_ylim() == (0.0, 1.0)
    cas_axes = {ln.axes for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() != "actionness"}
    assert cas_axes and line.axes not in cas_axes  # the CAS keeps its logit scale
    assert min(a for ax in cas_axes for a in ax.get_ylim()) < -1  # (which would squash a 0-1 line)


def test_actionness_logits_are_refused_by_the_figure_and_mapped_by_the_report():
    from types import SimpleNamespace

    from pointtal.engine.report import actionness_probability

    with pytest.raises(ValueError, match=r"probability in \[0, 1\]"):
        timeline_figure(**{**inputs(), "actionness": np.linspace(-3, 3, 400)})
    logits = np.array([-50.0, 0.0, 50.0])  # SF-Net's fused actionness starts at exactly 0
    np.testing.assert_allclose(
        actionness_probability(SimpleNamespace(method_options=SimpleNamespace(score_space="logit")), logits),
        [0.0, 0.5, 1.0],
        atol=1e-12,
    )
    probabilities = np.array([0.2, 0.7])
    assert (
        actionness_probability(SimpleNamespace(method_options=SimpleNamespace(score_space="prob")), probabilities)
        is probabilities
    )


# ------------------------------------------------------------------------------------ prediction lanes


def _spans(collection) -> list[tuple[float, float]]:
    return [(float(p.vertices[:, 0].min()), float(p.vertices[:, 0].max())) for p in collection.get_paths()]


def test_prediction_lanes_show_separate_detections_and_the_rest_faint():
    case = inputs()
    fig = timeline_figure(**case)
    collections = [
        c for ax in fig.axes for c in ax.collections if (c.get_gid() or "").split(":")[0] in ("best", "faint")
    ]
    drawn = 0
    for name in {s[2] for s in case["segments"]}:
        best = [span for c in collections if c.get_gid() == f"best:{name}" for span in _spans(c)]
        faint = [c for c in collections if c.get_gid() == f"faint:{name}"]
        assert 1 <= len(best) <= MAX_SEGMENTS_PER_LANE
        best.sort()
        assert all(a[1] <= b[0] + 1e-9 for a, b in zip(best, best[1:], strict=False))  # no overlap
        ours = [s for s in case["segments"] if s[2] == name]
        top = max(ours, key=lambda s: s[3])
        assert any(abs(a - top[0]) < 1e-9 and abs(b - top[1]) < 1e-9 for a, b in best)  # the best is solid
        assert all(to_rgba(c.get_facecolor()[0])[3] <= FAINT_ALPHA + 1e-9 for c in faint)
        drawn += len(best) + sum(len(c.get_paths()) for c in faint)
    assert drawn == len(case["segments"])  # nothing dropped: overlapping proposals stay, faint


# --------------------------------------------------------------------------------- nothing clipped


def _outside(fig) -> list[str]:
    """Text artists (legend, tick labels, titles) that extend past the figure, in pixels."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    bad = []
    for text in fig.findobj(Text):
        if not text.get_visible() or not text.get_text() or text.get_clip_on():
            continue  # texts clipped to their axes on purpose (labels inside bars)
        extent = text.get_window_extent(renderer)
        if extent.x0 < box.x0 - 1 or extent.x1 > box.x1 + 1 or extent.y0 < box.y0 - 1 or extent.y1 > box.y1 + 1:
            bad.append(f"{text.get_text()!r} at {extent}")
    (legend,) = fig.legends or [None]
    if legend is not None:
        extent = legend.get_window_extent(renderer)
        if extent.x0 < box.x0 - 1 or extent.x1 > box.x1 + 1 or extent.y0 < box.y0 - 1:
            bad.append(f"legend at {extent}")
    return bad


def test_twenty_classes_fit_the_timeline():
    fig = timeline_figure(**inputs())
    assert len(legend_colors(fig)) == 20  # every class of the video is in the legend ...
    assert _outside(fig) == []  # ... and every legend entry, label and title is inside the figure


def test_twenty_classes_fit_the_class_ap_figure():
    ap = np.random.default_rng(1).uniform(0, 1, (7, 20))
    assert _outside(class_ap_figure(THUMOS, ap, (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7))) == []


# ----------------------------------------------------------------------------- one colour per class


def test_a_class_has_one_colour_in_every_figure():
    first = timeline_figure(**inputs(present=THUMOS[:6], seed=1))
    second = timeline_figure(**inputs(present=THUMOS[4:1:-1] + THUMOS[15:], seed=2))
    bars = bar_colors(class_ap_figure(THUMOS, np.random.default_rng(3).uniform(0, 1, (3, 20)), (0.3, 0.5, 0.7)))
    for fig in (first, second):
        for name, color in legend_colors(fig).items():
            assert color == pytest.approx(class_color(THUMOS.index(name), 20))
            assert bars[name] == pytest.approx(color)
    assert len({class_color(i, 20) for i in range(20)}) == 20  # distinct
    assert all(class_color(i, 20)[:3] != to_rgba(viz._BACKGROUND_GREY)[:3] for i in range(20))


def test_every_figure_takes_its_class_colours_from_class_color(monkeypatch):
    """Swap the one colour function: the timeline and the class AP bars (also of an evaluated subset
    of the classes) change with it."""

    def fake(index, n_classes):
        return (index / n_classes, 0.5, 1 - index / n_classes, 1.0)

    monkeypatch.setattr(viz, "class_color", fake)
    for name, color in legend_colors(timeline_figure(**inputs())).items():
        assert color == pytest.approx(fake(THUMOS.index(name), 20))
    subset = THUMOS[5:9]
    bars = bar_colors(class_ap_figure(subset, np.full((1, 4), 0.5), (0.5,), all_classes=THUMOS))
    assert bars == {name: pytest.approx(fake(THUMOS.index(name), 20)) for name in subset}


# -------------------------------------------------------------------------------- format by suffix


@pytest.mark.parametrize(
    ("suffix", "magic"), [(".png", b"\x89PNG\r\n\x1a\n"), (".pdf", b"%PDF-"), (".PDF", b"%PDF-"), (".svg", b"<?xml")]
)
def test_the_suffix_picks_the_format(tmp_path, suffix, magic):
    case = inputs(classes=THUMOS[:4], present=THUMOS[:4], n_snippets=60)
    assert plot_timeline(tmp_path / f"t{suffix}", **case).read_bytes()[: len(magic)] == magic
    ap = plot_class_ap(tmp_path / f"ap{suffix}", THUMOS[:4], np.full(4, 0.5), (0.5,))
    assert ap.read_bytes()[: len(magic)] == magic


@pytest.mark.parametrize("name", ["t.jpg", "t", "t.png.bak"])
def test_an_unknown_suffix_is_refused_before_writing(tmp_path, name):
    with pytest.raises(ValueError, match=r"unknown figure format .*use \.png, \.pdf, \.svg"):
        plot_timeline(tmp_path / name, **inputs(classes=THUMOS[:4], present=THUMOS[:4], n_snippets=60))
    assert not (tmp_path / name).exists()
