"""Clicks in and out of VIA 3, Label Studio's video timeline and the LACP / HR-Pro point CSV (issue 23, item 3).

Round trips: files pointtal writes import back to the same clicks (VIA: exactly; Label Studio and LACP: to the
frame, and a second export is byte-identical). Files written here by hand in each tool's documented layout import
to the clicks they hold. Malformed files are one-line errors naming the file and the record.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from pointtal.cli import main
from pointtal.data.annotations import Instance, Video
from pointtal.data.interchange import (
    read_labelstudio,
    read_via,
    video_id_of,
    write_labelstudio,
    write_lacp,
    write_via,
)
from pointtal.data.points import Point, fps_lookup_for, map_points, read_points, write_points
from pointtal.errors import InputError

FPS = {"vid_a": 30.0, "vid_b": 29.97, "vid.c": 25.0}


def _lookup(video_id: str) -> float:
    return FPS[video_id]


def _clicks(seed: int = 0) -> list[Point]:
    """Arbitrary click times (6 decimals, as a pointtal CSV holds them), some on one video, background included."""
    rng = np.random.default_rng(seed)
    points = []
    for video_id in FPS:
        for t in np.round(rng.uniform(0, 120, size=7), 6):
            points.append(Point(video_id, float(t), str(rng.choice(["Jump", "Run Fast", "background"]))))
    return sorted(points, key=lambda p: (p.video_id, p.time_sec, p.label))


def _same(a: list[Point], b: list[Point]) -> None:
    assert [(p.video_id, p.time_sec, p.label) for p in a] == [(p.video_id, p.time_sec, p.label) for p in b]


# ------------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_via_files_written_by_pointtal_import_back_identically(tmp_path, suffix):
    clicks = _clicks()
    path = tmp_path / f"project{suffix}"
    write_via(clicks, path)
    back = read_via(path)
    _same(back, clicks)  # exact times: VIA stores seconds
    again = tmp_path / f"again{suffix}"
    write_via(back, again)
    assert again.read_bytes() == path.read_bytes()


def test_labelstudio_files_written_by_pointtal_import_back_to_the_frame(tmp_path):
    clicks = _clicks(1)
    path = tmp_path / "tasks.json"
    write_labelstudio(clicks, path, _lookup)
    back = read_labelstudio(path, _lookup)
    assert [(p.video_id, p.label) for p in back] == [(p.video_id, p.label) for p in clicks]
    for p, q in zip(clicks, back, strict=True):  # the frame holding the click, read back as its start time
        fps = FPS[p.video_id]
        assert q.time_sec <= p.time_sec + 1e-9 and p.time_sec - q.time_sec < 1 / fps
    again = tmp_path / "again.json"
    write_labelstudio(back, again, _lookup)
    assert again.read_bytes() == path.read_bytes()
    _same(read_labelstudio(again, _lookup), back)  # frame-aligned clicks round-trip exactly


def test_lacp_export_reads_back_onto_the_same_snippets(tmp_path):
    clicks = [p for p in _clicks(2) if p.label != "background"]
    background = Point("vid_a", 3.0, "background")
    videos = {v: Video(v, "validation", 130.0, None, (Instance(10.0, 20.0, "Jump"),)) for v in FPS}
    inside = Point("vid_a", 15.0, "Jump")
    path = tmp_path / "point_labels.csv"
    dropped = write_lacp([*clicks, inside, background], path, _lookup, ("Jump", "Run Fast"), videos)
    assert dropped == 1
    lines = path.read_text().splitlines()
    assert lines[0] == "class,class_index,start_frame,stop_frame,video_id,point"
    assert "Jump,0,300,600,vid_a,450" in lines  # the instance holding the click gives start / stop frames
    back = read_points(path, fps_lookup=_lookup)
    assert len(back) == len(clicks) + 1
    geometry = {v: Video(v, "validation", 130.0, FPS[v], ()) for v in FPS}  # snippets of 16 native frames
    classes = {"Jump": 1, "Run Fast": 2}
    a = map_points([*clicks, inside], geometry, 25.0, 16, classes)
    b = map_points(back, geometry, 25.0, 16, classes)
    assert np.array_equal(a.snippet, b.snippet) and np.array_equal(a.class_index, b.class_index)


# ------------------------------------------------------------------------------- documented layouts

VIA_PROJECT = {
    "project": {
        "pid": "__VIA_PROJECT_ID__",
        "rev": "__VIA_PROJECT_REV_ID__",
        "rev_timestamp": "__VIA_PROJECT_REV_TIMESTAMP__",
        "pname": "Unnamed VIA Project",
        "creator": "VGG Image Annotator",
        "created": 1573815248007,
        "vid_list": ["1", "2"],
    },
    "config": {"file": {"loc_prefix": {"1": "", "2": "", "3": "", "4": ""}}, "ui": {}},
    "attribute": {
        "1": {
            "aname": "action",
            "anchor_id": "FILE1_Z2_XY0",
            "type": 4,
            "desc": "",
            "options": {"0": "Jump", "1": "Run Fast"},
            "default_option_id": "",
        },
        "2": {
            "aname": "note",
            "anchor_id": "FILE1_Z2_XY0",
            "type": 1,
            "desc": "",
            "options": {},
            "default_option_id": "",
        },
        "3": {
            "aname": "object",
            "anchor_id": "FILE1_Z1_XY1",
            "type": 1,
            "desc": "",
            "options": {},
            "default_option_id": "",
        },
    },
    "file": {
        "1": {"fid": "1", "fname": "vid_a.mp4", "type": 4, "loc": 1, "src": ""},
        "2": {
            "fid": "2",
            "fname": "http://host/videos/vid.c.webm",
            "type": 4,
            "loc": 2,
            "src": "http://host/videos/vid.c.webm",
        },
    },
    "view": {"1": {"fid_list": ["1"]}, "2": {"fid_list": ["2"]}},
    "metadata": {
        "1_kX3bnRrw": {"vid": "1", "flg": 0, "z": [2.5, 4.1], "xy": [], "av": {"1": "0", "2": "first"}},
        "1_Ab9xYz01": {"vid": "1", "flg": 0, "z": [7.25], "xy": [], "av": {"1": "1"}},
        "1_box00001": {"vid": "1", "flg": 0, "z": [3.0], "xy": [2, 10, 20, 50, 80], "av": {"3": "ball"}},
        "2_q2W3e4R5": {"vid": "2", "flg": 0, "z": [60.0, 61.0], "xy": [], "av": {"1": "1"}},
    },
}


def test_a_via_project_in_its_documented_layout_imports(tmp_path):
    path = tmp_path / "via_project.json"
    path.write_text(json.dumps(VIA_PROJECT))
    _same(
        read_via(path),
        [Point("vid.c", 60.5, "Run Fast"), Point("vid_a", 3.3, "Jump"), Point("vid_a", 7.25, "Run Fast")],
    )  # box in a frame: no click; segments: middle


def test_a_via_csv_export_in_its_documented_layout_imports(tmp_path):
    attributes = json.dumps(VIA_PROJECT["attribute"])
    path = tmp_path / "via_export.csv"
    path.write_text(
        "# Exported using VGG Image Annotator (http://www.robots.ox.ac.uk/~vgg/software/via)\n"
        "# Notes:\n"
        "# - temporal coordinate of [4.633] denotes a still video frame at 4.633 sec.\n"
        '# SHAPE_ID = {"POINT":1,"RECTANGLE":2}\n'
        '# FLAG_ID = {"RESERVED_FOR_FUTURE":1}\n'
        f"# ATTRIBUTE = {attributes}\n"
        "# CSV_HEADER = metadata_id,file_list,flags,temporal_coordinates,spatial_coordinates,metadata\n"
        '1_kX3bnRrw,"[""vid_a.mp4""]",0,"[2.5,4.1]","[]","{""1"":""0"",""2"":""first""}"\n'
        '1_box00001,"[""vid_a.mp4""]",0,"[3]","[2,10,20,50,80]","{""3"":""ball""}"\n'
        '2_q2W3e4R5,"[""vid_b.avi""]",0,"[12.5]","[]","{""1"":""1""}"\n'
    )
    _same(read_via(path), [Point("vid_a", 3.3, "Jump"), Point("vid_b", 12.5, "Run Fast")])


def test_a_labelstudio_export_in_its_documented_layout_imports(tmp_path):
    tasks = [
        {
            "id": 7,
            "data": {"video": "/data/upload/3/1a2b3c4d-vid_a.mp4"},
            "annotations": [
                {
                    "id": 1,
                    "was_cancelled": False,
                    "result": [
                        {
                            "id": "r1",
                            "type": "timelinelabels",
                            "from_name": "videoLabels",
                            "to_name": "video",
                            "origin": "manual",
                            "value": {"ranges": [{"start": 31, "end": 31}], "timelinelabels": ["Jump"]},
                        },
                        {
                            "id": "r2",
                            "type": "timelinelabels",
                            "from_name": "videoLabels",
                            "to_name": "video",
                            "value": {
                                "ranges": [{"start": 61, "end": 91}, {"start": 301, "end": 301}],
                                "timelinelabels": ["Run Fast"],
                            },
                        },
                        {
                            "id": "r3",
                            "type": "videorectangle",
                            "from_name": "box",
                            "to_name": "video",
                            "value": {
                                "sequence": [
                                    {
                                        "frame": 10,
                                        "enabled": True,
                                        "rotation": 0,
                                        "x": 1,
                                        "y": 2,
                                        "width": 3,
                                        "height": 4,
                                        "time": 0.3,
                                    },
                                    {"frame": 20, "enabled": False, "time": 0.6},
                                ],
                                "labels": ["Jump"],
                            },
                        },
                        {
                            "id": "r4",
                            "type": "choices",
                            "from_name": "quality",
                            "to_name": "video",
                            "value": {"choices": ["good"]},
                        },
                    ],
                }
            ],
        },
        {
            "id": 8,
            "data": {"video": "s3://bucket/vid_b.mp4"},
            "annotations": [{"id": 2, "was_cancelled": True, "result": []}],
        },
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    known = {"vid_a": None, "vid_b": None}
    _same(
        read_labelstudio(path, _lookup, known),
        [
            Point("vid_a", 0.3, "Jump"),
            Point("vid_a", 1.0, "Jump"),
            Point("vid_a", 2.5, "Run Fast"),
            Point("vid_a", 10.0, "Run Fast"),
        ],
    )


def test_video_ids_drop_only_a_video_extension():
    assert video_id_of("C:\\clips\\v_-abc.mp4") == "v_-abc"
    assert video_id_of("http://h/x/video_test_0000004.MP4?token=1") == "video_test_0000004"
    assert video_id_of("vid.c") == "vid.c"


# --------------------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    "change, pattern",
    [
        (lambda d: d["metadata"]["1_Ab9xYz01"].update(z=[-1.0]), r"via.json: metadata '1_Ab9xYz01': time -1.0"),
        (lambda d: d["metadata"]["1_Ab9xYz01"].update(z=[5.0, 4.0]), r"metadata '1_Ab9xYz01': segment .* ends before"),
        (
            lambda d: d["metadata"]["1_Ab9xYz01"].update(av={"1": "7"}),
            r"metadata '1_Ab9xYz01': attribute 1 has no "
            r"option '7'",
        ),
        (lambda d: d["metadata"]["1_Ab9xYz01"].update(av={}), r"metadata '1_Ab9xYz01': no value for attribute 1"),
        (lambda d: d["metadata"]["1_Ab9xYz01"].update(vid="9"), r"metadata '1_Ab9xYz01': view '9' names no file"),
        (lambda d: d.pop("metadata"), r"via.json: not a VIA 3 project"),
        (lambda d: d["attribute"].clear(), r"via.json: no VIA attribute"),
    ],
)
def test_bad_via_projects_are_one_line_errors_naming_the_record(tmp_path, change, pattern):
    data = json.loads(json.dumps(VIA_PROJECT))
    change(data)
    path = tmp_path / "via.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=pattern) as err:
        read_via(path)
    assert "\n" not in str(err.value)


def test_bad_via_csv_rows_and_labelstudio_tasks_name_their_line_or_task(tmp_path):
    path = tmp_path / "via.csv"
    path.write_text(
        f"# ATTRIBUTE = {json.dumps(VIA_PROJECT['attribute'])}\n"
        '1_a,"[""vid_a.mp4""]",0,"[1.0]","[]","{""1"":""0""}"\n'
        '1_b,"[""vid_a.mp4""]",0,"[1.0,","[]","{""1"":""0""}"\n'
    )
    with pytest.raises(InputError, match=r"via.csv line 3: temporal_coordinates '\[1.0,' is not valid JSON"):
        read_via(path)
    ls = tmp_path / "ls.json"
    result = {
        "id": "r9",
        "type": "timelinelabels",
        "value": {"ranges": [{"start": 0, "end": 3}], "timelinelabels": ["Jump"]},
    }
    ls.write_text(json.dumps([{"id": 5, "data": {"video": "vid_a.mp4"}, "annotations": [{"result": [result]}]}]))
    with pytest.raises(InputError, match=r"ls.json: task 5 result r9: frame 0 is not a whole number >= 1"):
        read_labelstudio(ls, _lookup)
    result["value"] = {"ranges": [{"start": 1, "end": 3}], "timelinelabels": ["Jump", "Run Fast"]}
    ls.write_text(json.dumps([{"id": 5, "data": {"video": "vid_a.mp4"}, "annotations": [{"result": [result]}]}]))
    with pytest.raises(InputError, match=r"task 5 result r9: expected one class"):
        read_labelstudio(ls, _lookup)
    result["value"] = {"ranges": [{"start": 1, "end": 3}], "timelinelabels": ["Jump"]}
    ls.write_text(json.dumps([{"id": 5, "data": {"video": "unknown.mp4"}, "annotations": [{"result": [result]}]}]))
    with pytest.raises(InputError, match=r"task 5 result r9: no frame rate for video 'unknown'"):
        read_labelstudio(ls, fps_lookup_for({}, FPS))
    ls.write_text(
        '[{"id": 5, "data": {"video": "vid_a.mp4"}, "annotations": [{"result": [{"id": "r9", '
        '"type": "timelinelabels", "value": {"ranges": [{"start": NaN, "end": 3}], '
        '"timelinelabels": ["Jump"]}}]}]}]'
    )
    with pytest.raises(InputError, match=r"task 5 result r9: frame nan is not a whole number"):
        read_labelstudio(ls, _lookup)
    ls.write_text('[{"id": 1,\n oops}]')
    with pytest.raises(InputError, match=r"ls.json line 2: not valid JSON"):
        read_labelstudio(ls, _lookup)


# ---------------------------------------------------------------------------------------------- CLI


def test_annotate_imports_and_exports_through_the_cli(tiny_data, tmp_path, capsys):
    gt = tiny_data / "annotations.json"
    clicks = sorted((tiny_data / "points").glob("annotator*.csv"))[0]
    points = read_points(clicks)
    via = tmp_path / "via.json"
    assert main(["annotate", str(gt), "--export", str(clicks), "--format", "via", "--out", str(via)]) == 0
    back = tmp_path / "back.csv"
    assert main(["annotate", str(gt), "--import", str(via), "--format", "via", "--out", str(back)]) == 0
    write_points(points, tmp_path / "original.csv")
    assert back.read_bytes() == (tmp_path / "original.csv").read_bytes()
    assert f"{len(points)} points" in capsys.readouterr().out
    fps = tmp_path / "fps.json"
    fps.write_text(json.dumps({p.video_id: 30.0 for p in points}))
    lacp = tmp_path / "point_labels.csv"
    assert (
        main(
            [
                "annotate",
                str(gt),
                "--export",
                str(clicks),
                "--format",
                "lacp",
                "--fps-dict",
                str(fps),
                "--out",
                str(lacp),
            ]
        )
        == 0
    )
    assert lacp.read_text().startswith("class,class_index,start_frame,stop_frame,video_id,point\n")
    # imported labels must be classes of the ground truth: one line naming the file, nothing written
    data = json.loads(via.read_text())
    data["attribute"]["1"]["options"]["0"] = "NotAClass"
    via.write_text(json.dumps(data))
    assert main(["annotate", str(gt), "--import", str(via), "--format", "via", "--out", str(tmp_path / "x.csv")]) != 0
    assert "label 'NotAClass' is not a class of the ground truth" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    # the output guard: an input is never replaced, an edited output needs --overwrite
    assert main(["annotate", str(gt), "--import", str(via), "--format", "via", "--out", str(via)]) != 0
    back.write_text("edited\n")
    assert main(["annotate", str(gt), "--import", str(via), "--format", "via", "--out", str(back)]) != 0
    assert back.read_text() == "edited\n"


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["--import", "x.json", "--out", "o.csv"], r"--import needs --format"),
        (["--import", "x.json", "--format", "lacp", "--out", "o.csv"], r"--format lacp: cannot be imported"),
        (["--import", "x.json", "--export", "p.csv", "--format", "via", "--out", "o.csv"], r"not both"),
        (["--check", "p.csv", "--format", "via"], r"--format via: applies to --import / --export"),
        (["--export", "p.csv", "--format", "via", "--out", "o.json", "--strict"], r"--strict: applies to --check"),
        (["--export", "p.csv", "--format", "via", "--out", "o.json", "--seed", "2"], r"--seed 2: applies when"),
    ],
)
def test_import_export_options_are_checked_before_any_work(tmp_path, capsys, argv, pattern):
    assert main(["annotate", str(tmp_path / "missing.json"), *argv]) != 0
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert re.search(pattern, err), err
