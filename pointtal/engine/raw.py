"""Raw outputs of a trained run, kept once so that inference-only keys are swept without retraining.

`pointtal predict --save-raw` (and a sweep over inference-only keys) writes each test video's scores -- the
CAS, the actionness and the video-level scores that `Method.localize` reads -- to

    RUN_DIR/raw/<checkpoint stem>-<subset>.npz

(numpy arrays only, read with allow_pickle=False; written atomically; `step` records the checkpoint's step, so
a raw file of older weights is rewritten, one of the same weights is reused). `relocalize` runs the localizer of
a config on those scores: the same detections a full `predict` with that config gives, without the network.

Inference-only keys: the options that only a method's detection reads, checked per method against its
training code -- a key that also shapes training (SODA's eta feeds the video scores, LACP's oic_delta its score
loss and search) is not one -- plus `eval.tiou`. For the CAS methods (INFERENCE_KEYS) a variant is re-localized
from the raw scores. HR-Pro's refinement runs its instance network on the proposals and ActionFormer decodes
its regression heads, so for their keys (NETWORK_KEYS) a variant is rescored: the finished run's weights,
loaded into the method built with the variant's options, predict the test subset again (inference, no
training). HR-Pro's keys count only with `stage1_selection: last`: a selecting run evaluates (soft-NMS
included) while it trains, and keeps the stage-1 weights that score best.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pointtal.atomic import write_atomic
from pointtal.config import Config
from pointtal.errors import InputError
from pointtal.methods.base import VideoScores

_SFNET_LOCALIZER = ("adjust", "class_topk_divisor", "class_ratio", "min_segment_len")
INFERENCE_KEYS: dict[str, tuple[str, ...]] = {
    "sfnet": ("w_act", *_SFNET_LOCALIZER),
    "weak": _SFNET_LOCALIZER,
    "soda": ("tau_cls", "scale", "thresholds", "outer_ratio", "gamma", "nms_tiou"),
    "lacp": (
        "class_threshold",
        "cas_thresholds",
        "actionness_thresholds",
        "scale",
        "gamma",
        "nms_threshold",
        "nms_extent",
    ),
}
NETWORK_KEYS: dict[str, tuple[str, ...]] = {
    "hrpro": ("soft_nms_sigma", "soft_nms_offset", "max_per_class", "refined_bounds"),
    "actionformer": (
        "pre_nms_topk",
        "pre_nms_thresh",
        "duration_thresh",
        "nms",
        "nms_sigma",
        "iou_threshold",
        "min_score",
        "max_segments",
        "multiclass_nms",
        "voting_thresh",
        "voting_within_class",
    ),
}
EVAL_KEYS = ("eval.tiou",)  # evaluation only: every method


def inference_keys(config: Config) -> tuple[str, ...]:
    """Flat config keys (`method.x`, `eval.tiou`) that only change the inference of a run of `config`."""
    keys = INFERENCE_KEYS.get(config.method) or NETWORK_KEYS.get(config.method, ())
    if config.method == "hrpro" and config.method_options.stage1_selection != "last":
        keys = ()
    return (*(f"method.{k}" for k in keys), *EVAL_KEYS)


def raw_path(run_dir: str | Path, subset: str, checkpoint: str | Path | None = None) -> Path:
    stem = Path(checkpoint).stem if checkpoint else "checkpoint"
    return Path(run_dir) / "raw" / f"{stem}-{subset}.npz"


def save_raw(path: Path, scored: Sequence[VideoScores], step: int, in_dim: int) -> Path:
    """Write each video's length, and its cas (T, C+1), actionness (T,) and video scores (C+1,) where the
    method produces them (a detector has none of them: only the lengths are kept)."""
    arrays: dict[str, np.ndarray] = {
        "video_ids": np.array([s.video_id for s in scored], dtype=str),  # (V,) unicode: no pickle needed
        "step": np.array(step, dtype=np.int64),
        "in_dim": np.array(in_dim, dtype=np.int64),  # feature width: builds the method whose localizer runs
    }
    for i, s in enumerate(scored):
        arrays[f"length_{i}"] = np.array(s.length, dtype=np.int64)
        for name in ("cas", "actionness", "video_scores"):
            if getattr(s, name) is not None:
                arrays[f"{name}_{i}"] = np.asarray(getattr(s, name))
    return write_atomic(path, lambda handle: np.savez(handle, **arrays))


def raw_step(path: Path) -> int | None:
    """The checkpoint step a raw file holds, or None when there is none (or it is unreadable)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return int(z["step"])
    except (OSError, ValueError, KeyError):
        return None


def missing_from_raw(path: Path, video_ids: Sequence[str]) -> list[str]:
    """The videos of `video_ids` a raw file lacks (all of them when it is unreadable)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            held = {str(v) for v in z["video_ids"]}
    except (OSError, ValueError, KeyError):
        return list(video_ids)
    return [v for v in video_ids if v not in held]


def load_raw(path: Path) -> tuple[int, int, dict[str, VideoScores]]:
    """(step, feature width, video id -> scores) of a raw file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            ids = [str(v) for v in z["video_ids"]]
            videos = {
                vid: VideoScores(
                    vid,
                    *(
                        z[f"{name}_{i}"] if f"{name}_{i}" in z else None
                        for name in ("cas", "actionness", "video_scores")
                    ),
                    length=int(z[f"length_{i}"]) if f"length_{i}" in z else None,
                )
                for i, vid in enumerate(ids)
            }
            return int(z["step"]), int(z["in_dim"]), videos
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"{path}: not a raw-output file of pointtal predict --save-raw ({err})") from None


def check_relocalizable(config: Config, where: str) -> None:
    if config.method not in INFERENCE_KEYS:
        raise InputError(
            f"{where}: method {config.method} detects with its network (on proposals or regression "
            "heads), so there are no raw scores to keep: a sweep over its inference-only keys "
            "rescores the run from its checkpoint instead"
        )


def relocalize(method, scored: dict[str, VideoScores], video_ids: Sequence[str], geometries: dict, classes):
    """Predictions of `video_ids` by `method.localize` (the method built with the wanted options) on the raw
    scores: what `predict` gives with those options."""
    from pointtal.engine.inference import Predictions
    from pointtal.localization.detections import check_detections

    missing = [v for v in video_ids if v not in scored]
    if missing:
        raise InputError(f"raw outputs lack {len(missing)} video(s) of the test subset (first: {missing[0]})")
    out = Predictions(tuple(classes))
    for vid in video_ids:
        s = scored[vid]
        found = check_detections(
            method.localize(s.cas, s.actionness, s.video_scores), method.n_classes, method.name, vid
        )
        out.detections[vid] = found.in_seconds(geometries[vid])
        if s.video_scores is not None:
            out.video_scores[vid] = s.video_scores
    return out


def test_raw(source_dir: Path, data, test_subset: str) -> Path:
    """The raw file of `source_dir`'s checkpoint on `data.test`, written (scoring every test video with the
    network) unless one of the same step holding those videos is there already."""
    from pointtal.engine.inference import dataset_items, resolve_device, score_videos
    from pointtal.engine.predictor import load_trained

    path = raw_path(source_dir, data.gt.subset_name(test_subset, "data.test_subset"))
    loaded = load_trained(source_dir)
    if raw_step(path) == loaded.step and not missing_from_raw(path, data.test.video_ids):
        return path
    c = loaded.config
    device = resolve_device(c.train.device)
    scored = list(
        score_videos(
            loaded.method.to(device),
            dataset_items(data.test),
            batch_size=c.eval.batch_size,
            device=device,
            amp=c.train.amp,
        )
    )
    return save_raw(path, scored, loaded.step, loaded.method.in_dim)


def rescore(source_dir: Path, config: Config, data, geometries: dict):
    """(step, predictions of data.test) of the finished run's weights in the method built with `config`'s
    options (its inference-only keys changed): a network method's detections with other post-processing."""
    from pointtal.engine.inference import dataset_items, predict, resolve_device
    from pointtal.engine.predictor import load_trained

    loaded = load_trained(source_dir, config=config)
    device = resolve_device(config.train.device)
    predictions = predict(
        loaded.method.to(device),
        dataset_items(data.test),
        geometries,
        data.classes,
        batch_size=config.eval.batch_size,
        device=device,
        amp=config.train.amp,
    )
    return loaded.step, predictions


def derive_run(source_dir: Path, config: Config, run_dir: Path) -> dict:
    """Re-localize (CAS methods: from the raw outputs) or rescore (network methods) and re-evaluate the finished
    run `source_dir` with `config` (which differs from the run's only in inference-only keys) into `run_dir`: config.yaml, derived.json, metrics.jsonl, frames.json and last
    predictions.json, as a trained run holds them. Trains nothing; returns the metrics record."""
    import json

    from pointtal.atomic import write_json, write_text_atomic
    from pointtal.config import save_config
    from pointtal.engine.evaluate import evaluate_predictions
    from pointtal.engine.setup import load_run_data
    from pointtal.methods import build_method

    data = load_run_data(config, train=False)
    geometries = dict(zip(data.test.video_ids, data.test.geometries, strict=True))
    if config.method in INFERENCE_KEYS:
        path = test_raw(Path(source_dir), data, config.data.test_subset)
        step, in_dim, scored = load_raw(path)
        method = build_method(config.method, config.method_options, in_dim, len(data.classes))
        predictions = relocalize(method, scored, data.test.video_ids, geometries, data.classes)
        how = {"raw": str(path.resolve())}
    else:
        step, predictions = rescore(Path(source_dir), config, data, geometries)
        how = {"rescored": str((Path(source_dir) / "checkpoint.pt").resolve())}
    record = {
        "step": step,
        **evaluate_predictions(data.gt, data.test.video_ids, predictions, config.eval.tiou, data.ambiguous),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    write_json(run_dir / "derived.json", {"source": str(Path(source_dir).resolve()), **how, "step": step})
    write_text_atomic(run_dir / "metrics.jsonl", json.dumps(record) + "\n")
    protocol = data.protocol.to_json()
    write_json(run_dir / "frames.json", predictions.results_json(frames=True, protocol=protocol))
    write_json(run_dir / "predictions.json", predictions.results_json(protocol=protocol))  # last: finished
    return record
