"""Step-based training: deterministic batches, periodic evaluation, atomic checkpoints, exact resume.

A run directory holds `config.yaml`, `protocol.json` (the evaluation protocol, pointtal.evaluation.protocol),
`checkpoint.pt` (latest), `best.pt` (best average mAP), `metrics.jsonl`,
`tensorboard/`, and at the end `predictions.json` / `frames.json` for the test subset, `report.md` and
`figures/` (pointtal.engine.report).
Resuming restores weights, optimizer, step, RNG and mined labels, so on CPU a resumed run ends with the
same weights as an uninterrupted one. In-run evaluation (`train.eval_every`) leaves the random generators as it
found them (`evaluation_rng`), so on CPU the final weights and predictions do not depend on whether or how often
a run evaluates.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pointtal.atomic import write_json
from pointtal.config import Config, build_config, save_config
from pointtal.data.dataset import PointDataset, build_dataset
from pointtal.data.manifest import record_in_run
from pointtal.engine import distributed
from pointtal.engine.checkpoint import load_checkpoint, save_checkpoint
from pointtal.engine.evaluate import evaluate_predictions
from pointtal.engine.inference import autocast, dataset_items, flat_cas, predict, resolve_device
from pointtal.engine.logs import MetricsLog, StepLog, read_metrics
from pointtal.engine.plan import check_batch_memory, warn_plan
from pointtal.engine.report import write_report
from pointtal.engine.rundir import guard_run_dir, record_runtime_changes
from pointtal.engine.setup import RunData, load_run_data
from pointtal.errors import InputError, TrainingDiverged
from pointtal.methods import Method, build_method
from pointtal.methods.base import Phase, PhaseContext
from pointtal.outputs import DISK_ERRNOS, describe_os_error

log = logging.getLogger(__name__)
PROTOCOL = "protocol.json"  # the run's evaluation protocol, written once at the start


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    metrics: dict | None  # the final evaluation record


@dataclass
class _State:
    """What a checkpoint restores besides the config."""

    method: Method
    optimizer: torch.optim.Optimizer
    step: int = 0
    best: float | None = None
    ema: dict[str, torch.Tensor] | None = None  # the phase's moving average of the weights (Phase.ema_decay)


def check_resume_schedule(
    saved: dict, config: Config, method: Method, phases: tuple[Phase, ...], n_videos: int, run_dir: Path
) -> None:
    """Refuse a resume whose schedule cannot be honoured from the checkpoint's step (one line naming the key).

    `train.steps` / `train.epochs` may change on `--resume` (rundir.RUNTIME_KEYS), but only where the run has
    not been yet: every phase that has begun keeps its start, and the phase the checkpoint is in must not end
    before the checkpoint's step. Lowering `train.steps` inside HR-Pro's stage 2 would move stage 2's start
    behind the run (its batches and optimizer would belong to other steps); lowering it below the current
    step of a one-phase run would end the run before its checkpoint.
    """
    step = int(saved["step"])
    try:
        old_train = build_config(saved["config"], "checkpoint config").train
    except (InputError, KeyError, TypeError):  # an unreadable saved config is refused elsewhere by name
        return
    old_starts, new_starts = phase_starts(method.phases(old_train, n_videos)), phase_starts(phases)
    ends = [*new_starts[1:], sum(p.steps for p in phases)]
    keys = [f"train.{k}" for k in ("steps", "epochs") if getattr(old_train, k) != getattr(config.train, k)]
    key = (
        " / ".join(
            f"{k}={getattr(config.train, k.split('.')[1])} (was {getattr(old_train, k.split('.')[1])})" for k in keys
        )
        or "the schedule"
    )
    current = phase_at(old_starts, step - 1) if step else 0
    for index in range(current + 1):
        if old_starts[index] < step and new_starts[index] != old_starts[index]:
            raise InputError(
                f"{run_dir}: --resume at step {step} cannot honour {key}: phase {index + 1} ({phases[index].name}) "
                f"began at step {old_starts[index]} and would begin at step {new_starts[index]}; resume with the "
                "earlier phases' length unchanged (lengthen or shorten only the phase the run is in)"
            )
    if ends[current] < step:
        raise InputError(
            f"{run_dir}: --resume at step {step} cannot honour {key}: phase {current + 1} ({phases[current].name}) "
            f"would end at step {ends[current]}, before the checkpoint's step; resume with a schedule that ends at "
            f"step {step} or later"
        )


def new_optimizer(method: Method, phase: Phase, index: int) -> torch.optim.Optimizer:
    """The phase's optimizer over the parameters phase `index` trains: Adam (L2 weight decay), or AdamW with
    decoupled weight decay on parameters of two or more dimensions only (none on biases, norms and scales)."""
    parameters = method.phase_parameters(index)
    if phase.optimizer == "adamw":
        groups = [
            {"params": [p for p in parameters if p.ndim > 1], "weight_decay": phase.weight_decay},
            {"params": [p for p in parameters if p.ndim <= 1], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=phase.lr)
    return torch.optim.Adam(parameters, lr=phase.lr, weight_decay=phase.weight_decay)


def update_average(average: dict[str, torch.Tensor] | None, method: Method, decay: float) -> dict[str, torch.Tensor]:
    """The moving average of `method`'s state (weights and buffers) after one more step; None starts it."""
    state = method.state_dict()
    if average is None:
        return {key: value.detach().clone() for key, value in state.items()}
    with torch.no_grad():
        for key, value in state.items():
            if value.is_floating_point():
                average[key].mul_(decay).add_(value.detach(), alpha=1 - decay)
            else:
                average[key].copy_(value)
    return average


@contextlib.contextmanager
def averaged_weights(method: Method, average: dict[str, torch.Tensor] | None):
    """`method` holds the moving average of its weights inside the block (nothing changes without one)."""
    if average is None:
        yield
        return
    own = {key: value.detach().clone() for key, value in method.state_dict().items()}
    method.load_state_dict(average)
    try:
        yield
    finally:
        method.load_state_dict(own)


@contextlib.contextmanager
def evaluation_rng():
    """Inside the block, the global random generators (torch CPU and initialised CUDA devices, numpy, Python
    `random`) may be drawn from; on leaving, each is back at the state it had on entering, so a step after an
    evaluation draws what it would have drawn without one."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def new_method(
    config: Config, data: RunData, seed: int, device: torch.device, phase: int = 0
) -> tuple[Method, torch.optim.Optimizer]:
    """A freshly initialised method (seeded here, never inside constructors) and the Adam optimizer of its
    phase `phase`."""
    torch.manual_seed(seed)
    method = build_method(config.method, config.method_options, data.train.dim, len(data.classes)).to(device)
    phases = method.phases(config.train, len(data.train))
    return method, new_optimizer(method, phases[phase], phase)


def phase_starts(phases: tuple[Phase, ...]) -> list[int]:
    """Global step at which each phase begins."""
    return [sum(p.steps for p in phases[:i]) for i in range(len(phases))]


def phase_at(starts: list[int], step: int) -> int:
    """Index of the phase that global step `step` belongs to (the last one past the end)."""
    return max(i for i, start in enumerate(starts) if start <= max(step, 0))


def checkpoint_state(config: Config, data: RunData, state: _State, inference_only: bool = False) -> dict:
    point_labels = data.train.point_labels
    rows = torch.nonzero(point_labels.sum(1) > 0).squeeze(1)  # (L,) labelled snippets (mined ones too)
    out = {
        "model": state.method.inference_state_dict() if inference_only else state.method.state_dict(),
        "step": state.step,
        "config": config.to_dict(),
        "classes": list(data.classes),
        "in_dim": data.train.dim,
        "best_average": state.best,
    }
    if not inference_only:
        if state.ema is not None:
            out["ema"] = state.ema
        out.update(
            optimizer=state.optimizer.state_dict(),
            rng_cpu=torch.get_rng_state(),
            point_rows=rows,
            point_values=point_labels[rows].clone(),
        )
        if torch.cuda.is_available():
            out["rng_cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore(saved: dict, config: Config, data: RunData, state: _State, path: Path) -> None:
    """Load a full checkpoint into `state` and the dataset's (possibly mined) point labels."""
    if saved.get("classes") != list(data.classes) or saved.get("in_dim") != data.train.dim:
        raise InputError(f"{path}: checkpoint was trained on other classes or feature width than this config")
    if "optimizer" not in saved:
        raise InputError(f"{path}: holds inference weights only and cannot be resumed")
    load_weights(state, saved, config, path)
    state.step, state.best = int(saved["step"]), saved.get("best_average")
    state.ema = saved.get("ema")
    labels = torch.zeros_like(data.train.point_labels)
    labels[saved["point_rows"]] = saved["point_values"].to(labels.dtype)
    data.train.set_point_labels(labels)
    torch.set_rng_state(saved["rng_cpu"])
    if "rng_cuda" in saved and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["rng_cuda"])


def load_weights(state: _State, saved: dict, config: Config, path: Path) -> None:
    """Weights and optimizer of a checkpoint; another method or architecture is one line naming both."""
    saved_config = saved.get("config") if isinstance(saved.get("config"), dict) else {}
    section = saved_config.get("method")
    saved_method = section.get("name") if isinstance(section, dict) else None
    if saved_method != config.method:
        raise InputError(
            f"{path}: checkpoint of method '{saved_method}' cannot resume method '{config.method}' "
            f"(method.name); resume with its own config.yaml or train into another --out"
        )
    try:
        state.method.load_state_dict(saved["model"])
        state.optimizer.load_state_dict(saved["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:  # shapes or parameter names of other method options
        first = str(err).strip().splitlines()
        detail = " ".join(line.strip() for line in first[1:3]) or (first[0] if first else type(err).__name__)
        raise InputError(
            f"{path}: checkpoint weights do not fit method '{config.method}' with this config's "
            f"method options ({detail[:200]})"
        ) from None


def finite_weights(method: Method) -> bool:
    """Whether every parameter is finite (checked before a checkpoint is written, so the last one is usable)."""
    return all(bool(torch.isfinite(p).all()) for p in method.parameters())


def geometries(dataset: PointDataset) -> dict:
    return dict(zip(dataset.video_ids, dataset.geometries, strict=False))


def run_predictions(method: Method, dataset: PointDataset, config: Config, device: torch.device, classes):
    return predict(
        method,
        dataset_items(dataset),
        geometries(dataset),
        classes,
        batch_size=config.eval.batch_size,
        device=device,
        amp=config.train.amp,
    )


def evaluate_model(method: Method, data: RunData, config: Config, device: torch.device, step: int):
    """Predictions on the test subset and their metrics record."""
    predictions = run_predictions(method, data.test, config, device, data.classes)
    record = {
        "step": step,
        **evaluate_predictions(data.gt, data.test.video_ids, predictions, config.eval.tiou, data.ambiguous),
    }
    method.train()
    return record, predictions


def check_selection(config: Config, data: RunData, method: Method, distributed_run: bool) -> None:
    """A method that selects weights by a subset's in-run evaluations (`Method.selection_subset`): the subset
    exists, evaluations happen, the run is not distributed; selecting on the test subset is warned about."""
    subset = method.selection_subset
    if subset is None:
        return
    if subset not in data.gt.subsets:
        raise InputError(
            f"{method.selection_key}={subset!r}: the ground truth has no subset '{subset}' "
            f"(subsets: {', '.join(sorted(data.gt.subsets))})"
        )
    if distributed_run:
        raise InputError(f"{method.selection_key}={subset!r} is not supported with several processes (DDP)")
    if not config.train.eval_every:
        log.warning(
            "%s=%s: train.eval_every is 0, so no evaluation selects weights; the last ones are kept",
            method.selection_key,
            subset,
        )
    elif subset == config.data.test_subset:
        log.warning(
            "%s=%s selects weights on the test subset (as the official code does): its test mAP is "
            "optimistic; name a validation subset of the ground truth instead",
            method.selection_key,
            subset,
        )


class Trainer:
    """Owns one run: data, method, optimizer, sampler, logs."""

    def __init__(self, config: Config, run_dir: str | Path, *, resume: bool = False, data: RunData | None = None):
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = resolve_device(config.train.device, "train.device")
        self.dist = distributed.init_distributed(self.device)
        self.device = distributed.local_device(self.device, self.dist)
        if config.train.batch_size < self.dist.world:  # a rank with no video would crash in the sampler
            raise InputError(
                f"train.batch_size={config.train.batch_size} is global: give at least one video "
                f"per DDP rank (>= {self.dist.world})"
            )
        saved = guard_run_dir(config, self.run_dir, resume, self.dist.is_main)  # before loading any data
        data = data or load_run_data(config)
        # the training videos' ground truth stays with the engine, for logging the precision of mined labels:
        # every dataset the method is handed (samplers, label mining, phases) lacks it
        self.train_truth = data.train.truth_labels
        self.data = replace(data, train=data.train.without_truth())
        # the optimizer of the phase of the last completed step: a resumed run loads that one's state
        method, optimizer = new_method(config, self.data, config.train.seed, self.device)
        self.phases = method.phases(config.train, len(self.data.train))
        self.starts = phase_starts(self.phases)
        self.steps = sum(p.steps for p in self.phases)
        if saved is not None:
            check_resume_schedule(saved, config, method, self.phases, len(self.data.train), self.run_dir)
        saved_phase = phase_at(self.starts, int(saved["step"]) - 1) if saved is not None else 0
        if saved_phase:
            optimizer = new_optimizer(method, self.phases[saved_phase], saved_phase)
        self.state = _State(method, optimizer)
        check_batch_memory(config, self.data.train.dim, int(self.data.train.n_snippets.max()), method, self.device)
        if self.dist.is_main:
            warn_plan(config, len(self.data.train), self.steps, method)
        self._selection_sets: dict[str, PointDataset] = {}
        check_selection(config, self.data, method, self.dist.enabled)
        self._prepare_run_dir(saved)
        self.phase = phase_at(self.starts, self.state.step - 1) if self.state.step else 0
        self.sampler = self._sampler(self.phase)
        self.model = self._wrap(method)

    def _sampler(self, index: int):
        phase = self.phases[index]
        return self.state.method.training_sampler(self.data.train, phase.batch_size, self.config.train.seed, index)

    def _prepare_run_dir(self, saved: dict | None) -> None:
        """Restore a resumed run (guard_run_dir checked its config); write config.yaml; open the logs."""
        checkpoint = self.run_dir / "checkpoint.pt"
        if saved is not None:
            restore(saved, self.config, self.data, self.state, checkpoint)
            log.info("resumed %s at step %d", checkpoint, self.state.step)
        self.logs = None
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            record_in_run(self.config.data.features, self.run_dir, self.config.data.fps, self.config.data.stride)
            if saved is not None:
                record_runtime_changes(self.run_dir, saved, self.config)
            save_config(self.config, self.run_dir / "config.yaml")
            write_json(self.run_dir / PROTOCOL, {"protocol": self.data.protocol.to_json()})
            log.info("evaluation %s", self.data.protocol.describe())
            self.logs = MetricsLog(self.run_dir, config=self.config, resume=saved is not None)
            # records past the checkpoint are repeated by the resumed run; a finished run repeats its final one
            finished = self.state.step >= self.steps
            self.logs.truncate_after(self.state.step - 1 if finished else self.state.step)

    def _wrap(self, method: Method) -> torch.nn.Module:
        if not self.dist.enabled:
            return method
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(method, device_ids=ids)

    # ------------------------------------------------------------------ the loop
    def run(self) -> TrainResult:
        t = self.config.train
        record = None
        bar = tqdm(
            total=self.steps,
            initial=self.state.step,
            disable=None if (t.progress and self.dist.is_main) else True,
            desc="train",
            unit="step",
            dynamic_ncols=True,
        )
        # no bar (stderr not a terminal, or --no-progress): a text line every log_every steps instead
        self.step_log = StepLog(self.steps, self.state.step, t.log_every, bar.disable and self.dist.is_main)
        try:
            while self.state.step < self.steps:
                self._maybe_start_phase()
                self._maybe_refresh_labels()
                losses = self._train_step(self.state.step)
                self.state.step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{losses['total']:.4f}")
                self.step_log.step(self.state.step, losses["total"])
                record = self._after_step(losses) or record
        finally:
            bar.close()
        record = self._evaluate_and_save(final=True)
        if self.dist.is_main and self.config.train.report:  # figures and report.md; failures are logged, never raised
            with averaged_weights(self.state.method, self.state.ema):
                write_report(
                    self.run_dir,
                    self.config,
                    read_metrics(self.run_dir),
                    self.data,
                    self.state.method,
                    self.device,
                    world=self.dist.world,
                )
        if self.logs is not None:  # after the report: HParams, and W&B takes the figures
            self.logs.close()
        distributed.barrier(self.dist)
        return TrainResult(self.run_dir, self.state.step, record)

    def _inference_kwargs(self) -> dict:
        return dict(batch_size=self.config.eval.batch_size, device=self.device, amp=self.config.train.amp)

    def _maybe_start_phase(self) -> None:
        """At a phase's first step: the method prepares it, then the phase gets its optimizer and batches."""
        step = self.state.step
        if step not in self.starts:
            return
        index = self.starts.index(step)
        method, dataset = self.state.method, self.data.train
        context = PhaseContext(
            dataset,
            self.device,
            self.config.eval.batch_size,
            self.config.train.amp,
            lambda: flat_cas(method, dataset, **self._inference_kwargs()),
        )
        if index:
            log.info("step %d: phase %d (%s) starts", step, index + 1, self.phases[index].name)
        method.start_phase(index, context)
        method.train()
        self.phase = index
        self.state.optimizer = new_optimizer(method, self.phases[index], index)
        self.state.ema = None
        self.sampler = self._sampler(index)
        self.model = self._wrap(method)

    def _train_step(self, step: int) -> dict[str, float]:
        self.model.train()
        local = step - self.starts[self.phase]  # the sampler counts the steps of its own phase
        batch = self.sampler(local, self.dist.rank, self.dist.world).to(self.device)
        with autocast(self.device, self.config.train.amp):
            output = self.model(batch.features, batch.mask, **batch.extras)
        losses = self.state.method.loss(output, batch, step)
        self.state.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        if self.config.train.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.state.method.parameters(), self.config.train.grad_clip)
        phase = self.phases[self.phase]
        if phase.warmup_steps or phase.schedule != "constant":
            for group in self.state.optimizer.param_groups:
                group["lr"] = phase.lr_at(local)
        if phase.ema_decay is not None and local == phase.ema_start:
            self.state.ema = update_average(None, self.state.method, phase.ema_decay)  # the weights before the step
        self.state.optimizer.step()
        if phase.ema_decay is not None and local >= phase.ema_start:
            self.state.ema = update_average(self.state.ema, self.state.method, phase.ema_decay)
        return {key: float(value.detach()) for key, value in losses.items()}

    def _after_step(self, losses: dict[str, float]) -> dict | None:
        t, step = self.config.train, self.state.step
        if not np.isfinite(losses["total"]):
            self._diverged(f"loss is {losses['total']}")
        if self.logs is not None and (step % t.log_every == 0 or step == 1):
            self.logs.scalars(step, losses, prefix="loss/")
        record = None
        if t.eval_every and step % t.eval_every == 0 and step < self.steps:
            record = self._evaluate_and_save(final=False)
            self.step_log.restart(step)  # evaluation time is not training speed
        elif step % t.checkpoint_every == 0 and self.dist.is_main:
            if not finite_weights(self.state.method):
                self._diverged("weights are not finite")
            save_checkpoint(checkpoint_state(self.config, self.data, self.state), self.run_dir / "checkpoint.pt")
        return record

    def _diverged(self, what: str) -> None:
        """Stop with one line naming the step, the cause and the checkpoint that is kept."""
        checkpoint = self.run_dir / "checkpoint.pt"
        kept = f"the last checkpoint {checkpoint} is kept" if checkpoint.is_file() else "no checkpoint was written"
        raise TrainingDiverged(
            f"training diverged at step {self.state.step}: {what} (train.lr="
            f"{self.config.train.lr:g}); {kept}; lower train.lr or set train.grad_clip"
        )

    def _maybe_refresh_labels(self) -> None:
        method = self.state.method
        if not method.refresh_due(self.state.step):
            return
        kwargs = self._inference_kwargs()
        refresh = method.refresh_labels(
            self.state.step, self.data.train, lambda: flat_cas(method, self.data.train, **kwargs)
        )
        method.train()
        if refresh is None:
            return
        precision = refresh.precision(self.train_truth)
        if precision is not None:
            log.info(
                "step %d: label mining: %d pseudo frames/labels added, precision %.3f",
                self.state.step,
                refresh.added,
                precision,
            )
        if self.logs is not None:
            self.logs.scalars(
                self.state.step,
                {"pseudo_frames": refresh.added, **({"pseudo_precision": precision} if precision is not None else {})},
                prefix="mining/",
            )
        if refresh.reinitialize:
            seed = self.config.train.seed + self.state.step
            self.state.method, self.state.optimizer = new_method(self.config, self.data, seed, self.device, self.phase)
            self.sampler = self._sampler(self.phase)
            self.model = self._wrap(self.state.method)

    def _evaluate_and_save(self, final: bool) -> dict | None:
        record = None
        if not finite_weights(self.state.method):
            self._diverged("weights are not finite")
        if self.dist.is_main:
            started = time.perf_counter()
            # an EMA phase evaluates the average; no generator the next step draws from is advanced
            with evaluation_rng(), averaged_weights(self.state.method, self.state.ema):
                record, predictions = evaluate_model(
                    self.state.method, self.data, self.config, self.device, self.state.step
                )
                self._report_selection(record)
                best = checkpoint_state(self.config, self.data, self.state, inference_only=True)
                best["model"] = {
                    key: value.clone() if torch.is_tensor(value) else copy.deepcopy(value)
                    for key, value in best["model"].items()
                }  # outlives the swap (extra state too)
            log.info("step %d: %s (%.1f s)", self.state.step, summary_line(record), time.perf_counter() - started)
            self.logs.record(record)
            if self.state.best is None or record["average"] > self.state.best:
                self.state.best = record["average"]
                save_checkpoint({**best, "best_average": self.state.best}, self.run_dir / "best.pt")
            save_checkpoint(checkpoint_state(self.config, self.data, self.state), self.run_dir / "checkpoint.pt")
            if final:
                self._write_predictions(predictions)
        distributed.barrier(self.dist)
        return record

    def _report_selection(self, record: dict) -> None:
        """Tell the method how the current weights score on the subset it selects by (`selection_subset`)."""
        method = self.state.method
        subset = method.selection_subset
        if subset is None:
            return
        if subset == self.config.data.test_subset:
            average = record["average"]
        else:
            if subset not in self._selection_sets:
                d = self.config.data
                self._selection_sets[subset] = (
                    self.data.train
                    if subset == d.train_subset
                    else build_dataset(self.data.gt, subset, self.data.store, d.fps, d.stride)
                )
            dataset = self._selection_sets[subset]
            predictions = run_predictions(method, dataset, self.config, self.device, self.data.classes)
            average = evaluate_predictions(self.data.gt, dataset.video_ids, predictions, self.config.eval.tiou)[
                "average"
            ]
            method.train()
        method.observe_evaluation(self.state.step, subset, float(average))

    def _write_predictions(self, predictions) -> None:
        protocol = self.data.protocol.to_json()
        write_json(self.run_dir / "predictions.json", predictions.results_json(protocol=protocol))
        write_json(self.run_dir / "frames.json", predictions.results_json(frames=True, protocol=protocol))


def summary_line(record: dict) -> str:
    maps = " ".join(f"{k}={v:.2f}" for k, v in record.items() if k.startswith("mAP@"))
    return f"{maps} avg={record['average']:.2f}"


def train(config: Config, run_dir: str | Path, *, resume: bool = False, data: RunData | None = None) -> TrainResult:
    """Train `config` into `run_dir` (see module doc)."""
    trainer = Trainer(config, run_dir, resume=resume, data=data)
    try:
        return trainer.run()
    except OSError as err:
        if err.errno not in DISK_ERRNOS:
            raise
        raise InputError(disk_error_line(trainer.run_dir, trainer.state.step, err)) from None
    finally:
        distributed.cleanup(trainer.dist)


def disk_error_line(run_dir: Path, step: int, err: OSError) -> str:
    """One line for a full or read-only disk mid-run: what stopped, which checkpoint is kept, how to go on."""
    checkpoint = run_dir / "checkpoint.pt"
    try:
        kept = f"{checkpoint} of step {int(load_checkpoint(checkpoint)['step'])} is kept"
    except InputError:
        kept = "no checkpoint was completed yet"
    where = f"{err.filename}: " if err.filename else ""
    return (
        f"{where}{describe_os_error(err)}: training stopped at step {step}; {kept}; free space and run "
        f"pointtal train --out {run_dir} --resume"
    )
