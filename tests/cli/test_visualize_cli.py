"""`pointtal visualize`: a timeline PNG for a test video and for a training video (with its points), and
one clear error line for an unknown video or run directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from pointtal.cli import main
from pointtal.cli.demo import demo_configs
from pointtal.config import build_config
from pointtal.data.synthetic import generate
from pointtal.engine.predictor import load_trained
from pointtal.engine.report import training_points
from pointtal.engine.setup import load_ground_truth_for, open_store
from pointtal.engine.trainer import train
from pointtal.viz import TIMELINE_PX

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """SF-Net with the tiny preset's click files, 20 steps (no report: these tests draw their own figures)."""
    root = tmp_path_factory.mktemp("visualize")
    generate(root / "data", "tiny", seed=0, progress=False)
    raw = demo_configs(root / "data", 20, 0)["sfnet"]
    raw["train"].update(device="cpu", progress=False, report=False)
    train(build_config(raw), root / "sfnet")
    return root / "sfnet"


def assert_timeline_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = imread(path)
    assert pixels.shape[:2] == (TIMELINE_PX[1], TIMELINE_PX[0])
    assert float(pixels[..., :3].std()) > 0.05  # not blank


def bars(ax) -> list[tuple[float, float]]:
    """(start, end) in seconds of every span an axes' broken_barh collections draw, in drawing order."""
    return [
        (float(p.vertices[:, 0].min()), float(p.vertices[:, 0].max()))
        for c in ax.collections
        for p in c.get_paths()
        if len(p.vertices) == 5
    ]


def test_test_video_timeline(run_dir, tmp_path, capsys, drawn):
    out = tmp_path / "nested" / "test.png"
    assert main(["visualize", str(run_dir), "--video", "video_test_0001", "--out", str(out)]) == 0
    assert_timeline_png(out)
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"wrote {out}") and "subset 'test'" in line and "step 20" in line
    ax_gt, ax_points, _, ax_pred, *_ = drawn[0].axes  # (the actionness twin axis last)
    database = json.loads((run_dir.parent / "data" / "annotations.json").read_text())["database"]
    truth = [tuple(a["segment"]) for a in database["video_test_0001"]["annotations"]]
    np.testing.assert_allclose(bars(ax_gt), truth)  # the video's ground truth, read from the file
    assert len(ax_points.collections) == 0  # a test video has no training points
    # the final checkpoint's segments are the ones the run wrote to predictions.json, each drawn once
    results = json.loads((run_dir / "predictions.json").read_text())["results"]["video_test_0001"]
    assert len(results) > 0
    np.testing.assert_allclose(
        sorted(map(tuple, bars(ax_pred))), sorted(tuple(r["segment"]) for r in results), rtol=1e-9
    )


def test_training_video_shows_the_runs_points(run_dir, tmp_path, capsys, drawn):
    out = tmp_path / "train.png"
    assert (
        main(
            [
                "visualize",
                str(run_dir),
                "--video",
                "video_validation_0001",
                "--out",
                str(out),
                "--checkpoint",
                str(run_dir / "best.pt"),
            ]
        )
        == 0
    )
    assert_timeline_png(out)
    assert "training video" in capsys.readouterr().out
    loaded = load_trained(run_dir)
    gt = load_ground_truth_for(loaded.config)
    points = training_points(loaded.config, gt, open_store(loaded.config), "video_validation_0001")
    assert points and all(label in (*gt.classes, "background") for _, label in points)
    video = gt.videos["video_validation_0001"]
    times = np.array([t for t, _ in points])
    assert (times >= 0).all() and (times <= video.duration_sec + 1).all()
    assert training_points(loaded.config, gt, open_store(loaded.config), "video_test_0001") == []
    drawn_times = sorted(float(t) for c in drawn[0].axes[1].collections for t in c.get_offsets()[:, 0])
    assert drawn_times == pytest.approx(sorted(times))  # every training point is on the figure, where it is


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--video", "no_such_video"], "not in the run's ground truth"),
        (["--video", "video_test_0001", "--checkpoint", "missing.pt"], "checkpoint not found"),
    ],
)
def test_bad_input_is_one_line(run_dir, tmp_path, capsys, args, expected):
    out = tmp_path / "x.png"
    assert main(["visualize", str(run_dir), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and "Traceback" not in err
    assert not out.exists()


def test_missing_run_directory_is_one_line(tmp_path, capsys):
    assert main(["visualize", str(tmp_path / "nope"), "--video", "v", "--out", str(tmp_path / "x.png")]) == 2
    assert "run directory not found" in capsys.readouterr().err
