"""`pointtal sweep` and the study engine: grids, sorted tables, locks, parallel and submitit launchers, crash
safety, and inference-only keys re-localized from raw outputs (`predict --save-raw`)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import tiny_raw_config

from pointtal.cli import main
from pointtal.engine.logs import read_metrics
from pointtal.errors import InputError
from pointtal.localization.detections import Detections
from pointtal.studies import locks
from pointtal.studies.ablation import run_study
from pointtal.studies.runner import Launch
from pointtal.studies.sweep import grid_study, split_values

COLUMNS = ["mAP@0.1", "mAP@0.2", "mAP@0.3", "mAP@0.4", "mAP@0.5", "mAP@0.6", "mAP@0.7", "average"]
QUIET = ["train.progress=false"]


@pytest.fixture(scope="module")
def base(tiny_data) -> dict:
    return tiny_raw_config(tiny_data, "sfnet", steps=4)


@pytest.fixture
def config_file(tmp_path, base) -> Path:
    path = tmp_path / "sfnet.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def _counting(monkeypatch) -> list[Path]:
    """Record every call of the trainer (run directories), still training."""
    from pointtal.engine import trainer

    calls: list[Path] = []
    original = trainer.train

    def counted(config, run_dir, **kwargs):
        calls.append(Path(run_dir))
        return original(config, run_dir, **kwargs)

    monkeypatch.setattr(trainer, "train", counted)
    return calls


# ----------------------------------------------------------------------------- grids
def test_grid_full_and_zipped_variants():
    study = grid_study(["train.lr=0.001,0.01", "method.adjust=0.5,1,2"])
    assert [v.overrides for v in study.variants] == [
        (f"train.lr={lr}", f"method.adjust={a}") for lr in ("0.001", "0.01") for a in ("0.5", "1", "2")
    ]
    assert len({v.name for v in study.variants}) == 6 and study.plot_x is None  # two keys: no plot
    zipped = grid_study(["train.lr=0.001,0.01", "method.adjust=0.5,1"], zipped=True)
    assert [v.overrides for v in zipped.variants] == [
        ("train.lr=0.001", "method.adjust=0.5"),
        ("train.lr=0.01", "method.adjust=1"),
    ]
    one = grid_study(["method.eta=1,3,5"])
    assert one.plot_x == "method.eta" and [v.x for v in one.variants] == [1.0, 3.0, 5.0]
    assert split_values("[0.1,0.2],[0.3],x") == ["[0.1,0.2]", "[0.3]", "x"]
    assert grid_study(["method.thresholds=[0.1,0.2],[0.3]"]).variants[1].overrides == ("method.thresholds=[0.3]",)


@pytest.mark.parametrize(
    ("grids", "zipped", "sets", "message"),
    [
        (["train.lr"], False, [], "give KEY=V1,V2"),
        (["train.lr=0.1,,0.2"], False, [], "no empty value"),
        (["train.lr=0.1,0.1"], False, [], "repeated"),
        (["train.lr=0.1", "train.lr=0.2"], False, [], "given twice"),
        (["train.lr=0.1,0.2", "method.eta=1"], True, [], "same number of values"),
        (["train.lr=0.1,0.2"], False, ["train.lr=0.5"], "also given with --set"),
    ],
)
def test_bad_grids_are_refused(grids, zipped, sets, message):
    with pytest.raises(InputError, match=message):
        grid_study(grids, zipped, user_overrides=sets)


def test_cli_checks_every_option_before_work(config_file, tmp_path, capsys, monkeypatch):
    from pointtal.studies import runner

    monkeypatch.setattr(runner, "execute", lambda *a, **k: pytest.fail("work started"))
    out = str(tmp_path / "o")
    cases = [
        (["--grid", "method.nope=1,2"], "unknown key 'nope'"),  # an unknown key: named
        (["--grid", "train.lr=-1,0.1"], "train.lr"),  # a bad value of one variant
        (["--grid", "train.lr=0.1,0.2", "--metric", "mAP@0.9"], "--metric mAP@0.9"),
        (["--grid", "train.lr=0.1,0.2", "--jobs", "0"], "--jobs 0"),
        (["--grid", "train.lr=0.1,0.2", "--partition", "gpu"], "--partition gpu: applies to --launcher slurm"),
        (["--grid", "train.lr=0.1,0.2", "--time", "5"], "--time 5"),
        (["--grid", "train.lr=0.1,0.2", "--launcher", "slurm", "--gpus", "-1"], "--gpus -1"),
        (["--grid", "train.lr=0.1,0.2", "--seeds", "0"], "--seeds 0"),
        (["--grid", "train.lr=0.1,0.2", "--name", "a/b"], "--name"),
        ([], "at least one --grid"),
    ]
    for extra, message in cases:
        assert main(["sweep", str(config_file), "--out", out, *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, (extra, err)
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    assert "Example:" in capsys.readouterr().out


# ----------------------------------------------------------------------------- tables
def test_sweep_table_sorted_by_metric_with_best_and_counts(base, tmp_path, monkeypatch):
    calls = _counting(monkeypatch)
    out = tmp_path / "sw"
    study = grid_study(["train.lr=0.0001,0.01"])
    run_study(study, base, out, [0, 1], QUIET, metric="mAP@0.1")
    assert len(calls) == 4
    table = (out / "table_sweep.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| ") and not line.startswith("| variant")]
    means = {}
    for v in study.variants:
        records = [read_metrics(out / "sweep" / v.name / f"seed{k}")[-1] for k in (0, 1)]
        means[v.label] = statistics.mean(r["mAP@0.1"] for r in records)
        expected = f"{means[v.label]:.2f} ± {statistics.stdev(r['mAP@0.1'] for r in records):.2f}"
        row = next(r for r in rows if v.label in r)
        assert row.split("|")[2].strip() == expected and row.split("|")[-2].strip() == "2"
    order = sorted(means, key=means.get, reverse=True)
    assert [r.split("|")[1].strip().removeprefix("**best** ") for r in rows] == order
    assert rows[0].split("|")[1].strip() == f"**best** {order[0]}" and "**best**" not in "".join(rows[1:])
    payload = json.loads((out / "table_sweep.json").read_text())
    assert (
        payload["metric"] == "mAP@0.1"
        and payload["best"] == study.variants[[v.label for v in study.variants].index(order[0])].name
    )
    assert (out / "table_sweep.png").is_file()  # one numeric key: a plot
    # a rerun trains nothing
    calls.clear()
    again = run_study(study, base, out, [0, 1], QUIET, metric="mAP@0.1")
    assert calls == [] and {o.status for o in again.outcomes} == {"reused"}


# ----------------------------------------------------------------------------- inference-only keys
def _checkpoint_with(run_dir: Path, dest: Path, **options) -> Path:
    """A copy of the run's checkpoint whose saved config has `options` changed (what predict reads)."""
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    saved["config"]["method"].update(options)
    torch.save(saved, dest)
    return dest


def test_inference_only_sweep_derives_and_matches_full_predict_and_training(base, tmp_path, monkeypatch):
    from pointtal.config import build_config
    from pointtal.engine.evaluate import evaluate_predictions
    from pointtal.engine.inference import Predictions
    from pointtal.engine.predictor import predict_run
    from pointtal.engine.setup import load_run_data

    calls = _counting(monkeypatch)
    out = tmp_path / "inf"
    study = grid_study(["method.adjust=0.5,1.5", "method.class_ratio=1.5,3"])
    result = run_study(study, base, out, [0], QUIET)
    assert len(calls) == 1  # one training run; the 3 other variants re-localized
    statuses = {o.variant.name: o.status for o in result.outcomes}
    trained = out / "sweep" / "adjust=0.5_class_ratio=1.5" / "seed0"
    assert statuses["adjust=0.5_class_ratio=1.5"] == "trained"
    assert all(s.startswith("derived from") for n, s in statuses.items() if n != "adjust=0.5_class_ratio=1.5")
    raw = trained / "raw" / "checkpoint-test.npz"
    with np.load(raw, allow_pickle=False) as z:
        assert len(z["video_ids"]) == 12 and z["cas_0"].ndim == 2
    derived = out / "sweep" / "adjust=1.5_class_ratio=3" / "seed0"
    record = read_metrics(derived)[-1]
    assert record["average"] != read_metrics(trained)[-1]["average"]  # the keys change the result

    # a full predict with that value (the checkpoint's config edited) + evaluation gives the same metrics
    ckpt = _checkpoint_with(trained, tmp_path / "edited.pt", adjust=1.5, class_ratio=3)
    predict_run(trained, out=tmp_path / "p.json", frames_out=tmp_path / "f.json", checkpoint=ckpt, progress=False)
    assert (
        json.loads((tmp_path / "p.json").read_text())["results"]
        == json.loads((derived / "predictions.json").read_text())["results"]
    )
    config = build_config(yaml.safe_load((derived / "config.yaml").read_text()))
    data = load_run_data(config, train=False)

    doc = json.loads((tmp_path / "p.json").read_text())["results"]
    frames = json.loads((tmp_path / "f.json").read_text())["results"]
    with np.load(raw, allow_pickle=False) as z:
        video_scores = {str(v): z[f"video_scores_{i}"] for i, v in enumerate(z["video_ids"])}
    read_back = Predictions(
        tuple(data.classes),
        {
            v: Detections.from_entries(doc.get(v, []), frames.get(v, []), tuple(data.classes))
            for v in data.test.video_ids
        },
        video_scores,
    )
    full = evaluate_predictions(data.gt, data.test.video_ids, read_back, config.eval.tiou, data.ambiguous)
    assert {k: v for k, v in record.items() if k != "step"} == full

    # ...and so does training with that value from the start (the keys do not touch training)
    direct = run_study(
        dataclasses.replace(study, key="direct", variants=study.variants[-1:]), base, tmp_path / "direct", [0], QUIET
    )
    assert direct.outcomes[0].status == "trained" and direct.outcomes[0].metrics == record

    # the sweep on the finished run itself (RUN_DIR instead of CONFIG): re-localized from its raw outputs
    calls.clear()
    on_run = tmp_path / "on-run"
    assert (
        main(
            [
                "sweep",
                str(trained),
                "--grid",
                "method.adjust=1.5,0.5",
                "--grid",
                "method.class_ratio=3,1.5",
                "--zip",
                "--out",
                str(on_run),
            ]
        )
        == 0
    )
    assert calls == []
    assert read_metrics(on_run / "sweep" / "adjust=1.5_class_ratio=3" / "seed0")[-1] == record
    assert read_metrics(on_run / "sweep" / "adjust=0.5_class_ratio=1.5" / "seed0")[-1] == read_metrics(trained)[-1]
    # eval.tiou is evaluation only: each variant's own columns, the shared tIoU unchanged
    assert main(["sweep", str(trained), "--grid", "eval.tiou=[0.5],[0.3,0.5]", "--out", str(tmp_path / "tiou")]) == 0
    header = next(
        line for line in (tmp_path / "tiou" / "table_sweep.md").read_text().splitlines() if line.startswith("| variant")
    )
    assert [c.strip() for c in header.strip("|").split("|")] == ["variant", "mAP@0.3", "mAP@0.5", "average", "runs"]
    for name in ("tiou=0.5", "tiou=0.3-0.5"):
        assert (
            read_metrics(tmp_path / "tiou" / "sweep" / name / "seed0")[-1]["mAP@0.5"]
            == read_metrics(trained)[-1]["mAP@0.5"]
        )
    with pytest.raises(InputError, match="train.lr: changes training"):
        run_study(
            grid_study(["train.lr=0.1,0.2"]),
            yaml.safe_load((trained / "config.yaml").read_text()),
            tmp_path / "refused",
            [0],
            source=trained,
        )

    # a rerun: nothing trained, nothing re-derived
    calls.clear()
    stamp = (derived / "predictions.json").stat().st_mtime_ns
    assert {o.status for o in run_study(study, base, out, [0], QUIET).outcomes} == {"reused"}
    assert calls == [] and (derived / "predictions.json").stat().st_mtime_ns == stamp


def test_predict_save_raw_writes_once(base, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(base))
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run)]) == 0
    assert main(["predict", str(run), "--out", str(tmp_path / "p.json"), "--save-raw", "--no-progress"]) == 0
    raw = run / "raw" / "checkpoint-test.npz"
    assert f"raw outputs: {raw}" in capsys.readouterr().out
    stamp = raw.stat().st_mtime_ns
    assert (
        main(["predict", str(run), "--out", str(tmp_path / "p2.json"), "--save-raw", "--no-progress", "--overwrite"])
        == 0
    )
    assert "already in" in capsys.readouterr().out and raw.stat().st_mtime_ns == stamp
    with np.load(raw, allow_pickle=False) as z:  # numpy arrays only
        assert z["video_ids"].dtype.kind == "U" and int(z["step"]) == 4
        assert z["cas_0"].shape[1] == 5 and z["actionness_0"].ndim == 1


# ----------------------------------------------------------------------------- locks
def test_lock_is_exclusive_and_a_dead_owners_lock_is_taken_over(tmp_path):
    run = tmp_path / "r" / "seed0"
    first = locks.RunLock(run)
    assert first.acquire()
    assert locks.held_by_other(run) is None  # our own
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from pointtal.studies.locks "
            f"import RunLock; sys.exit(0 if RunLock(Path({str(run)!r})).acquire() else 7)",
        ]
    )
    assert child.returncode == 7  # a live owner keeps it
    first.release()
    # a lock left by a process that no longer exists is stale
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    locks.lock_path(run).write_text(json.dumps({"host": os.uname().nodename, "pid": dead.pid, "started": "1"}))
    assert locks.held_by_other(run) is None
    taker = locks.RunLock(run)
    assert taker.acquire() and json.loads(locks.lock_path(run).read_text())["pid"] == os.getpid()
    taker.release()
    # an empty lock file (its writer died between creating and writing it) is live for a grace period only
    locks.lock_path(run).write_text("")
    assert locks.held_by_other(run) == {} and not locks.RunLock(run).acquire()
    old = time.time() - locks.EMPTY_GRACE_SECONDS - 1
    os.utime(locks.lock_path(run), (old, old))
    assert locks.held_by_other(run) is None and locks.RunLock(run).acquire()


# ----------------------------------------------------------------------------- parallel, crash, concurrency
def _sweep(config: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pointtal",
        "sweep",
        str(config),
        "--grid",
        "train.lr=0.0001,0.001,0.01",
        "--seeds",
        "1",
        "--out",
        str(out),
        *extra,
    ]


def _finals(out: Path, name: str = "sweep") -> dict[str, dict]:
    return {
        p.parent.parent.name + "/" + p.parent.name: read_metrics(p.parent)[-1]
        for p in sorted((out / name).glob("*/seed*/predictions.json"))
    }


@pytest.mark.slow
def test_jobs_2_gives_the_numbers_of_jobs_1(config_file, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert (
        main(["sweep", str(config_file), "--grid", "train.lr=0.0001,0.001,0.01", "--seeds", "1", "--out", str(one)])
        == 0
    )
    assert (
        main(
            [
                "sweep",
                str(config_file),
                "--grid",
                "train.lr=0.0001,0.001,0.01",
                "--seeds",
                "1",
                "--out",
                str(two),
                "--jobs",
                "2",
            ]
        )
        == 0
    )
    assert len(_finals(one)) == 3 and _finals(one) == _finals(two)
    logs = sorted((two / "sweep").glob("*/seed0.log"))
    statuses = sorted((two / "sweep").glob("*/seed0.job.status.json"))  # each job process leaves its status
    assert len(logs) == 3 and len(statuses) == 3
    assert all(json.loads(p.read_text()) == {"status": "trained"} for p in statuses)


def _interrupted(out: Path) -> set[str]:
    """Runs with a checkpoint but no predictions yet."""
    return {
        f"{p.parent.parent.name}/{p.parent.name}"
        for p in (out / "sweep").glob("*/seed0/checkpoint.pt")
        if not (p.parent / "predictions.json").is_file()
    }


@pytest.mark.slow
def test_kill_9_then_rerun_finishes_without_retraining(config_file, tmp_path, monkeypatch):
    out = tmp_path / "crash"
    config = yaml.safe_load(config_file.read_text())
    config["train"].update(steps=40, checkpoint_every=2)  # long enough to be killed inside a run
    config_file.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(_sweep(config_file, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not _finals(out) and time.time() < deadline:
        time.sleep(0.2)
    while not _interrupted(out) and time.time() < deadline:  # into the second run, past its first checkpoint
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = _finals(out)
    assert 1 <= len(finished) < 3, "kill the study mid-way"
    stamps = {name: (out / "sweep" / name / "checkpoint.pt").stat().st_mtime_ns for name in finished}
    interrupted = _interrupted(out)
    assert interrupted, "kill the study inside a run that has a checkpoint"
    calls = _counting(monkeypatch)
    assert main(_sweep(config_file, out)[3:]) == 0
    trained = {f"{c.parent.name}/{c.name}" for c in calls}
    assert not trained & set(finished) and len(trained) == 3 - len(finished)  # only the unfinished ones
    assert stamps == {name: (out / "sweep" / name / "checkpoint.pt").stat().st_mtime_ns for name in finished}
    summary = json.loads((out / "table_sweep.json").read_text())["summary"]
    assert len(summary) == 3 and all(row["n"] == 1 for row in summary.values())
    statuses = {
        f"{r['variant']}/seed{r['seed']}": r["status"]
        for r in json.loads((out / "table_sweep.json").read_text())["runs"]
    }
    assert all(statuses[name] == "reused" for name in finished)
    assert all(statuses[name] == "resumed" for name in interrupted)  # from its checkpoint, not from scratch
    assert not list(out.glob("sweep/*/*.lock"))  # the killed run's stale lock was taken over and released


@pytest.mark.slow
def test_two_concurrent_studies_never_train_one_run_twice(config_file, tmp_path):
    out = tmp_path / "both"
    procs = [
        subprocess.Popen(_sweep(config_file, out), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for _ in range(2)
    ]
    lines = [line for p in procs for line in p.communicate(timeout=300)[0].splitlines() if line.startswith("[")]
    assert all(p.returncode == 0 for p in procs)
    trained = [line.split(":")[0] for line in lines if "(trained," in line or "(resumed," in line]
    assert sorted(trained) == sorted(set(trained)) and len(trained) == 3  # each run trained by one process
    assert len(lines) == 6  # both processes report every run (the other's read back when it finished)
    for name in _finals(out):
        assert len(read_metrics(out / "sweep" / name)) == 1  # one final evaluation: trained once


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the failing job asks for CUDA, which this machine has")
def test_submitit_local_launcher_reports_a_failed_job_with_its_log(base, tmp_path):
    pytest.importorskip("submitit")
    out = tmp_path / "sub"
    study = grid_study(["train.device=cpu,cuda"])
    result = run_study(study, base, out, [0], QUIET, launch=Launch(jobs=2, launcher="submitit-local"))
    by_name = {o.variant.name: o for o in result.outcomes}
    ok, bad = by_name["device=cpu"], by_name["device=cuda"]
    assert not ok.failed and ok.metrics == read_metrics(ok.run_dir)[-1]
    assert bad.failed and bad.log is not None and bad.log.is_file() and "no CUDA device" in bad.log.read_text()
    table = (out / "table_sweep.md").read_text()
    assert f"log `{bad.log}`" in table and "| 0/1 (1 failed) |" in table
    runs = json.loads((out / "table_sweep.json").read_text())["runs"]
    assert [r["status"] for r in runs if r["variant"] == "device=cuda"] == ["failed"]


@pytest.mark.slow
def test_hrpro_post_processing_keys_are_rescored_from_the_checkpoint(tiny_data, tmp_path, monkeypatch):
    """HR-Pro's soft-NMS and refinement clipping need its instance network: the variant is rescored from the
    trained run's checkpoint (no training), and equals a run trained with that value."""
    raw = tiny_raw_config(tiny_data, "sfnet", steps=4)
    raw["method"] = {
        "name": "hrpro",
        "num_heads": 4,
        "dim_feedforward": 32,
        "stage2_epochs": 1,
        "stage2_batch_size": 8,
        "stage2_lr": 1e-3,
    }
    calls = _counting(monkeypatch)
    study = grid_study(["method.soft_nms_sigma=0.3,0.9", "method.refined_bounds=official,clip"], zipped=True)
    result = run_study(study, raw, tmp_path / "hr", [0], QUIET)
    assert len(calls) == 1
    derived = next(o for o in result.outcomes if o.variant.name.startswith("soft_nms_sigma=0.9"))
    assert derived.status.startswith("derived from")
    assert "rescored" in json.loads((derived.run_dir / "derived.json").read_text())
    direct = run_study(dataclasses.replace(study, variants=study.variants[1:]), raw, tmp_path / "direct", [0], QUIET)
    assert direct.outcomes[0].status == "trained" and direct.outcomes[0].metrics == derived.metrics
    # with an in-run stage-1 selection, soft-NMS shapes which weights are kept: not inference-only any more
    from pointtal.studies.ablation import study_configs
    from pointtal.studies.runner import plan_tasks

    assert [t.kind for t in plan_tasks(study, study_configs(study, raw, [0], QUIET), tmp_path, [0])] == [
        "train",
        "derive",
    ]
    raw["method"]["stage1_selection"] = "test"
    raw["train"]["eval_every"] = 2
    assert [t.kind for t in plan_tasks(study, study_configs(study, raw, [0], QUIET), tmp_path, [0])] == [
        "train",
        "train",
    ]


def test_parallel_runs_split_the_cpu_threads_and_take_one_gpu_each(base, tmp_path, monkeypatch):
    """`--jobs N`: each job process gets cpu_count // N threads and, where CUDA devices are visible, its own."""
    from pointtal.config import build_config
    from pointtal.studies import runner

    started = []

    class FakePopen:
        def __init__(self, argv, env, **kwargs):
            started.append((argv, env))

    monkeypatch.setattr(runner.subprocess, "Popen", FakePopen)
    monkeypatch.setattr(runner, "cpu_count", lambda: 8)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    launcher = runner.Processes(2, uses_cuda=True)
    config = build_config(base)
    for k in (0, 1):
        launcher.start(runner.Task(None, k, tmp_path / "s" / "v" / f"seed{k}", config, "train"))
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in started] == ["3", "5"]
    assert {env["OMP_NUM_THREADS"] for _, env in started} == {"4"}
    spec = json.loads(Path(started[0][0][-1]).read_text())  # the job file: config and thread count
    assert spec["threads"] == 4 and build_config(spec["config"]) == config
    assert runner.Processes(2, uses_cuda=False).gpus == []


def test_slurm_launcher_passes_partition_gpus_and_time_to_submitit(tmp_path, monkeypatch):
    """--launcher slurm: the options become the Slurm job's parameters (fake srun/sbatch: nothing submitted);
    without Slurm the option is refused in one line before any work."""
    pytest.importorskip("submitit")
    from pointtal.studies.runner import Submitit

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("srun", "sbatch"):
        (bin_dir / name).write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    launcher = Submitit(Launch(jobs=4, launcher="slurm", partition="gpu", gpus=2, time_min=90), tmp_path, True)
    parameters = launcher.executor._executor.parameters
    assert (parameters["partition"], parameters["gpus_per_node"], parameters["time"]) == ("gpu", 2, 90)
    assert launcher.slots == 4 and launcher.executor.folder == (tmp_path / "submitit").resolve()
    monkeypatch.setenv("PATH", "/nonexistent")
    args = ["sweep", "c.yaml", "--grid", "train.lr=0.1,0.2", "--out", str(tmp_path / "o"), "--launcher", "slurm"]
    with pytest.raises(InputError, match="no Slurm on this machine"):
        from pointtal.cli import build_parser
        from pointtal.cli import launch as cli_launch

        cli_launch.check_args(build_parser("sweep")[0].parse_args(args))
