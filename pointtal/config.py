"""Typed, validated configuration: frozen dataclasses built from YAML presets plus `--set` overrides."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from pointtal.applies import Applies
from pointtal.data.annotations import BACKGROUND
from pointtal.data.segments import FULL as FULL_SEGMENTS
from pointtal.errors import InputError
from pointtal.evaluation import THUMOS_TIOUS
from pointtal.evaluation.protocol import NAMED_AMBIGUOUS
from pointtal.limits import MAX_FPS

log = logging.getLogger(__name__)


def from_dict(cls: type, data: Any, where: str):
    """Build frozen dataclass `cls` from a mapping; unknown keys and wrong types name the key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(f"{where}: unknown key '{unknown[0]}'; valid keys: {', '.join(sorted(known))}")
    hints = typing.get_type_hints(cls)
    values = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"{where}: {err}") from None


def _coerce(hint, value, where: str):
    """Check `value` against a type hint, converting ints to floats and lists to tuples where asked."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, where)
            except InputError:
                continue
        raise InputError(f"{where}: {value!r} does not fit {hint}")
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise InputError(f"{where}: {value!r} is not one of {', '.join(map(repr, typing.get_args(hint)))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return tuple(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise InputError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def to_dict(obj) -> Any:
    """Plain YAML-friendly data from (nested) dataclasses."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


# ----------------------------------------------------------------------------- the run configuration


@dataclass(frozen=True)
class DataConfig:
    annotations: str = ""  # ground-truth JSON (ActivityNet layout), or a LACP/HR-Pro gt.json with split files
    features: str = ""  # directory of <video_id>.npy, a LACP/HR-Pro dataset, or a legacy single .npy (trust_pickle)
    points: str | tuple[str, ...] = "weak"  # click CSV paths (one annotator drawn per video) or a scheme name
    annotator: int | None = None  # fixed 0-based annotator for click files; None draws one per video
    point_seed: int = 0  # seed of annotator draws and simulated points
    strict_points: bool = False  # points outside a video / for unknown videos: error instead of drop+warn
    window_sec: float = 10.0  # SODA simulated annotation: annotate one window of this length, skip the next
    gaussian_std: float = 0.01  # scheme gaussian: std of a point around its instance's centre / instance length
    fps: float = 25.0  # default frames per second (a video's own "fps" in the ground truth wins)
    stride: int = 16  # frames per feature snippet
    train_subset: str = "validation"
    test_subset: str = "test"
    class_list: str | None = None  # optional file, one class per line (default: sorted labels of the GT)
    background_label: str = BACKGROUND  # label of background points in click files
    trust_pickle: bool = False  # allow pickled (legacy) feature files: only for files you trust
    video_names: str | None = None  # legacy single-array layout: videoname.npy
    # video ids left out of training and evaluation, or named lists (evaluation/protocol.py NAMED_EXCLUSIONS):
    # `thumos14` = `thumos14-lacp` = `thumos14-hrpro`: 270, 1292, 1496; `thumos14-opentad`: 270, 1292
    exclude_videos: tuple[str, ...] = ()
    ambiguous: str | None = None  # evaluation: discard predictions overlapping these segments (file, or `thumos14`)
    # segment methods (ActionFormer): the training videos' instances from `full` (the ground truth) or a
    # pseudo-label JSON (`pointtal predict --pseudo-labels`); point methods ignore it
    segments: str = "full"

    def __post_init__(self):
        _check(0 < self.fps <= MAX_FPS, "data.fps", self.fps, f"must be > 0 and at most {MAX_FPS:g}")
        _check(self.stride > 0, "data.stride", self.stride, "must be > 0")
        _check(self.window_sec > 0, "data.window_sec", self.window_sec, "must be > 0")
        _check(self.gaussian_std > 0, "data.gaussian_std", self.gaussian_std, "must be > 0")
        _check(
            len(self.points) > 0,
            "data.points",
            self.points,
            "is empty; give click CSV paths or a scheme name (e.g. weak, sfnet-uniform, soda)",
        )
        _check(
            self.annotator is None or self.annotator >= 0,
            "data.annotator",
            self.annotator,
            "must be >= 0 (a 0-based column of data.points, or null to draw one per video)",
        )
        _check(self.point_seed >= 0, "data.point_seed", self.point_seed, "must be >= 0")
        if self.annotator is not None:
            from pointtal.data.points import SCHEMES

            files = (self.points,) if isinstance(self.points, str) else self.points
            _check(
                not (isinstance(self.points, str) and self.points in SCHEMES),
                "data.annotator",
                self.annotator,
                f"applies to click files, not to the simulated points '{self.points}'; set it to null",
            )
            _check(
                self.annotator < len(files),
                "data.annotator",
                self.annotator,
                f"must be < {len(files)}, the number of data.points files (0-based)",
            )


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000  # optimisation steps (iterations); give either steps or epochs, never both
    epochs: int | None = None  # if set, steps = epochs * ceil(n_train_videos / batch_size)
    batch_size: int = 32  # videos per step (global, across DDP ranks)
    lr: float = 1e-4
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast on CUDA (never on CPU)
    eval_every: int = 1000  # steps between evaluations on the test subset (0: only at the end)
    checkpoint_every: int = 100  # steps between checkpoint.pt writes
    log_every: int = 10  # steps between metric log lines / TensorBoard scalars
    grad_clip: float | None = None  # max gradient norm (None: no clipping)
    progress: bool = True  # tqdm progress bar
    report: bool = True  # write report.md and figures/ into the run directory at the end
    # Weights & Biases (pip install 'pointtal[wandb]'): off | offline (RUN/wandb/, `wandb sync` later) | online
    wandb: str | bool = "off"  # a bare `off` in YAML reads as false
    wandb_project: str = "pointtal"
    wandb_group: str | None = None  # e.g. one sweep's runs
    wandb_tags: tuple[str, ...] = ()

    def __post_init__(self):
        if self.wandb is False:  # YAML reads a bare `off` (train.wandb=off) as false
            object.__setattr__(self, "wandb", "off")
        check_wandb(self)
        _check(self.steps > 0, "train.steps", self.steps, "must be > 0")
        _check(self.batch_size > 0, "train.batch_size", self.batch_size, "must be > 0")
        _check(self.lr > 0, "train.lr", self.lr, "must be > 0")
        _check(self.seed >= 0, "train.seed", self.seed, "must be >= 0")
        _check(
            self.epochs is None or self.epochs > 0, "train.epochs", self.epochs, "must be > 0 (or null to count steps)"
        )
        _check(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, "must be >= 0")
        _check(self.eval_every >= 0, "train.eval_every", self.eval_every, "must be >= 0 (0: only at the end)")
        for key in ("checkpoint_every", "log_every"):
            _check(getattr(self, key) > 0, f"train.{key}", getattr(self, key), "must be > 0 (steps between writes)")
        _check(
            self.grad_clip is None or self.grad_clip > 0,
            "train.grad_clip",
            self.grad_clip,
            "must be > 0 (or null: no clipping)",
        )
        check_device(self.device, "train.device")


@dataclass(frozen=True)
class EvalConfig:
    tiou: tuple[float, ...] = THUMOS_TIOUS  # tIoU thresholds of segment mAP
    batch_size: int = 16  # videos per inference batch

    def __post_init__(self):
        _check(self.batch_size > 0, "eval.batch_size", self.batch_size, "must be > 0")
        _check(
            len(self.tiou) > 0 and all(0 < t <= 1 for t in self.tiou),
            "eval.tiou",
            self.tiou,
            "must be a non-empty list of thresholds in (0, 1]",
        )


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    method: str = "sfnet"  # method name (see pointtal.methods.METHODS)
    method_options: Any = None  # the method's own frozen Options dataclass
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    teacher: TeacherConfig | None = None  # the route's first stage (pointtal.engine.route); None: one method
    origin: str = field(default="config", compare=False)  # where it was read: named by "not found" errors

    def to_dict(self) -> dict:
        train = to_dict(self.train)
        if self.train.epochs is not None:
            del train["steps"]  # one schedule: epochs (a file with both would be refused when read back)
        out = {
            "data": to_dict(self.data),
            "method": {"name": self.method, **(to_dict(self.method_options) or {})},
            "train": train,
            "eval": to_dict(self.eval),
        }
        if self.teacher is not None:
            out["teacher"] = self.teacher.to_dict()
        return out


DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
WANDB_MODES = ("off", "offline", "online")
WANDB_NAME = re.compile(r"[^/\\#?%:]{1,128}")  # W&B project and group names: no / \\ # ? % :


def check_wandb(t: TrainConfig) -> None:
    """train.wandb and its project, group and tags (whether wandb is installed is checked when a run starts,
    pointtal.engine.tracking.check_installed: `predict` on another machine reads the same config)."""
    _check(t.wandb in WANDB_MODES, "train.wandb", t.wandb, f"must be one of {', '.join(WANDB_MODES)}")
    _check(
        WANDB_NAME.fullmatch(t.wandb_project) is not None,
        "train.wandb_project",
        t.wandb_project,
        "must be 1 to 128 characters without / \\ # ? % :",
    )
    _check(
        t.wandb_group is None or WANDB_NAME.fullmatch(t.wandb_group) is not None,
        "train.wandb_group",
        t.wandb_group,
        "must be 1 to 128 characters without / \\ # ? % : (or null)",
    )
    _check(
        all(0 < len(tag) <= 64 for tag in t.wandb_tags),
        "train.wandb_tags",
        list(t.wandb_tags),
        "must each be 1 to 64 characters",
    )


def check_device(name, key: str = "device") -> None:
    """A device name pointtal can use (whether the machine has it is checked when it is opened)."""
    _check(
        isinstance(name, str) and DEVICE.fullmatch(name) is not None,
        key,
        name,
        "is not a device name; use auto, cpu, cuda or cuda:N",
    )


def _check(ok: bool, key: str, value, why: str) -> None:
    if not ok:
        raise InputError(f"{key}={value!r} {why}")


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (['a', 'b'], YAML-parsed value)."""
    if "=" not in text:
        raise InputError(f"--set {text!r}: expected key=value, e.g. train.steps=100")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads "1e-3" as a string
    return key.strip().split("."), value


SCHEDULE_KEYS = ("steps", "epochs")  # train.steps and train.epochs: two ways of giving one schedule


def apply_overrides(raw: dict, overrides: list[str], where: str = "config") -> dict:
    """Apply `--set key=value` strings onto a nested mapping (copying the touched levels).

    `train.steps` and `train.epochs` are one schedule: setting one of them replaces the other given by the
    file (logged), and setting both to values is an error naming both.
    """
    raw = dict(raw)
    _one_schedule(raw, overrides)
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.get(part, {})
            if not isinstance(child, dict):
                raise InputError(f"--set {text!r}: '{part}' is not a section")
            node[part] = dict(child)
            node = node[part]
        node[path[-1]] = value
    _check_schedule(raw, where)
    return raw


def _one_schedule(raw: dict, overrides: list[str]) -> None:
    """Drop the file's train.steps / train.epochs when `--set` gives the other (in place, logged)."""
    given = {}
    for text in overrides:
        path, value = parse_override(text)
        if len(path) == 2 and path[0] == "train" and path[1] in SCHEDULE_KEYS:
            given[path[1]] = value
    chosen = [key for key, value in given.items() if value is not None]
    if len(chosen) == 2:
        raise InputError(
            f"--set train.steps={given['steps']!r} and --set train.epochs={given['epochs']!r}: "
            "give one schedule (train.epochs=null to count steps)"
        )
    train = raw.get("train")
    if len(chosen) != 1 or not isinstance(train, dict):
        return
    other = SCHEDULE_KEYS[1 - SCHEDULE_KEYS.index(chosen[0])]
    if train.get(other) is not None and other not in given:
        log.info(
            "train.%s=%s (--set) replaces the config's train.%s=%s", chosen[0], given[chosen[0]], other, train[other]
        )
        raw["train"] = {key: value for key, value in train.items() if key != other}


def _check_schedule(raw: dict, where: str) -> None:
    """A config gives train.steps or train.epochs, not both (which one would win is not obvious)."""
    train = raw.get("train")
    if isinstance(train, dict) and all(train.get(key) is not None for key in SCHEDULE_KEYS):
        raise InputError(
            f"{where}: train.steps={train['steps']!r} and train.epochs={train['epochs']!r} are both "
            "set; keep one (epochs: steps = epochs * ceil(videos / batch_size))"
        )


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader (no tags that run code) that refuses a key repeated in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise ConstructorError(None, None, f"key '{key}' appears twice", key_node.start_mark)
            seen.add(key) if isinstance(key, (str, int, float, bool)) else None
        return super().construct_mapping(node, deep=deep)


def _safe_load_unique(text: str):
    loader = _UniqueKeyLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping safely (a SafeLoader: never executes code) and refuse duplicate keys."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config file not found")
    try:
        data = _safe_load_unique(path.read_bytes().decode("utf-8"))
    except RecursionError:
        raise InputError(f"{path}: YAML nested too deeply to be a config") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: config is not UTF-8 text") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise InputError(f"{path}: malformed YAML{where}: {getattr(err, 'problem', err)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: a config must be a YAML mapping, got {type(data).__name__}")
    return data


DATA_PATH_KEYS = (
    "annotations",
    "features",
    "points",
    "class_list",
    "video_names",
    "ambiguous",
    "segments",
)  # paths in `data:`


def _absolute(value, base: Path):
    """`value` made absolute against `base` where it is a relative path; other values unchanged."""
    if not isinstance(value, str) or not value:
        return value
    from pointtal.data.points import SCHEMES  # data.points may name a simulation scheme instead of a file

    if value in SCHEMES or value == TEACHER_SEGMENTS:  # also data.segments=full / teacher
        return value
    return os.path.abspath(os.path.join(base, os.path.expanduser(value)))


def resolve_data_paths(raw: dict, base: str | Path) -> dict:
    """A copy of `raw` whose relative `data:` paths are absolute against `base`.

    A run stores absolute paths, so `predict`, `visualize` and `--resume` work from any directory; a path
    written in a config file is read from that file's directory, a path given with --set from the current one.
    """
    teacher = raw.get("teacher")
    if isinstance(teacher, dict):  # the route's teacher: its preset, its run and its own data paths
        teacher = resolve_data_paths(teacher, base)
        raw = {
            **raw,
            "teacher": {
                **teacher,
                **{key: _absolute(teacher[key], Path(base)) for key in ("config", "run") if key in teacher},
            },
        }
    data = raw.get("data")
    if not isinstance(data, dict):
        return raw  # build_config names the malformed section
    data = dict(data)
    for key in DATA_PATH_KEYS:
        value = data.get(key)
        if isinstance(value, list | tuple):
            data[key] = [_absolute(v, Path(base)) for v in value]
        elif key == "ambiguous" and isinstance(value, str) and value.lower() in NAMED_AMBIGUOUS:
            continue  # a shipped file's name (thumos14), not a path
        elif key in data:
            data[key] = _absolute(value, Path(base))
    return {**raw, "data": data}


def read_config(path: str | Path) -> dict:
    """A config file's mapping (read_yaml) with its relative data paths read from the file's directory.

    A file may say `extends: PARENT.yaml` (a path relative to its own directory) plus the keys it changes: the
    parent is read the same way (recursively) and merged section by section, a key of the child replacing the
    parent's (a list is replaced, not appended). `drop: [method.eta, ...]` lists parent keys (`section.key`) the
    child does not have; each must be in the resolved parent and not given by the child. The result holds every
    key of the chain and no `extends` or `drop`."""
    return _read_extending(Path(path), ())


def _read_extending(path: Path, chain: tuple[Path, ...]) -> dict:
    """read_config of `path`, reached through the files of `chain` (to name a cycle)."""
    resolved = path.resolve()
    if resolved in chain:
        raise InputError(f"{path}: 'extends' makes a cycle: {' -> '.join(str(p) for p in (*chain, resolved))}")
    raw = resolve_data_paths(read_yaml(path), path.parent)
    if "extends" not in raw:
        if "drop" in raw:
            raise InputError(f"{path}: drop: only a config that extends another can drop keys")
        return raw
    parent = raw.pop("extends")
    drop = raw.pop("drop", [])
    if not isinstance(parent, str) or not parent:
        raise InputError(f"{path}: extends: expected the path of another config file, got {parent!r}")
    parent_path = path.parent / os.path.expanduser(parent)
    if not parent_path.is_file():
        raise InputError(f"{path}: extends: {parent_path}: config file not found")
    inherited = drop_keys(_read_extending(parent_path, (*chain, resolved)), drop, raw, f"{path}: drop")
    return merge_sections(inherited, raw)


def drop_keys(parent: dict, drop, child: dict, where: str) -> dict:
    """`parent` without the `section.key` entries listed in `drop`; each must be a key of `parent` that `child`
    does not give (an error naming it otherwise)."""
    if not isinstance(drop, list) or not all(isinstance(k, str) for k in drop):
        raise InputError(f"{where}: expected a list of section.key names, got {drop!r}")
    kept = {section: dict(body) if isinstance(body, dict) else body for section, body in parent.items()}
    for index, dotted in enumerate(drop):
        if dotted in drop[:index]:
            raise InputError(f"{where}: {dotted}: listed twice")
        section, _, key = dotted.partition(".")
        body = kept.get(section)
        if not key or not isinstance(body, dict) or key not in body:
            raise InputError(f"{where}: {dotted}: not a key of the parent config")
        if isinstance(child.get(section), dict) and key in child[section]:
            raise InputError(f"{where}: {dotted}: the file both drops and gives this key")
        del body[key]
    return kept


def merge_sections(parent: dict, child: dict) -> dict:
    """`parent` with `child` applied section by section: a child key replaces the parent's (lists included); a
    section or top-level value that is not a mapping in both is replaced whole."""
    merged = dict(parent)
    for section, body in child.items():
        old = merged.get(section)
        merged[section] = {**old, **body} if isinstance(old, dict) and isinstance(body, dict) else body
    return merged


def build_config(raw: dict, where: str = "config") -> Config:
    """Validate a nested mapping into a Config; the method section is checked by the method's Options."""
    from pointtal.methods import METHODS  # configs name methods; methods do not know configs

    sections = {"data", "method", "train", "eval", "teacher"}
    unknown = sorted(set(raw) - sections)
    if unknown:
        hint = ""
        if str(raw.get("generator", "")).startswith("pointtal"):  # a synth dataset.yaml, not a config
            hint = "; this describes a 'pointtal synth' dataset: train with the train.yaml beside it"
        raise InputError(
            f"{where}: unknown section '{unknown[0]}'; valid sections: {', '.join(sorted(sections))}{hint}"
        )
    method_raw = raw.get("method") or {}
    if not isinstance(method_raw, dict):
        raise InputError(f"{where}: method: expected a mapping, got {type(method_raw).__name__}")
    method_raw = dict(method_raw)
    name = method_raw.pop("name", "sfnet")
    if not isinstance(name, str) or name not in METHODS:
        raise InputError(f"{where}: method.name={name!r} is unknown; valid: {', '.join(sorted(METHODS))}")
    raw, method_raw = move_batching_keys(raw, method_raw, METHODS[name].Options, where)
    raw = resolve_data_paths(raw, Path.cwd())  # relative paths of a mapping built in code: the current directory
    try:
        config = _sections(raw, where, name, method_raw, METHODS)
        if raw.get("teacher") is not None or config.data.segments == TEACHER_SEGMENTS:
            config = with_teacher(config, raw.get("teacher"), where)
        return dataclasses.replace(config, origin=where)
    except InputError as err:
        text = str(err)
        raise InputError(text if text.startswith(where) else f"{where}: {text}") from None


MOVED_TO_METHOD = {"t_max": 750, "t_max_alt": 2800, "resample_t": 750}  # former data.* keys -> their old default


def move_batching_keys(raw: dict, method_raw: dict, options: type, where: str) -> tuple[dict, dict]:
    """Read configs written before batching became the method's own: `data.t_max`, `data.t_max_alt` and
    `data.resample_t` move to `method.*` where the method has that option (both given with different values is an
    error); elsewhere they are dropped, with a warning when they held a non-default value."""
    data = raw.get("data")
    if not isinstance(data, dict) or not set(data) & set(MOVED_TO_METHOD):
        return raw, method_raw
    data, method_raw = dict(data), dict(method_raw)
    fields = {f.name for f in dataclasses.fields(options)}
    for key, default in MOVED_TO_METHOD.items():
        if key not in data:
            continue
        value = data.pop(key)
        if key in fields:
            if key in method_raw and method_raw[key] != value:
                raise InputError(
                    f"{where}: data.{key}={value!r} and method.{key}={method_raw[key]!r}: the option "
                    f"moved to the method section; set method.{key} only"
                )
            method_raw[key] = value
            log.info("%s: data.%s is now method.%s (read as method.%s=%r)", where, key, key, key, value)
        elif value != default:
            log.warning("%s: data.%s=%r is ignored: this method has no %s option", where, key, value, key)
    return {**raw, "data": data}, method_raw


def _sections(raw: dict, where: str, name: str, method_raw: dict, methods) -> Config:
    return Config(
        data=from_dict(DataConfig, raw.get("data"), f"{where}: data"),
        method=name,
        method_options=from_dict(methods[name].Options, method_raw, f"{where}: method"),
        train=from_dict(TrainConfig, raw.get("train"), f"{where}: train"),
        eval=from_dict(EvalConfig, raw.get("eval"), f"{where}: eval"),
    )


# ----------------------------------------------------------------------------- the route: teacher -> student

TEACHER_SEGMENTS = "teacher"  # data.segments of a route's student: its teacher's pseudo labels (RUN/pseudo_labels.json)
PSEUDO_OVERLAPS = ("suppress", "keep")  # `predict --pseudo-overlaps`
TEACHER_OPTIONS = ("config", "run", "pseudo_threshold", "pseudo_overlaps")
# the dataset keys a teacher takes from the route's data section: one dataset, one evaluation protocol
DATASET_KEYS = (
    "annotations",
    "features",
    "fps",
    "stride",
    "train_subset",
    "test_subset",
    "class_list",
    "trust_pickle",
    "video_names",
    "exclude_videos",
    "ambiguous",
)
SHARED_TRAIN_KEYS = ("device", "progress")  # the route's, for both stages


@dataclass(frozen=True)
class TeacherConfig:
    """A route's `teacher:` section (pointtal.engine.route): a point method trained in RUN/teacher, or a finished
    run of one reused (`run`), whose predictions on the training videos become the student's segments."""

    config: Config | None = None  # the teacher's own config (None when `run` is reused)
    run: str | None = None  # a finished `pointtal train` run of a point method to reuse instead of training one
    pseudo_threshold: float = 0.5  # `predict --pseudo-threshold` (engine.pseudo_labels.DEFAULT_THRESHOLD)
    pseudo_overlaps: str = "suppress"  # `predict --pseudo-overlaps`

    def __post_init__(self):
        _check(
            0 <= self.pseudo_threshold <= 1,
            "teacher.pseudo_threshold",
            self.pseudo_threshold,
            "must be in [0, 1] (a fraction of each video's segment score range)",
        )
        _check(
            self.pseudo_overlaps in PSEUDO_OVERLAPS,
            "teacher.pseudo_overlaps",
            self.pseudo_overlaps,
            f"must be one of {', '.join(PSEUDO_OVERLAPS)}",
        )

    def to_dict(self) -> dict:
        """The section as a config file gives it, with the teacher's whole config in place of its preset."""
        out = {"run": self.run, "pseudo_threshold": self.pseudo_threshold, "pseudo_overlaps": self.pseudo_overlaps}
        return {**out, **(self.config.to_dict() if self.config is not None else {})}


def with_teacher(student: Config, raw, where: str) -> Config:
    """`student` with its `teacher:` section built and checked (a route: a segment method taught by a point
    method); `data.segments` becomes `teacher`. The section holds `config` (the teacher's preset, a point method)
    or `run` (a finished run of one), the pseudo-label options, and any keys of the teacher's data / method /
    train / eval sections, which replace the preset's; the dataset keys (DATASET_KEYS) and train.device /
    train.progress are always the route's own."""
    from pointtal.methods import METHODS

    if raw is None:
        raise InputError(
            f"data.segments={TEACHER_SEGMENTS}: the pseudo labels of a route's teacher; give a teacher "
            "section (e.g. configs/thumos14_hrpro_actionformer.yaml) or data.segments=full / P.json"
        )
    if not isinstance(raw, dict):
        raise InputError(f"teacher: expected a mapping (config, run, pseudo_threshold, ...), got {type(raw).__name__}")
    if getattr(METHODS[student.method], "supervision", "points") != "segments":
        raise InputError(
            f"teacher: a route teaches a method that trains on segments, but method.name="
            f"{student.method} trains on points; drop the teacher section"
        )
    if student.data.segments not in (FULL_SEGMENTS, TEACHER_SEGMENTS):
        raise InputError(
            f"data.segments={student.data.segments}: a route's student trains on its teacher's pseudo "
            "labels; drop data.segments or the teacher section"
        )
    raw = dict(raw)
    options = {key: raw.pop(key) for key in TEACHER_OPTIONS if key in raw}
    unknown = sorted(set(raw) - {"data", "method", "train", "eval"})
    if unknown:
        raise InputError(
            f"teacher.{unknown[0]}: unknown key; valid: {', '.join(TEACHER_OPTIONS)} and the teacher's "
            "sections data, method, train, eval"
        )
    for key in ("config", "run"):
        if options.get(key) is not None and not (isinstance(options[key], str) and options[key]):
            raise InputError(f"teacher.{key}={options[key]!r}: expected a path")
    preset = options.pop("config", None)
    teacher = None
    if options.get("run") is None:
        if preset is None and not raw.get("method"):
            raise InputError(
                "teacher: give teacher.config (a point method's preset) or teacher.run (a finished run of one)"
            )
        if preset is not None and not Path(preset).is_file():
            raise InputError(f"teacher.config={preset}: config file not found (a point method's preset)")
        teacher = build_teacher_config(student, read_config(preset) if preset else {}, raw, where)
    elif preset is not None or raw:
        log.info(
            "teacher.run=%s: the finished run is the teacher; the section's other keys are not used", options["run"]
        )
    section = from_dict(TeacherConfig, options, "teacher")
    data = dataclasses.replace(student.data, segments=TEACHER_SEGMENTS)
    return dataclasses.replace(student, data=data, teacher=dataclasses.replace(section, config=teacher))


def build_teacher_config(student: Config, preset: dict, sections: dict, where: str) -> Config:
    """The teacher's Config: its preset with the section's keys, the route's dataset and runtime keys."""
    from pointtal.methods import METHODS

    raw = merge_sections(preset, sections)
    shared_data = {key: value for key, value in to_dict(student.data).items() if key in DATASET_KEYS}
    shared_train = {key: getattr(student.train, key) for key in SHARED_TRAIN_KEYS}
    raw = {
        **raw,
        "data": {**(raw.get("data") or {}), **shared_data},
        "train": {**(raw.get("train") or {}), **shared_train},
    }
    teacher = build_config(raw, f"{where}: teacher")
    if getattr(METHODS[teacher.method], "supervision", "points") != "points" or teacher.teacher is not None:
        points = ", ".join(sorted(n for n, m in METHODS.items() if getattr(m, "supervision", "points") == "points"))
        raise InputError(f"teacher.method.name={teacher.method}: the teacher must be a point method ({points})")
    if teacher.data.points == "full":
        raise InputError(
            "teacher.data.points=full: the teacher would train on the training videos' ground truth; "
            "give click files or a point scheme"
        )
    keys = non_default_keys(teacher, (*given_keys(preset), *given_keys(sections)))  # what was set on purpose
    check_applicable(
        teacher, [k for k in keys if not k.startswith("data.") or k[5:] not in DATASET_KEYS], f"{where}: teacher"
    )
    return teacher


SODA_SCHEMES = ("soda", "soda-action", "soda-background")
POINT_SCHEMES = (
    "sfnet-uniform",
    "sfnet-center",
    "sfnet-center-jitter",
    "sfnet-start",
    "sfnet-custom",
    "gaussian",
    *SODA_SCHEMES,
    "full",
    "weak",
)  # pointtal.data.points.SCHEMES (equal: tested)
APPLIES = (  # data / train keys that apply only under a condition (the methods' own: `Options.APPLIES`)
    Applies(
        "data.window_sec",
        "data.points",
        SODA_SCHEMES,
        "the window length is read only by the simulated SODA point schemes",
    ),
    Applies("data.gaussian_std", "data.points", ("gaussian",), "only the gaussian point scheme reads it"),
    Applies(
        "data.strict_points",
        "data.points",
        POINT_SCHEMES,
        "simulated points lie in their videos; only click files are checked",
        excluded=True,
    ),
    *(
        Applies(f"train.{key}", "train.wandb", ("offline", "online"), "Weights & Biases is off")
        for key in ("wandb_project", "wandb_group", "wandb_tags")
    ),
)


def given_keys(raw: dict) -> tuple[str, ...]:
    """The dotted keys a config mapping gives (`data.window_sec`, `method.budget`), in its order."""
    return tuple(f"{section}.{key}" for section, body in raw.items() if isinstance(body, dict) for key in body)


def set_keys(overrides) -> tuple[str, ...]:
    """The dotted keys `--set key=value` strings give."""
    return tuple(".".join(parse_override(text)[0]) for text in overrides)


def non_default_keys(config: Config, keys) -> tuple[str, ...]:
    """Those of `keys` whose value in `config` is not the field's default: what a config file sets on purpose.
    A run's config.yaml writes every key, the inapplicable ones at their defaults; it stays a valid CONFIG."""
    owners = {"data": config.data, "train": config.train, "eval": config.eval, "method": config.method_options}
    found = []
    for key in keys:
        section, name = key.split(".", 1)
        owner = owners.get(section)
        fields = {f.name: f for f in dataclasses.fields(owner)} if dataclasses.is_dataclass(owner) else {}
        if name not in fields:
            continue
        f = fields[name]
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        if getattr(owner, name) != default:
            found.append(key)
    return tuple(found)


def _value(config: Config, key: str):
    section, name = key.split(".", 1)
    if section == "method":
        return config.method if name == "name" else getattr(config.method_options, name)
    return getattr(getattr(config, section), name)


def _shown_value(config: Config, key: str):
    """`_value`, with click files of data.points by their names (a scheme name as it is)."""
    value = _value(config, key)
    if key == "data.points":
        values = (value,) if isinstance(value, str) else value
        names = tuple(v if v in POINT_SCHEMES else Path(v).name for v in values)
        return names[0] if isinstance(value, str) else names
    return value


def applicability_rules(config: Config) -> tuple[Applies, ...]:
    """The data / train rules, the segments rule and the config's method's `Options.APPLIES` (section-qualified)."""
    from pointtal.methods import METHODS

    segment_methods = tuple(sorted(n for n, m in METHODS.items() if getattr(m, "supervision", "") == "segments"))
    own = getattr(METHODS[config.method].Options, "APPLIES", ())
    return (
        *APPLIES,
        Applies(
            "data.segments",
            "method.name",
            segment_methods,
            "only segment methods train on segments; point methods read data.points",
        ),
        *(rule.qualified("method") for rule in own),
    )


def check_applicable(config: Config, keys, where: str = "config") -> None:
    """Refuse the first of `keys` (dotted, as given by a file or --set) that cannot apply given the other values:
    one line naming the key, the value that rules it out, and why."""
    keys = set(keys)
    for rule in applicability_rules(config):
        if rule.key in keys:
            refusal = rule.refusal(_value(config, rule.key), _shown_value(config, rule.other))
            if refusal:
                raise InputError(f"{where}: {refusal}")


def explicit_keys(config: Config, file_raw: dict, overrides) -> tuple[str, ...]:
    """The keys checked by `check_applicable`: every --set key, and the keys a file sets to a non-default value."""
    return (*set_keys(overrides), *non_default_keys(config, given_keys(file_raw)))


def load_config(path: str | Path | None, overrides: list[str] | None = None, *, check_file: bool = True) -> Config:
    """A preset file (or defaults when None) plus `--set` overrides, validated. Keys that cannot apply given the
    other values are refused (`check_applicable`): every --set key, and the file's keys set to non-default values
    (`check_file`; False for a run's own config.yaml on --resume, which only --set changes)."""
    file_raw = read_config(path) if path is not None else {}
    # build_config reads relative --set paths from the current directory
    raw = apply_overrides(file_raw, overrides or [], str(path) if path else "config")
    config = build_config(raw, str(path) if path else "config")
    keys = explicit_keys(config, file_raw if check_file else {}, overrides or [])
    check_applicable(config, keys, str(path) if path else "config")
    data_set = any(text.strip().startswith("data.") for text in overrides or [])
    return dataclasses.replace(config, origin=f"{config.origin} and --set") if data_set else config


def save_config(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
