"""`pointtal label` refuses clicks outside the video: a click at 1,000,000 s on a 12 s video was stored."""

from __future__ import annotations

import pytest
from label_helpers import call, make_video, running_server

from pointtal.video.label_server import DURATION_SLACK_SEC, probe_duration

pytest.importorskip("av")


@pytest.fixture(scope="module")
def twelve_seconds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    make_video(folder / "clip.mp4", seconds=12.0, fps=5, size=(32, 32))
    make_video(folder / "short.webm", seconds=2.0, fps=5, size=(32, 32))
    return folder


def test_the_length_is_read_from_the_file(twelve_seconds):
    assert probe_duration(twelve_seconds / "clip.mp4") == pytest.approx(12.0, abs=0.25)
    assert probe_duration(twelve_seconds / "short.webm") == pytest.approx(2.0, abs=0.25)
    assert probe_duration(twelve_seconds / "missing.mp4") is None


@pytest.mark.parametrize(
    "video, time_sec",
    [
        ("clip", 1_000_000),
        ("clip", 13.0),
        ("clip", 12.0 + 3 * DURATION_SLACK_SEC),
        ("short", 5.0),
        ("clip", -0.5),
        ("clip", 1e300),
    ],
)
def test_clicks_outside_the_video_are_refused_and_not_stored(tmp_path, twelve_seconds, video, time_sec):
    out = tmp_path / "clicks.csv"
    with running_server(twelve_seconds, out) as (server, store):
        port = server.server_address[1]
        status, _, answer = call(port, "POST", "/api/points", {"video": video, "time": time_sec, "label": "Jump"})
        assert status == 400 and "between 0 and" in answer["error"], answer
        if time_sec >= 0 and time_sec < 1e9:
            length = server.duration(video)
            assert f"{length:.3f} s, the length of video '{video}'" in answer["error"]
        assert call(port, "GET", f"/api/points?video={video}")[2]["points"] == [] and store.points() == []
    assert not out.exists() or out.read_text().strip() == ""


def test_clicks_inside_the_video_are_stored(tmp_path, twelve_seconds):
    out = tmp_path / "clicks.csv"
    with running_server(twelve_seconds, out) as (server, store):
        port = server.server_address[1]
        length = server.duration("clip")
        for time_sec in (0, 6.5, length):
            status, _, answer = call(port, "POST", "/api/points", {"video": "clip", "time": time_sec, "label": "Jump"})
            assert status == 201, answer
        assert [p.time_sec for p in store.points()] == pytest.approx([0, 6.5, length])
