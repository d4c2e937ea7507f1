"""Point annotations: CSV reading/writing, every simulation scheme, annotator choice, snippet mapping, CLI."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from pointtal.cli import main
from pointtal.data.annotations import Instance, Video, load_ground_truth
from pointtal.data.points import (
    CUSTOM_BINS,
    SCHEMES,
    Point,
    choose_annotator,
    fps_lookup_for,
    map_points,
    read_points,
    simulate_points,
    write_points,
)
from pointtal.errors import InputError

VENDOR = Path(__file__).resolve().parents[2] / "pointtal" / "data" / "vendor"
BG = "background"


def video(video_id="v", duration=20.0, instances=(), fps=None) -> Video:
    return Video(video_id, "train", duration, fps, tuple(Instance(s, e, lab) for s, e, lab in instances))


def snippets_of(points, fps=1.0, stride=1):
    """Snippet of each simulated point (points sit at snippet centres)."""
    return [int(np.floor(p.time_sec * fps / stride)) for p in points]


def simulate_many(videos, scheme, seeds=range(40), **kw):
    return [simulate_points(videos, scheme, 1.0, 1, seed, **kw) for seed in seeds]


# ------------------------------------------------------------------------------------ SF-Net schemes


def test_sfnet_uniform_draws_snippets_fully_inside_and_middle_for_short_instances():
    # fps 1, stride 1: snippet t covers [t, t+1) seconds.
    v = video(instances=[(2.5, 6.2, "a"), (7.2, 7.8, "b"), (8.9, 9.6, "c")])
    seen = {"a": set(), "b": set(), "c": set()}
    for points in simulate_many([v], "sfnet-uniform"):
        assert len(points) == 3  # one point per instance
        for p, s in zip(points, snippets_of(points), strict=True):
            seen[p.label].add(s)
            assert p.time_sec == s + 0.5  # emitted at the snippet centre
    assert seen["a"] == {3, 4, 5}  # [ceil(2.5), floor(6.2)) = [3, 6), all of it reached
    assert seen["b"] == {7}  # shorter than a snippet: the snippet holding the middle 7.5
    assert seen["c"] == {9}  # straddles a boundary, no full snippet: middle 9.25 -> 9


def test_sfnet_center_is_the_middle_snippet():
    v = video(instances=[(2.0, 7.0, "a"), (10.0, 14.0, "b")])
    points = simulate_points([v], "sfnet-center", 1.0, 1, seed=3)
    assert [(p.label, p.time_sec) for p in points] == [("a", 4.5), ("b", 12.5)]  # middles 4.5 and 12.0


def test_sfnet_center_jitter_stays_within_20_percent_and_spreads():
    v = video(duration=200.0, instances=[(0.0, 100.0, "a")])
    drawn = [snippets_of(points)[0] for points in simulate_many([v], "sfnet-center-jitter", seeds=range(200))]
    assert min(drawn) >= 30 and max(drawn) <= 70  # 50 +- 0.2 * 100
    assert min(drawn) < 38 and max(drawn) > 62  # it really jitters over the whole range


def test_sfnet_start_stays_in_first_ratio():
    v = video(duration=200.0, instances=[(10.0, 110.0, "a")])
    drawn = [snippets_of(points)[0] for points in simulate_many([v], "sfnet-start", seeds=range(200))]
    assert min(drawn) >= 10 and max(drawn) < 35  # first 25 % of [10, 110)
    assert min(drawn) <= 12 and max(drawn) >= 32
    drawn = [snippets_of(p)[0] for p in simulate_many([v], "sfnet-start", seeds=range(50), start_ratio=0.1)]
    assert max(drawn) < 20


def test_sfnet_custom_follows_the_10_bin_distribution():
    n = 4000
    v = video(duration=100.0 * n, instances=[(100.0 * i, 100.0 * i + 100.0, "a") for i in range(n)])
    points = simulate_points([v], "sfnet-custom", 1.0, 1, seed=0)
    relative = (np.array(snippets_of(points)) % 100) / 100.0  # position inside its instance
    histogram = np.bincount((relative * 10).astype(int), minlength=10) / n
    assert np.abs(histogram - np.array(CUSTOM_BINS)).max() < 0.03  # binomial std ~ 0.006


def test_per_video_fps_overrides_the_default():
    v = video(duration=20.0, instances=[(2.0, 7.0, "a")], fps=10.0)
    (point,) = simulate_points([v], "sfnet-center", 25.0, 5, seed=0)  # 10 fps, 5 frames: 0.5 s snippets
    assert point.time_sec == pytest.approx(4.75)  # middle 4.5 s -> snippet 9 -> centre 4.75 s


def test_instance_after_last_snippet_gets_no_point(caplog):
    v = video(duration=10.0, instances=[(2.0, 4.0, "a"), (10.5, 12.0, "b")])  # b lies past the video
    with caplog.at_level(logging.WARNING):
        points = simulate_points([v], "sfnet-uniform", 1.0, 1, seed=0)
    assert [p.label for p in points] == ["a"]
    assert "1 ground-truth instances" in caplog.text


def test_weak_has_no_points_and_unknown_scheme_is_an_error():
    assert simulate_points([video(instances=[(1, 5, "a")])], "weak", 1.0, 1, 0) == []
    with pytest.raises(InputError, match="unknown point scheme 'sfnet'"):
        simulate_points([video()], "sfnet", 1.0, 1, 0)
    assert set(SCHEMES) >= {"sfnet-uniform", "soda", "full", "weak"}


# ------------------------------------------------------------------------------------ full and SODA


def test_full_labels_every_snippet_inside_every_instance():
    v = video(instances=[(2.5, 6.2, "a"), (4.0, 6.0, "a"), (5.0, 8.0, "b"), (11.2, 11.7, "a")])
    points = simulate_points([v], "full", 1.0, 1, seed=0)
    pairs = sorted(zip(snippets_of(points), [p.label for p in points], strict=True))
    assert pairs == [(3, "a"), (4, "a"), (5, "a"), (5, "b"), (6, "b"), (7, "b"), (11, "a")]


SODA_VIDEO = video(duration=45.0, instances=[(3.0, 8.0, "a"), (15.0, 25.0, "b"), (27.0, 42.0, "a")])
# Annotated windows [0,10) [20,30) [40,45). Expected pieces (start, end, label):
SODA_PIECES = [
    (3, 8, "a"),
    (20, 25, "b"),
    (27, 30, "a"),
    (40, 42, "a"),  # action pieces
    (0, 3, BG),
    (8, 10, BG),
    (25, 27, BG),
    (42, 45, BG),  # background pieces
]


def test_soda_one_point_per_piece_and_none_in_skipped_windows():
    reached = {piece: set() for piece in SODA_PIECES}
    for points in simulate_many([SODA_VIDEO], "soda", seeds=range(60)):
        assert len(points) == len(SODA_PIECES)
        hits = {piece: 0 for piece in SODA_PIECES}
        for p, s in zip(points, snippets_of(points), strict=True):
            assert not (10 <= s < 20 or 30 <= s < 40), "point in a skipped window"
            (piece,) = [q for q in SODA_PIECES if q[0] <= s < q[1] and q[2] == p.label]
            hits[piece] += 1
            reached[piece].add(s)
        assert set(hits.values()) == {1}
    assert reached[(0, 3, BG)] == {0, 1, 2} and reached[(27, 30, "a")] == {
        27,
        28,
        29,
    }  # uniform over the piece


def test_soda_overlapping_instances_of_different_classes_each_get_a_point():
    v = video(duration=10.0, instances=[(2.0, 6.0, "a"), (4.0, 8.0, "b")])
    points = simulate_points([v], "soda", 1.0, 1, seed=1)
    by_label = {}
    for p, s in zip(points, snippets_of(points), strict=True):
        by_label.setdefault(p.label, []).append(s)
    assert sorted(by_label) == ["a", "b", BG]
    assert len(by_label["a"]) == 1 and 2 <= by_label["a"][0] < 6
    assert len(by_label["b"]) == 1 and 4 <= by_label["b"][0] < 8
    assert len(by_label[BG]) == 2 and all(s < 2 or s >= 8 for s in by_label[BG])


def test_soda_variants_split_the_same_draw_and_window_length_is_honoured():
    both = simulate_points([SODA_VIDEO], "soda", 1.0, 1, seed=5)
    action = simulate_points([SODA_VIDEO], "soda-action", 1.0, 1, seed=5)
    background = simulate_points([SODA_VIDEO], "soda-background", 1.0, 1, seed=5)
    assert all(p.label != BG for p in action) and all(p.label == BG for p in background)
    assert sorted(action + background, key=lambda p: (p.time_sec, p.label)) == sorted(
        both, key=lambda p: (p.time_sec, p.label)
    )
    long_windows = simulate_points([SODA_VIDEO], "soda", 1.0, 1, seed=5, window_sec=20.0)  # [0,20) [40,45)
    assert all(s < 20 or s >= 40 for s in snippets_of(long_windows))


# ------------------------------------------------------------------------------ determinism and I/O


def thumos_validation():
    gt = load_ground_truth(VENDOR / "thumos14" / "groundtruth.json")
    return gt, gt.subset("validation")


@pytest.mark.parametrize("scheme", ["sfnet-uniform", "soda"])
def test_same_seed_same_bytes_and_each_video_drawn_on_its_own(tmp_path, scheme):
    _, videos = thumos_validation()
    files = []
    for name in ("a", "b"):
        write_points(simulate_points(videos, scheme, 25.0, 16, 7), tmp_path / f"{name}.csv")
        files.append((tmp_path / f"{name}.csv").read_bytes())
    assert files[0] == files[1]
    by_video = points_by_video(simulate_points(videos, scheme, 25.0, 16, 7))
    # a video's points depend on (seed, video) only: 20 videos alone, in reverse order, get the same points
    some = videos[::-1][:20]
    assert points_by_video(simulate_points(some, scheme, 25.0, 16, 7)) == {
        v.video_id: by_video[v.video_id] for v in some if v.video_id in by_video
    }
    # and on the seed: seed 8 moves the points of most videos (an instance of one snippet cannot move)
    other = points_by_video(simulate_points(videos, scheme, 25.0, 16, 8))
    assert sum(other[v] != by_video[v] for v in by_video) >= 0.9 * len(by_video)


def points_by_video(points) -> dict[str, list]:
    """{video id: its points sorted by (time, label)}."""
    grouped = {}
    for point in sorted(points, key=lambda p: (p.video_id, p.time_sec, p.label)):
        grouped.setdefault(point.video_id, []).append(point)
    return grouped


def test_simulated_points_map_back_to_their_snippets(tmp_path):
    gt, videos = thumos_validation()
    points = simulate_points(videos, "sfnet-uniform", 25.0, 16, seed=0)
    write_points(points, tmp_path / "p.csv")
    mapped = map_points(read_points(tmp_path / "p.csv"), gt.videos, 25.0, 16, gt.class_index)
    assert mapped.report.n_outside == 0 and mapped.report.n_unknown_video == 0
    expected = sorted((p.video_id, int((p.time_sec * 25 / 16) // 1)) for p in points)
    assert sorted(zip(mapped.video_id, mapped.snippet.tolist(), strict=True)) == expected
    # every point lies in an instance of its class: [ceil(s*r), floor(e*r)) or the middle snippet
    for vid, snippet, cls in list(zip(mapped.video_id, mapped.snippet, mapped.class_index, strict=True))[:300]:
        label = gt.classes[cls - 1]
        assert any(
            inst.label == label
            and (
                np.ceil(inst.start_sec * 25 / 16) <= snippet < np.floor(inst.end_sec * 25 / 16)
                or snippet == int((inst.start_sec + inst.end_sec) / 2 * 25 / 16)
            )
            for inst in gt.videos[vid].instances
        )


def test_write_points_is_sorted_and_formatted(tmp_path):
    points = [Point("v2", 1.0, "a"), Point("v1", 10.25, BG), Point("v1", 2.0 / 3.0, "b")]
    write_points(points, tmp_path / "p.csv")
    assert (tmp_path / "p.csv").read_text() == "v1,0.666667,b\nv1,10.250000,background\nv2,1.000000,a\n"


def test_read_points_header_blank_lines_cr_whitespace_and_bom(tmp_path):
    path = tmp_path / "p.csv"
    path.write_bytes("\ufeffvideo_id,time,label\r\n\r\n v1 , 1.5 , Jump \r\nv2,0,background\r\n\n".encode())
    assert read_points(path) == [Point("v1", 1.5, "Jump"), Point("v2", 0.0, BG)]
    path.write_bytes(b"v1,1.5,a\rv1,2.5,b\r")  # old Mac line ends
    assert [p.time_sec for p in read_points(path)] == [1.5, 2.5]


def test_read_points_lacp_and_hrpro_layouts(tmp_path):
    lacp = tmp_path / "lacp.csv"
    lacp.write_text(
        "class,class_index,start_frame,stop_frame,video_id,point\nHighJump,11,100,200,v1,150\nLongJump,13,0,60,v2,30\n"
    )
    hrpro = tmp_path / "hrpro.csv"
    hrpro.write_text("class,start_frame,stop_frame,video_id,point\nHighJump,100,200,v1,150\n")
    videos = {"v1": video("v1", fps=30.0), "v2": video("v2")}
    lookup = fps_lookup_for(videos, {"v2": 25.0})
    assert read_points(lacp, fps_lookup=lookup) == [
        Point("v1", 5.0, "HighJump"),
        Point("v2", 1.2, "LongJump"),
    ]
    assert read_points(hrpro, fps_lookup=lookup) == [Point("v1", 5.0, "HighJump")]
    with pytest.raises(InputError, match=r"lacp.csv line 2: no per-video fps"):
        read_points(lacp)
    with pytest.raises(InputError, match=r"line 3: no valid fps for video 'v2'"):
        read_points(lacp, fps_lookup=fps_lookup_for(videos))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "point file is empty"),
        (b"\n \n", "point file is empty"),
        (b"v1,1.0,a\nv1,\xff2.0,a\n", "line 2: not UTF-8"),
        (b"v1,1.0,a\nv1,2.0\n", "line 2: expected 3 fields"),
        (b"v1,abc,a\n", "line 1 video 'v1': time 'abc' is not a number"),
        (b"v1,nan,a\n", "time 'nan' is not finite"),
        (b"v1,inf,a\n", "time 'inf' is not finite"),
        (b"v1,1,a\n\nv1,-0.5,a\n", "line 3 video 'v1': negative time '-0.5'"),
        (b"v1,1.0,\n", "empty label"),
    ],
)
def test_read_points_errors_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match="bad.csv") as err:
        read_points(path)
    assert message in str(err.value)


def test_read_points_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.csv: point file not found"):
        read_points(tmp_path / "nope.csv")


# ---------------------------------------------------------------------------------- annotator choice


def test_choose_annotator_per_video_and_fixed():
    ids = [f"v{i:02d}" for i in range(30)]
    files = [[p for v in ids for p in (Point(v, 1.0 + k, "a"), Point(v, 5.0 + k, "a"))] for k in range(3)]
    files[0].append(Point("only0", 3.0, "a"))
    chosen = choose_annotator(files, seed=1)
    annotator = {}
    for p in chosen:
        k = int(p.time_sec) - 1 if p.time_sec < 5 else int(p.time_sec) - 5
        annotator.setdefault(p.video_id, set()).add(k if p.video_id != "only0" else 0)
    assert all(len(ks) == 1 for ks in annotator.values())  # one annotator per video
    assert len(chosen) == 2 * 30 + 1 and annotator["only0"] == {0}
    assert {next(iter(ks)) for v, ks in annotator.items() if v != "only0"} == {0, 1, 2}
    assert choose_annotator(files, seed=1) == chosen
    # the draw is uniform over a video's annotators and redrawn per seed: 300 seeds give each ~100 times
    picks = [
        int(next(p.time_sec for p in choose_annotator(files, seed=s) if p.video_id == "v00")) - 1 for s in range(300)
    ]
    assert all(70 <= picks.count(k) <= 130 for k in range(3)), [picks.count(k) for k in range(3)]  # ~3.7 sigma
    assert choose_annotator(files, seed=9, fixed=2) == sorted(files[2], key=lambda p: (p.video_id, p.time_sec))
    with pytest.raises(InputError, match="fixed annotator 3 does not exist"):
        choose_annotator(files, seed=0, fixed=3)


# ----------------------------------------------------------------------------- mapping real click files

# Measured on the vendored SF-Net click files, fps 25, stride 16 (GTEA's ground truth carries fps 15).
THUMOS_COUNTS = {  # annotator: (points, outside video, unknown video)
    1: (2980, 25, 0),
    2: (2920, 29, 1),  # annotator 2 has one click on 'ideo_validation_0000945' (typo'd id)
    3: (3014, 29, 0),
    4: (2986, 25, 0),
}
GTEA_POINTS = {1: 369, 2: 367, 3: 377, 4: 367}


@pytest.mark.parametrize("annotator", [1, 2, 3, 4])
def test_map_thumos14_click_files(annotator, caplog):
    gt, videos = thumos_validation()
    assert len(videos) == 200 and len(gt.classes) == 20
    path = VENDOR / "thumos14" / f"points_annotator{annotator}.csv"
    with caplog.at_level(logging.WARNING):
        mapped = map_points(
            read_points(path), {v.video_id: v for v in videos}, 25.0, 16, gt.class_index, source=str(path)
        )
    n_points, n_outside, n_unknown = THUMOS_COUNTS[annotator]
    report = mapped.report
    assert (report.n_points, report.n_outside, report.n_unknown_video) == (n_points, n_outside, n_unknown)
    assert report.n_mapped == len(mapped) == n_points - n_outside - n_unknown
    assert f"dropped {n_outside} point(s) beyond" in caplog.text
    assert mapped.class_index.min() >= 1 and mapped.class_index.max() <= 20  # no background clicks
    assert mapped.snippet.dtype == np.int64 and mapped.class_index.dtype == np.int64
    counts = {v.video_id: max(1, int(v.duration_sec * 25 / 16)) for v in videos}
    assert all(s < counts[vid] for vid, s in zip(mapped.video_id, mapped.snippet, strict=True))
    assert report.summary.endswith(f"{n_outside} outside video, {n_unknown} unknown video")


@pytest.mark.parametrize("annotator", [1, 2, 3, 4])
def test_map_gtea_click_files(annotator):
    gt = load_ground_truth(VENDOR / "gtea" / "groundtruth.json")
    path = VENDOR / "gtea" / f"points_annotator{annotator}.csv"
    mapped = map_points(read_points(path), gt.videos, 25.0, 16, gt.class_index, strict=True, source=str(path))
    assert mapped.report.n_outside == 0 and mapped.report.n_unknown_video == 0
    assert len(mapped) == GTEA_POINTS[annotator]
    assert len(mapped.by_video()) == 21


def test_map_points_feature_length_override_and_strict_errors():
    v = video("v", duration=10.0)
    points = [Point("v", 9.5, "a"), Point("v", 12.5, "a"), Point("w", 1.0, "a")]
    mapped = map_points(points, {"v": v}, 1.0, 1, {"a": 1})
    assert (mapped.report.n_outside, mapped.report.n_unknown_video, len(mapped)) == (1, 1, 1)
    longer = map_points(points, {"v": v}, 1.0, 1, {"a": 1}, snippet_counts={"v": 13})
    assert longer.snippet.tolist() == [9, 12]
    with pytest.raises(InputError, match=r"src.csv: video 'w' at 1.000 s is not in the ground truth"):
        map_points(points, {"v": v}, 1.0, 1, {"a": 1}, strict=True, source="src.csv")
    with pytest.raises(InputError, match=r"video 'v' at 12.500 s, after its 10 snippets"):
        map_points(points[:2], {"v": v}, 1.0, 1, {"a": 1}, strict=True)
    with pytest.raises(InputError, match=r"video 'v': label 'b' is not a class"):
        map_points([Point("v", 1.0, "b")], {"v": v}, 1.0, 1, {"a": 1})
    with pytest.raises(InputError, match="invalid time -1.0"):
        map_points([Point("v", -1.0, "a")], {"v": v}, 1.0, 1, {"a": 1})
    background = map_points([Point("v", 3.0, "bg")], {"v": v}, 1.0, 1, {"a": 1}, background_label="bg")
    assert background.class_index.tolist() == [0]
    assert len(map_points([], {"v": v}, 1.0, 1, {"a": 1})) == 0


# ------------------------------------------------------------------------------------------------ CLI


@pytest.fixture
def tiny_gt(tmp_path) -> Path:
    path = tmp_path / "gt.json"
    path.write_text(
        json.dumps(
            {
                "database": {
                    "v1": {
                        "subset": "validation",
                        "duration": 30.0,
                        "annotations": [
                            {"segment": [2.0, 6.0], "label": "Jump"},
                            {"segment": [12.0, 20.0], "label": "Run"},
                        ],
                    },
                    "v2": {
                        "subset": "validation",
                        "duration": 12.0,
                        "annotations": [{"segment": [1.0, 4.0], "label": "Run"}],
                    },
                    "t1": {
                        "subset": "test",
                        "duration": 9.0,
                        "annotations": [{"segment": [1.0, 4.0], "label": "Run"}],
                    },
                }
            }
        )
    )
    return path


def test_cli_simulates_and_checks(tiny_gt, tmp_path, capsys):
    out = tmp_path / "points.csv"
    args = [
        "annotate",
        str(tiny_gt),
        "--scheme",
        "soda",
        "--subset",
        "validation",
        "--fps",
        "25",
        "--stride",
        "16",
        "--seed",
        "3",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    summary = capsys.readouterr().out.strip()
    points = read_points(out)
    n_bg = sum(p.label == BG for p in points)
    assert summary == (
        f"wrote {out}: 2 videos, {len(points)} points ({len(points) - n_bg} action, "
        f"{n_bg} background), scheme soda, seed 3"
    )
    assert {p.video_id for p in points} == {"v1", "v2"} and n_bg > 0
    first = out.read_bytes()
    assert main(args) == 0 and out.read_bytes() == first
    assert main(["annotate", str(tiny_gt), "--check", str(out), "--fps", "25", "--stride", "16"]) == 0
    assert (
        capsys.readouterr()
        .out.strip()
        .endswith(f"{len(points)} points, {len(points)} mapped, 0 outside video, 0 unknown video, 2 videos")
    )


def test_cli_checks_the_real_thumos14_files(capsys):
    files = [str(VENDOR / "thumos14" / f"points_annotator{k}.csv") for k in range(1, 5)]
    argv = [
        "annotate",
        str(VENDOR / "thumos14" / "groundtruth.json"),
        "--subset",
        "validation",
        "--fps",
        "25",
        "--stride",
        "16",
    ]
    assert main(argv + [x for f in files for x in ("--check", f)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    for line, (k, (n, outside, unknown)) in zip(lines, THUMOS_COUNTS.items(), strict=True):
        assert f"points_annotator{k}.csv: {n} points" in line
        assert f"{outside} outside video, {unknown} unknown video" in line


@pytest.mark.parametrize(
    ("content", "extra", "expected"),
    [
        ("v1,1.0,Jump\nv1,2.0\n", [], ["line 2", "expected 3 fields"]),
        ("v1,1.0,Jump\nv2,2.0,Swim\n", [], ["video 'v2'", "label 'Swim'"]),
        ("v1,-3.0,Jump\n", [], ["line 1", "negative time '-3.0'"]),
        ("v1,1.0,Jump\nv2,12.5,Run\n", ["--strict"], ["video 'v2'", "12.500 s"]),
        ("v1,1.0,Jump\nv9,2.0,Run\n", ["--strict"], ["video 'v9'", "not in the ground truth"]),
        (None, [], ["missing.csv", "not found"]),
    ],
    ids=["field-count", "label", "negative", "beyond-video", "unknown-video", "missing-file"],
)
def test_cli_bad_input_is_one_line(tiny_gt, tmp_path, capsys, content, extra, expected):
    path = tmp_path / ("missing.csv" if content is None else "clicks.csv")
    if content is not None:
        path.write_text(content)
    code = main(["annotate", str(tiny_gt), "--check", str(path), "--fps", "25", "--stride", "16", *extra])
    err = capsys.readouterr().err
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("pointtal annotate: error: ") and path.name in err
    for text in expected:
        assert text in err


def test_cli_needs_a_mode(tiny_gt, capsys):
    assert main(["annotate", str(tiny_gt)]) == 2
    assert "give --scheme NAME and --out FILE" in capsys.readouterr().err
