"""`pointtal detect`: a tiny run trained on features from `pointtal extract`, then detection on a new video file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from pointtal.cli import main
from tests.reference_eval import reference_average_from_files
from tests.video_helpers import SMALL, moving_square, write_video

pytest.importorskip("av")
pytest.importorskip("cv2")

SPEC = {  # video id -> (subset, frames at 30 fps, seed, instances)
    "train_1": ("validation", 40, 1, [([0.2, 0.9], "jump")]),
    "train_2": ("validation", 40, 2, [([0.4, 1.2], "run")]),
    "train_3": ("validation", 40, 3, [([0.1, 0.6], "jump"), ([0.7, 1.2], "run")]),
    "new_clip": ("test", 40, 4, [([0.3, 1.0], "run")]),
}


def _config(tmp_path, features, stride: int) -> str:
    raw = {
        "data": {
            "annotations": str(tmp_path / "gt.json"),
            "features": str(features),
            "points": "sfnet-center",
            "fps": 25,
            "stride": stride,
            "test_subset": "validation",
        },  # new_clip (subset test) has no features until detect
        "method": {"name": "sfnet", "hidden": 8, "expand_step": 10},
        "train": {
            "steps": 20,
            "batch_size": 2,
            "lr": 1e-2,
            "eval_every": 20,
            "checkpoint_every": 20,
            "log_every": 20,
            "device": "cpu",
            "progress": False,
            "report": False,
        },
        "eval": {"batch_size": 4},
    }
    path = tmp_path / f"config_{stride}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.slow
def test_detect_on_a_new_video_with_a_run_trained_on_extracted_features(tmp_path, capsys, drawn):
    videos = tmp_path / "videos"
    for vid, (_, n, seed, _) in SPEC.items():
        write_video(videos / f"{vid}.mp4", moving_square(n, seed=seed, speed=seed))
    gt = {
        "database": {
            vid: {
                "subset": subset,
                "duration": n / 30,
                "annotations": [{"segment": s, "label": label} for s, label in inst],
            }
            for vid, (subset, n, _, inst) in SPEC.items()
        }
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    features = tmp_path / "features"
    # new_clip's features too, to compare with detect's own extraction (the run never trains on it)
    assert main(["extract", str(videos), "--out", str(features), "--stride", "8", *SMALL]) == 0
    # features cut at stride 8 do not fit a run that assumes stride 16: refused in one line
    capsys.readouterr()
    assert main(["train", _config(tmp_path, features, 16), "--out", str(tmp_path / "bad_run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "stride=8" in err and "data.stride=16" in err
    run = tmp_path / "run"
    assert main(["train", _config(tmp_path, features, 8), "--out", str(run)]) == 0
    assert json.loads((run / "extract.json").read_text())["stride"] == 8  # the run records its features
    capsys.readouterr()

    out, plot, kept = tmp_path / "detections.json", tmp_path / "timeline.png", tmp_path / "new_features"
    code = main(
        [
            "detect",
            str(run),
            str(videos / "new_clip.mp4"),
            "--out",
            str(out),
            "--plot",
            str(plot),
            "--features-dir",
            str(kept),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    results = json.loads(out.read_text())["results"]
    assert list(results) == ["new_clip"] and results["new_clip"]
    for seg in results["new_clip"]:
        assert 0 <= seg["segment"][0] < seg["segment"][1] <= 34 / 25 + 1e-6 and seg["label"] in ("jump", "run")
    best = max(results["new_clip"], key=lambda s: s["score"])
    assert "detections" in printed and f"{best['score']:.3f}" in printed and best["label"] in printed
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the timeline draws detections only (no ground truth for a new video): each bar is one of them, the best among
    bars = [
        (float(p.vertices[:, 0].min()), float(p.vertices[:, 0].max()))
        for ax in drawn[-1].axes
        for c in ax.collections
        for p in c.get_paths()
        if len(p.vertices) == 5
    ]
    detected = [tuple(seg["segment"]) for seg in results["new_clip"]]
    assert np.isclose(bars, best["segment"], atol=1e-4).all(axis=1).any()
    assert all(np.isclose(detected, bar, atol=1e-4).all(axis=1).any() for bar in bars)
    # detect extracted with the run's recorded settings (random-init seed, stride 8, 16 px crop): the same
    # features `pointtal extract` gave for that file
    np.testing.assert_array_equal(np.load(kept / "new_clip.npy"), np.load(features / "new_clip.npy"))
    # issue 18: --out onto the run's checkpoint (it used to become JSON) or onto a file pointtal did not write
    # is refused; rerunning onto its own output needs no flag; --overwrite replaces the foreign file
    saved = {name: (run / name).read_bytes() for name in ("checkpoint.pt", "config.yaml")}
    notes = tmp_path / "notes.json"
    notes.write_text("my notes")
    again = ["detect", str(run), str(videos / "new_clip.mp4"), "--features-dir", str(kept), "--no-progress"]
    for target, words in (
        (run / "checkpoint.pt", "is the run's checkpoint.pt"),
        (run / "config.yaml", "is the run's config.yaml"),
        (notes, "not written by pointtal"),
    ):
        capsys.readouterr()
        assert main([*again, "--out", str(target)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    assert {name: (run / name).read_bytes() for name in saved} == saved and notes.read_text() == "my notes"
    assert main([*again, "--out", str(out)]) == 0  # its own output
    assert (
        main([*again, "--out", str(notes), "--overwrite"]) == 0
        and "new_clip" in json.loads(notes.read_text())["results"]
    )
    capsys.readouterr()
    metrics = tmp_path / "metrics.json"
    assert main(["evaluate", str(tmp_path / "gt.json"), str(out), "--subset", "test", "--json", str(metrics)]) == 0
    written = json.loads(metrics.read_text())  # the slow reference evaluator on the same detections agrees
    assert written["average"] == pytest.approx(
        reference_average_from_files(tmp_path / "gt.json", out, written["tiou"]), abs=1e-6
    )


def _detect_args(run, *extra):
    import argparse

    from pointtal.cli import detect

    parser = argparse.ArgumentParser()
    detect.add_arguments(parser)
    return parser.parse_args([str(run), "v.mp4", "--out", "d.json", *extra])


def test_detect_takes_the_runs_extraction_settings_and_refuses_contradictions(tmp_path):
    from types import SimpleNamespace

    from pointtal.atomic import file_sha256
    from pointtal.cli.detect import extract_options
    from pointtal.errors import InputError

    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "rgb.pt").write_bytes(b"rgb weights")
    (tmp_path / "flow.pt").write_bytes(b"flow weights")
    (tmp_path / "other.pt").write_bytes(b"other weights")
    weights = {k: {"file": f"{k}.pt", "sha256": file_sha256(tmp_path / f"{k}.pt")} for k in ("rgb", "flow")}
    manifest = {
        "fps": 30.0,
        "stride": 8,
        "backbone": "i3d",
        "dim": 2048,
        "flow": "raft:raft_large",
        "resize": 128,
        "crop": 112,
        "weights": weights,
        "videos": {},
    }
    (run / "extract.json").write_text(json.dumps(manifest))
    config = SimpleNamespace(data=SimpleNamespace(fps=30.0, stride=8, features=""))
    given = [
        "--rgb-weights",
        str(tmp_path / "rgb.pt"),
        "--flow-weights",
        str(tmp_path / "flow.pt"),
        "--raft-weights",
        "DEFAULT",
    ]
    opts = extract_options(_detect_args(run, *given), config, run)
    assert (opts.fps, opts.stride, opts.flow, opts.raft_model, opts.resize, opts.crop) == (
        30.0,
        8,
        "raft",
        "raft_large",
        128,
        112,
    )
    assert not opts.random_init
    with pytest.raises(InputError, match="--flow tvl1: the run's features used flow raft"):
        extract_options(_detect_args(run, *given, "--flow", "tvl1"), config, run)
    with pytest.raises(InputError, match="--crop 224: the run's features used crop=112"):
        extract_options(_detect_args(run, *given, "--crop", "224"), config, run)
    with pytest.raises(InputError, match="--flow-weights .*other.pt: differs \\(sha256\\).*flow.pt"):
        extract_options(_detect_args(run, *given[:2], "--flow-weights", str(tmp_path / "other.pt")), config, run)
    config.data.stride = 16  # the run's config and its recorded features disagree
    with pytest.raises(InputError, match="stride=8 but the run uses data.fps=30 data.stride=16"):
        extract_options(_detect_args(run, *given), config, run)
