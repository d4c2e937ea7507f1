"""Prediction from a run directory: load the model from a checkpoint, stream videos from the feature store.

Features are memory-mapped and read one batch at a time, so memory stays bounded whatever the number of
videos. Under torchrun the videos are split across ranks and rank 0 writes one merged file, identical to a
single-process run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from pointtal.atomic import write_json, write_text_atomic
from pointtal.config import Config, build_config
from pointtal.data.annotations import GroundTruth
from pointtal.data.dataset import geometry_for
from pointtal.data.features import FeatureStore
from pointtal.engine import distributed
from pointtal.engine.checkpoint import load_checkpoint
from pointtal.engine.evaluate import protocol_for
from pointtal.engine.inference import Predictions, predict, resolve_device
from pointtal.engine.pseudo_labels import DEFAULT_THRESHOLD, pseudo_ground_truth
from pointtal.engine.raw import check_relocalizable, missing_from_raw, raw_path, raw_step
from pointtal.engine.raw import save_raw as save_raw_file
from pointtal.engine.setup import load_ground_truth_for, open_store, point_classes
from pointtal.errors import InputError
from pointtal.methods import Method, build_method

log = logging.getLogger(__name__)


@dataclass
class LoadedRun:
    config: Config
    method: Method
    classes: tuple[str, ...]
    step: int


def load_trained(
    run_dir: str | Path,
    checkpoint: str | Path | None = None,
    device: torch.device | str = "cpu",
    config: Config | None = None,
) -> LoadedRun:
    """The method of a run, with the weights of `checkpoint` (default RUN_DIR/checkpoint.pt), in eval mode;
    built with `config` instead of the saved config when given (the same weights with other inference-only
    options: pointtal.engine.raw)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: run directory not found")
    path = Path(checkpoint) if checkpoint else run_dir / "checkpoint.pt"
    saved = load_checkpoint(path)
    if config is None:
        config = build_config(saved["config"], f"{path}: config")
        config = dataclasses.replace(config, origin=f"{run_dir / 'config.yaml'}, as saved in {path}")
    classes = tuple(saved["classes"])
    method = build_method(config.method, config.method_options, int(saved["in_dim"]), len(classes))
    try:
        method.load_state_dict(saved.get("ema") or saved["model"])  # the weights its evaluation used
    except (RuntimeError, KeyError, ValueError) as err:
        raise InputError(f"{path}: weights do not fit the method in its config ({str(err).splitlines()[0]})") from None
    return LoadedRun(config, method.to(device).eval(), classes, int(saved["step"]))


def _items(store: FeatureStore, video_ids, bar):
    for video_id in video_ids:
        yield video_id, store.load(video_id)
        bar.update(1)


def predict_videos(
    loaded: LoadedRun,
    store: FeatureStore,
    gt: GroundTruth,
    video_ids,
    *,
    batch_size: int,
    device: torch.device,
    progress: bool,
    keep: list | None = None,
) -> Predictions:
    d = loaded.config.data
    geometries = {vid: geometry_for(gt.videos[vid], d.fps, d.stride) for vid in video_ids}
    with tqdm(total=len(video_ids), desc="predict", unit="video", disable=None if progress else True) as bar:
        return predict(
            loaded.method,
            _items(store, video_ids, bar),
            geometries,
            loaded.classes,
            batch_size=batch_size,
            device=device,
            amp=loaded.config.train.amp,
            keep=keep,
        )


def merge(parts: list[Predictions], order: list[str]) -> Predictions:
    """The ranks' predictions as one, in the videos' `order`."""
    merged = Predictions(parts[0].classes)
    for part in parts:
        merged.detections.update(part.detections)
        merged.video_scores.update(part.video_scores)
    return Predictions(
        merged.classes,
        {v: merged.detections[v] for v in order},
        {v: merged.video_scores[v] for v in order if v in merged.video_scores},
    )


def class_mismatch(source, classes: tuple[str, ...], trained: tuple[str, ...]) -> str:
    """One line: how the ground truth's classes differ from the run's (missing, extra, or only their order)."""
    missing, extra = [c for c in trained if c not in classes], [c for c in classes if c not in trained]
    if not missing and not extra:
        return f"{source}: the classes are the run's but in another order; give the run's data.class_list"
    parts = [
        f"{len(missing)} of the run's {len(trained)} classes absent ({', '.join(missing[:3])})" if missing else "",
        f"{len(extra)} class(es) the run has not ({', '.join(extra[:3])})" if extra else "",
    ]
    return (
        f"{source}: classes differ from the run's checkpoint: {'; '.join(p for p in parts if p)} "
        "(another dataset's ground truth? classes are the labels found in it unless data.class_list "
        "names them)"
    )


def predict_run(
    run_dir,
    *,
    out=None,
    frames_out=None,
    checkpoint=None,
    features=None,
    annotations=None,
    subset=None,
    device=None,
    batch_size=None,
    progress=True,
    pseudo_labels=None,
    pseudo_threshold=DEFAULT_THRESHOLD,
    pseudo_suppress=True,
    save_raw=False,
) -> str | None:
    """Write predictions for a subset (`out`, `frames_out`) and/or the subset's predicted segments as
    ground truth (`pseudo_labels`, see pointtal.engine.pseudo_labels); returns a one-line summary on rank 0
    (None on other ranks). The subset defaults to data.test_subset, with `pseudo_labels` to data.train_subset.
    `save_raw` also keeps each video's scores in RUN_DIR/raw/ (pointtal.engine.raw)."""
    loaded = load_trained(run_dir, checkpoint)
    config = loaded.config
    if save_raw:
        check_relocalizable(config, f"{run_dir}: --save-raw")
    target = resolve_device(device or config.train.device)
    ctx = distributed.init_distributed(target)
    target = distributed.local_device(target, ctx)
    loaded.method.to(target)
    gt = load_ground_truth_for(config, annotations, features)
    if gt.classes != loaded.classes:
        raise InputError(class_mismatch(annotations or config.data.annotations, gt.classes, loaded.classes))
    store = open_store(config, features)
    name = gt.subset_name(
        subset or (config.data.train_subset if pseudo_labels else config.data.test_subset), "--subset"
    )  # the ground truth's spelling: 'Test' for 'test'
    if pseudo_labels and name.casefold() == config.data.test_subset.casefold():
        log.warning(
            "--pseudo-labels replaces the ground truth of '%s', the run's test subset: evaluating "
            "on that file then measures agreement with this run, not accuracy",
            name,
        )
    video_ids = [v.video_id for v in gt.subset(name, "--subset")]
    missing = [v for v in video_ids if v not in store]
    if missing:
        log.warning(
            "%d of %d videos of '%s' have no feature file and are skipped (first: %s)",
            len(missing),
            len(video_ids),
            name,
            ", ".join(missing[:3]),
        )
        video_ids = [v for v in video_ids if v in store]
    if not video_ids:
        raise InputError(f"{store.root}: no features for any video of subset '{name}'")
    mine = video_ids[ctx.rank :: ctx.world]
    keep: list | None = [] if save_raw else None
    part = predict_videos(
        loaded,
        store,
        gt,
        mine,
        batch_size=batch_size or config.eval.batch_size,
        device=target,
        progress=progress and ctx.is_main,
        keep=keep,
    )
    parts = distributed.all_gather_objects(part, ctx)
    kept = distributed.all_gather_objects(keep, ctx) if save_raw else []
    distributed.cleanup(ctx)
    if not ctx.is_main:
        return None
    merged = merge(parts, video_ids)
    protocol = protocol_for(config).to_json()  # the run's: `pointtal evaluate` applies it to these files
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(out), merged.results_json(protocol=protocol))
    if frames_out:
        Path(frames_out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(frames_out), merged.results_json(frames=True, protocol=protocol))
    n = sum(len(found) for found in merged.detections.values())
    summary = f"{len(video_ids)} videos of '{name}', {n} segments (step {loaded.step})"
    if save_raw:
        path = raw_path(run_dir, name, checkpoint)
        if raw_step(path) == loaded.step and not missing_from_raw(path, video_ids):
            summary += f"; raw outputs already in {path}"
        else:
            by_id = {s.video_id: s for part_keep in kept for s in part_keep}
            save_raw_file(path, [by_id[v] for v in video_ids], loaded.step, loaded.method.in_dim)
            summary += f"; raw outputs: {path}"
    if pseudo_labels:
        provenance = {"run": str(Path(run_dir).resolve()), "step": loaded.step}
        classes = point_classes(config, gt, store, video_ids)  # what each training video's points name
        truth = pseudo_ground_truth(
            gt, merged.segments, name, pseudo_threshold, provenance, classes, suppress=pseudo_suppress
        )
        Path(pseudo_labels).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(pseudo_labels, json.dumps(truth, indent=1))
        kept = sum(len(truth["database"][v]["annotations"]) for v in video_ids)
        overlaps = "suppressed" if pseudo_suppress else "kept"
        summary += (
            f"; pseudo-labels: {kept} instances (classes of each video's points, the top "
            f"{1 - pseudo_threshold:.0%} of its score range, same-class overlaps {overlaps})"
        )
    return summary
