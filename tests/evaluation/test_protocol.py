"""The evaluation protocol of a run (issue 19 item 4): recorded once, applied in training's evaluations and by
default when `pointtal evaluate` scores that run's predictions, and named in every table header."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_raw_config

from pointtal.cli import main
from pointtal.config import build_config
from pointtal.engine.logs import read_metrics
from pointtal.engine.trainer import train

EXCLUDED = ["video_test_0002", "video_test_0005"]


@pytest.fixture(scope="module")
def protocol_run(tiny_data, tmp_path_factory):
    """A tiny SF-Net run that excludes two test videos and discards predictions overlapping the first instance
    of every other test video (an ambiguous-segments file in THUMOS14's layout)."""
    root = tmp_path_factory.mktemp("protocol")
    database = json.loads((tiny_data / "annotations.json").read_text())["database"]
    lines = []
    for video_id, entry in database.items():
        if entry["subset"] == "test" and entry["annotations"] and video_id not in EXCLUDED:
            start, end = entry["annotations"][0]["segment"]
            lines.append(f"{video_id}  {start:.1f} {end:.1f}\n")
    ambiguous = root / "Ambiguous_test.txt"
    ambiguous.write_text("".join(lines))
    raw = tiny_raw_config(tiny_data, "sfnet", steps=12, report=True)
    raw["data"].update(exclude_videos=EXCLUDED, ambiguous=str(ambiguous))
    run = root / "run"
    train(build_config(raw), run)
    return run, ambiguous


def _evaluate(capsys, *args) -> tuple[dict, str]:
    out = args[1].parent / f"m{len(list(args[1].parent.glob('m*.json')))}.json"
    assert main(["evaluate", *map(str, args), "--json", str(out)]) == 0
    return json.loads(out.read_text()), capsys.readouterr().out


def test_evaluate_gives_the_number_training_reported(protocol_run, tiny_data, capsys):
    """Before: `pointtal evaluate GT RUN/predictions.json` counted the excluded videos and the ambiguous
    overlaps, so the same predictions scored differently than in training (47.6 vs 48.3 on THUMOS14). After:
    the run's protocol is applied by default and the numbers agree exactly."""
    run, ambiguous = protocol_run
    final = read_metrics(run)[-1]
    gt = tiny_data / "annotations.json"
    doc, printed = _evaluate(capsys, gt, run / "predictions.json")
    assert doc["average"] == final["average"]
    assert doc["map"] == [final[f"mAP@{t:g}"] for t in doc["tiou"]]
    assert "protocol: 2 video(s) excluded (2, 5); ambiguous segments of Ambiguous_test.txt discarded" in printed
    assert doc["protocol"]["exclude_videos"] == EXCLUDED and doc["protocol"]["ambiguous"] == str(ambiguous)
    # without the protocol the same predictions give another number: the protocol is what made them agree
    plain, printed = _evaluate(capsys, gt, run / "predictions.json", "--protocol", "none")
    assert plain["average"] != final["average"] and "protocol: no video excluded; no ambiguous filter" in printed
    # the protocol given by hand, or by the run directory, is the same protocol
    by_hand, _ = _evaluate(
        capsys,
        gt,
        run / "predictions.json",
        "--protocol",
        "none",
        "--exclude-videos",
        ",".join(EXCLUDED),
        "--ambiguous",
        ambiguous,
    )
    by_run, _ = _evaluate(capsys, gt, run / "predictions.json", "--protocol", run)
    assert by_hand["map"] == by_run["map"] == doc["map"]
    frames, _ = _evaluate(capsys, gt, run / "frames.json", "--frames")
    assert frames["average"] == pytest.approx(final["frame_mAP"], abs=1e-9)


def test_predict_records_the_protocol_and_evaluate_applies_it(protocol_run, tiny_data, capsys):
    run, _ = protocol_run
    out = run.parent / "predicted.json"
    assert main(["predict", str(run), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert json.loads(out.read_text())["protocol"] == json.loads((run / "protocol.json").read_text())["protocol"]
    doc, _ = _evaluate(capsys, tiny_data / "annotations.json", out)
    assert doc["average"] == read_metrics(run)[-1]["average"]  # the final checkpoint's predictions


def test_run_records_its_protocol_and_reports_it(protocol_run):
    from pointtal.evaluation.protocol import Protocol, read_protocol

    run, ambiguous = protocol_run
    recorded = read_protocol(run / "protocol.json")
    assert recorded == Protocol(tuple(EXCLUDED), str(ambiguous), (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7))
    report = (run / "report.md").read_text()
    assert (
        "| evaluation protocol | 2 video(s) excluded (2, 5); ambiguous segments of Ambiguous_test.txt "
        "discarded; tIoU 0.1:0.7:0.1 |" in report
    )


def test_named_lists_expand_and_presets_record_the_official_protocol():
    from pointtal.evaluation.protocol import THUMOS14_EXCLUDED, excluded_videos

    assert excluded_videos(["THUMOS14", "x"]) == (*THUMOS14_EXCLUDED, "x")
    from pointtal.config import load_config
    from pointtal.engine.evaluate import protocol_for

    configs = Path(__file__).parents[2] / "configs"
    hrpro = protocol_for(load_config(configs / "thumos14_hrpro.yaml"))
    assert hrpro.exclude_videos == THUMOS14_EXCLUDED and hrpro.ambiguous.endswith("thumos14/ambiguous_test.txt")
    lacp = protocol_for(load_config(configs / "thumos14_lacp.yaml"))
    assert lacp.exclude_videos == THUMOS14_EXCLUDED and lacp.ambiguous is None  # LACP's eval has no filter
