"""DDP on CPU (gloo, 2 processes): training equals one process with the same global batch, only rank 0
writes, and sharded prediction is byte-identical to a single process.

Which configuration can be compared exactly: DDP averages the ranks' gradients, which equals the gradient
of the global batch only when the loss is a mean of per-video terms and every rank holds the same number
of contributing videos (the mean of equal-sized means is the global mean). SF-Net's and SODA's losses are
batch-level: background mining ranks the snippets of the whole batch and the point losses are means over
the batch's labelled snippets, so a rank's shard weighs them differently and DDP legitimately differs from
one large batch. The `weak` method's L_vid is a mean over the videos with at least `min_video_len` snippets
and an action label, which every video of the tiny preset has (asserted below); its centre loss (a mean
over (video, class) pairs, with EMA centres that DDP broadcasts from rank 0) is switched off with
`method.center_weight=0`, and so is dropout (`method.dropout=0`: each rank would draw its own masks).
With a global batch of 8, each of the 2 ranks holds 4 videos.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pointtal.cli import main
from pointtal.config import build_config
from pointtal.data.synthetic import generate
from pointtal.engine.setup import load_run_data
from pointtal.engine.trainer import new_method, train

pytestmark = [
    pytest.mark.slow,  # torchrun subprocesses
    pytest.mark.skipif(
        not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with gloo is not available"
    ),
]

WORLD = 2
STEPS = 6
WRITE_EVENTS = ("os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def weak_config(data: Path) -> dict:
    return {
        "data": {
            "annotations": str(data / "annotations.json"),
            "features": str(data / "features"),
            "points": "weak",
            "train_subset": "validation",
            "test_subset": "test",
        },
        "method": {"name": "weak", "center_weight": 0.0, "dropout": 0.0},
        "train": {
            "steps": STEPS,
            "batch_size": 8,
            "lr": 1e-3,
            "eval_every": 0,
            "checkpoint_every": 100,
            "seed": 0,
            "device": "cpu",
            "progress": False,
        },
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("tiny") / "data"
    generate(data, "tiny", seed=0, progress=False)
    return data


@pytest.fixture(scope="module")
def single_run(tiny, tmp_path_factory) -> Path:
    """The reference: one process, the whole global batch per step."""
    run_dir = tmp_path_factory.mktemp("single") / "run"
    train(build_config(weak_config(tiny)), run_dir)
    return run_dir


def model_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]


def _writes_under(root: str, event: str, args: tuple) -> str | None:
    """The path an audited file-system event writes under `root`, or None."""
    if event == "open":
        path, mode, flags = args
        writing = (
            any(c in mode for c in "wax+")
            if isinstance(mode, str)
            else bool((flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC))
        )
    elif event == "os.rename":  # os.rename and os.replace: (src, dst, src_dir_fd, dst_dir_fd)
        path, writing = args[1], True
    elif event in WRITE_EVENTS:
        path, writing = args[0], True
    else:
        return None
    if not writing or not isinstance(path, (str, bytes, os.PathLike)):
        return None
    path = os.path.abspath(os.fsdecode(path))
    return path if path == root or path.startswith(root + os.sep) else None


def _train_worker(rank: int, port: int, raw: dict, run_dir: str, report_dir: str) -> None:
    """One DDP rank (run by torch.multiprocessing.spawn): records every file write into the run directory."""
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    root = os.path.abspath(run_dir)
    writes: list[str] = []

    def audit(event: str, args: tuple) -> None:
        path = _writes_under(root, event, args)
        if path is not None:
            writes.append(f"{event} {path}")

    sys.addaudithook(audit)  # this spawned process only; audit hooks cannot be removed
    result = train(build_config(raw), run_dir)
    Path(report_dir, f"rank{rank}.json").write_text(
        json.dumps({"writes": writes, "metrics": result.metrics, "step": result.step}), encoding="utf-8"
    )


def test_every_training_video_feeds_the_per_video_mean_loss(tiny):
    """The precondition of the exact comparison (see module doc): no video is skipped by L_vid."""
    config = build_config(weak_config(tiny))
    data = load_run_data(config, test=False)
    assert (data.train.n_snippets >= config.method_options.min_video_len).all()
    assert (data.train.video_labels[:, 1:].sum(1) > 0).all()


def test_ddp_training_equals_one_process_with_the_global_batch(tiny, single_run, tmp_path):
    raw = weak_config(tiny)
    run_dir, report_dir = tmp_path / "ddp", tmp_path / "ranks"
    report_dir.mkdir()
    mp.spawn(_train_worker, args=(free_port(), raw, str(run_dir), str(report_dir)), nprocs=WORLD, join=True)
    ranks = [json.loads((report_dir / f"rank{r}.json").read_text()) for r in range(WORLD)]

    ddp, single = model_weights(run_dir), model_weights(single_run)
    assert ddp.keys() == single.keys()
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-5, atol=1e-6, msg=lambda m, k=key: f"{k}: {m}")
    config = build_config(raw)  # not vacuous: training moved the weights far beyond the tolerance
    initial, _ = new_method(config, load_run_data(config, test=False), config.train.seed, torch.device("cpu"))
    moved = max(float((single[k].float() - v.float()).abs().max()) for k, v in initial.state_dict().items())
    assert moved > 1e-3

    assert ranks[0]["step"] == ranks[1]["step"] == STEPS
    assert ranks[0]["metrics"] is not None and ranks[1]["metrics"] is None  # rank 0 alone evaluates
    assert ranks[0]["writes"], "the audit hook saw no write of rank 0"
    assert ranks[1]["writes"] == [], f"rank 1 wrote into the run directory: {ranks[1]['writes'][:5]}"
    assert len(list((run_dir / "tensorboard").iterdir())) == 1  # one event file: one writer
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1
    assert (run_dir / "report.md").is_file() and "2 DDP ranks" in (run_dir / "report.md").read_text()
    assert not list(run_dir.glob(".*.tmp"))


def test_sharded_prediction_is_byte_identical(single_run, tmp_path, capsys):
    one, one_frames = tmp_path / "one.json", tmp_path / "one_frames.json"
    assert main(["predict", str(single_run), "--out", str(one), "--frames-out", str(one_frames), "--no-progress"]) == 0
    two, two_frames = tmp_path / "two.json", tmp_path / "two_frames.json"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        str(WORLD),
        "--master-port",
        str(free_port()),
        "-m",
        "pointtal",
        "predict",
        str(single_run),
        "--out",
        str(two),
        "--frames-out",
        str(two_frames),
        "--no-progress",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("wrote ") == 1  # rank 0 alone reports and writes
    assert two.read_bytes() == one.read_bytes()
    assert two_frames.read_bytes() == one_frames.read_bytes()
    assert one.read_bytes() == (single_run / "predictions.json").read_bytes()  # = training's final predictions
