"""`pointtal demo --quick`: every method of the demo trains on the tiny synthetic set and its row is the run's own
final evaluation."""

from __future__ import annotations

import json

import pytest

from pointtal.cli import main


@pytest.mark.slow  # five short runs (~30 s)
def test_quick_demo_trains_every_method_and_prints_their_final_metrics(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick"]) == 0
    printed = capsys.readouterr().out
    test_videos = {v for v, e in json.loads((out / "data" / "annotations.json").read_text())["database"].items()
                   if e["subset"] == "test"}
    for name in ("weak", "sfnet", "soda", "lacp", "hrpro"):
        final = json.loads((out / name / "metrics.jsonl").read_text().splitlines()[-1])
        row = next(line for line in printed.splitlines() if line.strip("│ ").startswith(name + " "))
        assert f"{final['average']:.1f}" in row.split("│")[-2]  # the table's avg is the run's final average
        results = json.loads((out / name / "predictions.json").read_text())["results"]
        assert set(results) == test_videos
    assert json.loads((out / ".pointtal-demo.json").read_text())["runs"] == ["weak", "sfnet", "soda", "lacp", "hrpro"]
