"""The label page in a real browser: headless Chromium (Debian's) driven by Playwright presses the keys and the
test reads the click CSV the server wrote.

Needs /usr/bin/chromium (`make test` installs it with apt-get when run as root) and the `playwright` package
(the `test` extra). Where they cannot be present the test is skipped, except under `.ci/run`, which sets
POINTTAL_REQUIRE_BROWSER=1 and turns the skip into a failure.

The tests write only under their tmp folders. The README's screenshots are a separate, explicit run:
`POINTTAL_LABEL_SCREENSHOT=docs/label.png POINTTAL_LABEL_REVIEW_SCREENSHOT=docs/img/label_review.png pytest
tests/video/test_label_browser.py` (the review test always takes its screenshot in tmp and copies it there when asked).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from label_helpers import (
    call,
    grey_level,
    make_vfr_video,
    make_video,
    running_server,
    start_cli,
    stop_cli,
    write_classes,
)

from pointtal.cli import main
from pointtal.video.clicks import journal_path
from pointtal.video.decode import DecodeStats, resampled_frames

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-media-suspend",
]  # a paused player idle for long on a loaded machine: no suspend
SNIPPET_SEC = 16 / 25  # the page's default step: stride / fps
DURATION_SEC = 4.0


def _unavailable(reason: str):
    if os.environ.get("POINTTAL_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (POINTTAL_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} missing: install Debian's chromium (make test does so when run as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright not installed: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _csv_rows(path: Path) -> list[tuple[str, float, str]]:
    if not path.exists():
        return []
    rows = [line.split(",") for line in path.read_text().splitlines() if line]
    return [(video, float(t), label) for video, t, label in rows]


def _wait_rows(path: Path, count: int, timeout_sec: float = 10.0) -> list[tuple[str, float, str]]:
    """The CSV once it has `count` rows (the page's request is asynchronous)."""
    deadline = time.monotonic() + timeout_sec
    while time.monotonic() < deadline:
        rows = _csv_rows(path)
        if len(rows) == count:
            return rows
        time.sleep(0.05)
    raise AssertionError(f"{path}: expected {count} rows, have {_csv_rows(path)}")


def _labels_near(rows, label: str, time_sec: float) -> bool:
    return any(lab == label and abs(t - time_sec) <= SNIPPET_SEC for _, t, lab in rows)


_PLAYER_STATE = """() => { const p = document.getElementById('player');
  return {paused: p.paused, time: p.currentTime, duration: p.duration, ready: p.readyState, network: p.networkState,
          seeking: p.seeking, error: p.error && p.error.message,
          status: document.getElementById('status').textContent}; }"""


def _wait_js(page, expression: str, timeout_ms: int = 30000) -> None:
    """Wait until a JavaScript expression holds; on timeout say what the player and the page's status were."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(expression, timeout=timeout_ms)
    except PlaywrightTimeout:
        raise AssertionError(f"timed out waiting for {expression}; {page.evaluate(_PLAYER_STATE)}") from None


def _press(page, *keys: str) -> None:
    for key in keys:
        page.keyboard.press(key)


def _pixel(page, time_sec: float, y: int) -> list[int]:
    """RGBA of the timeline canvas at a time (x) and a CSS pixel row."""
    return page.evaluate(
        """([t, y]) => { const c = document.getElementById('timeline'), r = window.devicePixelRatio || 1;
             const x = Math.round(t / document.getElementById('player').duration * c.clientWidth * r);
             return Array.from(c.getContext('2d').getImageData(x, Math.round(y * r), 1, 1).data); }""",
        [time_sec, y],
    )


def _setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    videos = tmp_path / "videos"
    videos.mkdir()
    make_video(videos / "clip.mp4", seconds=DURATION_SEC, size=(320, 180))
    gt = tmp_path / "gt.json"
    gt.write_text(
        json.dumps(
            {
                "database": {
                    "clip": {
                        "subset": "validation",
                        "duration": DURATION_SEC,
                        "annotations": [
                            {"segment": [1.0, 2.0], "label": "Jump"},
                            {"segment": [2.5, 3.5], "label": "Throw"},
                            {"segment": [0.1, 0.5], "label": "Run"},
                        ],
                    }
                }
            }
        )
    )
    predictions = tmp_path / "pred.json"
    predictions.write_text(json.dumps({"results": {"clip": [{"label": "Throw", "score": 0.9, "segment": [2.4, 3.6]}]}}))
    return videos, gt, predictions


def test_keys_write_the_click_csv(browser, tmp_path, capsys):
    videos, gt, predictions = _setup(tmp_path)
    out = tmp_path / "clicks.csv"
    with running_server(videos, out, ground_truth=gt, predictions=predictions) as (server, _):
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.goto(server.url)
        _wait_js(page, "document.getElementById('player').duration > 3.9")

        _press(page, "2", "ArrowRight", "ArrowRight", "ArrowRight", "Enter")  # Throw at 3 snippets
        rows = _wait_rows(out, 1)
        assert rows[0][0] == "clip" and rows[0][2] == "Throw"
        assert abs(rows[0][1] - 3 * SNIPPET_SEC) <= SNIPPET_SEC

        _press(page, "1", "ArrowRight", "ArrowRight", "ArrowLeft", "Enter")  # Jump at 4 snippets
        rows = _wait_rows(out, 2)
        assert _labels_near(rows, "Jump", 4 * SNIPPET_SEC)
        _press(page, "b")  # background at the same time
        rows = _wait_rows(out, 3)
        assert _labels_near(rows, "background", 4 * SNIPPET_SEC)

        _press(page, "Backspace")  # the selected (last) point goes
        rows = _wait_rows(out, 2)
        assert {r[2] for r in rows} == {"Throw", "Jump"}
        _press(page, "u")  # undo the delete: the background point is back
        assert _labels_near(_wait_rows(out, 3), "background", 4 * SNIPPET_SEC)
        _press(page, "Control+z")  # undo the background point itself
        assert {r[2] for r in _wait_rows(out, 2)} == {"Throw", "Jump"}
        _press(page, "u")  # undo the Jump point
        assert [r[2] for r in _wait_rows(out, 1)] == ["Throw"]

        before = page.evaluate("document.getElementById('player').currentTime")
        _press(page, "Space")
        _wait_js(page, "!document.getElementById('player').paused")
        _wait_js(page, f"document.getElementById('player').currentTime > {before + 0.1}")
        _press(page, "Space")
        _wait_js(page, "document.getElementById('player').paused")

        box = page.locator("#timeline").bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.25, box["y"] + 70)  # a point of the class (Jump) at 1.0 s
        rows = _wait_rows(out, 2)
        assert _labels_near(rows, "Jump", 0.25 * DURATION_SEC)
        page.mouse.click(box["x"] + box["width"] * 0.25 + 2, box["y"] + 70)  # on that point: selects it only
        time.sleep(0.3)
        assert len(_csv_rows(out)) == 2
        _press(page, "Backspace")
        assert [r[2] for r in _wait_rows(out, 1)] == ["Throw"]

        page.keyboard.press("3")
        page.evaluate("document.getElementById('player').currentTime = 1.5")
        _wait_js(page, "document.getElementById('player').seeking === false")
        _press(page, "Enter", "1", "ArrowRight", "Enter", "b")
        rows = _wait_rows(out, 4)
        assert _labels_near(rows, "Run", 1.5) and _labels_near(rows, "Jump", 1.5 + SNIPPET_SEC)
        assert _labels_near(rows, "background", 1.5 + SNIPPET_SEC)

        assert _pixel(page, 1.5, 16)[3] > 0, "ground-truth segment [1, 2] s not drawn"
        assert _pixel(page, 0.75, 16)[3] == 0, "ground-truth row drawn where no segment is"
        assert _pixel(page, 3.0, 38)[3] > 0, "prediction [2.4, 3.6] s not drawn"
        assert _pixel(page, 3 * SNIPPET_SEC, 80)[3] > 0, "point marker not drawn"
        assert "Throw" in page.locator("#points").inner_text()

        shot = os.environ.get("POINTTAL_LABEL_SCREENSHOT")
        if shot:
            page.evaluate("document.getElementById('player').currentTime = 2.9")
            _wait_js(page, "document.getElementById('player').seeking === false")
            page.wait_for_timeout(300)
            page.screenshot(path=shot)
        page.close()

    # the file the page wrote is a click file pointtal reads
    assert main(["annotate", str(gt), "--check", str(out), "--strict"]) == 0
    assert "4 points, 4 mapped" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------- issue 23: long sessions

VFR_STARTS_MS = [200 * k for k in range(10)] + [2000 + 40 * k for k in range(30)]  # 5 fps for 2 s, then 25 fps
LONG_SEC = 600  # an ActivityNet-length video: a timeline pixel spans more than a snippet until zoomed
FPS, STRIDE = 25, 16

_SHOWN_FRAME = """() => { const p = document.getElementById('player'), c = document.createElement('canvas');
  c.width = p.videoWidth; c.height = p.videoHeight; const g = c.getContext('2d'); g.drawImage(p, 0, 0);
  return g.getImageData(c.width >> 1, c.height >> 1, 1, 1).data[1]; }"""


def _settled(page) -> None:
    _wait_js(page, "S.seekTarget === null && !document.getElementById('player').seeking")


def _shown_frame(page) -> int:
    """The index of the VFR clip's frame the browser shows (read back from its grey level)."""
    _settled(page)
    page.wait_for_timeout(50)
    return round((page.evaluate(_SHOWN_FRAME) - grey_level(0)) / 6)


def _extract_frames(path: Path) -> list[int]:
    """Which source frame each frame of `pointtal extract`'s 25 fps resampling shows (by grey level)."""
    stats = DecodeStats()
    return [round((float(image.mean()) - grey_level(0)) / 6) for image in resampled_frames(path, FPS, 16, 16, stats)]


def _journal_ops(out: Path) -> list[str]:
    return [
        json.loads(line)["op"]
        for line in journal_path(out).read_text().splitlines()
        if json.loads(line)["op"] != "active"
    ]


def test_every_new_key_on_a_vfr_clip_and_a_long_clip(browser, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    vfr = make_vfr_video(videos / "a_vfr.mp4", VFR_STARTS_MS)
    make_video(videos / "b_long.mp4", seconds=LONG_SEC, fps=1, size=(32, 32))
    out = tmp_path / "clicks.csv"
    with running_server(videos, out) as (server, _):
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        page.goto(server.url)
        _wait_js(
            page,
            "S.video === 'a_vfr' && document.getElementById('player').duration > 3 && "
            "S.frames && S.frames.length === 40",
        )

        # one frame forward 20 times: frame 20 starts at 2.4 s (a constant-rate guess, 20 / 12.5 fps, says 1.6 s)
        _press(page, *["."] * 20)
        assert _shown_frame(page) == 20 and _csv_rows(out) == []
        _press(page, "3", "Enter")
        ((video, t, label),) = _wait_rows(out, 1)
        assert (video, label) == ("a_vfr", "Run") and 2.4 <= t < 2.44
        extracted = _extract_frames(vfr)
        snippet = int(t * FPS / STRIDE)
        assert 20 in extracted[snippet * STRIDE : (snippet + 1) * STRIDE], "the click's snippet does not hold frame 20"
        assert int(20 / (40 / 3.2) * FPS / STRIDE) != snippet  # a frame-count clock would have missed it

        _press(page, ",", ",", ",")  # back three frames: frame 17 at 2.28 s
        assert _shown_frame(page) == 17 and len(_csv_rows(out)) == 1
        _press(page, "b")
        rows = _wait_rows(out, 2)
        assert [(r[1], r[2]) for r in rows] == [
            (pytest.approx(2.28, abs=1e-5), "background"),
            (pytest.approx(2.4, abs=1e-5), "Run"),
        ]
        for _ in range(12):
            _press(page, ",")
        assert _shown_frame(page) == 5 and len(_csv_rows(out)) == 2  # back across the rate change: 200 ms frames
        _press(page, "Enter")
        rows = _wait_rows(out, 3)
        assert rows[0][1] == pytest.approx(1.0, abs=1e-5)

        # previous / next point: selection follows, Backspace deletes the one reached, u brings it back
        _press(page, "n")
        _settled(page)
        assert page.evaluate("document.getElementById('player').currentTime") == pytest.approx(2.28, abs=1e-5)
        assert len(_csv_rows(out)) == 3
        _press(page, "n", "Backspace")
        assert [r[2] for r in _wait_rows(out, 2)] == ["Run", "background"]
        _wait_js(page, "S.points.length === 2")  # the page's own state follows its (asynchronous) request
        _press(page, "u")
        assert [r[2] for r in _wait_rows(out, 3)] == ["Run", "background", "Run"]
        _wait_js(page, "S.points.length === 3")
        _press(page, "p", "p", "Backspace")
        assert [r[1] for r in _wait_rows(out, 2)] == pytest.approx([2.28, 2.4], abs=1e-5)
        _press(page, "p")  # no point before the playhead now: nothing changes
        page.wait_for_timeout(100)
        assert len(_csv_rows(out)) == 2

        # speed: ] up to 4x (and no further), [ down to 0.25x
        _press(page, *["]"] * 6)
        _wait_js(page, "document.getElementById('player').playbackRate === 4")
        _press(page, *["["] * 9)
        _wait_js(page, "document.getElementById('player').playbackRate === 0.25")
        assert "0.25x" in page.locator("#clock").inner_text() and len(_csv_rows(out)) == 2

        # done mark: journaled (fsynced) like a click, shown in the list; the CSV does not change
        _press(page, "d")
        _wait_js(page, "document.querySelector('#videos li.done') !== null")
        assert call(server.server_address[1], "GET", "/api/videos")[2]["videos"][0]["done"] is True
        assert _journal_ops(out)[-1] == "done" and len(_csv_rows(out)) == 2
        assert "1 of 2 videos done" in page.locator("#progress").inner_text()

        # next video without points: the long one; zoom until a timeline pixel is finer than a snippet
        _press(page, "v")
        _wait_js(page, f"S.video === 'b_long' && document.getElementById('player').duration > {LONG_SEC - 1}")
        assert len(_csv_rows(out)) == 2
        width = page.locator("#timeline").bounding_box()["width"]
        assert LONG_SEC / width > SNIPPET_SEC, "the long clip would not need the zoom on this page"
        page.evaluate("document.getElementById('player').currentTime = 300.3")
        _settled(page)
        _press(page, "+", "+", "+", "+", "-", "=")
        _wait_js(page, "S.zoom === 16")
        page.mouse.move(
            page.locator("#timeline").bounding_box()["x"] + width / 2,
            page.locator("#timeline").bounding_box()["y"] + 50,
        )
        page.mouse.wheel(0, -100)  # the wheel zooms too
        _wait_js(page, "S.zoom === 32")
        assert len(_csv_rows(out)) == 2
        view_start, span = page.evaluate("[S.viewStart, viewSpan()]")
        assert view_start <= 300.3 <= view_start + span and span == pytest.approx(LONG_SEC / 32)
        target = 470  # click the middle of snippet 470 (300.8 s .. 301.44 s)
        box = page.locator("#timeline").bounding_box()
        page.mouse.click(box["x"] + ((target + 0.5) * SNIPPET_SEC - view_start) / span * box["width"], box["y"] + 70)
        rows = _wait_rows(out, 3)
        (long_row,) = [r for r in rows if r[0] == "b_long"]
        assert int(long_row[1] / SNIPPET_SEC) == target and long_row[2] == "Run"

        # keyboard help lists every key; Escape closes it
        assert not page.locator("#keys").is_visible()
        _press(page, "?")
        assert page.locator("#keys").is_visible()
        assert page.locator("#keys-table tr").count() == page.evaluate("KEYS.length") > 10
        assert "one frame back / forward" in page.locator("#keys").inner_text()
        _press(page, "Escape")
        assert not page.locator("#keys").is_visible()
        _press(page, "?", "?")
        assert not page.locator("#keys").is_visible()
        assert len(_csv_rows(out)) == 3
        page.close()


def _review_head(page) -> str:
    return page.locator("#review h2").inner_text()


def test_review_mode_accept_move_delete_survives_kill_9(browser, tmp_path):
    """Review walks the points with the ground truth and predictions beside them; every acknowledged accept, move
    and delete is still there after a kill -9 of the server (a new server, a new page)."""
    videos = tmp_path / "videos"
    videos.mkdir()
    make_vfr_video(videos / "clip.mp4", VFR_STARTS_MS, size=(96, 64))
    classes = write_classes(tmp_path / "classes.txt")
    gt = tmp_path / "gt.json"
    gt.write_text(
        json.dumps(
            {
                "database": {
                    "clip": {
                        "subset": "validation",
                        "duration": 3.2,
                        "annotations": [
                            {"segment": [0.3, 1.0], "label": "Jump"},
                            {"segment": [2.2, 3.0], "label": "Throw"},
                        ],
                    }
                }
            }
        )
    )
    predictions = tmp_path / "pred.json"
    predictions.write_text(
        json.dumps(
            {
                "results": {
                    "clip": [
                        {"label": "Jump", "score": 0.9, "segment": [0.2, 0.9]},
                        {"label": "Throw", "score": 0.6, "segment": [1.3, 1.8]},
                    ]
                }
            }
        )
    )
    out = tmp_path / "clicks.csv"
    out.write_text("clip,0.5,Jump\nclip,1.5,Jump\nclip,2.5,Throw\n")  # an annotator's file to review
    reference = ("--ground-truth", str(gt), "--predictions", str(predictions))
    process, port = start_cli(videos, classes, out, *reference)
    try:
        page = browser.new_page(viewport={"width": 1000, "height": 760})
        page.goto(f"http://127.0.0.1:{port}/")
        _wait_js(page, "S.video === 'clip' && document.getElementById('player').duration > 3 && S.frames")
        _press(page, "a", "m")  # review keys do nothing outside review
        page.wait_for_timeout(100)
        assert "only in review mode" in page.locator("#status").inner_text()
        assert _journal_ops(out) == ["add"] * 3

        _press(page, "r")
        _wait_js(page, "document.querySelector('#review h2') !== null")
        assert _review_head(page).startswith("Review 1/3: Jump at 0.50 s") and "0/3 reviewed" in _review_head(page)
        assert len(_csv_rows(out)) == 3
        panel = page.locator("#review").inner_text()
        assert "Jump 0.30–1.00 s · contains the point" in panel and "(score 0.90) · contains the point" in panel
        assert "Throw 1.30–1.80 s (score 0.60) · near" in panel  # within two snippets
        assert "Throw 2.20" not in panel  # farther instances are not beside this point

        _press(page, "a")  # accept: the journal says so, the CSV does not change, review goes on to the next point
        _wait_js(page, "S.reviewed.size === 1")
        assert _journal_ops(out)[-1] == "accept" and _csv_rows(out) == [
            ("clip", 0.5, "Jump"),
            ("clip", 1.5, "Jump"),
            ("clip", 2.5, "Throw"),
        ]
        assert _review_head(page).startswith("Review 2/3: Jump at 1.50 s")
        assert "Throw 1.30–1.80 s (score 0.60) · contains the point" in page.locator("#review").inner_text()

        # move it: one snippet back (1.5 - 0.64 = 0.86 s shows frame 4, from 0.8 s), one frame back (frame 3, 0.6 s)
        _press(page, "ArrowLeft", ",", "m")
        _wait_js(page, "S.points.some(p => Math.abs(p.time - 0.6) < 1e-5)")
        assert _csv_rows(out) == [("clip", 0.5, "Jump"), ("clip", 0.6, "Jump"), ("clip", 2.5, "Throw")]
        assert _review_head(page).startswith("Review 2/3: Jump at 0.60 s") and "2/3 reviewed" in _review_head(page)

        _press(page, "n")
        _settled(page)
        assert _review_head(page).startswith("Review 3/3: Throw at 2.50 s") and len(_csv_rows(out)) == 3
        assert "Throw 2.20–3.00 s · contains the point" in page.locator("#review").inner_text()
        shot = tmp_path / "label_review.png"
        page.screenshot(path=str(shot))
        if os.environ.get("POINTTAL_LABEL_REVIEW_SCREENSHOT"):  # the README's picture: a separate, documented run
            shutil.copyfile(shot, os.environ["POINTTAL_LABEL_REVIEW_SCREENSHOT"])
        _press(page, "Backspace")  # delete it; acknowledged once the CSV has it
        assert _wait_rows(out, 2) == [("clip", 0.5, "Jump"), ("clip", 0.6, "Jump")]
        _press(page, "d")  # the video is done; acknowledged once the list shows it
        _wait_js(page, "document.querySelector('#videos li.done') !== null")
        assert len(_csv_rows(out)) == 2
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        page.close()
    finally:
        stop_cli(process)
    assert _journal_ops(out) == ["add"] * 3 + ["accept", "move", "delete", "done"]

    process, port = start_cli(videos, classes, out, *reference)
    try:
        page = browser.new_page(viewport={"width": 1000, "height": 760})
        page.goto(f"http://127.0.0.1:{port}/")
        _wait_js(page, "S.video === 'clip' && document.getElementById('player').duration > 3")
        assert "2 pts" in page.locator("#videos li.done").inner_text()  # progress and done mark survived
        _press(page, "r")
        _wait_js(page, "document.querySelector('#review h2') !== null")
        assert "2/2 reviewed" in _review_head(page)
        points = call(port, "GET", "/api/points?video=clip")[2]
        assert [p["time"] for p in points["points"]] == [0.5, 0.6] and len(points["reviewed"]) == 2
        _press(page, "u")  # nothing to undo in a new page: the file stays as reviewed
        page.wait_for_timeout(100)
        assert _csv_rows(out) == [("clip", 0.5, "Jump"), ("clip", 0.6, "Jump")]
        _press(page, "r")
        _wait_js(page, "!document.getElementById('review').classList.contains('on')")
        page.close()
    finally:
        stop_cli(process)
    assert process.returncode == 0
