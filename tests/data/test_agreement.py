"""Several annotators (issue 23, item 2): figures against a ground truth, pairwise matching, alpha, consensus."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pointtal.cli import main
from pointtal.data.agreement import (
    greedy_match,
    match_pairs,
    merge_clicks,
    nominal_alpha,
    snippet_alpha,
    truth_report,
)
from pointtal.data.annotations import BACKGROUND, Instance, Video
from pointtal.data.points import Point, read_points

VIDEOS = {
    "v1": Video(
        "v1",
        "validation",
        20.0,
        25.0,
        (Instance(2.0, 4.0, "jump"), Instance(6.0, 8.0, "run"), Instance(10.0, 12.0, "jump")),
    ),
    "v2": Video("v2", "validation", 12.0, 25.0, (Instance(0.0, 10.0, "run"),)),
}
CLICKS = [
    Point("v1", 3.0, "jump"),  # jump 1, position 0.5 -> bin 5
    Point("v1", 3.5, "jump"),  # jump 1 again, position 0.75 -> bin 7
    Point("v1", 7.0, "jump"),  # inside the run only: other class
    Point("v1", 15.0, "run"),  # outside every instance
    Point("v1", 5.0, BACKGROUND),  # not scored
    Point("v2", 1.0, "run"),  # position 0.1 -> bin 1
    Point("v2", 10.0, "run"),  # the end itself: position 1 -> the last bin
    Point("v9", 1.0, "jump"),  # a video not given
]


def test_truth_report_matches_a_hand_count():
    stats = truth_report(CLICKS, VIDEOS, BACKGROUND)
    assert (stats.clicks, stats.background, stats.elsewhere) == (6, 1, 1)
    assert (stats.instances, stats.hit, stats.hit_rate) == (4, 2, 0.5)  # jump [2, 4] and run [0, 10] hit
    assert (stats.outside, stats.other_class) == (1, 1)
    assert stats.histogram == (0, 1, 0, 0, 0, 1, 0, 1, 0, 1)
    assert stats.per_class == {
        "jump": {"instances": 2, "hit": 1, "clicks": 3, "outside": 0},
        "run": {"instances": 2, "hit": 1, "clicks": 3, "outside": 1},
    }


def test_a_click_in_two_instances_of_its_class_counts_once_at_the_nearest_centre():
    video = Video("v", "s", 20.0, 25.0, (Instance(0.0, 10.0, "jump"), Instance(4.0, 6.0, "jump")))
    stats = truth_report([Point("v", 5.0, "jump")], {"v": video}, BACKGROUND)
    assert stats.hit == 2 and sum(stats.histogram) == 1
    assert stats.histogram[5] == 1  # (5 - 4) / 2 = 0.5 in the short instance (its centre is 5)


def _reference_greedy(a, b, tolerance):
    """Plain loop: all pairs within the tolerance, smallest distance first (ties by i, j), both unused."""
    pairs = sorted((abs(x - y), i, j) for i, x in enumerate(a) for j, y in enumerate(b) if abs(x - y) <= tolerance)
    used_a, used_b, out = set(), set(), []
    for _, i, j in pairs:
        if i not in used_a and j not in used_b:
            used_a.add(i), used_b.add(j), out.append((i, j))
    return out


def test_greedy_match_on_a_hand_example_and_against_a_loop():
    assert greedy_match(np.array([1.0, 2.0]), np.array([1.6, 2.1]), 0.5) == [(1, 1)]
    assert greedy_match(np.array([0.0, 1.0]), np.array([0.6]), 1.0) == [(1, 0)]
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = np.sort(np.round(rng.uniform(0, 20, rng.integers(0, 12)), 1))
        b = np.sort(np.round(rng.uniform(0, 20, rng.integers(0, 12)), 1))
        assert sorted(greedy_match(a, b, 1.5)) == sorted(_reference_greedy(list(a), list(b), 1.5))


def test_match_pairs_only_matches_the_same_video_and_class():
    a = [Point("v", 1.0, "jump"), Point("v", 5.0, "run"), Point("w", 1.0, "jump")]
    b = [Point("v", 1.3, "jump"), Point("v", 5.2, "jump"), Point("w", 3.0, "jump")]
    stats = match_pairs(a, b, 1.0)
    assert (stats.clicks_a, stats.clicks_b, stats.matched) == (3, 3, 1)
    assert stats.mean_offset == pytest.approx(0.3)


def _reference_alpha(values):
    """Krippendorff's alpha, nominal, from the pairable values by plain loops (every unit fully coded)."""
    m = len(values[0])
    pooled = [v for row in values for v in row]
    n = len(pooled)
    observed = sum(row[i] != row[j] for row in values for i in range(m) for j in range(m) if i != j) / (m - 1) / n
    expected = sum(pooled[i] != pooled[j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    return 1 - observed / expected


def test_nominal_alpha_by_hand_and_against_a_loop():
    assert nominal_alpha(np.array([["a", "a"], ["b", "b"], ["a", "b"]], dtype=object)) == pytest.approx(4 / 9)
    assert nominal_alpha(np.array([["a", "a"], ["b", "b"]], dtype=object)) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    for raters in (2, 3, 4):
        values = rng.choice(np.array(["none", "jump", "run"], dtype=object), size=(15, raters), p=[0.2, 0.5, 0.3])
        values[:5, :] = "jump"  # some agreement
        assert nominal_alpha(values) == pytest.approx(_reference_alpha(values.tolist()))


def test_snippet_alpha_on_a_hand_example():
    # 1 s snippets (fps 1, stride 1), centres 0.5 .. 3.5; a click labels snippets within 0.4 s
    a = [Point("v", 0.5, "jump"), Point("v", 2.5, "run")]
    b = [Point("v", 0.6, "jump")]
    alpha, units = snippet_alpha([a, b], {"v": 4.0}, fps=1.0, stride=1, tolerance=0.4)
    # units [[jump, jump], [run, none]]: o_jj = 2, o_rn = o_nr = 1; n = 4, n_j = 2, n_r = n_n = 1
    assert units == 2
    assert alpha == pytest.approx(1 - 3 * 2 / 10)


THREE = [
    [Point("v", 1.0, "jump"), Point("v", 5.0, "jump"), Point("v", 9.0, "jump")],
    [Point("v", 1.4, "jump"), Point("v", 5.8, "jump"), Point("v", 3.0, "run")],
    [Point("v", 0.8, "jump"), Point("v", 9.5, "jump"), Point("v", 20.0, "jump")],
]


def test_merge_keeps_clicks_two_of_three_agree_on_at_their_median():
    merged, report = merge_clicks(THREE, tolerance=1.0, min_agree=2)
    assert sorted((p.video_id, round(p.time_sec, 6), p.label) for p in merged) == [
        ("v", 1.0, "jump"),
        ("v", 5.4, "jump"),
        ("v", 9.25, "jump"),
    ]
    assert (report.groups, report.kept, report.dropped_groups, report.dropped_clicks) == (5, 3, {1: 2}, (0, 1, 1))
    merged, report = merge_clicks(THREE, tolerance=1.0, min_agree=3)
    assert [(p.time_sec, p.label) for p in merged] == [(1.0, "jump")]
    assert report.dropped_groups == {1: 2, 2: 2}


def test_merge_groups_span_at_most_the_tolerance_and_hold_one_click_per_annotator():
    chain = [[Point("v", 0.0, "a")], [Point("v", 0.9, "a")], [Point("v", 1.8, "a")]]
    merged, report = merge_clicks(chain, tolerance=1.0, min_agree=2)
    assert [p.time_sec for p in merged] == [pytest.approx(0.45)] and report.dropped_groups == {1: 1}
    twice = [[Point("v", 0.0, "a"), Point("v", 0.1, "a")], [Point("v", 0.05, "a")]]
    merged, report = merge_clicks(twice, tolerance=1.0, min_agree=2)
    assert len(merged) == 1 and report.dropped_clicks == (1, 0)


# ------------------------------------------------------------------------------------------------------ the CLI


def _write_world(tmp_path):
    gt = {
        "version": "t",
        "database": {
            vid: {
                "subset": "validation",
                "duration": v.duration_sec,
                "fps": 25,
                "annotations": [{"segment": [i.start_sec, i.end_sec], "label": i.label} for i in v.instances],
            }
            for vid, v in VIDEOS.items()
        },
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    files = []
    for k, points in enumerate(THREE):
        path = tmp_path / f"a{k}.csv"
        path.write_text("".join(f"{p.video_id.replace('v', 'v1')},{p.time_sec},{p.label}\n" for p in points))
        files.append(str(path))
    return str(tmp_path / "gt.json"), files


def test_cli_writes_the_json_and_a_merged_file_read_points_reads(tmp_path, capsys):
    gt, files = _write_world(tmp_path)
    out, merged = tmp_path / "agreement.json", tmp_path / "consensus.csv"
    assert (
        main(
            [
                "annotate",
                gt,
                "--agreement",
                *files,
                "--tolerance",
                "1",
                "--json",
                str(out),
                "--merge",
                str(merged),
                "--min-agree",
                "2",
            ]
        )
        == 0
    )
    assert "Krippendorff" in capsys.readouterr().out
    points = read_points(merged)
    assert [(p.video_id, round(p.time_sec, 6), p.label) for p in points] == [
        ("v1", 1.0, "jump"),
        ("v1", 5.4, "jump"),
        ("v1", 9.25, "jump"),
    ]
    result = json.loads(out.read_text())
    first = truth_report(read_points(files[0]), {"v1": VIDEOS["v1"]}, BACKGROUND)
    assert result["annotators"][0]["hit"] == first.hit and result["annotators"][0]["histogram"] == list(first.histogram)
    assert result["videos"] == 1  # only the clicked video of the ground truth
    assert result["pairs"]["1-2"]["matched"] == match_pairs(read_points(files[0]), read_points(files[1]), 1.0).matched
    assert result["merge"]["dropped_clicks_per_annotator"] == [0, 1, 1]
    # a second run replaces pointtal's own outputs without --overwrite
    assert main(["annotate", gt, "--agreement", *files, "--json", str(out), "--merge", str(merged)]) == 0


@pytest.mark.parametrize("option", ["--json", "--merge"])
def test_the_guard_keeps_inputs_and_foreign_files(tmp_path, capsys, option):
    gt, files = _write_world(tmp_path)
    foreign = tmp_path / "notes.csv"
    foreign.write_text("mine\n")
    for target, extra in ((files[1], []), (files[1], ["--overwrite"]), (str(foreign), [])):
        before = open(target).read()
        assert main(["annotate", gt, "--agreement", *files, option, target, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and target in err[0], err
        assert open(target).read() == before


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--agreement", "{a}"], "two or more"),
        (["--agreement", "{a}", "{a}", "--merge", "{tmp}/m.csv", "--min-agree", "3"], "--min-agree 3"),
        (["--agreement", "{a}", "{a}", "--min-agree", "2"], "--min-agree 2"),
        (["--agreement", "{a}", "{a}", "--scheme", "soda"], "--scheme"),
        (["--scheme", "soda", "--out", "{tmp}/p.csv", "--tolerance", "2"], "--tolerance 2"),
        (["--agreement", "{a}", "{a}", "--tolerance", "0"], "--tolerance 0"),
        (["--agreement", "{a}", "{tmp}/missing.csv"], "missing.csv: point file not found"),
    ],
)
def test_bad_agreement_options_are_one_line_before_any_work(tmp_path, capsys, monkeypatch, argv, needle):
    gt, files = _write_world(tmp_path)
    import pointtal.cli.annotate as annotate

    def work(*args, **kwargs):
        raise AssertionError("work started before the checks")

    monkeypatch.setattr(annotate, "load_truth", work)
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [a.format(a=files[0], tmp=tmp_path) for a in argv]
    assert main(["annotate", gt, *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
