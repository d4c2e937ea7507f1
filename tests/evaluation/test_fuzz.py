"""Property-based tests (hypothesis): segment mAP invariants and agreement with the reference on random
inputs, and readers that either parse or raise InputError on arbitrary bytes, never anything else."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pointtal.data.annotations import load_ground_truth
from pointtal.data.points import read_points
from pointtal.errors import InputError
from pointtal.evaluation import SegmentTable, load_segment_predictions, segment_map

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference_eval import reference_map  # noqa: E402

CLASSES = ("a", "b", "c")
VIDEOS = ("v0", "v1", "v2")
TIOUS = (0.1, 0.3, 0.5, 0.7, 0.9)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Coarse times (multiples of 0.5 s) make touching, nested and identical segments common.
time_grid = st.integers(min_value=0, max_value=40).map(lambda k: k * 0.5)


@st.composite
def segment_rows(draw, min_size: int, max_size: int, classes=CLASSES, videos=VIDEOS):
    """(video, start, end, label) rows with start < end."""
    n = draw(st.integers(min_value=min_size, max_value=max_size))
    rows = []
    for _ in range(n):
        start = draw(time_grid)
        length = draw(st.integers(min_value=1, max_value=12)) * 0.5
        rows.append((draw(st.sampled_from(videos)), start, start + length, draw(st.sampled_from(classes))))
    return rows


@st.composite
def scored(draw, rows, distinct: bool = False):
    """Add scores; distinct=True draws a permutation (no ties), else coarse scores (many ties)."""
    if distinct:
        ranks = draw(st.permutations(range(len(rows))))
        return [(*row, (r + 1) / (len(rows) + 1)) for row, r in zip(rows, ranks, strict=True)]
    return [(*row, draw(st.integers(min_value=0, max_value=4)) / 4) for row in rows]


def gt_table(rows) -> SegmentTable:
    return SegmentTable.from_mapping(_by_video(rows, with_score=False), CLASSES + ("absent",))


def pred_table(rows) -> SegmentTable:
    return SegmentTable.from_mapping(_by_video(rows, with_score=True), CLASSES + ("absent",))


def _by_video(rows, with_score: bool) -> dict:
    out: dict = {}
    for row in rows:
        video, start, end, label = row[:4]
        out.setdefault(video, []).append((start, end, label, row[4]) if with_score else (start, end, label))
    return out


def _in_table_order(rows):
    """Rows grouped by video in first-appearance order: the row order a SegmentTable.from_mapping keeps."""
    grouped: dict = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(row)
    return [row for rows_of in grouped.values() for row in rows_of]


@FAST
@given(st.data())
def test_map_is_a_fraction_and_matches_the_reference(data):
    gt_rows = data.draw(segment_rows(1, 12))
    pred_rows = data.draw(segment_rows(0, 25).flatmap(lambda rows: scored(rows)))
    result = segment_map(gt_table(gt_rows), pred_table(pred_rows), TIOUS)
    assert np.all((result.ap >= 0) & (result.ap <= 1 + 1e-12)) and np.all(np.isfinite(result.ap))
    assert np.all((result.map >= 0) & (result.map <= 1 + 1e-12))
    assert set(result.classes) == {row[3] for row in gt_rows}  # only classes with ground truth count
    # ties, touching and identical segments included: equal to the official code (stable ties)
    classes, ref_ap = reference_map(_in_table_order(gt_rows), _in_table_order(pred_rows), TIOUS)
    fast_ap = result.ap[:, [result.classes.index(c) for c in classes]]
    np.testing.assert_allclose(fast_ap, ref_ap, rtol=0, atol=1e-12)


@FAST
@given(st.data())
def test_order_of_predictions_with_distinct_scores_does_not_matter(data):
    gt_rows = data.draw(segment_rows(1, 10))
    pred_rows = data.draw(segment_rows(1, 20).flatmap(lambda rows: scored(rows, distinct=True)))
    shuffled = data.draw(st.permutations(pred_rows))
    gt = gt_table(gt_rows)
    first = segment_map(gt, pred_table(pred_rows), TIOUS)
    second = segment_map(gt, pred_table(shuffled), TIOUS)
    assert first.classes == second.classes
    np.testing.assert_array_equal(first.ap, second.ap)


@FAST
@given(segment_rows(1, 15), st.floats(min_value=0.01, max_value=1.0))
def test_ground_truth_as_predictions_scores_one(gt_rows, score):
    predictions = [(*row, score) for row in gt_rows]
    result = segment_map(gt_table(gt_rows), pred_table(predictions), TIOUS)
    np.testing.assert_allclose(result.ap, 1.0, rtol=0, atol=1e-12)


@FAST
@given(st.data())
def test_predictions_of_a_class_without_ground_truth_change_nothing(data):
    gt_rows = data.draw(segment_rows(1, 10))
    pred_rows = data.draw(segment_rows(0, 15).flatmap(lambda rows: scored(rows)))
    extra = data.draw(
        segment_rows(1, 10, classes=("absent",), videos=VIDEOS + ("v_other",)).flatmap(lambda rows: scored(rows))
    )
    mixed = data.draw(st.permutations(pred_rows + extra))
    gt = gt_table(gt_rows)
    base = segment_map(gt, pred_table(pred_rows), TIOUS)
    with_extra = segment_map(gt, pred_table(mixed), TIOUS)
    assert base.classes == with_extra.classes and "absent" not in with_extra.classes
    if len({row[4] for row in pred_rows}) == len(pred_rows):  # the mixing may reorder ties only
        np.testing.assert_array_equal(base.ap, with_extra.ap)
    # in place, ties included: appending keeps the relative order of the original predictions
    appended = segment_map(gt, pred_table(pred_rows + extra), TIOUS)
    np.testing.assert_array_equal(base.ap, appended.ap)
    gt_classes = {row[3] for row in gt_rows}
    ignored = len(extra) + sum(row[3] not in gt_classes for row in pred_rows)
    assert with_extra.counts["ignored_class_without_gt"] == ignored


# ---------------------------------------------------------------------------------------- readers


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _parses_or_input_error(reader, path: Path) -> None:
    try:
        reader(path)
    except InputError as err:
        message = str(err)
        assert str(path) in message and "\n" not in message, message


JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
GT_KEYS = st.sampled_from(["subset", "duration", "fps", "annotations", "segment", "label", "database"])
GT_LIKE = st.recursive(
    JSON_VALUE,
    lambda children: st.dictionaries(GT_KEYS, children, max_size=5) | st.lists(children, max_size=3),
    max_leaves=25,
)


def _mutations(text: str):
    """Bytes near a valid document: truncated, a byte flipped, or a chunk repeated."""
    raw = text.encode()
    return st.one_of(
        st.integers(0, len(raw)).map(lambda k: raw[:k]),
        st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)).map(
            lambda kb: raw[: kb[0]] + bytes([kb[1]]) + raw[kb[0] + 1 :]
        ),
        st.tuples(st.integers(0, len(raw)), st.integers(0, len(raw))).map(
            lambda ab: raw[: max(ab)] + raw[min(ab) : max(ab)] + raw[max(ab) :]
        ),
    )


VALID_GT = json.dumps(
    {
        "database": {
            "v1": {
                "subset": "test",
                "duration": 12.5,
                "fps": 25,
                "annotations": [{"segment": [1.0, 2.5], "label": "a"}, {"segment": [3, 9], "label": "b"}],
            }
        }
    }
)
VALID_POINTS = "video_id,time,label\nv1,1.25,a\nv1,3.5,background\nv2,0,b\n"
VALID_LACP = "class,class_index,start_frame,stop_frame,video_id,point\na,0,10,20,v1,15\nb,1,0,5,v2,3\n"


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        _mutations(VALID_GT),
        GT_LIKE.map(lambda v: json.dumps({"database": v}, allow_nan=True).encode()),
        st.dictionaries(st.text(max_size=6), GT_LIKE, max_size=3).map(
            lambda d: json.dumps({"database": {"v": d}}).encode()
        ),
    )
)
def test_ground_truth_reader_parses_or_raises_input_error(scratch, content):
    path = scratch / "gt.json"
    path.write_bytes(content)
    _parses_or_input_error(load_ground_truth, path)


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(
            alphabet=st.sampled_from(list('v1,.0-9e\n\r "ab_+infa') + ["\x00", "\u2028", "\ufeff"]), max_size=80
        ).map(str.encode),
        _mutations(VALID_POINTS),
        _mutations(VALID_LACP),
    )
)
def test_point_reader_parses_or_raises_input_error(scratch, content):
    path = scratch / "points.csv"
    path.write_bytes(content)
    _parses_or_input_error(lambda p: read_points(p, fps_lookup=lambda video_id: 25.0), path)


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=120),
        JSON_VALUE.map(lambda v: json.dumps({"results": {"v1": v}}).encode()),
        st.lists(
            st.dictionaries(st.sampled_from(["label", "score", "segment", "frame"]), JSON_VALUE, max_size=4), max_size=3
        ).map(lambda entries: json.dumps({"results": {"v1": entries}}).encode()),
    )
)
def test_prediction_reader_parses_or_raises_input_error(scratch, content):
    path = scratch / "pred.json"
    path.write_bytes(content)
    _parses_or_input_error(lambda p: load_segment_predictions(p, ["a", "b"]), path)
