"""The LACP / HR-Pro release files in every command (issue 18 §3): `evaluate` and `annotate --check` read
LACP's gt.json (no durations) and HR-Pro's gt_full.json (subsets `Validation` / `Test`); videos without
feature files are skipped with a warning that names that cause, never "no valid fps" or "classes differ".

The release layouts are written by `test_layouts.write_lacp` from the tiny benchmark (stand-in features)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from test_layouts import _raw, source, write_lacp, write_pointtal  # noqa: F401  (source: the shared fixture)

from pointtal.cli import main
from pointtal.config import build_config
from pointtal.engine.setup import load_run_data
from pointtal.engine.trainer import train

LACP_POINTS = "point_gaussian/point_labels.csv"


def _results(annotations_path, subset: str, keep_every: int = 2) -> dict:
    """Predictions: every `keep_every`-th test instance of pointtal's own ground truth, widened by 0.3 s."""
    database = json.loads(annotations_path.read_text())["database"]
    results = {}
    for video_id, entry in database.items():
        if entry["subset"] == subset:
            results[video_id] = [
                {"label": a["label"], "score": 1.0 - 0.01 * i, "segment": [a["segment"][0], a["segment"][1] + 0.3]}
                for i, a in enumerate(entry["annotations"][::keep_every])
            ]
    return {"results": results}


def _evaluate(capsys, gt, predictions, *extra) -> dict:
    out = predictions.parent / f"metrics_{len(list(predictions.parent.glob('metrics_*')))}.json"
    assert main(["evaluate", str(gt), str(predictions), "--json", str(out), *extra]) == 0
    capsys.readouterr()
    return json.loads(out.read_text())


def test_evaluate_reads_lacp_gt_json_and_hrpro_gt_full_json(source, tmp_path, capsys):
    """Before: `pointtal evaluate gt.json` -> "video '...': missing 'duration'" (LACP), and `--subset test` on a
    bare gt_full.json -> "subset 'test' does not exist". After: both score as pointtal's own ground truth."""
    lacp = write_lacp(tmp_path / "lacp", source)
    hrpro = write_lacp(tmp_path / "hrpro", source, hrpro=True)
    own = write_pointtal(tmp_path / "own", source)
    predictions = tmp_path / "pred.json"
    predictions.write_text(json.dumps(_results(own / "annotations.json", "test")))
    reference = _evaluate(capsys, own / "annotations.json", predictions, "--subset", "test")
    assert 0 < reference["average"] < 100  # half the instances found: a number that can differ
    for gt in (lacp / "gt.json", lacp, hrpro / "gt_full.json"):  # file with split files beside, or the folder
        assert _evaluate(capsys, gt, predictions, "--subset", "test")["map"] == reference["map"], gt
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(hrpro / "gt_full.json", alone / "gt_full.json")  # no split files: HR-Pro's own subset names
    doc = _evaluate(capsys, alone / "gt_full.json", predictions, "--subset", "test")
    assert doc["map"] == reference["map"] and doc["subset"] == "Test"
    assert _evaluate(capsys, lacp, predictions, "--subset", "TEST")["map"] == reference["map"]
    shutil.copy(lacp / "gt.json", alone / "gt.json")  # LACP's file alone: string times, read only as a release
    assert main(["evaluate", str(alone / "gt.json"), str(predictions)]) != 0
    assert "keep split_train.txt / split_test.txt beside it" in capsys.readouterr().err


def test_unknown_subset_lists_the_valid_names(source, tmp_path, capsys):
    hrpro = write_lacp(tmp_path / "hrpro", source, hrpro=True)
    alone = tmp_path / "gt_full.json"
    shutil.copy(hrpro / "gt_full.json", alone)
    predictions = tmp_path / "pred.json"
    predictions.write_text(json.dumps({"results": {}}))
    assert main(["evaluate", str(alone), str(predictions), "--subset", "testing"]) != 0
    assert "subset 'testing' does not exist; available: Test, Validation" in capsys.readouterr().err


def test_annotate_check_reads_lacp_gt_json_with_features(source, tmp_path, capsys):
    """Before: "missing 'duration'" whatever was given. After: --features gives the durations, the check maps
    every point as on pointtal's own layout; without it the error names --features."""
    lacp = write_lacp(tmp_path / "lacp", source)
    own = write_pointtal(tmp_path / "own", source)
    assert main(["annotate", str(own / "annotations.json"), "--check", str(own / "points.csv")]) == 0
    expected = capsys.readouterr().out.split(": ", 1)[1]
    assert main(["annotate", str(lacp / "gt.json"), "--check", str(lacp / LACP_POINTS), "--features", str(lacp)]) == 0
    assert capsys.readouterr().out.split(": ", 1)[1] == expected  # same counts: points, mapped, videos
    n_points = len(source[2])
    assert expected.startswith(f"{n_points} points, {n_points} mapped")
    assert main(["annotate", str(lacp / "gt.json"), "--check", str(lacp / LACP_POINTS)]) != 0
    assert (
        "has no duration; it is taken from the features, so give them (data.features, or --features)"
        in capsys.readouterr().err
    )
    hrpro = write_lacp(tmp_path / "hrpro", source, hrpro=True)  # durations in the file: no features needed
    assert (
        main(
            [
                "annotate",
                str(hrpro / "gt_full.json"),
                "--check",
                str(hrpro / "point_labels/point_gaussian.csv"),
                "--subset",
                "VALIDATION",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.split(": ", 1)[1] == expected


def _drop_features(root, video_ids) -> None:
    for video_id in video_ids:
        for path in root.glob(f"features/*/*/{video_id}.npy"):
            path.unlink()


def test_training_video_without_features_is_skipped_not_blamed_on_fps(source, tmp_path, caplog):
    """Before: "point_labels.csv line N: no valid fps for video 'video_validation_0002'" although fps_dict.json
    has it. After: the video is skipped with the warning the README promises, its points are reported as on a
    video without a feature file, and points of videos in neither file are skipped with a warning."""
    root = write_lacp(tmp_path / "lacp", source)
    _drop_features(root, ["video_validation_0002"])
    csv = root / LACP_POINTS
    with csv.open("a") as handle:  # a release point file covering a video of no file at all
        handle.write("Class0,0,10,20,video_validation_9999,15\n")
    caplog.set_level(logging.INFO)
    config = build_config(_raw(root / "gt.json", root, csv))
    run = load_run_data(config)
    full = load_run_data(build_config(_raw(*(p for p in _own_paths(write_pointtal(tmp_path / "own", source))))))
    assert run.classes == full.classes
    assert run.train.video_ids == [v for v in full.train.video_ids if v != "video_validation_0002"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("have no duration and no feature file; skipped (first: video_validation_0002)" in m for m in messages)
    assert any(
        "on videos outside the training subset 'validation' are not used" in m
        and "video_validation_0002" in m
        and "without a feature file" in m
        for m in messages
    )
    assert any(
        "1 point(s) of 1 video(s) in neither the ground truth nor the fps dictionary are skipped" in m
        and "video_validation_9999" in m
        for m in messages
    )
    assert not any("no valid fps" in m or "not in the ground truth" in m for m in messages)


def _own_paths(own):
    return own / "annotations.json", own / "features", own / "points.csv"


def test_pseudo_labels_with_features_of_some_videos_name_no_class_mismatch(source, tmp_path, capsys):
    """Before: `predict --pseudo-labels --features PART` where PART lacks every video of one class ->
    "classes differ from the run's checkpoint". After: the classes are the ground truth's, whatever features
    exist; the videos without features are left out of the file."""
    root = write_lacp(tmp_path / "lacp", source)
    run = tmp_path / "run"
    train(build_config(_raw(root / "gt.json", root, root / LACP_POINTS, steps=2)), run)
    gt, _, _ = source
    first = gt.classes[0]
    with_first = [v for v, video in gt.videos.items() if any(i.label == first for i in video.instances)]
    part = tmp_path / "part"
    shutil.copytree(root / "features", part / "features")
    _drop_features(part, with_first)
    labels = tmp_path / "pseudo.json"
    assert main(["predict", str(run), "--features", str(part), "--pseudo-labels", str(labels), "--no-progress"]) == 0, (
        capsys.readouterr().err
    )
    written = json.loads(labels.read_text())["database"]
    train_ids = {v for v, video in gt.videos.items() if video.subset == "validation"}
    assert set(written) & train_ids == train_ids - set(with_first)


@pytest.mark.slow
def test_readme_release_walkthrough_gives_a_table_of_both_methods(source, tmp_path, capsys, monkeypatch):
    """README, "From the LACP / HR-Pro release files": the exact commands on stand-in features in both release
    layouts (step counts cut down), ending in one table whose rows are what each run reported."""
    monkeypatch.chdir(tmp_path)
    write_lacp(tmp_path / "LACP/dataset/THUMOS14", source)
    hrpro = write_lacp(tmp_path / "HR-Pro/dataset/THUMOS14", source, hrpro=True)
    shutil.copy(
        Path(__file__).parents[2] / "pointtal/data/vendor/thumos14/ambiguous_test.txt", hrpro / "Ambiguous_test.txt"
    )
    configs = Path(__file__).parents[2] / "configs"
    short = ["--set", "train.steps=3", "--set", "train.eval_every=0", "--set", "train.device=cpu", "--no-progress"]
    assert (
        main(
            [
                "annotate",
                "LACP/dataset/THUMOS14/gt.json",
                "--features",
                "LACP/dataset/THUMOS14",
                "--check",
                "LACP/dataset/THUMOS14/point_gaussian/point_labels.csv",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                str(configs / "thumos14_lacp.yaml"),
                "--out",
                "runs/lacp",
                "--set",
                "data.annotations=LACP/dataset/THUMOS14",
                "--set",
                "data.features=LACP/dataset/THUMOS14",
                "--set",
                "data.points=LACP/dataset/THUMOS14/point_gaussian/point_labels.csv",
                "--set",
                "method.hidden=32",
                *short,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                str(configs / "thumos14_hrpro.yaml"),
                "--out",
                "runs/hrpro",
                "--set",
                "data.annotations=HR-Pro/dataset/THUMOS14",
                "--set",
                "data.features=HR-Pro/dataset/THUMOS14",
                "--set",
                "data.points=HR-Pro/dataset/THUMOS14/point_labels/point_gaussian.csv",
                "--set",
                "method.stage2_epochs=1",
                *short,
            ]
        )
        == 0
    )
    capsys.readouterr()
    both = ["evaluate", "HR-Pro/dataset/THUMOS14", "runs/lacp/predictions.json", "runs/hrpro/predictions.json"]
    assert main(both) == 2  # the runs record different protocols (HR-Pro's discards ambiguous segments)
    assert "give --protocol RUN_DIR|none" in capsys.readouterr().err
    assert main([*both, "--protocol", "runs/hrpro", "--json", "table.json"]) == 0
    printed = capsys.readouterr().out
    assert "protocol: 3 video(s) excluded (270, 1292, 1496); ambiguous segments of ambiguous_test.txt" in printed
    rows = json.loads((tmp_path / "table.json").read_text())["rows"]
    assert [r["label"] for r in rows] == ["lacp", "hrpro"]
    for row, run in zip(rows, ("lacp", "hrpro"), strict=True):  # no test video is excluded or ambiguous here
        final = json.loads((tmp_path / "runs" / run / "metrics.jsonl").read_text().splitlines()[-1])
        assert row["map"] == [final[f"mAP@{t:g}"] for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)]


def test_subset_names_match_regardless_of_case_only_when_unambiguous(source, tmp_path):
    """Before: `--subset test` / `data.test_subset=test` on HR-Pro's gt_full.json (subsets 'Validation', 'Test')
    -> "subset 'test' does not exist"."""
    from pointtal.data.annotations import load_ground_truth

    hrpro = write_lacp(tmp_path / "hrpro", source, hrpro=True)
    alone = tmp_path / "gt_full.json"
    shutil.copy(hrpro / "gt_full.json", alone)
    gt = load_ground_truth(alone)
    assert gt.subset_name("test") == "Test" and gt.subset_name("Validation") == "Validation"
    assert [v.video_id for v in gt.subset("TEST")] == sorted(v for v in source[0].videos if "test" in v)
    doc = json.loads(alone.read_text())
    first = next(iter(doc["database"]))
    doc["database"][first]["subset"] = "TEST"  # 'Test' and 'TEST': 'test' names neither for sure
    alone.write_text(json.dumps(doc))
    with pytest.raises(Exception, match=r"subset 'test' does not exist; available: TEST, Test, Validation"):
        load_ground_truth(alone).subset("test")
    assert load_ground_truth(alone).subset_name("Test") == "Test"  # the exact name always wins


def test_plain_ground_truth_without_durations_takes_them_from_the_features(source, tmp_path, capsys):
    """A plain ActivityNet file without 'duration' (LACP's gt.json copied with numeric times): training and
    `annotate --features` take T x stride / fps; without features the error names both sources."""
    own = write_pointtal(tmp_path / "own", source)
    doc = json.loads((own / "annotations.json").read_text())
    for entry in doc["database"].values():
        del entry["duration"]
    bare = own / "no_durations.json"
    bare.write_text(json.dumps(doc))
    run = load_run_data(build_config(_raw(bare, own / "features", own / "points.csv")), test=False)
    _, features, _ = source
    assert all(v.duration_sec == features[v.video_id].shape[0] * 16 / 25.0 for v in run.gt.videos.values())
    assert main(["annotate", str(bare), "--check", str(own / "points.csv"), "--features", str(own / "features")]) == 0
    assert main(["annotate", str(bare), "--check", str(own / "points.csv")]) != 0
    assert "missing 'duration'; give the features (data.features, or --features)" in capsys.readouterr().err
