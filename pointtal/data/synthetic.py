"""Synthetic point-supervised localization benchmarks: ground truth, I3D-like features and click files.

`generate(out_dir, preset)` writes, into `out_dir`:

* `annotations.json` -- ActivityNet-style ground truth (docs/formats.md) with `fps` on every video;
* `features/<video_id>.npy` -- one `(T, D)` float32 (or float16) array per video,
  `T = max(1, floor(duration * fps / stride))`;
* `points/annotator{1..4}.csv` -- SF-Net click files (`video_id,time_sec,label`, no header);
* `dataset.yaml` / `README.md` -- fps, stride, classes, seed, dim, subsets, and the generator's parameters.
* `train.yaml` -- a config `pointtal train train.yaml --out RUN` takes as is (SF-Net on the click files).

Presets
-------
* `thumos14`: the real temporal structure of THUMOS14 (412 videos, real durations and instances, subsets
  `validation` (train) / `test`, fps 25, stride 16) and the 4 real human click files, copied byte for byte.
* `gtea`: the same for GTEA (28 videos, 7 classes, subsets `training` / `validation`, fps 15, stride 16).
* `beoid`: the same for BEOID (58 videos, 34 classes, 742 instances, subsets `training` (46) / `validation` (12),
  fps 30, stride 16; the ground truth and the 4 annotators' clicks published with SF-Net, `data/beoid_groundtruth
  .json` and `data/BEOID-Annotations/single_frames/BEOID{1..4}.txt` of Flowerfan/SF-Net, blank lines dropped).
* `tiny`: an invented structure (24 `validation` + 12 `test` videos of 40-100 s, 4 classes, 1-5
  instances each) with 4 simulated annotators (see `simulate_clicks`).

Feature model
-------------
Features are generated in a small latent space per stream and embedded into `D` dimensions, so the task's
difficulty is set by the latent model and hardly depends on `D` (isotropic per-dimension noise alone would
average out in 2048 dimensions and make every task trivially separable).

For each stream s in {RGB, flow} (each `D/2` wide) and each video, the latent `(T, R)` sequence is

    z_s = W_phase @ (g_phase_s * phases_s)        # (1) actions made of phases
        + W_ctx   @ (g_ctx_s   * context_s)       # (2) class-correlated context around actions
        + W_bg    @ (g_bg_s    * background_s)    #     generic background activity
        + g_scene_s * scene_s                     # (3) one scene vector per video, under everything
        + sigma_s * noise                         # (4) per-snippet latent noise

1. **Phases.** Every class has `n_phases` (3) prototypes. A prototype is a weak mix of a class-shared
   vector (`phase_class_share`), an all-action vector (`phase_action_share`, a generic actionness cue)
   and an independent part, so a click on one phase reveals little of the others. Each instance splits
   its length into phases at random (Dirichlet) proportions, has its own amplitude, and each video
   perturbs the prototypes (`style_sigma`: intra-class variation). `W_phase[t]` holds the fraction of
   snippet `t` covered by the instance (boundary snippets are mixed).
2. **Context.** One prototype per class, present in a margin before and after each instance (weight
   decaying away from it) and also in random bursts in the background (mostly the video's own classes),
   so it correlates with actions without marking them.
3. **Scene.** Per video, half a class-scene prototype of the video's classes, half random; shared by
   background and action snippets (backgrounds of a diving video look like diving videos).
4. **Noise.** Latent noise per snippet, plus small independent noise per output dimension.
5. **Non-negative.** `x_s = relu(z_s @ E_s + obs_sigma * noise + bias)`, like post-ReLU I3D features;
   `E_s` is a fixed random `(R, D/2)` embedding.
6. **Two streams.** RGB (first `D/2` columns) carries scene and context strongly and the phases weakly;
   flow (last `D/2`) carries the phases strongly and scene/context weakly.
7. **Smoothness.** The latent sequence is smoothed with a `[1, 2, 1] / 4` moving average over time.

Background snippets also carry one of `n_background` prototypes, piecewise constant over random
stretches (weight `1 - action coverage`).

All randomness comes from `np.random.SeedSequence(seed)`: one child for the prototypes, one for the tiny
structure, one for the simulated clicks, one per video (in sorted id order), so the same seed and options
give byte-identical files.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from pointtal import __version__
from pointtal.data.features import SnippetGeometry, check_video_id
from pointtal.data.points import Point, custom_click_positions, write_points
from pointtal.errors import InputError
from pointtal.limits import refuse_estimate

log = logging.getLogger(__name__)

VENDOR_DIR = Path(__file__).resolve().parent / "vendor"
GENERATOR = "pointtal synth"
N_ANNOTATORS = 4
DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class Preset:
    """Where a preset's structure comes from and its snippet geometry."""

    name: str
    fps: float
    stride: int
    train_subset: str
    test_subset: str
    default_dim: int
    vendor: str | None  # directory under pointtal/data/vendor, or None for an invented structure


PRESETS = {
    "tiny": Preset("tiny", 25.0, 16, "validation", "test", 64, None),
    "gtea": Preset("gtea", 15.0, 16, "training", "validation", 2048, "gtea"),
    "beoid": Preset("beoid", 30.0, 16, "training", "validation", 2048, "beoid"),
    "thumos14": Preset("thumos14", 25.0, 16, "validation", "test", 2048, "thumos14"),
}


@dataclass(frozen=True)
class StreamGains:
    """Strength of each component in one stream's latent sequence (see the module docstring)."""

    phase: float
    context: float
    background: float
    scene: float
    noise: float


@dataclass(frozen=True)
class FeatureModel:
    """Parameters of the generative feature model; the defaults are the benchmark's."""

    latent_dim: int = 32
    n_phases: int = 3
    phase_class_share: float = 0.2
    phase_action_share: float = 0.15
    style_sigma: float = 1.0
    amplitude_range: tuple[float, float] = (0.6, 1.3)
    context_margin_frac: float = 0.5
    context_margin_max: int = 6
    context_amp: float = 0.9
    context_bursts_per_snippet: float = 1 / 60
    context_burst_amp: float = 0.6
    n_background: int = 8
    background_mean_run: float = 15.0
    scene_class_share: float = 0.5
    rgb: StreamGains = field(default_factory=lambda: StreamGains(0.8, 1.2, 1.0, 1.3, 3.3))
    flow: StreamGains = field(default_factory=lambda: StreamGains(1.3, 0.5, 0.8, 0.5, 3.3))
    obs_sigma: float = 0.3
    bias: float = 0.2


@dataclass(frozen=True)
class StreamBank:
    """One stream's latent prototypes and embedding."""

    phases: np.ndarray  # (C*P, R)
    context: np.ndarray  # (C, R)
    background: np.ndarray  # (K, R)
    scene: np.ndarray  # (C, R) class-scene prototypes
    embed: np.ndarray  # (R, D/2)


@dataclass(frozen=True)
class SynthSummary:
    """What `generate` wrote."""

    out_dir: Path
    preset: str
    seed: int
    dim: int
    dtype: str
    classes: tuple[str, ...]
    subsets: dict[str, int]
    n_videos: int
    n_instances: int
    n_snippets: int
    n_clicks: int
    annotations_path: Path
    features_dir: Path
    point_paths: tuple[Path, ...]
    dataset_yaml: Path
    readme: Path
    feature_bytes: int
    seconds: float
    train_config: Path | None = None  # a config `pointtal train` takes as is (SF-Net on the click files)


# ----------------------------------------------------------------------------------------------------
# Structure: ground truth database for each preset


def vendor_database(preset: Preset) -> dict:
    """The real ground truth of a vendored dataset, cleaned to subset/duration/fps/annotations."""
    data = json.loads((VENDOR_DIR / preset.vendor / "groundtruth.json").read_text(encoding="utf-8"))
    database = {}
    for video_id in sorted(data["database"]):
        entry = data["database"][video_id]
        database[video_id] = {
            "subset": entry["subset"],
            "duration": float(entry["duration"]),
            "fps": float(entry.get("fps") or preset.fps),
            "annotations": [
                {"segment": [float(a["segment"][0]), float(a["segment"][1])], "label": a["label"]}
                for a in entry["annotations"]
            ],
        }
    return database


TINY_CLASSES = ("Jump", "Lift", "Swing", "Throw")


def tiny_database(rng: np.random.Generator, n_train: int = 24, n_test: int = 12) -> dict:
    """An invented THUMOS-like structure: short videos, 1-5 non-overlapping instances, 1-2 classes each."""
    database = {}
    n_classes = len(TINY_CLASSES)
    for subset, count in (("validation", n_train), ("test", n_test)):
        main_classes = rng.permutation(np.arange(count) % n_classes)  # every class in every subset
        for i in range(count):
            video_id = f"video_{subset}_{i + 1:04d}"
            database[video_id] = _tiny_video(rng, subset, int(main_classes[i]), n_classes)
    return database


def _tiny_video(rng: np.random.Generator, subset: str, main: int, n_classes: int) -> dict:
    """One tiny video: duration 40-100 s; instance lengths 2-10 s, gaps >= 0.5 s, <= half the video."""
    duration = round(float(rng.uniform(40.0, 100.0)), 2)
    n_inst = int(rng.integers(1, 6))
    second = int((main + rng.integers(1, n_classes)) % n_classes) if rng.random() < 0.2 else main
    labels = np.where(rng.random(n_inst) < 0.6, main, second)  # (N,)
    lengths = rng.uniform(2.0, 10.0, n_inst)  # (N,) seconds
    lengths *= min(1.0, 0.5 * duration / lengths.sum())
    free = duration - lengths.sum() - 0.5 * (n_inst + 1)
    gaps = 0.5 + rng.dirichlet(np.ones(n_inst + 1)) * free  # (N+1,)
    starts = np.cumsum(gaps[:-1]) + np.concatenate([[0.0], np.cumsum(lengths[:-1])])
    annotations = []
    for start, length, label in zip(starts, lengths, labels, strict=True):
        seg = [round(float(start), 1), round(float(start + length), 1)]
        if seg[1] > seg[0]:
            annotations.append({"segment": seg, "label": TINY_CLASSES[label]})
    return {"subset": subset, "duration": duration, "fps": 25.0, "annotations": annotations}


def database_classes(database: dict) -> tuple[str, ...]:
    return tuple(sorted({a["label"] for v in database.values() for a in v["annotations"]}))


# ----------------------------------------------------------------------------------------------------
# Clicks


def simulate_clicks(
    database: dict,
    subset: str,
    rng: np.random.Generator,
    miss_prob: float = 0.01,
    jitter_sec: float = 0.15,
) -> list[tuple[str, float, str]]:
    """One human-like click per instance of the `subset` videos.

    The relative position inside the instance follows SF-Net's 10-bin custom distribution (uniform within
    a bin); a small Gaussian timing jitter (clipped to the video) lets a few clicks land just outside the
    instance, and an instance is missed with probability `miss_prob` -- as in the real click files.
    """
    rows = []
    for video_id in sorted(database):
        video = database[video_id]
        if video["subset"] != subset or not video["annotations"]:
            continue
        segs = np.array([a["segment"] for a in video["annotations"]], dtype=np.float64)  # (N, 2)
        n = len(segs)
        rel = custom_click_positions(rng, n)  # (N,) in [0, 1)
        times = segs[:, 0] + rel * (segs[:, 1] - segs[:, 0]) + rng.normal(0.0, jitter_sec, n)
        times = np.clip(times, 0.0, np.nextafter(video["duration"], 0.0))
        keep = rng.random(n) >= miss_prob
        rows += [
            (video_id, float(t), a["label"]) for t, a, k in zip(times, video["annotations"], keep, strict=True) if k
        ]
    return rows


def write_clicks(path: Path, rows: list[tuple[str, float, str]]) -> None:
    """SF-Net click CSV: `video_id,time_sec,label`, no header, sorted by video, time, label (`points.write_points`)."""
    write_points([Point(video_id, time_sec, label) for video_id, time_sec, label in rows], path)  # atomic


# ----------------------------------------------------------------------------------------------------
# Features


def draw_stream_bank(rng: np.random.Generator, n_classes: int, width: int, model: FeatureModel) -> StreamBank:
    """Latent prototypes of one stream and its `(R, width)` embedding."""
    r, p = model.latent_dim, model.n_phases
    shared = np.repeat(rng.standard_normal((n_classes, r)), p, axis=0)  # (C*P, R)
    action = rng.standard_normal((1, r))  # (1, R)
    own = rng.standard_normal((n_classes * p, r))  # (C*P, R)
    a, b = model.phase_class_share, model.phase_action_share
    phases = math.sqrt(a) * shared + math.sqrt(b) * action + math.sqrt(1.0 - a - b) * own
    return StreamBank(
        phases=phases,
        context=rng.standard_normal((n_classes, r)),
        background=rng.standard_normal((model.n_background, r)),
        scene=rng.standard_normal((n_classes, r)),
        embed=rng.standard_normal((r, width)) / math.sqrt(r),
    )


def expand_ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate `arange(starts[i], ends[i])` for all i: returns (owner i, value), both (sum len,)."""
    counts = np.maximum(ends - starts, 0)
    owner = np.repeat(np.arange(len(starts)), counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, starts[owner] + offsets


@dataclass(frozen=True)
class VideoLayout:
    """Per-snippet mixing weights of one video."""

    phase: np.ndarray  # (T, C*P)
    context: np.ndarray  # (T, C)
    background: np.ndarray  # (T, K)
    class_ids: np.ndarray  # classes present (0-based)


def video_layout(
    video: dict,
    class_index: dict[str, int],
    geometry: SnippetGeometry,
    n_snippets: int,
    rng: np.random.Generator,
    model: FeatureModel,
) -> VideoLayout:
    """Mixing weights of phases, context and background prototypes for every snippet of one video."""
    t_len, n_cls, p = n_snippets, len(class_index), model.n_phases
    segs = np.array([a["segment"] for a in video["annotations"]], dtype=np.float64).reshape(-1, 2)  # (N, 2)
    labels = np.array([class_index[a["label"]] for a in video["annotations"]], dtype=np.int64)  # (N,)
    snip_sec = geometry.snippet_sec
    first = np.clip(np.floor(segs[:, 0] / snip_sec + 1e-9).astype(np.int64), 0, t_len)  # (N,)
    last = np.clip(np.ceil(segs[:, 1] / snip_sec - 1e-9).astype(np.int64), 0, t_len)  # (N,) exclusive
    amp = rng.uniform(*model.amplitude_range, len(segs))  # (N,)
    bounds = np.cumsum(rng.dirichlet(np.full(p, 3.0), len(segs)), axis=1)[:, :-1]  # (N, P-1) relative

    phase_w = np.zeros((t_len, n_cls * p))  # (T, C*P)
    owner, snip = expand_ranges(first, last)
    cover = np.minimum(segs[owner, 1], (snip + 1) * snip_sec) - np.maximum(segs[owner, 0], snip * snip_sec)
    cover = np.clip(cover / snip_sec, 0.0, 1.0)  # fraction of the snippet inside the instance
    rel = ((snip + 0.5) * snip_sec - segs[owner, 0]) / (segs[owner, 1] - segs[owner, 0])
    phase = (rel[:, None] >= bounds[owner]).sum(axis=1)  # (M,) 0..P-1
    np.add.at(phase_w, (snip, labels[owner] * p + phase), amp[owner] * cover)
    coverage = np.zeros(t_len)
    np.add.at(coverage, snip, cover)
    coverage = np.minimum(coverage, 1.0)  # (T,)

    context_w = _context_weights(first, last, labels, t_len, n_cls, rng, model)
    context_w *= 1.0 - coverage[:, None]
    return VideoLayout(
        phase=phase_w,
        context=context_w,
        background=_background_weights(t_len, coverage, rng, model),
        class_ids=np.unique(labels),
    )


def _context_weights(first, last, labels, t_len, n_cls, rng, model: FeatureModel) -> np.ndarray:
    """(T, C) context weights: decaying margins around instances plus random background bursts."""
    context_w = np.zeros((t_len, n_cls))
    margin = np.clip(np.round(model.context_margin_frac * (last - first)), 1, model.context_margin_max)
    margin = margin.astype(np.int64)  # (N,)
    for side_start, side_end, dist_sign in ((first - margin, first, -1), (last, last + margin, 1)):
        owner, snip = expand_ranges(side_start, side_end)
        dist = np.where(dist_sign < 0, first[owner] - snip, snip - last[owner] + 1)  # 1..margin
        weight = model.context_amp * (1.0 - (dist - 1) / margin[owner])
        ok = (snip >= 0) & (snip < t_len)
        np.add.at(context_w, (snip[ok], labels[owner][ok]), weight[ok])
    n_bursts = int(rng.poisson(t_len * model.context_bursts_per_snippet))
    if n_bursts and len(labels):
        own = rng.random(n_bursts) < 0.7
        cls = np.where(own, rng.choice(labels, n_bursts), rng.integers(0, n_cls, n_bursts))
        starts = rng.integers(0, t_len, n_bursts)
        owner, snip = expand_ranges(starts, np.minimum(starts + rng.integers(2, 7, n_bursts), t_len))
        np.add.at(context_w, (snip, cls[owner]), model.context_burst_amp)
    return np.minimum(context_w, 1.5)


def _background_weights(t_len: int, coverage: np.ndarray, rng, model: FeatureModel) -> np.ndarray:
    """(T, K) one-hot background prototype, piecewise constant over geometric-length stretches."""
    n_runs = t_len // 2 + 2
    run_ends = np.cumsum(rng.geometric(1.0 / model.background_mean_run, n_runs))  # (n_runs,)
    run_proto = rng.integers(0, model.n_background, n_runs)  # (n_runs,)
    proto = run_proto[np.minimum(np.searchsorted(run_ends, np.arange(t_len), side="right"), n_runs - 1)]
    background_w = np.zeros((t_len, model.n_background))  # (T, K)
    background_w[np.arange(t_len), proto] = 1.0 - coverage
    return background_w


def smooth_time(z: np.ndarray) -> np.ndarray:
    """`[1, 2, 1] / 4` moving average along axis 0, edges replicated. (T, R) -> (T, R)."""
    padded = np.concatenate([z[:1], z, z[-1:]], axis=0)  # (T+2, R)
    return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]


def stream_latent(
    layout: VideoLayout, bank: StreamBank, gains: StreamGains, rng: np.random.Generator, model: FeatureModel
) -> np.ndarray:
    """One stream's smoothed latent sequence (T, R) for one video."""
    t_len, r = layout.phase.shape[0], model.latent_dim
    phases = bank.phases + model.style_sigma * rng.standard_normal(bank.phases.shape)  # per-video style
    scene_class = bank.scene[layout.class_ids].mean(axis=0) if len(layout.class_ids) else np.zeros(r)
    share = model.scene_class_share
    scene = math.sqrt(share) * scene_class + math.sqrt(1.0 - share) * rng.standard_normal(r)  # (R,)
    z = (
        gains.phase * (layout.phase @ phases)
        + gains.context * (layout.context @ bank.context)
        + gains.background * (layout.background @ bank.background)
        + gains.scene * scene
        + gains.noise * rng.standard_normal((t_len, r))
    )  # (T, R)
    return smooth_time(z)


def video_features(
    layout: VideoLayout,
    banks: tuple[StreamBank, StreamBank],
    rng: np.random.Generator,
    model: FeatureModel,
    dim: int,
) -> np.ndarray:
    """The `(T, D)` float32 features of one video: RGB in columns `[0, D/2)`, flow in `[D/2, D)`."""
    t_len, half = layout.phase.shape[0], dim // 2
    out = np.empty((t_len, dim), dtype=np.float32)  # (T, D)
    for col, bank, gains in ((0, banks[0], model.rgb), (half, banks[1], model.flow)):
        z = stream_latent(layout, bank, gains, rng, model).astype(np.float32)  # (T, R)
        np.matmul(z, bank.embed.astype(np.float32), out=out[:, col : col + half])
    noise = rng.standard_normal((t_len, dim), dtype=np.float32)  # (T, D)
    noise *= np.float32(model.obs_sigma)
    out += noise
    out += np.float32(model.bias)
    np.maximum(out, 0.0, out=out)
    return out


# ----------------------------------------------------------------------------------------------------
# Output directory


def _is_synth_output(out: Path) -> bool:
    meta = out / "dataset.yaml"
    if not meta.is_file():
        return False
    try:
        data = yaml.safe_load(meta.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return False
    return isinstance(data, dict) and data.get("generator") == GENERATOR


MAX_BYTES = 20e9  # features beyond this (the thumos14 preset at D 2048 is 1.1 GB) need --force


def check_feature_size(out: Path, spec: Preset, database: dict, dim: int, dtype: str, force: bool) -> None:
    """Refuse a dataset whose features cannot fit the free disk space, or exceed MAX_BYTES without `force`."""
    geometry = SnippetGeometry(spec.fps, spec.stride)
    snippets = sum(geometry.n_snippets(v["duration"]) for v in database.values())
    size = float(snippets) * dim * np.dtype(dtype).itemsize
    what = f"--dim {dim} ({dtype}): {snippets} snippets x {dim} features"
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    free = shutil.disk_usage(existing).free
    refuse_estimate(size, free, what, f"only that much is free on {existing}; lower --dim")
    if not force:
        refuse_estimate(size, MAX_BYTES, what, "lower --dim (I3D features are 2048 wide), or pass --force to write it")


def prepare_out_dir(out: Path, new_ids: set[str], overwrite: bool) -> None:
    """Create `out`, or accept it if empty / a previous synth output / `overwrite`; never delete user files.

    Regenerating over a previous synth output of the same videos (another seed, width or dtype) rewrites its
    files in place. Replacing a previous synth dataset of other videos would remove its feature files (so
    presets do not mix): that needs `overwrite`, and removes only that output's own feature files.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if _is_synth_output(out):
            _remove_stale_features(out, new_ids, overwrite)
        elif not overwrite:
            raise InputError(
                f"{out}: directory is not empty and is not a previous 'pointtal synth' output; "
                "choose an empty or new directory, or pass --overwrite to write into it (nothing is deleted)"
            )
        else:
            stray = [p for p in (out / "features").glob("*.npy") if p.stem not in new_ids]
            if stray:
                log.warning(
                    "%s: %d .npy files not from this dataset are left in place (e.g. %s)",
                    out / "features",
                    len(stray),
                    stray[0].name,
                )
    (out / "features").mkdir(parents=True, exist_ok=True)
    (out / "points").mkdir(parents=True, exist_ok=True)


def _remove_stale_features(out: Path, new_ids: set[str], overwrite: bool) -> None:
    try:
        old = json.loads((out / "annotations.json").read_text(encoding="utf-8"))["database"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    stale = [vid for vid in old if vid not in new_ids]
    if stale and not overwrite:
        raise InputError(
            f"{out}: holds another synthetic dataset ({len(old)} videos, {len(stale)} of them not in this "
            "preset); pass --overwrite to replace it (removes its feature files), or choose another directory"
        )
    for vid in stale:
        try:
            path = out / "features" / f"{check_video_id(vid)}.npy"
        except InputError:
            continue
        if path.is_file():
            path.unlink()
    if stale:
        log.info("%s: removed %d feature files of the previous synthetic dataset", out, len(stale))


def _write_metadata(out: Path, info: dict, complete: bool) -> None:
    info = dict(info, complete=complete)
    (out / "dataset.yaml").write_text(yaml.safe_dump(info, sort_keys=False), encoding="utf-8")


def _readme(info: dict) -> str:
    data = info["data"]
    return f"""# Synthetic benchmark `{info["preset"]}` (pointtal synth)

Generated by `pointtal synth OUT --preset {info["preset"]} --seed {info["seed"]} --dim {info["dim"]}` \
(pointtal {info["version"]}). The same command reproduces every file byte for byte.

* `annotations.json`: ground truth, ActivityNet layout, `fps` on every video; {info["n_videos"]} videos \
({", ".join(f"{k}: {v}" for k, v in info["subsets"].items())}), {info["n_instances"]} instances, \
{len(info["classes"])} classes.
* `features/<video_id>.npy`: `(T, {info["dim"]})` {info["dtype"]}, T = max(1, floor(duration * fps / stride)), \
fps {data["fps"]}, stride {data["stride"]} ({info["n_snippets"]} snippets in all). Columns `[0, {info["dim"] // 2})` \
are the "RGB" stream, `[{info["dim"] // 2}, {info["dim"]})` the "flow" stream.
* `points/annotator1..4.csv`: click files `video_id,time_sec,label` (no header) for the \
`{data["train_subset"]}` subset; {info["points_source"]}.
* Train on subset `{data["train_subset"]}`, test on `{data["test_subset"]}`.
* `train.yaml`: SF-Net on these files, ready to run: `pointtal train train.yaml --out runs/synth_{info["preset"]}` \
(its paths are relative to this directory).

Classes: {", ".join(info["classes"])}.

Features: a latent model of actions made of phases, class-correlated context around actions, a per-video
scene, background activity and noise, smoothed over time, embedded into D dimensions and passed through a
ReLU; see `pointtal/data/synthetic.py` and `feature_model` in `dataset.yaml`. They are NOT real video
features: numbers on this benchmark test the code, not the methods' published accuracy.
"""


# ----------------------------------------------------------------------------------------------------
# Entry point


def generate(
    out_dir: str | Path,
    preset: str,
    seed: int = 0,
    dim: int | None = None,
    dtype: str = "float32",
    overwrite: bool = False,
    progress: bool | None = None,
    model: FeatureModel | None = None,
    force: bool = False,
) -> SynthSummary:
    """Write a synthetic benchmark into `out_dir` (layout in the module docstring).

    `dim` defaults to the preset's (`tiny` 64, `gtea`/`beoid`/`thumos14` 2048, as I3D); it must be even (RGB and
    flow halves). `progress=None` shows a progress bar only on a terminal. Features estimated beyond
    MAX_BYTES are refused unless `force`; beyond the free disk space always.
    """
    started = time.perf_counter()
    if preset not in PRESETS:
        raise InputError(f"unknown preset '{preset}'; choose one of: {', '.join(PRESETS)}")
    spec = PRESETS[preset]
    dim = spec.default_dim if dim is None else dim
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2 or dim % 2:
        raise InputError(f"--dim must be an even integer >= 2 (RGB and flow halves), got {dim!r}")
    if dtype not in DTYPES:
        raise InputError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"--seed must be a non-negative integer, got {seed!r}")
    model = model or FeatureModel()
    out = Path(out_dir)

    seeds = np.random.SeedSequence(seed).spawn(4)  # prototypes, structure, clicks, videos
    database = tiny_database(np.random.default_rng(seeds[1])) if spec.vendor is None else vendor_database(spec)
    classes = database_classes(database)
    check_feature_size(out, spec, database, dim, dtype, force)
    prepare_out_dir(out, set(database), overwrite)
    log.info("synth %s: writing %d videos (dim %d, seed %d) to %s", preset, len(database), dim, seed, out)
    info = _info(spec, seed, dim, dtype, database, classes, model)
    _write_metadata(out, info, complete=False)

    annotations_path = out / "annotations.json"
    annotations = {"version": f"pointtal-synth-{preset}", "database": database}
    annotations_path.write_text(json.dumps(annotations, indent=1) + "\n", encoding="utf-8")
    point_paths, n_clicks = _write_points(out, spec, database, seeds[2])
    n_snippets, feature_bytes = _write_features(out, spec, database, classes, dim, dtype, seeds, model, progress)

    _write_metadata(out, info, complete=True)
    (out / "README.md").write_text(_readme(info), encoding="utf-8")
    train_config = _write_train_config(out, spec, info)
    summary = SynthSummary(
        out_dir=out,
        preset=preset,
        seed=seed,
        dim=dim,
        dtype=dtype,
        classes=classes,
        subsets=info["subsets"],
        n_videos=len(database),
        n_instances=info["n_instances"],
        n_snippets=n_snippets,
        n_clicks=n_clicks,
        annotations_path=annotations_path,
        features_dir=out / "features",
        point_paths=point_paths,
        dataset_yaml=out / "dataset.yaml",
        readme=out / "README.md",
        feature_bytes=feature_bytes,
        seconds=time.perf_counter() - started,
        train_config=train_config,
    )
    log.debug(
        "synth %s: %d videos, %d snippets, %.1f MB of features in %.1f s",
        preset,
        summary.n_videos,
        n_snippets,
        feature_bytes / 1e6,
        summary.seconds,
    )
    return summary


TRAIN_CONFIG = "train.yaml"


def _write_train_config(out: Path, spec: Preset, info: dict) -> Path:
    """OUT/train.yaml: SF-Net on the click files, in a setting sized for synthetic features on a CPU.

    Its data paths are relative to OUT (a config file's paths are read from its own directory), so the
    dataset can be moved and the file passed to `pointtal train` from any directory.
    """
    small = spec.vendor is None  # tiny: 24 training videos, the demo's setting
    steps = 600 if small else 800
    config = {
        "data": info["data"],
        "method": {
            "name": "sfnet",
            "expand_step": steps // 2,
            **({} if small else {"t_max": 750 if spec.name == "thumos14" else 100}),
        },
        "train": {"steps": steps, "batch_size": 8 if small else 16, "lr": 1e-3, "eval_every": 0},
    }
    header = (
        f"# SF-Net on the synthetic '{spec.name}' dataset in this directory (written by pointtal synth).\n"
        f"#   pointtal train {TRAIN_CONFIG} --out runs/synth_{spec.name}   [--set train.steps=N ...]\n"
        "# Relative paths below are read from this file's directory.\n"
    )
    path = out / TRAIN_CONFIG
    path.write_text(header + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _info(spec: Preset, seed, dim, dtype, database: dict, classes, model: FeatureModel) -> dict:
    """The contents of dataset.yaml (deterministic: no times, no absolute paths)."""
    geometry = SnippetGeometry(spec.fps, spec.stride)
    subsets = {}
    for v in database.values():
        subsets[v["subset"]] = subsets.get(v["subset"], 0) + 1
    points = [f"points/annotator{i}.csv" for i in range(1, N_ANNOTATORS + 1)]
    return {
        "generator": GENERATOR,
        "version": __version__,
        "preset": spec.name,
        "seed": seed,
        "dim": dim,
        "dtype": dtype,
        "classes": list(classes),
        "subsets": dict(sorted(subsets.items())),
        "n_videos": len(database),
        "n_instances": sum(len(v["annotations"]) for v in database.values()),
        "n_snippets": int(sum(geometry.n_snippets(v["duration"]) for v in database.values())),
        "points_source": (
            "the real human click files of the dataset, copied unchanged"
            if spec.vendor
            else "4 simulated annotators (SF-Net 10-bin click-position distribution, own rng each)"
        ),
        "data": {
            "annotations": "annotations.json",
            "features": "features",
            "points": points,
            "fps": spec.fps,
            "stride": spec.stride,
            "train_subset": spec.train_subset,
            "test_subset": spec.test_subset,
        },
        "feature_model": _plain(asdict(model)),
    }


def _plain(value):
    """asdict output with tuples as lists, so yaml.safe_dump can write it."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _write_points(out: Path, spec: Preset, database: dict, seed_seq) -> tuple[tuple[Path, ...], int]:
    """Copy the real click files, or simulate 4 annotators (each with its own rng) for `tiny`."""
    paths, n_clicks = [], 0
    annotator_seeds = seed_seq.spawn(N_ANNOTATORS)
    for i in range(N_ANNOTATORS):
        path = out / "points" / f"annotator{i + 1}.csv"
        if spec.vendor is not None:
            shutil.copyfile(VENDOR_DIR / spec.vendor / f"points_annotator{i + 1}.csv", path)
            n_clicks += sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        else:
            rows = simulate_clicks(database, spec.train_subset, np.random.default_rng(annotator_seeds[i]))
            write_clicks(path, rows)
            n_clicks += len(rows)
        paths.append(path)
    return tuple(paths), n_clicks


def _write_features(out, spec: Preset, database, classes, dim, dtype, seeds, model, progress) -> tuple[int, int]:
    """One `.npy` per video; returns (total snippets, total bytes)."""
    geometry = SnippetGeometry(spec.fps, spec.stride)
    class_index = {name: i for i, name in enumerate(classes)}  # 0-based here: no background column
    bank_rng = np.random.default_rng(seeds[0])
    banks = (
        draw_stream_bank(bank_rng, len(classes), dim // 2, model),
        draw_stream_bank(bank_rng, len(classes), dim // 2, model),
    )
    video_ids = sorted(database)
    video_seeds = seeds[3].spawn(len(video_ids))
    n_snippets = n_bytes = 0
    bar = tqdm(video_ids, desc=f"synth {spec.name}", unit="video", disable=None if progress is None else not progress)
    for video_id, video_seed in zip(bar, video_seeds, strict=True):
        rng = np.random.default_rng(video_seed)
        t_len = geometry.n_snippets(database[video_id]["duration"])
        layout = video_layout(database[video_id], class_index, geometry, t_len, rng, model)
        features = video_features(layout, banks, rng, model, dim)  # (T, D)
        if dtype != "float32":
            features = features.astype(dtype)
        path = out / "features" / f"{check_video_id(video_id, 'synthetic dataset')}.npy"
        np.save(path, features)
        n_snippets += t_len
        n_bytes += features.nbytes
    return n_snippets, n_bytes
