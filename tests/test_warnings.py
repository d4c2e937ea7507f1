"""Issue 13: warnings say what is true (and name the file and line), surprising plans are said once, and
extreme or wrong-typed input is one line before any work (divergence, another method's checkpoint, sizes,
devices)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import tiny_raw_config

from pointtal.cli import main
from pointtal.config import build_config, load_config, save_config
from pointtal.data.annotations import load_ground_truth
from pointtal.data.points import Point, map_points, read_points, simulate_points, write_points
from pointtal.engine.checkpoint import load_checkpoint
from pointtal.engine.inference import resolve_device
from pointtal.engine.setup import load_run_data
from pointtal.engine.trainer import Trainer, train
from pointtal.errors import InputError
from pointtal.methods.base import schedule_steps

REPO = Path(__file__).resolve().parents[1]


def _messages(caplog, level=logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


def _all_video_clicks(data: Path, path: Path) -> list[Point]:
    """One click per instance on every video of the tiny preset, training and test subsets alike."""
    gt = load_ground_truth(data / "annotations.json")
    points = simulate_points(list(gt.videos.values()), "sfnet-center", 25.0, 16, 0)
    write_points(points, path)
    return points


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


# ---------------------------------------------------------------------------- false warnings about points
def test_clicks_on_test_videos_are_not_unknown_and_pass_strict(tiny_data, tmp_path, caplog):
    clicks = tmp_path / "all.csv"
    points = _all_video_clicks(tiny_data, clicks)
    n_test = sum(p.video_id.startswith("video_test") for p in points)
    assert 0 < n_test < len(points)
    raw = tiny_raw_config(tiny_data, "sfnet")
    raw["data"].update(points=[str(clicks)], strict_points=True)  # the old code failed --strict here
    caplog.set_level(logging.INFO)
    data = load_run_data(build_config(raw), test=False)
    assert "not in the ground truth" not in caplog.text
    note = next(m for m in _messages(caplog, logging.INFO) if "outside the training subset" in m)
    assert note.startswith(f"{clicks}: {n_test} point(s) on videos outside the training subset 'validation'")
    assert "subset 'test'" in note and "line " in note
    labelled_videos = np.unique(
        np.repeat(np.arange(len(data.train)), data.train.n_snippets)[data.train.point_labels.sum(1).numpy() > 0]
    )
    assert len(labelled_videos) == len(data.train)  # the training videos' own clicks are all used


def test_annotate_check_subset_counts_other_subsets_apart(tiny_data, tmp_path, capsys):
    clicks = tmp_path / "all.csv"
    points = _all_video_clicks(tiny_data, clicks)
    n_test = sum(p.video_id.startswith("video_test") for p in points)
    gt = str(tiny_data / "annotations.json")
    assert main(["annotate", gt, "--check", str(clicks), "--subset", "validation", "--strict"]) == 0
    line = capsys.readouterr().out.strip()
    assert f"0 unknown video, {n_test} on videos outside the subset" in line


def test_point_warnings_name_the_file_and_line_not_all_files(tiny_data, tmp_path, caplog):
    gt = load_ground_truth(tiny_data / "annotations.json")
    good, bad = tmp_path / "a1.csv", tmp_path / "a2.csv"
    good.write_text("video_validation_0001,1.0,Jump\n")
    bad.write_text("video_validation_0002,1.0,Jump\nvideo_validation_0002,9999.0,Jump\nnope,1.0,Jump\n")
    raw = tiny_raw_config(tiny_data, "sfnet")
    raw["data"].update(points=[str(good), str(bad)], annotator=1)
    load_run_data(build_config(raw), test=False)
    warnings = _messages(caplog)
    beyond = next(m for m in warnings if "beyond their video's last snippet" in m)
    unknown = next(m for m in warnings if "not in the ground truth" in m)
    assert beyond.startswith(f"{bad}: dropped 1 point(s)") and "line 2, video 'video_validation_0002'" in beyond
    assert unknown.startswith(f"{bad}: dropped 1 point(s)") and "line 3, video 'nope'" in unknown
    assert str(good) not in " ".join(warnings)
    bad.write_text("video_validation_0002,1.0,Jump\nvideo_validation_0002,2.0,Dance\n")
    with pytest.raises(InputError, match=rf"^{bad} line 2: video 'video_validation_0002': label 'Dance'"):
        map_points(read_points(bad), gt.videos, 25.0, 16, gt.class_index, source="a1.csv, a2.csv")
    bad.write_text("video_validation_0002,1.0,Jump\nnope,1.0,Jump\n")
    with pytest.raises(InputError, match=rf"^{bad} line 2: video 'nope' at 1.000 s is not in the ground truth"):
        map_points(read_points(bad), gt.videos, 25.0, 16, gt.class_index, strict=True, source="a1.csv, a2.csv")


def test_a_file_without_action_points_is_said_once(tiny_data, tmp_path, caplog):
    gt = load_ground_truth(tiny_data / "annotations.json")
    only_background = tmp_path / "bg.csv"
    only_background.write_text("video_validation_0001,1.0,background\nvideo_validation_0002,3.0,background\n")
    actions = tmp_path / "act.csv"
    actions.write_text("video_validation_0001,1.0,Jump\nvideo_validation_0002,3.0,background\n")
    points = read_points(only_background) + read_points(actions)
    map_points(points, gt.videos, 25.0, 16, gt.class_index)
    said = [m for m in _messages(caplog) if "names an action class" in m]
    assert len(said) == 1 and said[0].startswith(f"{only_background}: none of its 2 point(s)")
    caplog.clear()
    map_points(read_points(only_background), gt.videos, 25.0, 16, gt.class_index, actions_expected=False)
    assert not _messages(caplog)  # the soda-background scheme means it


# ---------------------------------------------------------------------------- one schedule
def total_steps(config, n_videos: int) -> int:
    """Steps of `train.steps` / `train.epochs` alone, as the trainer schedules them."""
    t = config.train
    return schedule_steps(t.steps, t.epochs, n_videos, t.batch_size)


def test_setting_steps_on_an_epochs_preset_wins_visibly(caplog):
    preset = REPO / "configs" / "thumos14_soda.yaml"
    assert load_config(preset).train.epochs == 150
    caplog.set_level(logging.INFO)
    config = load_config(preset, ["train.steps=50"])
    assert (config.train.steps, config.train.epochs, total_steps(config, 200)) == (50, None, 50)
    assert any("train.steps=50 (--set) replaces the config's train.epochs=150" in m for m in _messages(caplog, 0))
    config = load_config(REPO / "configs" / "thumos14_sfnet.yaml", ["train.epochs=3"])
    assert total_steps(config, 200) == 3 * 7  # batch 32 -> 7 steps an epoch
    with pytest.raises(InputError, match=r"train.steps=5 and --set train.epochs=3"):
        load_config(preset, ["train.steps=5", "train.epochs=3"])


def test_a_config_with_both_schedules_is_refused_and_saved_configs_hold_one(tmp_path):
    both = tmp_path / "both.yaml"
    both.write_text("train:\n  steps: 5\n  epochs: 3\n")
    with pytest.raises(InputError, match=r"both.yaml: train.steps=5 and train.epochs=3 are both set"):
        load_config(both)
    saved = tmp_path / "config.yaml"
    save_config(load_config(REPO / "configs" / "thumos14_soda.yaml"), saved)
    assert "steps" not in yaml.safe_load(saved.read_text())["train"]
    assert load_config(saved, ["train.steps=7"]).train.steps == 7  # resume with a new schedule


# ---------------------------------------------------------------------------- say once
def test_surprising_plans_are_said_once(tiny_data, tmp_path, caplog):
    raw = tiny_raw_config(tiny_data, "sfnet", steps=4, batch_size=40)
    raw["method"]["expand_step"] = 10
    Trainer(build_config(raw), tmp_path / "run")
    warnings = _messages(caplog)
    assert sum("method.expand_step=10 is not within the run's 4 steps" in m for m in warnings) == 1
    assert sum("train.batch_size=40 is larger than the 24 training videos" in m for m in warnings) == 1
    caplog.clear()
    raw["method"]["expand_step"] = -1  # a step that never comes: refused when the config is read
    with pytest.raises(InputError, match=r"method\.expand_step=-1 must be >= 0"):
        build_config(raw)
    caplog.clear()
    Trainer(build_config(tiny_raw_config(tiny_data, "sfnet", steps=4)), tmp_path / "other")
    assert not [m for m in _messages(caplog) if "expand_step" in m or "batch_size" in m]


def test_features_far_longer_than_the_duration_are_said_once_per_subset(tiny_data, caplog):
    raw = tiny_raw_config(tiny_data, "weak")
    load_run_data(build_config(raw))
    assert not [m for m in _messages(caplog) if "off their duration" in m]
    raw["data"]["stride"] = 64  # features were extracted at stride 16: 4x the snippets the duration gives
    load_run_data(build_config(raw))
    said = [m for m in _messages(caplog) if "off their duration" in m]
    assert len(said) == 2 and said[0].startswith("subset 'validation': 24 of 24 videos")
    assert "check data.fps and data.stride" in said[0]


# ---------------------------------------------------------------------------- crashes -> one line
def test_divergence_is_one_line_and_keeps_a_finite_checkpoint(tiny_data, tmp_path, capsys):
    raw = tiny_raw_config(tiny_data, "sfnet", steps=30, lr=1e10, checkpoint_every=1)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run)]) == 2
    err = _one_line_error(capsys)
    assert "training diverged at step" in err and "train.lr=1e+10" in err and "is kept" in err
    saved = load_checkpoint(run / "checkpoint.pt")
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())


def test_resuming_another_methods_checkpoint_is_one_line(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    train(build_config(tiny_raw_config(tiny_data, "sfnet", steps=2)), run)
    other = tmp_path / "weak.yaml"
    other.write_text(yaml.safe_dump(tiny_raw_config(tiny_data, "weak", steps=4)))
    assert main(["train", str(other), "--out", str(run), "--resume"]) == 2
    err = _one_line_error(capsys)
    # the run-directory guard refuses before any weights load, naming the changed key with both methods
    assert "method.name" in err and "sfnet" in err and "weak" in err and "differ" in err
    wider = tiny_raw_config(tiny_data, "sfnet", steps=4)
    wider["method"]["hidden"] = 32
    with pytest.raises(InputError, match=r"method\.hidden \(16 -> 32\)"):
        train(build_config(wider), run, resume=True)


def _no_work(*args, **kwargs):
    raise AssertionError("the work started although it should have been refused first")


def test_synth_refuses_a_feature_width_that_cannot_be_meant(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("pointtal.data.synthetic.video_features", _no_work)  # never write 31 GB, even if broken
    out = tmp_path / "big"
    assert main(["synth", str(out), "--preset", "tiny", "--dim", "2000000"]) == 2  # 31 GB of features
    err = _one_line_error(capsys)
    assert "--dim 2000000" in err and "31.4 GB" in err and "--force" in err
    assert not out.exists()  # refused before anything is written

    class Disk:
        free = 10**6

    monkeypatch.setattr("pointtal.data.synthetic.shutil.disk_usage", lambda path: Disk)
    assert main(["synth", str(out), "--preset", "tiny", "--dim", "64", "--force"]) == 2
    assert "only that much is free" in _one_line_error(capsys) and not out.exists()


def test_a_soda_window_that_cannot_be_meant_is_refused_before_the_work(tiny_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("pointtal.data.points._window_pieces", _no_work)  # 2.5e10 windows would run for days
    gt = str(tiny_data / "annotations.json")
    assert main(["annotate", gt, "--scheme", "soda", "--window-sec", "1e-7", "--out", str(tmp_path / "p.csv")]) == 2
    err = _one_line_error(capsys)
    assert "SODA window of 1e-07 s" in err and "windows" in err
    assert not (tmp_path / "p.csv").exists()


def test_a_batch_beyond_the_device_memory_is_refused_before_training(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr("pointtal.data.samplers.resample_index", _no_work)
    raw = tiny_raw_config(tiny_data, "soda")
    raw["method"]["resample_t"] = 10**10  # 4 videos x 1e10 snippets x 64 features
    with pytest.raises(InputError, match=r"method.resample_t=10000000000: one batch of 8 videos"):
        Trainer(build_config(raw), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


# ---------------------------------------------------------------------------- options of the wrong type
@pytest.mark.parametrize("name", ["tpu", "cuda:x", "gpu", "cuda:-1"])
def test_device_names_that_do_not_exist_are_one_line(tiny_data, tmp_path, capsys, name):
    run = tmp_path / "run"
    train(build_config(tiny_raw_config(tiny_data, "weak", steps=1)), run)
    assert main(["predict", str(run), "--out", str(tmp_path / "p.json"), "--device", name]) == 2
    assert f"--device {name}: is not a device name" in _one_line_error(capsys)
    with pytest.raises(InputError, match="train.device"):
        build_config(tiny_raw_config(tiny_data, "weak", device=name))


def test_a_cuda_index_the_machine_lacks_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(InputError, match=r"train.device='cuda:7' but this machine has 1 CUDA device"):
        resolve_device("cuda:7", "train.device")
    assert resolve_device("cuda:0").index == 0


def test_points_read_from_a_file_keep_file_and_line_but_compare_by_value(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("v,1.0,a\n\nv,2.0,b\n")
    points = read_points(path)
    assert [(p.file, p.line) for p in points] == [(str(path), 1), (str(path), 3)]
    assert points == [Point("v", 1.0, "a"), Point("v", 2.0, "b")]
    assert json.dumps([p.origin for p in points]) == json.dumps([f"{path} line 1", f"{path} line 3"])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.checkpoint_every=0", "train.checkpoint_every"),
        ("train.log_every=0", "train.log_every"),
        ("train.epochs=0", "train.epochs"),
        ("train.eval_every=-5", "train.eval_every"),
        ("train.grad_clip=-1", "train.grad_clip"),
        ("train.weight_decay=-1", "train.weight_decay"),
        ("eval.batch_size=0", "eval.batch_size"),
        ("eval.tiou=[1.5]", "eval.tiou"),
        ("eval.tiou=[]", "eval.tiou"),
    ],
)
def test_intervals_and_sizes_out_of_range_name_the_key(override, key):
    with pytest.raises(InputError, match=rf"^config: {key}="):
        load_config(None, [override])


def test_a_zero_interval_is_one_line_not_a_division_traceback(tiny_data, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_raw_config(tiny_data, "weak", steps=2)))
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--set", "train.log_every=0"]) == 2
    assert "train.log_every=0 must be > 0" in _one_line_error(capsys)


def test_points_on_no_video_of_the_subset_are_said(tiny_data, tmp_path, caplog):
    gt = load_ground_truth(tiny_data / "annotations.json")
    path = tmp_path / "test_only.csv"
    path.write_text("video_test_0001,1.0,Jump\n")
    training = {vid: v for vid, v in gt.videos.items() if v.subset == "validation"}
    mapped = map_points(
        read_points(path),
        training,
        25.0,
        16,
        gt.class_index,
        source=str(path),
        elsewhere={"video_test_0001": "subset 'test'"},
        scope="the training subset 'validation'",
    )
    assert len(mapped) == 0 and mapped.report.n_elsewhere == 1 and mapped.report.n_unknown_video == 0
    assert f"{path}: none of its 1 point(s) falls on a video of the training subset 'validation'" in _messages(caplog)
