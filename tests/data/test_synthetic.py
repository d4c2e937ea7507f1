"""The synthetic benchmark generator: layout, reproducibility, real structure, learnable-but-not-easy features."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from pointtal.cli import main
from pointtal.data.annotations import load_ground_truth
from pointtal.data.features import FeatureStore, SnippetGeometry
from pointtal.data.points import CUSTOM_BINS
from pointtal.data.synthetic import (
    VENDOR_DIR,
    expand_ranges,
    generate,
    simulate_clicks,
    smooth_time,
)
from pointtal.errors import InputError

CLICK_LINE = re.compile(r"^([A-Za-z0-9_.\-]+),(\d+\.\d{6}),([A-Za-z]+)$")


def file_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "tiny"
    return generate(out, "tiny", seed=0, progress=False)


def test_tiny_layout_and_ground_truth(tiny):
    out = tiny.out_dir
    assert (out / "annotations.json").is_file() and (out / "README.md").is_file()
    assert sorted(p.name for p in (out / "points").iterdir()) == [f"annotator{i}.csv" for i in range(1, 5)]
    gt = load_ground_truth(out / "annotations.json")
    assert len(gt.subset("validation")) == 24 and len(gt.subset("test")) == 12
    assert len(gt.classes) == 4 and tiny.classes == gt.classes
    assert all(v.fps == 25 for v in gt.videos.values())
    assert all(40 <= v.duration_sec <= 100 and 1 <= len(v.instances) <= 5 for v in gt.videos.values())
    for subset in ("validation", "test"):  # every class occurs in both subsets
        assert {i.label for v in gt.subset(subset) for i in v.instances} == set(gt.classes)
    meta = yaml.safe_load((out / "dataset.yaml").read_text())
    assert meta["generator"] == "pointtal synth" and meta["complete"] is True
    assert (meta["preset"], meta["seed"], meta["dim"], meta["dtype"]) == ("tiny", 0, 64, "float32")
    assert meta["data"]["fps"] == 25 and meta["data"]["stride"] == 16
    assert (meta["data"]["train_subset"], meta["data"]["test_subset"]) == ("validation", "test")
    assert meta["subsets"] == {"test": 12, "validation": 24}


def test_tiny_features_shape_finite_nonnegative(tiny):
    gt = load_ground_truth(tiny.annotations_path)
    geometry = SnippetGeometry(25, 16)
    store = FeatureStore(tiny.features_dir)
    assert store.ids() == sorted(gt.videos)
    total = 0
    for video in gt.videos.values():
        x = np.load(store.path(video.video_id))
        assert x.dtype == np.float32
        assert x.shape == (max(1, math.floor(video.duration_sec * 25 / 16)), 64)
        assert x.shape[0] == geometry.n_snippets(video.duration_sec)
        assert np.isfinite(x).all() and (x >= 0).all()
        assert (x > 0).mean() > 0.3  # not degenerate
        total += x.shape[0]
    assert total == tiny.n_snippets


def test_tiny_click_files(tiny):
    gt = load_ground_truth(tiny.annotations_path)
    train = {v.video_id for v in gt.subset("validation")}
    n_instances = sum(len(gt.videos[v].instances) for v in train)
    files = [p.read_text() for p in tiny.point_paths]
    assert len(set(files)) == 4  # each annotator has its own clicks
    for text in files:
        rows = [CLICK_LINE.match(line).groups() for line in text.splitlines()]  # every line well-formed
        keys = [(vid, float(t)) for vid, t, _ in rows]
        assert keys == sorted(keys)
        assert 0.9 * n_instances <= len(rows) <= n_instances
        inside = 0
        for vid, t, label in rows:
            assert vid in train and label in gt.classes
            assert 0 <= float(t) < gt.videos[vid].duration_sec
            inside += any(i.label == label and i.start_sec <= float(t) <= i.end_sec for i in gt.videos[vid].instances)
        assert inside >= 0.85 * len(rows)


def test_same_seed_byte_identical_other_seed_redraws_every_video(tiny, tmp_path):
    again = generate(tmp_path / "again", "tiny", seed=0, progress=False)
    assert file_hashes(again.out_dir) == file_hashes(tiny.out_dir)
    other = generate(tmp_path / "other", "tiny", seed=1, progress=False)
    first, second = (json.loads((s.out_dir / "annotations.json").read_text())["database"] for s in (tiny, other))
    assert sorted(first) == sorted(second) and len(first) == 36  # the preset's structure: same 24 + 12 videos
    for video_id in first:  # every video is redrawn: duration, instances and features all change
        assert first[video_id]["duration"] != second[video_id]["duration"], video_id
        assert first[video_id]["annotations"] != second[video_id]["annotations"], video_id
        a, b = (np.load(s.features_dir / f"{video_id}.npy") for s in (tiny, other))
        assert a.shape != b.shape or not np.allclose(a, b), video_id


def test_float16_option_and_dim(tmp_path):
    summary = generate(tmp_path / "half", "tiny", seed=3, dim=10, dtype="float16", progress=False)
    x = np.load(summary.features_dir / "video_validation_0001.npy")
    assert x.dtype == np.float16 and x.shape[1] == 10 and np.isfinite(x).all()
    assert yaml.safe_load(summary.dataset_yaml.read_text())["dtype"] == "float16"


def test_features_learnable_but_not_easy(tiny):
    """Nearest-class-mean on full snippet labels: clearly above chance, clearly below perfect."""
    gt = load_ground_truth(tiny.annotations_path)
    geometry = SnippetGeometry(25, 16)

    def snippets(subset):
        xs, ys = [], []
        for video in gt.subset(subset):
            x = np.load(tiny.features_dir / f"{video.video_id}.npy")
            centre_sec = geometry.to_seconds(np.arange(len(x)) + 0.5)
            y = np.zeros(len(x), dtype=np.int64)
            for inst in video.instances:
                y[(centre_sec >= inst.start_sec) & (centre_sec < inst.end_sec)] = gt.class_index[inst.label]
            xs.append(x)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)

    x_train, y_train = snippets("validation")
    x_test, y_test = snippets("test")
    means = np.stack([x_train[y_train == c].mean(axis=0) for c in range(len(gt.classes) + 1)])  # (C+1, D)
    pred = ((x_test[:, None, :] - means[None]) ** 2).sum(-1).argmin(axis=1)
    recall = [(pred[y_test == c] == c).mean() for c in range(len(gt.classes) + 1)]
    balanced = float(np.mean(recall))
    assert balanced > 0.4  # chance is 1 / 5
    assert balanced < 0.95 and (pred == y_test).mean() < 0.95
    # action snippets differ from background by their mean activation in at least some dimensions
    gap = np.abs(x_test[y_test > 0].mean(0) - x_test[y_test == 0].mean(0)) / (x_test.std(0) + 1e-6)
    assert gap.max() > 0.2


@pytest.mark.slow  # THUMOS-size synthetic data
def test_thumos14_structure_and_real_clicks(tmp_path):
    summary = generate(tmp_path / "th14", "thumos14", seed=0, dim=16, progress=False)
    gt = load_ground_truth(summary.annotations_path)
    real = load_ground_truth(VENDOR_DIR / "thumos14" / "groundtruth.json")
    assert len(gt.subset("validation")) == 200 and len(gt.subset("test")) == 212
    assert len(gt.classes) == 20 and gt.classes == real.classes
    for vid, video in real.videos.items():
        assert gt.videos[vid].duration_sec == video.duration_sec
        assert gt.videos[vid].instances == video.instances
        assert gt.videos[vid].fps == 25
    for i, path in enumerate(summary.point_paths, start=1):
        assert path.read_bytes() == (VENDOR_DIR / "thumos14" / f"points_annotator{i}.csv").read_bytes()
    assert len(list(summary.features_dir.glob("*.npy"))) == 412
    x = np.load(summary.features_dir / "video_test_0000896.npy")
    assert x.shape == (math.floor(real.videos["video_test_0000896"].duration_sec * 25 / 16), 16)
    assert summary.n_snippets == sum(SnippetGeometry(25, 16).n_snippets(v.duration_sec) for v in real.videos.values())
    meta = yaml.safe_load(summary.dataset_yaml.read_text())
    assert (meta["data"]["train_subset"], meta["data"]["test_subset"]) == ("validation", "test")


def test_gtea_structure(tmp_path):
    summary = generate(tmp_path / "gtea", "gtea", seed=0, dim=8, progress=False)
    gt = load_ground_truth(summary.annotations_path)
    assert len(gt.subset("training")) == 21 and len(gt.subset("validation")) == 7 and len(gt.classes) == 7
    assert all(v.fps == 15 for v in gt.videos.values())
    assert summary.point_paths[0].read_bytes() == (VENDOR_DIR / "gtea" / "points_annotator1.csv").read_bytes()
    video = gt.subset("validation")[0]
    assert np.load(summary.features_dir / f"{video.video_id}.npy").shape == (
        math.floor(video.duration_sec * 15 / 16),
        8,
    )


def test_beoid_structure(tmp_path):
    """BEOID's real structure (SF-Net's ground truth: 46 + 12 videos, 34 classes, 742 instances, fps 30) and its
    4 annotators' clicks, byte for byte."""
    summary = generate(tmp_path / "beoid", "beoid", seed=0, dim=8, progress=False)
    gt = load_ground_truth(summary.annotations_path)
    assert len(gt.subset("training")) == 46 and len(gt.subset("validation")) == 12 and len(gt.classes) == 34
    assert sum(len(v.instances) for v in gt.videos.values()) == 742
    assert all(v.fps == 30 for v in gt.videos.values())
    for k, path in enumerate(summary.point_paths, 1):
        assert path.read_bytes() == (VENDOR_DIR / "beoid" / f"points_annotator{k}.csv").read_bytes()
    video = gt.subset("validation")[0]
    assert np.load(summary.features_dir / f"{video.video_id}.npy").shape == (
        math.floor(video.duration_sec * 30 / 16),
        8,
    )
    meta = yaml.safe_load(summary.dataset_yaml.read_text())
    assert (meta["data"]["train_subset"], meta["data"]["test_subset"]) == ("training", "validation")


def test_refuses_foreign_non_empty_directory(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        generate(out, "tiny", dim=8, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    generate(out, "tiny", dim=8, overwrite=True, progress=False)
    assert (out / "notes.txt").read_text() == "keep me" and (out / "annotations.json").is_file()


def test_regenerating_previous_output_replaces_its_own_files_only(tmp_path):
    out = tmp_path / "synth"
    generate(out, "tiny", dim=8, progress=False)
    (out / "features" / "user_extra.txt").write_text("mine")
    with pytest.raises(InputError, match="another synthetic dataset"):  # would remove its features
        generate(out, "gtea", dim=8, progress=False)
    generate(out, "gtea", dim=8, overwrite=True, progress=False)  # replacing it is asked for explicitly
    names = {p.name for p in (out / "features").iterdir()}
    assert "user_extra.txt" in names
    assert not any(n.startswith("video_validation_") for n in names)  # stale tiny features removed
    assert len(names) == 28 + 1
    assert load_ground_truth(out / "annotations.json").classes[0] == "close"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"preset": "kinetics"}, "unknown preset"),
        ({"preset": "tiny", "dim": 7}, "even"),
        ({"preset": "tiny", "dim": 0}, "even"),
        ({"preset": "tiny", "dtype": "int8"}, "dtype"),
        ({"preset": "tiny", "seed": -1}, "seed"),
    ],
)
def test_bad_options(tmp_path, kwargs, match):
    with pytest.raises(InputError, match=match):
        generate(tmp_path / "x", progress=False, **kwargs)
    assert not (tmp_path / "x").exists()


def test_cli_summary_and_error(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["synth", str(out), "--preset", "tiny", "--dim", "8", "--seed", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].startswith("synth tiny: 36 videos")
    assert str(out / "annotations.json") in printed
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "a.txt").write_text("x")
    assert main(["synth", str(foreign), "--preset", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pointtal synth: error:") and "--overwrite" in err[0]


def test_simulated_click_positions_follow_custom_distribution():
    segments = [{"segment": [10.0 * k, 10.0 * k + 5.0], "label": "A"} for k in range(2000)]
    database = {"v": {"subset": "train", "duration": 20000.0, "annotations": segments}}
    rows = simulate_clicks(database, "train", np.random.default_rng(0), miss_prob=0.0, jitter_sec=0.0)
    rel = np.array([(t % 10.0) / 5.0 for _, t, _ in rows])
    hist = np.histogram(rel, bins=10, range=(0, 1))[0] / len(rel)
    np.testing.assert_allclose(hist, CUSTOM_BINS, atol=0.025)
    assert simulate_clicks(database, "test", np.random.default_rng(0)) == []


def test_expand_ranges_and_smooth_time_by_hand():
    owner, values = expand_ranges(np.array([2, 5, 7]), np.array([4, 5, 9]))
    assert owner.tolist() == [0, 0, 2, 2] and values.tolist() == [2, 3, 7, 8]
    z = np.array([[0.0], [4.0], [0.0], [8.0]])
    assert smooth_time(z)[:, 0].tolist() == [1.0, 2.0, 3.0, 6.0]
