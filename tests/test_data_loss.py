"""No command destroys data: inputs and foreign files are never overwritten, resume keeps a run's config true
to its weights, synth keeps an earlier dataset, a full or read-only disk stops with one line and keeps the last
complete checkpoint (issue 13, "Data loss")."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import tiny_raw_config

from pointtal.cli import main
from pointtal.data.synthetic import generate
from pointtal.engine.checkpoint import load_checkpoint
from pointtal.errors import InputError

GT = {
    "version": "t",
    "database": {
        "v1": {
            "subset": "validation",
            "duration": 20.0,
            "fps": 25,
            "annotations": [{"segment": [2.0, 6.0], "label": "jump"}],
        },
        "v2": {
            "subset": "test",
            "duration": 20.0,
            "fps": 25,
            "annotations": [{"segment": [3.0, 8.0], "label": "jump"}],
        },
    },
}


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture()
def gt_path(tmp_path) -> Path:
    path = tmp_path / "g.json"
    path.write_text(json.dumps(GT), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- class 1: outputs vs inputs
def test_annotate_never_overwrites_its_ground_truth(gt_path, tmp_path, capsys):
    before = gt_path.read_bytes()
    link = tmp_path / "link.json"
    link.symlink_to(gt_path)
    hard = tmp_path / "hard.json"
    os.link(gt_path, hard)
    for out in (gt_path, link, hard):
        for extra in ([], ["--overwrite"]):  # an input is never replaced, even with --overwrite
            assert main(["annotate", str(gt_path), "--scheme", "soda", "--out", str(out), *extra]) == 2
            line = _one_error_line(capsys)
            assert "is the ground truth this command reads" in line and str(out) in line
    assert gt_path.read_bytes() == before


def test_annotate_protects_a_foreign_click_file_but_reruns_onto_its_own(gt_path, tmp_path, capsys):
    human = tmp_path / "clicks.csv"
    human.write_text("v1,3.0,jump\n", encoding="utf-8")
    args = ["annotate", str(gt_path), "--scheme", "sfnet-uniform", "--out", str(human)]
    assert main(args) == 2
    assert "--overwrite" in _one_error_line(capsys)
    assert human.read_text() == "v1,3.0,jump\n"
    assert main([*args, "--overwrite"]) == 0
    written = human.read_text()
    assert written != "v1,3.0,jump\n"
    assert main([*args, "--seed", "1"]) == 0  # its own output: rerun without a flag
    human.write_text(written + "v1,9.0,jump\n", encoding="utf-8")  # edited by the user since: protected again
    assert main(args) == 2 and "edited since" in _one_error_line(capsys)


def test_evaluate_json_never_overwrites_the_ground_truth(gt_path, tmp_path, capsys):
    pred = tmp_path / "p.json"
    pred.write_text(json.dumps({"results": {"v2": [{"label": "jump", "score": 0.9, "segment": [3.0, 8.0]}]}}))
    before = gt_path.read_bytes()
    for target, role in ((gt_path, "ground truth"), (pred, "predictions")):
        assert main(["evaluate", str(gt_path), str(pred), "--json", str(target), "--overwrite"]) == 2
        assert f"is the {role} this command reads" in _one_error_line(capsys)
    assert gt_path.read_bytes() == before
    metrics = tmp_path / "m.json"
    metrics.write_text("my notes")
    assert main(["evaluate", str(gt_path), str(pred), "--json", str(metrics)]) == 2
    assert metrics.read_text() == "my notes" and "not written by pointtal" in _one_error_line(capsys)
    metrics.unlink()
    for _ in range(2):  # rerunning onto its own output is frictionless
        assert main(["evaluate", str(gt_path), str(pred), "--json", str(metrics)]) == 0
    assert json.loads(metrics.read_text())["map"][0] == pytest.approx(100.0)


def test_check_outputs_refuses_directories_paths_under_files_and_twin_outputs(tmp_path):
    from pointtal.outputs import MANIFEST, check_outputs, is_own_output, record_output

    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="is a directory"):
        check_outputs({"--out": tmp_path})
    with pytest.raises(InputError, match="is a file, not a directory"):
        check_outputs({"--out": tmp_path / "f" / "p.json"})
    with pytest.raises(InputError, match="same file as --out"):
        check_outputs({"--out": tmp_path / "p.json", "--frames-out": tmp_path / "." / "p.json"})
    record_output(tmp_path / "f", "test")
    assert is_own_output(tmp_path / "f") and (tmp_path / MANIFEST).is_file()


@pytest.fixture(scope="module")
def tiny_run(tiny_data, tmp_path_factory):
    """A finished 4-step SF-Net run trained through the CLI from a config file."""
    tmp = tmp_path_factory.mktemp("run")
    config = tmp / "sfnet.yaml"
    config.write_text(yaml.safe_dump(tiny_raw_config(tiny_data, "sfnet", steps=4, checkpoint_every=2)))
    assert main(["train", str(config), "--out", str(tmp / "run")]) == 0
    return config, tmp / "run"


def test_predict_and_visualize_never_overwrite_the_run_they_read(tiny_run, tmp_path, capsys):
    _, run = tiny_run
    state = {name: (run / name).read_bytes() for name in ("config.yaml", "checkpoint.pt", "metrics.jsonl")}
    for name in state:
        assert main(["predict", str(run), "--out", str(run / name), "--overwrite", "--no-progress"]) == 2
        assert f"is the run's {name}" in _one_error_line(capsys)
        assert main(["visualize", str(run), "--video", "video_test_0000001", "--out", str(run / name)]) == 2
        assert f"is the run's {name}" in _one_error_line(capsys)
    assert {name: (run / name).read_bytes() for name in state} == state
    for _ in range(2):  # predict onto the run's own predictions.json, twice: no flag needed
        assert main(["predict", str(run), "--out", str(run / "predictions.json"), "--no-progress"]) == 0


def test_train_refuses_a_directory_holding_foreign_run_files(tiny_data, tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_raw_config(tiny_data, "weak", steps=2)))
    before = config.read_bytes()
    assert main(["train", str(config), "--out", str(tmp_path)]) == 2  # would rewrite config.yaml in place
    line = _one_error_line(capsys)
    assert "config.yaml" in line and "another --out" in line
    assert config.read_bytes() == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")  # files train does not write are no obstacle
    assert main(["train", str(config), "--out", str(tmp_path / "other")]) == 0
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


# ----------------------------------------------------------------------------- class 2: resume
def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_resume_refuses_a_changed_config_naming_the_keys(tiny_run, capsys):
    config, run = tiny_run
    before = {name: (run / name).read_bytes() for name in ("config.yaml", "metrics.jsonl", "checkpoint.pt")}
    code = main(["train", "--out", str(run), "--resume", "--set", "method.eta=1", "--set", "train.lr=0.5"])
    assert code == 2
    line = _one_error_line(capsys)
    assert "method.eta (5.0 -> 1.0)" in line and "train.lr (0.001 -> 0.5)" in line
    assert {name: (run / name).read_bytes() for name in before} == before


def test_resume_has_no_duplicate_rows_and_records_runtime_changes(tiny_run):
    config, run = tiny_run
    assert main(["train", str(config), "--out", str(run), "--resume"]) == 0  # same config file: no change
    assert main(["train", "--out", str(run), "--resume", "--set", "train.log_every=1"]) == 0
    steps = [row["step"] for row in _rows(run)]
    assert steps == sorted(set(steps)) and steps[-1] == 4
    changes = [json.loads(line) for line in (run / "config_changes.jsonl").read_text().splitlines()]
    assert changes == [{"step": 4, "changed": {"train.log_every": [5, 1]}}]
    assert yaml.safe_load((run / "config.yaml").read_text())["method"]["eta"] == 5.0


def test_resume_with_more_steps_lengthens_the_run_exactly(tiny_data, tmp_path):
    """train.steps may change on resume (recorded): 3 steps then resumed to 6 equal 6 steps from the start."""
    config = tmp_path / "weak.yaml"
    config.write_text(yaml.safe_dump(tiny_raw_config(tiny_data, "weak", steps=3, checkpoint_every=1)))
    short, whole = tmp_path / "short", tmp_path / "whole"
    assert main(["train", str(config), "--out", str(short)]) == 0
    assert main(["train", "--out", str(short), "--resume", "--set", "train.steps=6"]) == 0
    assert main(["train", str(config), "--out", str(whole), "--set", "train.steps=6"]) == 0
    resumed, direct = load_checkpoint(short / "checkpoint.pt"), load_checkpoint(whole / "checkpoint.pt")
    assert resumed["step"] == direct["step"] == 6
    assert resumed["model"].keys() == direct["model"].keys()
    assert all(torch.equal(resumed["model"][k], direct["model"][k]) for k in direct["model"])
    changes = [json.loads(line) for line in (short / "config_changes.jsonl").read_text().splitlines()]
    assert changes == [{"step": 3, "changed": {"train.steps": [3, 6]}}]
    assert yaml.safe_load((short / "config.yaml").read_text())["train"]["steps"] == 6


def test_train_says_when_extract_json_disagrees_with_its_feature_files(tiny_data, tmp_path, capsys):
    """Issue 18: a folder whose extract.json describes its files wrongly (one re-extracted at stride 8, the
    others left at 16 and no longer listed) was read as stride 8 without a word; training now refuses it,
    naming the manifest and the files."""
    import shutil

    features = tmp_path / "features"
    shutil.copytree(tiny_data / "features", features)
    files = sorted(features.glob("*.npy"))
    videos = {p.stem: {"file": f"{p.stem}.mp4", "snippets": int(np.load(p).shape[0])} for p in files}
    manifest = {"fps": 25.0, "stride": 16, "backbone": "i3d", "videos": videos}
    (features / "extract.json").write_text(json.dumps(manifest))
    raw = tiny_raw_config(tiny_data, "weak", steps=1)
    raw["data"]["features"] = str(features)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["train", str(config), "--out", str(tmp_path / "ok")]) == 0  # agrees: trains
    capsys.readouterr()
    first, second = files[0].stem, files[1].stem
    videos[first]["snippets"] *= 2  # re-extracted at half the stride, recorded so
    del videos[second]  # a file the manifest no longer lists
    (features / "extract.json").write_text(json.dumps(manifest))
    assert main(["train", str(config), "--out", str(tmp_path / "bad")]) == 2
    line = _one_error_line(capsys)
    assert "extract.json: does not describe the feature files beside it (2 files" in line
    assert f"{first}.npy has {videos[first]['snippets'] // 2} snippets, extract.json records" in line
    assert f"{second}.npy is not listed" in line and not (tmp_path / "bad" / "checkpoint.pt").exists()


# ----------------------------------------------------------------------------- class 3: synth
def test_synth_over_another_dataset_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "synth"
    generate(out, "tiny", dim=8, progress=False)
    before = sorted(p.name for p in (out / "features").iterdir())
    assert main(["synth", str(out), "--preset", "gtea", "--dim", "8", "--no-progress"]) == 2
    assert "--overwrite" in _one_error_line(capsys)
    assert sorted(p.name for p in (out / "features").iterdir()) == before
    generate(out, "tiny", dim=8, seed=3, progress=False)  # the same videos again: rewritten in place
    assert sorted(p.name for p in (out / "features").iterdir()) == before


# ----------------------------------------------------------------------------- class 4: full or read-only disk
def test_unwritable_run_dir_fails_before_loading_data(tiny_data, tmp_path, capsys, monkeypatch):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_raw_config(tiny_data, "weak", steps=2)))

    def no_data(*args, **kwargs):
        raise AssertionError("data loaded before the run directory was checked")

    monkeypatch.setattr("pointtal.engine.trainer.load_run_data", no_data)
    (tmp_path / "file").write_text("x")
    assert main(["train", str(config), "--out", str(tmp_path / "file" / "run")]) == 2
    assert "is a file, not a directory" in _one_error_line(capsys)

    def read_only(fd):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "fsync", read_only)
    assert main(["train", str(config), "--out", str(tmp_path / "ro")]) == 2
    assert "read-only file system" in _one_error_line(capsys)


def test_full_disk_stops_with_one_line_and_keeps_the_last_checkpoint(tiny_data, tmp_path, capsys, monkeypatch):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_raw_config(tiny_data, "weak", steps=8, checkpoint_every=2)))
    real_save, calls = torch.save, []

    def fill_disk_at_third_save(obj, handle, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            handle.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr("pointtal.engine.checkpoint.torch.save", fill_disk_at_third_save)
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run)]) == 2
    line = _one_error_line(capsys)
    assert "no space left on device" in line and "checkpoint.pt of step 4 is kept" in line and "--resume" in line
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 4
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr("pointtal.engine.checkpoint.torch.save", real_save)
    assert main(["train", "--out", str(run), "--resume"]) == 0  # free space, resume: it finishes
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 8
