"""`pointtal extract --layout video_features` (issue 23, item 3): the extractor writes v-iashin/video_features'
files (`<stem>_rgb.npy`, `<stem>_flow.npy`, `<stem>_fps.npy`, `<stem>_timestamps_ms.npy`), which hold the same
numbers as pointtal's own layout and train to the same predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pointtal.cli import main
from pointtal.config import build_config
from pointtal.data.layouts import VideoFeaturesStore, detect_layout, open_features
from pointtal.engine.setup import load_run_data
from pointtal.engine.trainer import train
from pointtal.errors import InputError
from tests.video_helpers import SMALL, moving_square, write_video

pytest.importorskip("av")
pytest.importorskip("cv2")

CLIPS = {"clip_a": 120, "clip_b": 100, "clip_c": 110, "clip_d": 90}  # frames at 30 fps: 6, 5, 5 and 4 snippets


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """The clips extracted once in each layout (random-init I3D, 16x16 crops)."""
    root = tmp_path_factory.mktemp("vf")
    for i, (name, frames) in enumerate(CLIPS.items()):
        write_video(root / "videos" / f"{name}.mp4", moving_square(frames, seed=i, speed=1 + i))
    for layout in ("pointtal", "video_features"):
        code = main(["extract", str(root / "videos"), "--out", str(root / layout), "--layout", layout, *SMALL])
        assert code == 0
    return root


def test_video_features_files_hold_pointtal_features_split_into_streams(extracted):
    own, out = extracted / "pointtal", extracted / "video_features"
    for name in CLIPS:
        features = np.load(own / f"{name}.npy")
        rgb, flow = np.load(out / f"{name}_rgb.npy"), np.load(out / f"{name}_flow.npy")
        np.testing.assert_array_equal(np.concatenate([rgb, flow], axis=1), features)
        assert rgb.shape == flow.shape == (len(features), 1024)
        assert np.load(out / f"{name}_fps.npy").item() == 25.0 and np.load(out / f"{name}_fps.npy").ndim == 0
        np.testing.assert_allclose(
            np.load(out / f"{name}_timestamps_ms.npy"), (np.arange(len(features)) + 1) * 16 / 25 * 1000
        )
    assert detect_layout(out).kind == "video_features"
    store = open_features(out)
    assert isinstance(store, VideoFeaturesStore) and store.step_frames("clip_a") == pytest.approx(16)
    manifest = json.loads((out / "extract.json").read_text())
    assert manifest["layout"] == "video_features" and sorted(manifest["videos"]) == sorted(CLIPS)
    assert "layout" not in json.loads((own / "extract.json").read_text())  # pointtal's manifests stay as they were


def test_a_folder_keeps_one_layout(extracted, capsys):
    capsys.readouterr()
    code = main(
        [
            "extract",
            str(extracted / "videos" / "clip_a.mp4"),
            "--out",
            str(extracted / "video_features"),
            *SMALL,
            "--overwrite",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "holds features in the video_features layout, not pointtal" in err


def _ground_truth(path, extracted):
    database = {}
    for i, name in enumerate(CLIPS):
        n = len(np.load(extracted / "pointtal" / f"{name}.npy"))
        database[name] = {
            "subset": "validation" if i < 3 else "test",
            "duration": n * 0.64,
            "fps": 25.0,
            "annotations": [{"segment": [0.64, 0.64 * (n - 1)], "label": "Move" if i % 2 else "Slide"}],
        }
    path.write_text(json.dumps({"database": database}))
    return path


def test_extracted_video_features_train_like_pointtal_layout(extracted, tmp_path):
    gt = _ground_truth(tmp_path / "gt.json", extracted)
    configs = {}
    for layout in ("pointtal", "video_features"):
        configs[layout] = build_config(
            {
                "data": {"annotations": str(gt), "features": str(extracted / layout), "points": "sfnet-uniform"},
                "method": {"name": "sfnet", "hidden": 16, "expand_step": 4},
                "train": {
                    "steps": 8,
                    "batch_size": 2,
                    "lr": 1e-3,
                    "eval_every": 0,
                    "checkpoint_every": 4,
                    "device": "cpu",
                    "progress": False,
                    "report": False,
                },
            }
        )
    data = {layout: load_run_data(config) for layout, config in configs.items()}
    for part in ("train", "test"):
        a, b = getattr(data["video_features"], part), getattr(data["pointtal"], part)
        assert a.video_ids == b.video_ids
        for field in ("features", "video_labels", "point_labels"):
            assert torch.equal(getattr(a, field), getattr(b, field)), (part, field)
    for layout, config in configs.items():
        train(config, tmp_path / layout, data=data[layout])
    runs = [json.loads((tmp_path / layout / "predictions.json").read_text()) for layout in configs]
    assert runs[0]["results"] == runs[1]["results"] and sum(len(v) for v in runs[0]["results"].values()) > 0
    assert json.loads((tmp_path / "video_features" / "extract.json").read_text())["layout"] == "video_features"


def test_a_stray_stream_file_is_named_by_training(extracted, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(extracted / "video_features", folder)
    np.save(folder / "other_rgb.npy", np.zeros((3, 1024), np.float32))  # not described by extract.json
    from pointtal.data.manifest import check_files

    with pytest.raises(InputError, match=r"other_rgb.npy is not listed"):
        check_files(folder)
    (folder / "other_rgb.npy").unlink()
    check_files(folder)  # the folder as extracted: every stream, fps and timestamp file is described
