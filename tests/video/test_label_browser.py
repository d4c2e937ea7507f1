"""The label page in a real browser: headless Chromium (Debian's) driven by Playwright presses the keys and the
test reads the click CSV the server wrote.

Needs /usr/bin/chromium (`make test` installs it with apt-get when run as root) and the `playwright` package
(the `test` extra). Where they cannot be present the test is skipped, except under `.ci/run`, which sets
POINTTAL_REQUIRE_BROWSER=1 and turns the skip into a failure.

`POINTTAL_LABEL_SCREENSHOT=docs/label.png` also saves the README's screenshot of the page.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from label_helpers import make_video, running_server

from pointtal.cli import main

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-media-suspend"]  # a paused player idle for long on a loaded machine: no suspend
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
        [time_sec, y])


def _setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    videos = tmp_path / "videos"
    videos.mkdir()
    make_video(videos / "clip.mp4", seconds=DURATION_SEC, size=(320, 180))
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"database": {"clip": {"subset": "validation", "duration": DURATION_SEC, "annotations": [
        {"segment": [1.0, 2.0], "label": "Jump"}, {"segment": [2.5, 3.5], "label": "Throw"},
        {"segment": [0.1, 0.5], "label": "Run"}]}}}))
    predictions = tmp_path / "pred.json"
    predictions.write_text(json.dumps({"results": {"clip": [
        {"label": "Throw", "score": 0.9, "segment": [2.4, 3.6]}]}}))
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
