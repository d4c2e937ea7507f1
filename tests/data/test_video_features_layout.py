"""Features in v-iashin/video_features' layout (issue 23, item 3): `<stem>_rgb.npy`, `<stem>_flow.npy`,
`<stem>_fps.npy`, `<stem>_timestamps_ms.npy`, as its I3D extractor saves them (float64 lists turned arrays, the
fps a 0-d array, one timestamp a stack of 64 frames), read in place and trained on like pointtal's own layout."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_raw_config

from pointtal.config import build_config
from pointtal.data.annotations import load_ground_truth
from pointtal.data.layouts import VideoFeaturesStore, detect_layout, open_features
from pointtal.engine.setup import load_run_data
from pointtal.engine.trainer import train
from pointtal.errors import InputError

STEP, FPS = 64, 30.0  # video_features' default I3D stack and step (frames), a native rate


def write_video_features(root: Path, features: dict[str, np.ndarray], streams=("rgb", "flow")) -> Path:
    """Each video's (T, 64) features split rgb | flow into video_features' files, in `root/i3d/`."""
    folder = root / "i3d"
    folder.mkdir(parents=True)
    for video_id, array in features.items():
        half = array.shape[1] // 2
        parts = {"rgb": array[:, :half], "flow": array[:, half:]}
        for stream in streams:
            np.save(folder / f"{video_id}_{stream}.npy", np.array(parts[stream].tolist()))  # float64, as saved
        np.save(folder / f"{video_id}_fps.npy", np.array(FPS))
        stamps = (np.arange(array.shape[0]) + 1) * STEP / FPS * 1000  # when each stack's last frame begins
        np.save(folder / f"{video_id}_timestamps_ms.npy", stamps)
    return root


@pytest.fixture(scope="module")
def features(tiny_data):
    gt = load_ground_truth(tiny_data / "annotations.json")
    return {v: np.load(tiny_data / "features" / f"{v}.npy") for v in gt.videos}


def test_video_features_layout_trains_like_pointtal_layout(tiny_data, features, tmp_path, caplog):
    root = write_video_features(tmp_path / "output", features)
    configs = {}
    for name, folder in (("video_features", root), ("own", tiny_data / "features")):
        raw = tiny_raw_config(tiny_data, "sfnet", steps=8)
        raw["data"]["features"] = str(folder)
        configs[name] = build_config(raw)
    with caplog.at_level(logging.INFO, logger="pointtal.data.layouts"):
        data = {name: load_run_data(config) for name, config in configs.items()}
    assert "video_features layout" in caplog.text and "every 64 frames" in caplog.text
    for part in ("train", "test"):
        a, b = getattr(data["video_features"], part), getattr(data["own"], part)
        assert a.video_ids == b.video_ids
        for field in ("features", "video_labels", "point_labels", "truth_labels"):
            assert torch.equal(getattr(a, field), getattr(b, field)), (part, field)
    for name, config in configs.items():
        train(config, tmp_path / f"run_{name}", data=data[name])
    predictions = [json.loads((tmp_path / f"run_{n}" / "predictions.json").read_text()) for n in configs]
    assert predictions[0] == predictions[1]
    assert sum(len(v) for v in predictions[0]["results"].values()) > 0


def test_video_features_store_joins_rgb_flow_and_reads_one_stream(features, tmp_path):
    both = open_features(write_video_features(tmp_path / "both", features))
    assert isinstance(both, VideoFeaturesStore) and both.streams == ("rgb", "flow")
    video_id = next(iter(features))
    assert both.ids() == sorted(features)
    np.testing.assert_array_equal(both.load(video_id), features[video_id])  # rgb | flow
    assert both.step_frames(video_id) == pytest.approx(STEP)
    rgb = open_features(write_video_features(tmp_path / "rgb", features, streams=("rgb",)) / "i3d")
    assert rgb.streams == ("rgb",)
    np.testing.assert_array_equal(rgb.load(video_id), features[video_id][:, :32])
    assert detect_layout(tmp_path / "rgb").kind == "video_features"


def test_a_video_without_one_of_the_streams_is_named(features, tmp_path):
    root = write_video_features(tmp_path / "out", features)
    video_id = sorted(features)[3]
    (root / "i3d" / f"{video_id}_flow.npy").unlink()
    with pytest.raises(InputError, match=rf"video '{video_id}' has no {video_id}_flow.npy"):
        open_features(root)
    store = open_features(write_video_features(tmp_path / "ok", features))
    with pytest.raises(InputError, match=r"no feature file for video 'nope' \(nope_rgb.npy with nope_fps.npy\)"):
        store.load("nope")


def test_a_pointtal_folder_with_ids_ending_like_video_features_files_stays_pointtal(tmp_path):
    for video_id in ("clip_rgb", "clip_fps", "other"):
        np.save(tmp_path / f"{video_id}.npy", np.zeros((3, 4), np.float32))
    assert detect_layout(tmp_path).kind == "pointtal"
    (tmp_path / "other.npy").unlink()  # now every file is named as video_features names them
    assert detect_layout(tmp_path).kind == "video_features"
