"""`pointtal demo --quick`: every method of the demo trains on the tiny synthetic set and its row is the run's own
final evaluation."""

from __future__ import annotations

import json

import pytest

from pointtal.cli import main


@pytest.mark.slow  # six short runs (~40 s)
def test_quick_demo_trains_every_method_and_prints_their_final_metrics(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick"]) == 0
    printed = capsys.readouterr().out
    test_videos = {
        v
        for v, e in json.loads((out / "data" / "annotations.json").read_text())["database"].items()
        if e["subset"] == "test"
    }
    for name in ("weak", "sfnet", "soda", "lacp", "hrpro", "actionformer"):
        final = json.loads((out / name / "metrics.jsonl").read_text().splitlines()[-1])
        row = next(line for line in printed.splitlines() if line.strip("│ ").startswith(name + " "))
        assert f"{final['average']:.1f}" in row.split("│")[-2]  # the table's avg is the run's final average
        results = json.loads((out / name / "predictions.json").read_text())["results"]
        assert set(results) == test_videos
    assert json.loads((out / ".pointtal-demo.json").read_text())["runs"] == [
        "weak",
        "sfnet",
        "soda",
        "lacp",
        "hrpro",
        "actionformer",
    ]
    # the detector row: ActionFormer trained on the SODA run's pseudo labels (that run reused as the teacher)
    pseudo = json.loads((out / "actionformer" / "pseudo_labels.json").read_text())
    assert pseudo["pseudo_labels"]["run"] == str((out / "soda").resolve())
    assert not (out / "actionformer" / "teacher").exists()
    assert "actionformer: a detector trained on soda's pseudo labels" in " ".join(printed.split())
