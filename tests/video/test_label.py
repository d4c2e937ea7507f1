"""`pointtal label` without a browser: the click store (journal, CSV, replay, time), the JSON API and its bad
requests, range requests, what files are served, a kill -9 right after a POST, and the CLI's --stats."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
from pathlib import Path

import numpy as np
import pytest
from label_helpers import CLASSES, call, make_video, running_server, start_cli, stop_cli, write_classes

from pointtal.cli import main
from pointtal.data.points import read_points
from pointtal.errors import InputError
from pointtal.video.clicks import ClickStore, StoredPoint, journal_path, label_stats
from pointtal.video.label_server import frame_times, load_reference, parse_range

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def video_file(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4", seconds=2.0)


@pytest.fixture
def videos(tmp_path, video_file) -> Path:
    """A videos directory with two videos (copies of one generated clip)."""
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("clip.mp4", "other.mp4"):
        (folder / name).write_bytes(video_file.read_bytes())
    (folder / "notes.txt").write_text("not a video")
    return folder


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------------------- the store


def test_store_writes_through_and_reopens(tmp_path):
    out = tmp_path / "clicks.csv"
    store = ClickStore(out, "ann")
    a = store.add("v1", 3.25, "Jump")
    b = store.add("v1", 1.0, "background")
    c = store.add("v0", 2.0000004, "Run")
    assert (a.id, b.id, c.id) == (1, 2, 3)
    assert out.read_text() == "v0,2.000000,Run\nv1,1.000000,background\nv1,3.250000,Jump\n"
    assert store.delete(b.id) == b and store.delete(b.id) is None
    assert out.read_text() == "v0,2.000000,Run\nv1,3.250000,Jump\n"
    store.close()

    reopened = ClickStore(out, "ann")
    assert [(p.id, p.video, p.time_sec, p.label) for p in reopened.points()] == [
        (3, "v0", 2.0, "Run"),
        (1, "v1", 3.25, "Jump"),
    ]
    assert reopened.add("v1", 4.0, "Throw").id == 4  # ids continue, a deleted id is never reused
    reopened.close()
    records = [json.loads(line) for line in journal_path(out).read_text().splitlines()]
    assert [r["op"] for r in records] == ["add", "add", "add", "delete", "add"]
    assert all(r["annotator"] == "ann" for r in records)


def test_output_is_a_click_file_pointtal_reads(tmp_path, capsys):
    out = tmp_path / "clicks.csv"
    store = ClickStore(out)
    store.add("clip", 0.7, "Jump")
    store.add("clip", 1.9, "background")
    store.close()
    gt = tmp_path / "gt.json"
    gt.write_text(
        json.dumps(
            {
                "database": {
                    "clip": {
                        "subset": "validation",
                        "duration": 2.0,
                        "annotations": [{"segment": [0.5, 1.0], "label": "Jump"}],
                    }
                }
            }
        )
    )
    assert main(["annotate", str(gt), "--check", str(out), "--strict"]) == 0
    assert "2 points, 2 mapped, 0 outside video" in capsys.readouterr().out
    assert [(p.time_sec, p.label) for p in read_points(out)] == [(0.7, "Jump"), (1.9, "background")]


def test_a_torn_last_journal_line_is_dropped_and_appends_continue(tmp_path, caplog):
    out = tmp_path / "clicks.csv"
    store = ClickStore(out)
    store.add("v", 1.0, "Jump")
    store.close()
    with open(journal_path(out), "ab") as handle:  # a kill in the middle of an append
        handle.write(b'{"op": "add", "id": 2, "video": "v", "ti')
    store = ClickStore(out)
    assert "unfinished last line" in caplog.text
    assert [p.id for p in store.points()] == [1]
    store.add("v", 2.0, "Run")
    store.close()
    assert [p.time_sec for p in ClickStore(out).points()] == [1.0, 2.0]


def test_a_corrupt_journal_line_names_the_line(tmp_path):
    out = tmp_path / "clicks.csv"
    journal_path(out).write_text('{"op": "add", "id": 1, "video": "v", "time": 1, "label": "Jump"}\nnot json\n{}\n')
    with pytest.raises(InputError, match=r"clicks.csv.journal line 2: unreadable journal record"):
        ClickStore(out)


def test_an_existing_csv_without_journal_is_continued(tmp_path):
    out = tmp_path / "clicks.csv"
    out.write_text("v,1.5,Jump\nv,0.5,background\n")
    store = ClickStore(out)
    assert [(p.time_sec, p.label) for p in store.points()] == [(0.5, "background"), (1.5, "Jump")]
    store.add("v", 2.0, "Run")
    store.close()
    assert out.read_text() == "v,0.500000,background\nv,1.500000,Jump\nv,2.000000,Run\n"


def test_two_servers_cannot_write_one_file(tmp_path):
    store = ClickStore(tmp_path / "clicks.csv")
    with pytest.raises(InputError, match="another `pointtal label` is writing"):
        ClickStore(tmp_path / "clicks.csv")
    store.close()
    ClickStore(tmp_path / "clicks.csv").close()  # free again once the first one closed


def test_heartbeats_count_active_time_only(tmp_path):
    clock = FakeClock()
    out = tmp_path / "clicks.csv"
    store = ClickStore(out, clock=clock)
    assert store.heartbeat("a", start=True) == 0.0
    clock.now += 5
    assert store.heartbeat("a") == 5.0
    clock.now += 4.5
    assert store.heartbeat("a") == 9.5
    clock.now += 300  # tab hidden / machine asleep: not counted
    assert store.heartbeat("a") == 9.5
    clock.now += 3
    assert store.heartbeat("a", start=True) == 9.5  # first beat after a pause: nothing before it counts
    clock.now += 2
    assert store.heartbeat("b") == 0.0  # first beat of another video
    clock.now += 5
    assert store.heartbeat("b") == 5.0
    store.add("a", 1.0, "Jump")
    store.add("a", 2.0, "Run")
    store.add("b", 1.0, "background")
    store.add("c", 1.0, "Jump")
    store.close()
    stats = {s.video: s for s in label_stats(out)}
    assert (stats["a"].n_action, stats["a"].n_background, stats["a"].active_sec) == (2, 0, 9.5)
    assert stats["a"].sec_per_point == pytest.approx(4.75)
    assert (stats["b"].n_action, stats["b"].n_background, stats["b"].sec_per_point) == (0, 1, 5.0)
    assert (stats["c"].active_sec, stats["c"].sec_per_point) == (0.0, 0.0)


def test_stats_command_reports_seconds_per_video_and_point(tmp_path, capsys):
    clock = FakeClock()
    out = tmp_path / "clicks.csv"
    store = ClickStore(out, clock=clock)
    store.heartbeat("a", start=True)
    for _ in range(3):
        clock.now += 4
        store.heartbeat("a")
    store.add("a", 1.0, "Jump")
    store.add("a", 1.5, "Run")
    store.add("a", 3.0, "background")
    store.add("b", 3.0, "Run")
    store.set_done("a", True)
    store.close()
    assert main(["label", "--stats", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["a", "2", "1", "12.0", "4.0", "yes"]
    assert lines[2].split() == ["b", "1", "0", "0.0", "0.0", "-"]
    assert lines[3].split() == ["total", "(2", "videos)", "3", "1", "12.0", "3.0", "1"]
    assert lines[4] == "mean active seconds per video: 6.0"


# ------------------------------------------------------------------------------------------- the API


def test_every_endpoint(tmp_path, videos):
    gt = tmp_path / "gt.json"
    gt.write_text(
        json.dumps(
            {
                "database": {
                    "clip": {
                        "subset": "test",
                        "duration": 2.0,
                        "annotations": [{"segment": [0.5, 1.0], "label": "Jump"}],
                    }
                }
            }
        )
    )
    predictions = tmp_path / "p.json"
    predictions.write_text(
        json.dumps(
            {
                "results": {
                    "clip": [
                        {"label": "Run", "score": 0.2, "segment": [0.1, 0.4]},
                        {"label": "Jump", "score": 0.8, "segment": [0.4, 1.1]},
                    ],
                    "other": [{"label": "Run", "score": 0.5, "segment": [1.0, 1.5]}],
                }
            }
        )
    )
    out = tmp_path / "clicks.csv"
    with running_server(videos, out, ground_truth=gt, predictions=predictions) as (server, _):
        port = server.server_address[1]
        status, headers, page = call(port, "GET", "/")
        assert status == 200 and headers["Content-Type"].startswith("text/html") and b"/api/points" in page
        status, _, session = call(port, "GET", "/api/session")
        assert session["classes"] == list(CLASSES) and session["background"] == "background"
        assert session["snippet_sec"] == pytest.approx(16 / 25) and session["last_video"] is None
        status, _, listing = call(port, "GET", "/api/videos")
        assert [v["id"] for v in listing["videos"]] == ["clip", "other"]  # notes.txt is no video

        status, _, point = call(port, "POST", "/api/points", {"video": "clip", "time": 1.25, "label": "Jump"})
        assert status == 201 and point == {"id": 1, "video": "clip", "time": 1.25, "label": "Jump"}
        status, _, second = call(port, "POST", "/api/points", {"video": "clip", "time": 0, "label": "background"})
        assert status == 201 and second["id"] == 2
        assert out.read_text() == "clip,0.000000,background\nclip,1.250000,Jump\n"
        status, _, listed = call(port, "GET", "/api/points?video=clip")
        assert status == 200 and [p["id"] for p in listed["points"]] == [2, 1]
        assert call(port, "GET", "/api/points?video=other")[2]["points"] == []
        assert [v["points"] for v in call(port, "GET", "/api/videos")[2]["videos"]] == [2, 0]

        status, _, deleted = call(port, "DELETE", "/api/points/2")
        assert status == 200 and deleted["label"] == "background"
        assert out.read_text() == "clip,1.250000,Jump\n"

        call(port, "POST", "/api/points", {"video": "other", "time": 1, "label": "Run"})
        assert call(port, "GET", "/api/session")[2]["last_video"] == "other"  # the page reopens it
        call(port, "DELETE", "/api/points/3")
        status, _, reference = call(port, "GET", "/api/reference?video=clip")
        assert reference["ground_truth"] == [{"start": 0.5, "end": 1.0, "label": "Jump"}]
        assert [p["score"] for p in reference["predictions"]] == [0.8, 0.2]  # best first
        assert call(port, "GET", "/api/reference?video=other")[2]["ground_truth"] == []

        status, _, beat = call(port, "POST", "/api/heartbeat", {"video": "clip", "start": True})
        assert status == 200 and beat == {"video": "clip", "active_sec": 0.0}


BAD_REQUESTS = [  # (method, path, JSON body, extra headers, status, words of the error)
    ("GET", "/api/points", None, {}, 400, "missing query parameter 'video'"),
    ("GET", "/api/points?video=nope", None, {}, 404, "no video 'nope'"),
    ("GET", "/api/reference?video=", None, {}, 400, "missing query parameter"),
    ("GET", "/api/nothing", None, {}, 404, "no such page"),
    ("GET", "/../../etc/passwd", None, {}, 404, "no such page"),
    ("POST", "/api/points", {"video": "clip", "time": 1.0}, {}, 400, "missing ['label']"),
    ("POST", "/api/points", {"video": "clip", "time": 1.0, "label": "Jump", "x": 1}, {}, 400, "unknown ['x']"),
    ("POST", "/api/points", [1, 2], {}, 400, "must be a JSON object"),
    ("POST", "/api/points", {"video": "nope", "time": 1.0, "label": "Jump"}, {}, 404, "no video 'nope'"),
    ("POST", "/api/points", {"video": 7, "time": 1.0, "label": "Jump"}, {}, 400, "'video' must be a string"),
    ("POST", "/api/points", {"video": "clip", "time": -1, "label": "Jump"}, {}, 400, "between 0 and"),
    ("POST", "/api/points", {"video": "clip", "time": "1.0", "label": "Jump"}, {}, 400, "number of seconds"),
    ("POST", "/api/points", {"video": "clip", "time": True, "label": "Jump"}, {}, 400, "number of seconds"),
    ("POST", "/api/points", {"video": "clip", "time": 1e300, "label": "Jump"}, {}, 400, "between 0 and"),
    ("POST", "/api/points", {"video": "clip", "time": 1.0, "label": "Swim"}, {}, 400, "'Swim' is not a class"),
    ("POST", "/api/points", {"video": "clip", "time": 1.0, "label": None}, {}, 400, "is not a class"),
    (
        "POST",
        "/api/points",
        {"video": "clip", "time": 1.0, "label": "Jump"},
        {"Content-Type": "text/plain"},
        415,
        "application/json",
    ),
    (
        "POST",
        "/api/points",
        {"video": "clip", "time": 1.0, "label": "Jump"},
        {"Origin": "http://evil.example"},
        403,
        "may not use this server",
    ),
    (
        "POST",
        "/api/points",
        {"video": "clip", "time": 1.0, "label": "Jump"},
        {"Host": "evil.example"},
        403,
        "is not this server",
    ),
    ("POST", "/api/heartbeat", {"video": "clip", "start": "yes"}, {}, 400, "'start' must be true or false"),
    ("POST", "/api/videos", {}, {}, 405, "POST is not allowed"),
    ("DELETE", "/api/points/abc", None, {}, 400, "positive integer"),
    ("DELETE", "/api/points/-1", None, {}, 400, "positive integer"),
    ("DELETE", "/api/points/99", None, {}, 404, "no point with id 99"),
    ("DELETE", "/api/points", None, {}, 405, "DELETE is not allowed"),
    ("PUT", "/api/points", None, {}, 405, "not supported"),
    ("PATCH", "/api/points", None, {}, 405, "PATCH is not allowed"),
    ("PATCH", "/api/points/99", {"accepted": True}, {}, 404, "no point with id 99"),
    ("PATCH", "/api/points/99", {"time": 1.0}, {}, 404, "no point with id 99"),
    ("PATCH", "/api/points/x", {"time": 1.0}, {}, 400, "positive integer"),
    ("GET", "/api/frames", None, {}, 400, "missing query parameter 'video'"),
    ("POST", "/api/done", {"video": "clip", "done": 1}, {}, 400, "'done' must be true or false"),
    ("POST", "/api/done", {"video": "nope", "done": True}, {}, 404, "no video 'nope'"),
    ("POST", "/api/done", {"video": "clip"}, {}, 400, "missing ['done']"),
    ("BREW", "/api/points", None, {}, 405, ""),
]


def test_bad_requests_are_4xx_json_and_change_nothing(tmp_path, videos):
    out = tmp_path / "clicks.csv"
    with running_server(videos, out) as (server, _):
        port = server.server_address[1]
        for method, path, body, headers, expected, words in BAD_REQUESTS:
            status, _, answer = call(port, method, path, body, headers)
            assert status == expected, (method, path, body, answer)
            assert isinstance(answer, dict) and answer["status"] == expected and words in answer["error"], answer
        for raw in (b"NaN", b'{"video": "clip", "time": Infinity, "label": "Jump"}', b"{not json", b"\xff\xfe"):
            status, _, answer = call(port, "POST", "/api/points", raw=raw, headers={"Content-Type": "application/json"})
            assert status == 400 and "not JSON" in answer["error"], raw
        status, _, answer = call(
            port, "POST", "/api/points", raw=b"x" * 70000, headers={"Content-Type": "application/json"}
        )
        assert status == 413
        assert _raw_exchange(
            port, b"POST /api/points HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n\r\n" % port
        ).startswith(b"HTTP/1.1 411")
        answer = _raw_exchange(port, b"GARBAGE\r\n\r\n")  # an HTTP/0.9-style line: the answer has no headers
        assert json.loads(answer) == {"error": "Bad request syntax ('GARBAGE')", "status": 400}
        assert call(port, "GET", "/api/videos")[0] == 200  # still serving
        assert out.read_text() == "" and call(port, "GET", "/api/points?video=clip")[2]["points"] == []


def _raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# ------------------------------------------------------------------------------------------- video files


def test_videos_are_served_with_ranges(tmp_path, videos):
    data = (videos / "clip.mp4").read_bytes()
    size = len(data)
    with running_server(videos, tmp_path / "clicks.csv") as (server, _):
        port = server.server_address[1]
        status, headers, body = call(port, "GET", "/video/clip")
        assert status == 200 and body == data and headers["Accept-Ranges"] == "bytes"
        assert headers["Content-Type"] == "video/mp4"
        for header, first, last in (
            ("bytes=10-19", 10, 19),
            ("bytes=100-", 100, size - 1),
            ("bytes=-50", size - 50, size - 1),
            (f"bytes=5-{size + 99}", 5, size - 1),
        ):
            status, headers, body = call(port, "GET", "/video/clip", headers={"Range": header})
            assert status == 206, header
            assert headers["Content-Range"] == f"bytes {first}-{last}/{size}"
            assert body == data[first : last + 1] and int(headers["Content-Length"]) == last - first + 1
        status, headers, answer = call(port, "GET", "/video/clip", headers={"Range": f"bytes={size}-"})
        assert status == 416 and "outside" in answer["error"]
        status, _, body = call(port, "GET", "/video/clip", headers={"Range": "bytes=0-1,5-6"})
        assert status == 200 and body == data  # several ranges: the whole file (allowed by RFC 9110)


def test_parse_range_by_hand():
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-0", 100) == (0, 0)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-200", 100) == (0, 99)
    assert parse_range("items=0-5", 100) is None
    assert parse_range("bytes=-", 100) is None


def test_only_files_inside_the_videos_dir_are_served(tmp_path, videos, video_file):
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "private.mp4").write_bytes(b"secret bytes")
    (videos / "escape.mp4").symlink_to(outside / "private.mp4")
    (videos / "alias.mp4").symlink_to(videos / "clip.mp4")  # a link that stays inside is fine
    with running_server(videos, tmp_path / "clicks.csv") as (server, _):
        port = server.server_address[1]
        listed = [v["id"] for v in call(port, "GET", "/api/videos")[2]["videos"]]
        assert listed == ["alias", "clip", "other"]
        assert call(port, "GET", "/video/alias")[0] == 200
        for path in (
            "/video/escape",
            "/video/escape.mp4",
            "/video/../secret/private.mp4",
            "/video/%2e%2e/secret/private",
            "/video/..%2Fsecret%2Fprivate.mp4",
            "/video/clip.mp4",
            "/video/" + str(outside / "private.mp4"),
            "/video/notes",
        ):
            status, _, answer = call(port, "GET", path)
            assert status == 404 and answer["error"].startswith("no video") and "secret bytes" not in str(answer), path
        (videos / "other.mp4").unlink()  # swapped for a link out of the directory after start
        (videos / "other.mp4").symlink_to(outside / "private.mp4")
        status, _, _ = call(port, "GET", "/video/other")
        assert status == 404


# ------------------------------------------------------------------------------------------- crash safety, CLI


def test_kill_9_right_after_a_post_keeps_the_point(tmp_path, videos):
    classes, out = write_classes(tmp_path / "classes.txt"), tmp_path / "clicks.csv"
    process, port = start_cli(videos, classes, out)
    try:
        status, _, point = call(port, "POST", "/api/points", {"video": "other", "time": 0.84, "label": "Throw"})
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        stop_cli(process)
    assert status == 201
    assert out.read_text() == "other,0.840000,Throw\n"
    assert json.loads(journal_path(out).read_text().splitlines()[-1])["id"] == point["id"]

    process, port = start_cli(videos, classes, out)
    try:
        status, _, listed = call(port, "GET", "/api/points?video=other")
        assert listed["points"] == [point]
        assert call(port, "GET", "/api/session")[2]["last_video"] == "other"
        status, _, second = call(port, "POST", "/api/points", {"video": "other", "time": 1.5, "label": "Run"})
        assert second["id"] == point["id"] + 1
    finally:
        stop_cli(process)  # SIGTERM, then SIGKILL: no server is left behind even where SIGINT is ignored
    assert process.returncode == 0
    assert out.read_text() == "other,0.840000,Throw\nother,1.500000,Run\n"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--out", "x.csv"], "give VIDEOS_DIR and --classes"),
        (["{videos}", "--classes", "{missing}", "--out", "x.csv"], "class list not found"),
        (["{empty}", "--classes", "{classes}", "--out", "x.csv"], "no video files"),
        (["{videos}", "--classes", "{comma}", "--out", "x.csv"], "cannot be written to a click CSV"),
        (["{videos}", "--classes", "{classes}", "--out", "x.csv", "--stride", "0"], "--stride 0: must be >= 1"),
        (["--stats", "--out", "{missing}"], "no journal next to"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, videos, capsys, args, words):
    (tmp_path / "empty").mkdir()
    (tmp_path / "comma.txt").write_text("Jump\nHigh,Jump\n")
    names = {
        "videos": videos,
        "missing": tmp_path / "missing.txt",
        "empty": tmp_path / "empty",
        "classes": write_classes(tmp_path / "classes.txt"),
        "comma": tmp_path / "comma.txt",
    }
    assert main(["label", *(a.format(**names) for a in args)]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not Path("x.csv").exists()


def test_reference_files_of_other_videos_are_reported_before_serving(tmp_path, videos, caplog):
    """Ground truth or predictions that name none of the served videos (a wrong file) are said in one line each
    when the session is made, before the server starts; an unreadable one is refused there."""
    segment = {"subset": "test", "duration": 9.0, "annotations": [{"segment": [1.0, 2.0], "label": "Jump"}]}
    gt = tmp_path / "elsewhere.json"
    gt.write_text(json.dumps({"database": {"far1": segment, "far2": segment, "clip": segment}}))
    predictions = tmp_path / "predicted.json"
    predictions.write_text(json.dumps({"results": {"far1": [{"label": "Jump", "score": 0.5, "segment": [1, 2]}]}}))
    load_reference(CLASSES, gt, predictions, ["clip", "other"])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"--predictions {predictions}: none of its 1 videos (far1, ...) is in the videos directory "
        "(clip, other, ...; ids are file names without extension): nothing of it is shown"
    ]
    gt.write_text(json.dumps({"database": {"far1": segment}}))
    caplog.clear()
    reference = load_reference(CLASSES, gt, None, ["clip", "other"])
    assert "--ground-truth" in caplog.text and "none of its 1 videos (far1" in caplog.text
    assert set(reference) == {"far1"}
    gt.write_text("{not json")
    with pytest.raises(InputError, match="elsewhere.json"):
        load_reference(CLASSES, gt, None, ["clip"])


# ------------------------------------------------------------------------------------------- issue 18


def test_a_csv_edited_by_hand_while_stopped_keeps_the_users_rows(tmp_path, caplog):
    """The journal used to win on restart: a row added or removed by hand vanished or came back."""
    out = tmp_path / "clicks.csv"
    store = ClickStore(out, "ann")
    for t, label in ((1.0, "Jump"), (2.0, "Run"), (3.0, "Run")):
        store.add("v", t, label)
    store.close()
    out.write_text("v,1.0,Jump\nv,3.000000,Run\nv,4.5,Throw\nv,4.5,Throw\n")  # 2.0 removed, 4.5 added twice
    caplog.clear()
    store = ClickStore(out, "ann")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert (
        len(warnings) == 1
        and "edited since its journal was written (2 rows added, 1 removed by hand)" in warnings[0]
        and "keeping the CSV's rows" in warnings[0]
    )
    assert [(p.time_sec, p.label) for p in store.points()] == [
        (1.0, "Jump"),
        (3.0, "Run"),
        (4.5, "Throw"),
        (4.5, "Throw"),
    ]
    store.add("v", 5.0, "Jump")  # the next save keeps the user's rows
    store.close()
    assert out.read_text() == ("v,1.000000,Jump\nv,3.000000,Run\nv,4.500000,Throw\nv,4.500000,Throw\nv,5.000000,Jump\n")
    caplog.clear()
    reopened = ClickStore(out, "ann")  # the journal agrees now: nothing to say
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(reopened.points()) == 5 and reopened.add("v", 6.0, "Run").id == 7  # ids are never reused
    reopened.close()


def test_a_csv_one_change_behind_its_journal_is_a_kill_not_an_edit(tmp_path, caplog):
    """A kill between the journal's append and the CSV's rewrite leaves the CSV one change behind (and older):
    the journal's change is kept, without an "edited" warning (an edit by hand is newer than the journal)."""
    out = tmp_path / "clicks.csv"
    store = ClickStore(out)
    store.add("v", 1.0, "Jump")
    store.add("v", 2.0, "Run")
    store.close()
    with open(journal_path(out), "a") as journal:  # appended and fsynced; the kill came before the CSV
        journal.write(json.dumps({"op": "delete", "id": 1}) + "\n")
        journal.write(json.dumps({"op": "add", "id": 3, "video": "v", "time": 3.0, "label": "Run"}) + "\n")
    out.write_text("v,2.000000,Run\n")  # the CSV as the delete left it, one change behind
    os.utime(out, ns=(journal_path(out).stat().st_mtime_ns - 10**9,) * 2)
    caplog.clear()
    store = ClickStore(out)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert [p.id for p in store.points()] == [2, 3]
    store.close()
    assert out.read_text() == "v,2.000000,Run\nv,3.000000,Run\n"


def test_a_second_server_on_a_symlink_or_hard_link_of_the_csv_is_refused(tmp_path):
    """The lock was per path string: a server on another name of the same CSV started and handed out the same
    ids. The real file is locked now (its journal by resolved path, the CSV found at start by inode)."""
    out = tmp_path / "clicks.csv"
    out.write_text("v,1.0,Jump\n")
    link, hard = tmp_path / "link.csv", tmp_path / "hard.csv"
    link.symlink_to(out)
    for first, second in ((out, link), (link, out), (out, hard), (hard, out)):
        hard.unlink(missing_ok=True)  # every save replaces the file: a hard link holds until the first one
        os.link(out, hard)
        store = ClickStore(first)
        with pytest.raises(InputError, match="another `pointtal label` is writing to this file"):
            ClickStore(second)
        store.close()
        if second == hard:
            assert not journal_path(hard).exists()  # the refused server left no journal behind
    assert journal_path(link) == journal_path(out)
    store = ClickStore(link)  # free again; through the symlink, the real file is written and the link stays
    store.add("v", 2.0, "Run")
    store.close()
    assert link.is_symlink() and out.read_text() == "v,1.000000,Jump\nv,2.000000,Run\n"


def test_sigterm_stops_the_server_cleanly_and_releases_the_file(tmp_path, videos):
    """Only Ctrl+C (KeyboardInterrupt) used to stop the server: SIGTERM killed it without its last line."""
    classes, out = write_classes(tmp_path / "classes.txt"), tmp_path / "clicks.csv"
    out.write_text("other,0.5,Jump\n")
    process, port = start_cli(videos, classes, out)
    try:
        status, _, _ = call(port, "POST", "/api/points", {"video": "other", "time": 1.25, "label": "Run"})
        assert status == 201
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        stop_cli(process)
    assert process.returncode == 0, stderr
    assert "stopped; 2 points in" in stdout and "Traceback" not in stderr
    ClickStore(out).close()  # the lock was released
    assert out.read_text() == "other,0.500000,Jump\nother,1.250000,Run\n"
    # edited by hand while stopped: the next server keeps the user's rows and says so in one stderr line
    out.write_text("other,0.5,Jump\n")
    process, port = start_cli(videos, classes, out)
    try:
        assert [p["time"] for p in call(port, "GET", "/api/points?video=other")[2]["points"]] == [0.5]
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        stop_cli(process)
    lines = [line for line in stderr.splitlines() if "edited since" in line]
    assert len(lines) == 1 and "0 rows added, 1 removed by hand" in lines[0] and process.returncode == 0


# ------------------------------------------------------------------------------------------- issue 23: review, done


def test_review_moves_accepts_and_done_marks_are_journaled_and_replayed(tmp_path):
    out = tmp_path / "clicks.csv"
    store = ClickStore(out, "rev")
    a, b, c = store.add("v", 1.0, "Jump"), store.add("v", 2.0, "Run"), store.add("w", 3.0, "Jump")
    assert store.accept(a.id) == a and store.accept(a.id) == a  # twice: one record
    assert store.move(b.id, 0.5) == StoredPoint(b.id, "v", 0.5, "Run")
    assert store.move(99, 1.0) is None and store.accept(99) is None
    assert out.read_text() == "v,0.500000,Run\nv,1.000000,Jump\nw,3.000000,Jump\n"  # a move rewrites the CSV
    store.set_done("v", True)
    store.set_done("w", True)
    store.set_done("w", False)
    store.set_done("w", False)  # no change: no record
    store.delete(c.id)
    assert store.reviewed("v") == [a.id, b.id] and store.reviewed("w") == []
    store.close()
    ops = [json.loads(line)["op"] for line in journal_path(out).read_text().splitlines()]
    assert ops == ["add"] * 3 + ["accept", "move", "done", "done", "done", "delete"]

    reopened = ClickStore(out, "rev")
    assert [(p.id, p.time_sec) for p in reopened.points("v")] == [(b.id, 0.5), (a.id, 1.0)]
    assert reopened.reviewed() == [a.id, b.id] and reopened.is_done("v") and not reopened.is_done("w")
    reopened.close()


def test_a_kill_between_a_move_and_the_csv_keeps_the_move(tmp_path, caplog):
    """The journal has the move (fsynced), the CSV was not rewritten yet: reopening keeps the move, no warning."""
    out = tmp_path / "clicks.csv"
    store = ClickStore(out)
    store.add("v", 1.0, "Jump")
    store.add("v", 2.0, "Run")
    store.close()
    with open(journal_path(out), "a") as journal:
        journal.write(json.dumps({"op": "move", "id": 2, "time": 0.25}) + "\n")
    os.utime(out, ns=(journal_path(out).stat().st_mtime_ns - 10**9,) * 2)
    caplog.clear()
    store = ClickStore(out)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert [(p.id, p.time_sec) for p in store.points()] == [(2, 0.25), (1, 1.0)] and store.reviewed() == [2]
    store.close()
    assert out.read_text() == "v,0.250000,Run\nv,1.000000,Jump\n"


def test_review_and_done_over_http(tmp_path, videos):
    out = tmp_path / "clicks.csv"
    with running_server(videos, out) as (server, store):
        port = server.server_address[1]
        first = call(port, "POST", "/api/points", {"video": "clip", "time": 1.0, "label": "Jump"})[2]
        second = call(port, "POST", "/api/points", {"video": "clip", "time": 1.5, "label": "Run"})[2]
        status, _, moved = call(port, "PATCH", f"/api/points/{second['id']}", {"time": 0.4})
        assert status == 200 and moved == {**second, "time": 0.4, "reviewed": True}
        status, _, accepted = call(port, "PATCH", f"/api/points/{first['id']}", {"accepted": True})
        assert status == 200 and accepted == {**first, "reviewed": True}
        assert out.read_text() == "clip,0.400000,Run\nclip,1.000000,Jump\n"
        listed = call(port, "GET", "/api/points?video=clip")[2]
        assert [p["time"] for p in listed["points"]] == [0.4, 1.0]
        assert listed["reviewed"] == [first["id"], second["id"]]
        for body, words in (
            ({"time": 1.0, "accepted": True}, "exactly one of"),
            ({}, "exactly one of"),
            ({"accepted": False}, "'accepted' must be true"),
            ({"time": 99.0}, "the length of video"),
            ({"time": "1"}, "number of seconds"),
            ({"label": "Run"}, "unknown ['label']"),
        ):
            status, _, answer = call(port, "PATCH", f"/api/points/{first['id']}", body)
            assert status == 400 and words in answer["error"], (body, answer)
        assert out.read_text() == "clip,0.400000,Run\nclip,1.000000,Jump\n"  # the refusals changed nothing

        assert call(port, "POST", "/api/done", {"video": "other", "done": True})[2] == {"video": "other", "done": True}
        assert [v["done"] for v in call(port, "GET", "/api/videos")[2]["videos"]] == [False, True]
        assert store.is_done("other")

        times = call(port, "GET", "/api/frames?video=clip")[2]["times"]  # the 2 s clip of 30 fps: 60 frames
        assert len(times) == 60 and times[0] == 0.0
        assert np.allclose(np.diff(times), 1 / 30, atol=2e-6) and all(round(t, 6) == t for t in times)


def test_frame_times_are_rounded_up_so_a_click_stays_on_its_frame(tmp_path):
    """Frame k of a 30 fps clip starts at k/30 s: its listed time is k/30 rounded *up* to the microsecond (a click
    stored with 6 decimals at it still shows frame k, never k-1)."""
    path = make_video(tmp_path / "c.mp4", seconds=1.0, fps=30, size=(32, 32))
    times = frame_times(path)
    exact = np.arange(30) / 30
    assert len(times) == 30 and np.all(np.array(times) >= exact) and np.all(np.array(times) - exact < 1e-6)
    assert frame_times(tmp_path / "missing.mp4") is None


def test_the_readme_lists_every_key_of_the_page():
    """The page's key table (KEYS in label.html, shown by `?`) and README's shortcuts table say the same keys."""
    page = (REPO / "pointtal/video/static/label.html").read_text(encoding="utf-8")
    keys = [key for entry in re.findall(r'^  \["([^"]+)", "', page, flags=re.M) for key in entry.split(" ")]
    assert len(keys) >= 20 and {"?", "a", "m", "r", ",", ".", "[", "]", "+", "-", "v", "d"} <= set(keys)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### For annotation teams") :]
    section = section[: section.index("\n#")]
    table = {
        token
        for line in section.splitlines()
        if line.startswith("| `")
        for token in re.findall(r"`([^`]+)`", line.split("|")[1])
    }
    missing = [key for key in keys if key not in table]
    assert not missing, f"README's shortcuts table lacks the page's keys {missing}"
