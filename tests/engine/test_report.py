"""report.md and figures/ of a training run: every evaluation in the table, figures that exist, and a
failing figure (or report) that is logged and noted but never fails training."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

import pointtal.engine.report as report
import pointtal.viz
from pointtal.config import build_config
from pointtal.data.synthetic import generate
from pointtal.engine.logs import read_metrics
from pointtal.engine.trainer import train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("report") / "data"
    generate(data, "tiny", seed=0, progress=False)
    return data


def config(data: Path, steps: int = 4, eval_every: int = 2):
    return build_config(
        {
            "data": {
                "annotations": str(data / "annotations.json"),
                "features": str(data / "features"),
                "points": "weak",
                "train_subset": "validation",
                "test_subset": "test",
            },
            "method": {"name": "weak", "hidden": 16, "center_weight": 0.0},
            "train": {
                "steps": steps,
                "batch_size": 8,
                "lr": 1e-3,
                "eval_every": eval_every,
                "seed": 0,
                "device": "cpu",
                "progress": False,
            },
        }
    )


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory) -> tuple[Path, dict]:
    """A 4-step run and the matplotlib Figure of each PNG it drew (by file name), to read back what was drawn."""
    out = tmp_path_factory.mktemp("run") / "weak"
    figures = {}
    save = pointtal.viz._save

    def capture(fig, path):
        figures[Path(path).name] = fig
        return save(fig, path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pointtal.viz, "_save", capture)
        train(config(tiny), out)
    return out, figures


@pytest.fixture(scope="module")
def run_dir(trained) -> Path:
    return trained[0]


def linked_files(text: str) -> list[str]:
    return re.findall(r"\]\(([^)]+)\)", text)


def test_report_lists_config_every_evaluation_and_figures(run_dir, trained, tiny):
    text = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "`weak` (hidden=16, center_weight=0.0)" in text  # options that differ from the defaults
    assert "`validation` (24 videos) / `test` (12 videos)" in text
    records = read_metrics(run_dir)
    assert [r["step"] for r in records] == [2, 4]
    table = [line for line in text.splitlines() if re.match(r"\| (\*\*)?\d", line)]
    assert len(table) == len(records)
    for line, record in zip(table, records, strict=True):
        assert str(record["step"]) in line.split("|")[1]
        assert f"{record['average']:.2f}" in line and f"{record['mAP@0.5']:.2f}" in line
    best = max(records, key=lambda r: r["average"])
    assert f"**{best['step']}** (best)" in text
    figures = ["figures/timeline_video_test_0001.png", "figures/pr_curves.png", "figures/class_ap.png"]
    for name in figures:
        assert f"]({name})" in text
        assert (run_dir / name).read_bytes()[:8] == PNG_SIGNATURE
    # what the figures show is the final evaluation the trainer logged (another path: predictions.json)
    final, drawn = records[-1], trained[1]
    legend = [t.get_text() for t in drawn["pr_curves.png"].axes[0].get_legend().get_texts()]
    assert legend == [f"tIoU {t:g}: mAP {final[f'mAP@{t:g}']:.1f}%" for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)]
    dashed = [line for line in drawn["class_ap.png"].axes[0].get_lines() if line.get_linestyle() == "--"]
    assert dashed[0].get_xdata()[0] == pytest.approx(final["average"])
    database = json.loads((tiny / "annotations.json").read_text())["database"]
    timeline_gt = drawn["timeline_video_test_0001.png"].axes[0]
    spans = [
        (float(p.vertices[:, 0].min()), float(p.vertices[:, 0].max()))
        for c in timeline_gt.collections
        for p in c.get_paths()
    ]
    assert spans == [tuple(a["segment"]) for a in database["video_test_0001"]["annotations"]]
    for name in linked_files(text):  # every link resolves
        assert (run_dir / name).exists(), name
    assert "Not drawn" not in text


def test_failing_figure_is_logged_and_never_fails_training(tiny, tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no display for you")

    monkeypatch.setattr(pointtal.viz, "plot_timeline", broken)
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="pointtal.engine.report"):
        result = train(config(tiny, steps=2, eval_every=0), out)
    assert result.step == 2 and result.metrics is not None
    assert (out / "predictions.json").is_file() and (out / "checkpoint.pt").is_file()
    assert any(
        "timeline_video_test_0001.png" in r.getMessage() and "no display for you" in r.getMessage()
        for r in caplog.records
    )
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "Not drawn: RuntimeError: no display for you" in text
    assert not (out / "figures" / "timeline_video_test_0001.png").exists()
    assert (out / "figures" / "pr_curves.png").is_file()  # the other figures are still drawn


def test_unwritable_report_is_logged_not_raised(run_dir, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(report, "render_report", broken)
    before = (run_dir / "report.md").read_bytes()
    with caplog.at_level(logging.WARNING, logger="pointtal.engine.report"):
        assert report.write_report(run_dir, None, [], _FakeData(), None, "cpu") is None
    assert "disk full" in caplog.text
    assert (run_dir / "report.md").read_bytes() == before


class _FakeData:
    """Run data without a test subset: no figures to draw."""

    test = None


def test_report_without_evaluations_or_with_one():
    assert report._metrics_table([]) == ["No evaluation recorded."]
    # a single evaluation is not marked best; a missing value is an empty cell
    assert report._metrics_table([{"step": 3, "average": 12.345, "mAP@0.5": 20.0}]) == [
        "| step | average | mAP@0.5 |",
        "|---:|---:|---:|",
        "| 3 | 12.35 | 20.00 |",
    ]
    assert report._metrics_table([{"step": 1, "average": 5.0}, {"step": 2, "average": 4.0, "cmAP": 1.0}]) == [
        "| step | average | cmAP |",
        "|---:|---:|---:|",
        "| **1** (best) | 5.00 |  |",
        "| 2 | 4.00 | 1.00 |",
    ]
