"""A catalogue of broken inputs for every reader: each must raise InputError (the CLI prints it as one line)
naming the file and the record, never another exception.

Readers: ground-truth JSON, point CSVs (SF-Net and LACP layouts, fps dictionaries), feature stores, YAML
configs, prediction JSON given to `pointtal evaluate`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pointtal.cli import main
from pointtal.config import load_config
from pointtal.data.annotations import load_ground_truth, read_class_list
from pointtal.data.features import FeatureStore
from pointtal.data.points import fps_lookup_for, read_fps_dict, read_points
from pointtal.errors import InputError
from pointtal.evaluation import load_frame_predictions, load_segment_predictions

BIG_INT = "1" + "0" * 400  # a JSON integer far beyond the float range
DIGITS_5000 = "1" + "0" * 5000  # beyond Python's int <-> str conversion limit (4300 digits)
DEEP = "[" * 100_000 + "]" * 100_000


def fill(template: str, *values: str) -> str:
    """Put values into a JSON template at each %s (str.format would fight the JSON braces)."""
    for value in values:
        template = template.replace("%s", value, 1)
    return template


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def assert_names(err: pytest.ExceptionInfo, *texts: str) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    for text in texts:
        assert text in message, (text, message)


# ------------------------------------------------------------------------------ ground-truth JSON

VIDEO = '{"subset": "test", "duration": 10, "annotations": [{"segment": [1, 2], "label": "a"}]}'


def gt_doc(video: str = VIDEO, video_id: str = "vid_7") -> str:
    return fill('{"database": {"%s": %s}}', video_id, video)


def gt_video(**fields) -> str:
    entry = {"subset": "test", "duration": 10, "annotations": [{"segment": [1, 2], "label": "a"}]}
    entry.update(fields)
    return gt_doc(json.dumps(entry))


def gt_annotation(text: str) -> str:
    return gt_doc(fill('{"subset": "test", "duration": 10, "annotations": [%s]}', text))


# (id, file content, texts the message must hold besides the file name)
GROUND_TRUTH_CASES = [
    ("empty-file", "", ["malformed JSON", "line 1"]),
    ("whitespace-only", " \n\t\n", ["malformed JSON"]),
    ("truncated", gt_doc()[:-7], ["malformed JSON"]),
    ("not-json", "database: {}", ["malformed JSON"]),
    ("non-utf8", gt_doc().encode().replace(b'"vid_7"', b'"vid_\xff7"'), ["not UTF-8"]),
    ("utf16", gt_doc().encode("utf-16"), ["not UTF-8"]),
    ("top-level-list", "[]", ["'database'"]),
    ("database-list", '{"database": []}', ["'database'"]),
    ("database-empty", '{"database": {}}', ["no videos"]),
    ("duplicate-video-id", fill('{"database": {"vid_7": %s, "vid_7": %s}}', VIDEO, VIDEO), ["'vid_7'", "twice"]),
    ("duplicate-key-in-video", gt_doc('{"duration": 10, "duration": 12}'), ["'duration'", "twice"]),
    ("video-not-object", gt_doc("[1, 2]"), ["video 'vid_7'", "expected an object"]),
    ("missing-duration", gt_doc('{"subset": "test"}'), ["video 'vid_7'", "missing 'duration'"]),
    ("duration-string", gt_video(duration="10"), ["video 'vid_7'", "'10'"]),
    ("duration-bool", gt_video(duration=True), ["video 'vid_7'", "True"]),
    ("duration-null", gt_video(duration=None), ["video 'vid_7'", "None"]),
    ("duration-zero", gt_video(duration=0), ["video 'vid_7'", "duration must be > 0"]),
    ("duration-negative", gt_video(duration=-3), ["video 'vid_7'", "duration must be > 0"]),
    ("duration-1e400", gt_doc('{"duration": 1e400}'), ["video 'vid_7'", "inf"]),
    ("duration-minus-1e400", gt_doc('{"duration": -1e400}'), ["video 'vid_7'", "-inf"]),
    ("duration-NaN", gt_doc('{"duration": NaN}'), ["video 'vid_7'", "nan"]),
    ("duration-Infinity", gt_doc('{"duration": Infinity}'), ["video 'vid_7'", "inf"]),
    ("duration-huge-int", gt_doc(fill('{"duration": %s}', BIG_INT)), ["video 'vid_7'", "duration", "..."]),
    ("duration-5000-digits", gt_doc(fill('{"duration": %s}', DIGITS_5000)), ["unreadable JSON"]),
    ("duration-1e308", gt_video(duration=1e308), ["video 'vid_7'", "duration must be at most 1e+09 s"]),
    ("fps-zero", gt_video(fps=0), ["video 'vid_7'", "fps must be > 0"]),
    ("fps-1e300", gt_video(fps=1e300), ["video 'vid_7'", "fps must be > 0 and at most 1e+06"]),
    ("fps-string", gt_video(fps="25"), ["video 'vid_7'", "fps", "'25'"]),
    ("subset-list", gt_video(subset=["test"]), ["video 'vid_7'", "'subset' must be a string"]),
    ("annotations-object", gt_video(annotations={"segment": [1, 2]}), ["video 'vid_7'", "must be a list"]),
    ("annotation-string", gt_annotation('"1-2 a"'), ["video 'vid_7' annotation 0"]),
    ("annotation-no-label", gt_annotation('{"segment": [1, 2]}'), ["video 'vid_7' annotation 0"]),
    ("segment-string", gt_annotation('{"segment": "1,2", "label": "a"}'), ["annotation 0", "'1,2'"]),
    ("segment-three-values", gt_annotation('{"segment": [1, 2, 3], "label": "a"}'), ["annotation 0", "[1, 2, 3]"]),
    ("segment-strings", gt_annotation('{"segment": ["1", "2"], "label": "a"}'), ["annotation 0", "'1'"]),
    (
        "segment-zero-length",
        gt_annotation('{"segment": [2, 2], "label": "a"}'),
        ["video 'vid_7' annotation 0", "start 2.0 >= end 2.0"],
    ),
    (
        "segment-reversed",
        gt_annotation('{"segment": [5, 2], "label": "a"}'),
        ["video 'vid_7' annotation 0", "start 5.0 >= end 2.0"],
    ),
    ("segment-negative-start", gt_annotation('{"segment": [-1, 2], "label": "a"}'), ["annotation 0", "negative"]),
    ("segment-1e400", gt_annotation('{"segment": [1, 1e400], "label": "a"}'), ["annotation 0", "inf"]),
    ("segment-huge-int", gt_annotation(fill('{"segment": [1, %s], "label": "a"}', BIG_INT)), ["annotation 0"]),
    ("label-number", gt_annotation('{"segment": [1, 2], "label": 3}'), ["annotation 0", "label", "3"]),
    ("label-empty", gt_annotation('{"segment": [1, 2], "label": " "}'), ["annotation 0", "label"]),
    ("label-background", gt_annotation('{"segment": [1, 2], "label": "background"}'), ["'background'"]),
    ("deeply-nested", DEEP, ["nested too deeply"]),
]


@pytest.mark.parametrize(
    "content, expected", [c[1:] for c in GROUND_TRUTH_CASES], ids=[c[0] for c in GROUND_TRUTH_CASES]
)
def test_ground_truth_reader(tmp_path, content, expected):
    path = write(tmp_path, "gt.json", content)
    with pytest.raises(InputError) as err:
        load_ground_truth(path)
    assert_names(err, str(path), *expected)


CLI_GROUND_TRUTH_CASES = [c for c in GROUND_TRUTH_CASES[::3] if c[0] != "missing-duration"]  # evaluate needs none


@pytest.mark.parametrize(
    "content, expected", [c[1:] for c in CLI_GROUND_TRUTH_CASES], ids=[c[0] for c in CLI_GROUND_TRUTH_CASES]
)
def test_ground_truth_reader_cli_line(tmp_path, capsys, content, expected):
    path = write(tmp_path, "gt.json", content)
    assert main(["evaluate", str(path), str(write(tmp_path, "p.json", '{"results": {}}'))]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("pointtal evaluate: error: ") and str(path) in err and expected[0] in err


@pytest.mark.parametrize(
    "duration, extra, expected",
    [
        (1e308, [], "duration must be at most 1e+09 s"),  # once an OverflowError traceback (and hangs near it)
        (10, ["--fps", "1e308"], "--fps 1e+308: must be in (0, 1e+06]"),
        (10, ["--fps", "nan"], "--fps nan: must be in (0, 1e+06]"),
    ],
)
def test_annotate_absurd_duration_or_fps_is_one_line(tmp_path, capsys, duration, extra, expected):
    entry = {"subset": "validation", "duration": duration, "annotations": [{"segment": [1, 2], "label": "a"}]}
    gt = write(tmp_path, "gt.json", json.dumps({"database": {"vid_7": entry}}))
    out = tmp_path / "points.csv"
    assert main(["annotate", str(gt), "--scheme", "soda", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert expected in err and not out.exists()


def test_ground_truth_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="nope.json: ground-truth file not found"):
        load_ground_truth(tmp_path / "nope.json")
    with pytest.raises(InputError, match="ground-truth file not found"):
        load_ground_truth(tmp_path)


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "class list is empty"),
        (b"a\nb\na\n", "duplicate names: a"),
        (b"a\n\xffb\n", "not UTF-8"),
    ],
)
def test_class_list_reader(tmp_path, content, expected):
    path = write(tmp_path, "classes.txt", content)
    with pytest.raises(InputError, match=expected) as err:
        read_class_list(path)
    assert_names(err, str(path))
    gt = write(tmp_path, "gt.json", gt_doc())
    with pytest.raises(InputError, match=expected):
        load_ground_truth(gt, path)


# ------------------------------------------------------------------------------------- point CSVs

POINT_CASES = [  # SF-Net layout; (id, content, texts)
    ("empty-file", b"", ["point file is empty"]),
    ("blank-lines-only", b"\n\r\n  \n", ["point file is empty"]),
    ("header-only", b"video_id,time,label\n", ["header line but no points"]),
    ("lacp-header-only", b"class,video_id,point\n", ["header line but no points"]),
    ("truncated-row", b"v1,1.0,a\nv1,2.", ["line 2", "expected 3 fields", "got 2"]),
    ("too-many-fields", b"v1,1.0,a,b\n", ["line 1", "expected 3 fields", "got 4"]),
    ("one-field", b"v1\n", ["line 1", "expected 3 fields", "got 1"]),
    ("tab-separated", b"v1\t1.0\ta\n", ["line 1", "expected 3 fields"]),
    ("time-not-a-number", b"v1,abc,a\n", ["line 1", "video 'v1'", "'abc'", "not a number"]),
    ("time-empty", b"v1,,a\n", ["line 1", "video 'v1'", "not a number"]),
    ("time-nan", b"v1,nan,a\n", ["line 1", "video 'v1'", "'nan'", "not finite"]),
    ("time-1e400", b"v1,1e400,a\n", ["line 1", "video 'v1'", "'1e400'", "not finite"]),
    ("time-minus-inf", b"v1,-inf,a\n", ["line 1", "video 'v1'", "not finite"]),
    ("time-5000-digits", b"v1," + DIGITS_5000.encode() + b",a\n", ["line 1", "video 'v1'", "not finite"]),
    ("time-negative", b"v1,1,a\nv1,-0.5,a\n", ["line 2", "video 'v1'", "negative time '-0.5'"]),
    ("empty-video-id", b",1.0,a\n", ["line 1", "empty video id"]),
    ("empty-label", b"v1,1.0,\n", ["line 1", "empty label"]),
    ("non-utf8", b"v1,1.0,a\nv1,2.0,caf\xe9\n", ["line 2", "not UTF-8"]),
    ("field-over-csv-limit", b"v1,1.0," + b"a" * 200_000 + b"\n", ["line 1", "field larger than field limit"]),
    # LACP / HR-Pro layouts (point = frame number at the video's fps, here 25 via the lookup)
    (
        "lacp-truncated-row",
        b"class,class_index,start_frame,stop_frame,video_id,point\na,0,1,9,v1,5\na,0,1",
        ["line 3", "expected 6 fields as in the header, got 3"],
    ),
    ("lacp-frame-not-a-number", b"class,video_id,point\na,v1,five\n", ["line 2", "video 'v1'", "'five'"]),
    ("lacp-frame-negative", b"class,video_id,point\na,v1,-5\n", ["line 2", "video 'v1'", "negative point frame"]),
    ("lacp-frame-inf", b"class,video_id,point\na,v1,inf\n", ["line 2", "video 'v1'", "not finite"]),
    ("lacp-empty-class", b"class,video_id,point\n,v1,5\n", ["line 2", "empty video id or class"]),
    ("lacp-duplicate-column", b"class,video_id,point,point\na,v1,5,6\n", ["header", "'point' twice"]),
    ("lacp-no-fps", b"class,video_id,point\na,nofps,5\n", ["line 2", "video 'nofps'", "no valid fps"]),
]


@pytest.mark.parametrize("content, expected", [c[1:] for c in POINT_CASES], ids=[c[0] for c in POINT_CASES])
def test_point_reader(tmp_path, content, expected):
    path = write(tmp_path, "points.csv", content)
    lookup = lambda video_id: {"v1": 25.0}.get(video_id)  # noqa: E731
    with pytest.raises(InputError) as err:
        read_points(path, fps_lookup=lookup)
    assert_names(err, str(path), *expected)


@pytest.mark.parametrize(
    "content, expected",
    [
        ("[25, 30]", "expected an object"),
        ('{"v1": "25"}', "video 'v1': fps must be a positive number (at most 1e+06), got '25'"),
        ('{"v1": 0}', "video 'v1': fps must be a positive number (at most 1e+06), got 0"),
        ('{"v1": 1e300}', "video 'v1': fps must be a positive number (at most 1e+06), got 1e+300"),
        ('{"v1": true}', "video 'v1'"),
        ('{"v1": -1e400}', "video 'v1'"),
        (fill('{"v1": %s}', BIG_INT), "video 'v1'"),
        ('{"v1": 25, "v1": 30}', "'v1' appears twice"),
        ('{"v1": 25', "malformed JSON"),
    ],
)
def test_fps_dict_reader(tmp_path, content, expected):
    path = write(tmp_path, "fps_dict.json", content)
    with pytest.raises(InputError) as err:
        read_fps_dict(path)
    assert_names(err, str(path), expected)


def test_lacp_points_without_an_fps_source(tmp_path):
    path = write(tmp_path, "lacp.csv", "class,video_id,point\na,v1,5\n")
    with pytest.raises(InputError, match=r"lacp.csv line 2: no per-video fps available for video 'v1'"):
        read_points(path)
    with pytest.raises(InputError, match=r"lacp.csv line 2: no valid fps for video 'v1'"):
        read_points(path, fps_lookup=fps_lookup_for({}))


# ---------------------------------------------------------------------------------- feature stores


def _array_cases():
    good = np.ones((4, 6), dtype=np.float32)
    return [  # (id, array, texts)
        ("int64", np.ones((4, 6), dtype=np.int64), ["dtype int64"]),
        ("bool", np.ones((4, 6), dtype=bool), ["dtype bool"]),
        ("complex", np.ones((4, 6), dtype=np.complex64), ["dtype complex64"]),
        ("strings", np.array([["a", "b"]]), ["dtype <U1"]),
        ("structured", np.zeros(4, dtype=[("rgb", "f4"), ("flow", "f4")]), ["dtype"]),
        ("rank-1", np.ones(6, dtype=np.float32), ["shape (6,)", "expected (T, D)"]),
        ("rank-3", np.ones((2, 4, 6), dtype=np.float32), ["shape (2, 4, 6)", "expected (T, D)"]),
        ("rank-0", np.float32(3.0), ["shape ()"]),
        ("zero-snippets", np.ones((0, 6), dtype=np.float32), ["zero snippets"]),
        ("zero-width", np.ones((4, 0), dtype=np.float32), ["0 wide but other videos are 6"]),
        ("width", np.ones((4, 7), dtype=np.float32), ["7 wide but other videos are 6"]),
        ("nan", np.where(np.eye(4, 6) > 0, np.nan, good).astype(np.float32), ["NaN or inf"]),
        ("inf-float16", np.full((4, 6), np.inf, dtype=np.float16), ["NaN or inf"]),
    ]


@pytest.mark.parametrize("array, expected", [c[1:] for c in _array_cases()], ids=[c[0] for c in _array_cases()])
def test_feature_store_arrays(tmp_path, array, expected):
    root = tmp_path / "features"
    root.mkdir()
    np.save(root / "first.npy", np.ones((4, 6), dtype=np.float32))
    np.save(root / "vid_7.npy", array)
    store = FeatureStore(root)
    assert store.load("first").shape == (4, 6)  # sets the expected width
    with pytest.raises(InputError) as err:
        store.load("vid_7")
    assert_names(err, str(root / "vid_7.npy"), "video 'vid_7'", *expected)


@pytest.mark.parametrize("dtype", [">f4", ">f2", ">f8", "<f8"])
def test_feature_store_reads_any_float_width_and_byte_order(tmp_path, dtype):
    """Big-endian or float64 features (written on another machine, or by another tool) load as their values."""
    from pointtal.engine.inference import _inputs

    root = tmp_path / "features"
    root.mkdir()
    values = np.arange(24, dtype=np.float32).reshape(4, 6) / 8  # exact in every float width
    np.save(root / "vid_7.npy", values.astype(dtype))
    array = FeatureStore(root).load("vid_7")
    assert array.dtype == np.dtype(dtype)
    features, mask = _inputs([("vid_7", array)], None)  # the inference reader converts to native float32
    assert features.dtype == torch.float32 and bool(mask.all())
    assert np.array_equal(features[0].numpy(), values)


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


FILE_CASES = [  # (id, bytes of vid_7.npy, texts)
    ("empty-file", b"", ["not a .npy file"]),
    ("text-file", b"0.1 0.2 0.3\n0.4 0.5 0.6\n", ["not a .npy file"]),
    ("csv-renamed", b"\x93NUMP", ["not a .npy file"]),
    ("header-only", _npy_bytes(np.ones((4, 6), np.float32))[:40], ["unreadable .npy file"]),
    ("truncated-data", _npy_bytes(np.ones((4, 6), np.float32))[:-8], ["unreadable .npy file"]),
    ("garbage-header", b"\x93NUMPY\x01\x00\x10\x00{'descr': 'zz'}", ["unreadable .npy file"]),
    ("object-array", None, ["pickled Python objects", "--trust-pickle"]),
]


@pytest.mark.parametrize("content, expected", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_feature_store_files(tmp_path, content, expected):
    root = tmp_path / "features"
    root.mkdir()
    if content is None:
        np.save(root / "vid_7.npy", np.array([np.ones(3), "x"], dtype=object), allow_pickle=True)
    else:
        (root / "vid_7.npy").write_bytes(content)
    with pytest.raises(InputError) as err:
        FeatureStore(root).load("vid_7")
    assert_names(err, str(root / "vid_7.npy"), "video 'vid_7'", *expected)


def test_feature_store_missing_directory_file_and_legacy_without_trust(tmp_path):
    with pytest.raises(InputError, match="feature directory not found"):
        FeatureStore(tmp_path / "nope")
    root = tmp_path / "features"
    root.mkdir()
    with pytest.raises(InputError, match=r"vid_7.npy: no feature file for video 'vid_7'"):
        FeatureStore(root).load("vid_7")
    legacy = tmp_path / "legacy.npy"
    np.save(legacy, np.array([np.ones((3, 4)), np.ones((5, 4))], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="needs pickle; pass --trust-pickle"):
        FeatureStore(legacy)
    with pytest.raises(InputError, match="needs data.video_names"):
        FeatureStore(legacy, trust_pickle=True)
    with pytest.raises(InputError, match="names.npy: video name list not found"):
        FeatureStore(legacy, trust_pickle=True, video_names=tmp_path / "names.npy")
    names = tmp_path / "names.npy"
    np.save(names, np.array(["a", "b", "c"]))
    with pytest.raises(InputError, match="2 arrays but 3 video names"):
        FeatureStore(legacy, trust_pickle=True, video_names=names)


# ------------------------------------------------------------------------------------- YAML configs

CONFIG_CASES = [
    ("truncated", "train: {steps: 5\n", ["malformed YAML", "line 2"]),
    ("bad-indentation", "train:\n  steps: 5\n lr: 1\n", ["malformed YAML"]),
    ("tab-indentation", "train:\n\tsteps: 5\n", ["malformed YAML"]),
    ("non-utf8", b"train:\n  device: c\xffu\n", ["not UTF-8"]),
    ("top-level-list", "- train\n- data\n", ["must be a YAML mapping", "list"]),
    ("top-level-scalar", "just text\n", ["must be a YAML mapping", "str"]),
    ("unknown-section", "trian:\n  steps: 5\n", ["unknown section 'trian'"]),
    ("unknown-key", "train:\n  stepz: 5\n", ["train", "unknown key 'stepz'"]),
    ("section-not-mapping", "train: 5\n", ["train", "expected a mapping"]),
    ("steps-string", "train:\n  steps: many\n", ["train.steps", "'many'"]),
    ("steps-float", "train:\n  steps: 1.5\n", ["train.steps", "1.5"]),
    ("steps-bool", "train:\n  steps: true\n", ["train.steps", "True"]),
    ("lr-string", "train:\n  lr: fast\n", ["train.lr", "'fast'"]),
    ("lr-huge-exponent-string", "train:\n  lr: 1e400\n", ["train.lr", "'1e400'"]),
    ("fps-zero", "data:\n  fps: 0\n", ["data.fps", "must be > 0"]),
    ("fps-1e300", "data:\n  fps: 1.0e+300\n", ["data.fps", "at most 1e+06"]),
    ("fps-nan", "data:\n  fps: .nan\n", ["data.fps", "finite"]),
    ("tiou-scalar", "eval:\n  tiou: 0.5\n", ["eval.tiou", "expected a list"]),
    ("unknown-method", "method:\n  name: sfnett\n", ["method.name='sfnett'", "sfnet"]),
    ("python-tag", "train: !!python/object/apply:os.getcwd []\n", ["malformed YAML"]),
]


@pytest.mark.parametrize("content, expected", [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_config_reader(tmp_path, content, expected):
    path = write(tmp_path, "config.yaml", content)
    with pytest.raises(InputError) as err:
        load_config(path)
    assert_names(err, *expected)
    if "must be > 0" not in expected[-1]:  # value checks in __post_init__ say "config:", not the file
        assert str(path) in str(err.value)


# Method options out of range: every method raises InputError naming `method.<key>=<value>` (as SF-Net's).
METHOD_OPTION_CASES = [
    ("sfnet", "topk_divisor", "0", "must be > 0"),
    ("sfnet", "class_topk_divisor", "0", "must be > 0"),
    ("weak", "topk_divisor", "0", "must be > 0"),
    ("weak", "class_topk_divisor", "-2", "must be > 0"),
    ("weak", "class_ratio", "-1", "must be > 0"),
    ("weak", "center_weight", "-0.5", "must be >= 0"),
    ("weak", "center_momentum", "0", "must be in (0, 1]"),
    ("weak", "conv_dilations", "[0]", "must be >= 1"),
    ("soda", "hidden", "0", "must be >= 1"),
    ("soda", "kernel_size", "2", "must be odd"),
    ("soda", "eta", "1.5", "must be in (0, 1]"),
]


@pytest.mark.parametrize(
    "method, key, value, why", METHOD_OPTION_CASES, ids=[f"{c[0]}-{c[1]}" for c in METHOD_OPTION_CASES]
)
def test_method_options_out_of_range(tmp_path, method, key, value, why):
    path = write(tmp_path, "config.yaml", f"method:\n  name: {method}\n  {key}: {value}\n")
    with pytest.raises(InputError) as err:
        load_config(path)
    shown = value.strip("[]")
    assert_names(err, f"method.{key}=", shown, why)


def test_config_missing_file_and_empty_file(tmp_path):
    with pytest.raises(InputError, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")
    # an empty file is the defaults (all of it can come from --set); not an error
    assert load_config(write(tmp_path, "empty.yaml", "")) == load_config(None)


# Config cases that plain yaml.safe_load + dataclasses would let through or crash on.
CONFIG_GAPS = [
    ("duplicate-key", "train:\n  steps: 5\n  steps: 6\n", "yaml.safe_load keeps the last of duplicate keys"),
    ("lr-inf", "train:\n  lr: .inf\n", "train.lr=inf passes the 'lr > 0' check"),
    ("fps-inf", "data:\n  fps: .inf\n", "data.fps=inf passes the 'fps > 0' check"),
    ("method-list", "method: [1, 2]\n", "dict(list) raises TypeError in build_config"),
    ("method-name-list", "method:\n  name: [sfnet]\n", "'name in METHODS' raises TypeError (unhashable)"),
    ("deeply-nested", "[" * 1000 + "]" * 1000, "PyYAML recursion raises RecursionError"),
]


@pytest.mark.parametrize("content, reason", [c[1:] for c in CONFIG_GAPS], ids=[c[0] for c in CONFIG_GAPS])
def test_config_reader_closes_known_gaps(tmp_path, content, reason):
    path = write(tmp_path, "config.yaml", content)
    with pytest.raises(InputError, match=str(path).replace(".", r"\.")):
        load_config(path)


# ------------------------------------------------------------------------------- prediction JSON


def pred_doc(entry: str, video_id: str = "vid_7") -> str:
    return fill('{"version": "x", "results": {"%s": [%s]}}', video_id, entry)


def pred_entry(**fields) -> str:
    entry = {"label": "a", "score": 0.5, "segment": [1, 2]}
    entry.update(fields)
    return pred_doc(json.dumps(entry))


PREDICTION_CASES = [
    ("empty-file", "", ["malformed JSON"]),
    ("truncated", pred_entry()[:-9], ["malformed JSON"]),
    ("non-utf8", pred_entry().encode().replace(b"vid_7", b"vid_\xfe7"), ["not UTF-8"]),
    ("top-level-list", "[]", ["'results'"]),
    ("results-list", '{"results": []}', ["'results'"]),
    ("duplicate-video-id", '{"results": {"vid_7": [], "vid_7": []}}', ["'vid_7'", "twice"]),
    ("duplicate-results", '{"results": {}, "results": {}}', ["'results'", "twice"]),
    (
        "duplicate-key-in-entry",
        pred_doc('{"label": "a", "score": 0.5, "score": 0.9, "segment": [1, 2]}'),
        ["'score'", "twice"],
    ),
    ("entries-object", '{"results": {"vid_7": {"label": "a"}}}', ["video 'vid_7'", "expected a list"]),
    ("entry-string", pred_doc('"a 0.5 1 2"'), ["video 'vid_7' prediction 0", "expected an object"]),
    ("missing-label", pred_doc('{"score": 0.5, "segment": [1, 2]}'), ["vid_7' prediction 0", "missing 'label'"]),
    ("missing-segment", pred_doc('{"label": "a", "score": 0.5}'), ["vid_7' prediction 0", "missing 'segment'"]),
    ("label-number", pred_entry(label=1), ["vid_7' prediction 0", "unknown label 1"]),
    ("label-unknown", pred_entry(label="b"), ["vid_7' prediction 0", "unknown label 'b'"]),
    ("score-string", pred_entry(score="0.5"), ["vid_7' prediction 0 score", "'0.5'"]),
    ("score-bool", pred_entry(score=True), ["vid_7' prediction 0 score", "True"]),
    ("score-null", pred_entry(score=None), ["vid_7' prediction 0 score", "None"]),
    ("score-1e400", pred_doc('{"label": "a", "score": 1e400, "segment": [1, 2]}'), ["prediction 0 score", "inf"]),
    ("score-NaN", pred_doc('{"label": "a", "score": NaN, "segment": [1, 2]}'), ["prediction 0 score", "nan"]),
    (
        "score-huge-int",
        pred_doc(fill('{"label": "a", "score": %s, "segment": [1, 2]}', BIG_INT)),
        ["prediction 0 score"],
    ),
    (
        "segment-huge-int",
        pred_doc(fill('{"label": "a", "score": 1, "segment": [1, %s]}', BIG_INT)),
        ["prediction 0 segment end"],
    ),
    (
        "segment-5000-digits",
        pred_doc(fill('{"label": "a", "score": 1, "segment": [1, %s]}', DIGITS_5000)),
        ["unreadable JSON"],
    ),
    (
        "segment-minus-1e400",
        pred_doc('{"label": "a", "score": 1, "segment": [-1e400, 2]}'),
        ["prediction 0 segment start", "-inf"],
    ),
    ("segment-zero-length", pred_entry(segment=[2, 2]), ["vid_7' prediction 0", "start 2.0 >= end 2.0"]),
    ("segment-reversed", pred_entry(segment=[3, 1]), ["vid_7' prediction 0", "start 3.0 >= end 1.0"]),
    ("segment-one-value", pred_entry(segment=[1]), ["vid_7' prediction 0", "segment must be [start, end]"]),
    ("segment-string", pred_entry(segment="1-2"), ["vid_7' prediction 0", "'1-2'"]),
    ("segment-strings", pred_entry(segment=["1", "2"]), ["vid_7' prediction 0 segment start", "'1'"]),
    ("frame-entry", pred_doc('{"label": "a", "score": 1, "frame": 3}'), ["missing 'segment'", "--frames"]),
    ("deeply-nested", fill('{"results": %s}', DEEP), ["nested too deeply"]),
]


@pytest.mark.parametrize("content, expected", [c[1:] for c in PREDICTION_CASES], ids=[c[0] for c in PREDICTION_CASES])
def test_prediction_reader(tmp_path, content, expected):
    path = write(tmp_path, "pred.json", content)
    with pytest.raises(InputError) as err:
        load_segment_predictions(path, ["a"])
    assert_names(err, str(path), *expected)


@pytest.fixture
def cli_gt(tmp_path) -> Path:
    return write(tmp_path, "gt.json", gt_doc())


@pytest.mark.parametrize("content, expected", [c[1:] for c in PREDICTION_CASES], ids=[c[0] for c in PREDICTION_CASES])
def test_prediction_reader_cli_line(tmp_path, capsys, cli_gt, content, expected):
    path = write(tmp_path, "pred.json", content)
    assert main(["evaluate", str(cli_gt), str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("pointtal evaluate: error: ") and str(path) in err
    assert all(text in err for text in expected), err


@pytest.mark.parametrize(
    "entry, expected",
    [
        ('{"label": "a", "score": 1, "frame": "3"}', "prediction 0 frame"),
        ('{"label": "a", "score": 1, "frame": 1e400}', "prediction 0 frame"),
        (fill('{"label": "a", "score": 1, "frame": %s}', BIG_INT), "prediction 0 frame"),
        ('{"label": "a", "score": 1, "segment": [1, 2]}', "leave out --frames"),
    ],
)
def test_frame_prediction_reader(tmp_path, entry, expected):
    path = write(tmp_path, "frames.json", pred_doc(entry))
    with pytest.raises(InputError) as err:
        load_frame_predictions(path, ["a"])
    assert_names(err, str(path), "video 'vid_7'", expected)


@pytest.mark.parametrize(
    "option, content, expected",
    [
        ("--exclude-videos", b"vid_7\n\xff\n", "--exclude-videos file is not UTF-8"),
        ("--exclude-videos", b" \n", "no video ids given"),
        ("--class-list", b"a\n\xffb\n", "class list is not UTF-8"),
        ("--class-list", b"b\n", "labels not in class list"),
        ("--ambiguous", b"vid_7 5 1\n", "invalid segment [5.0, 1.0]"),
        ("--ambiguous", b"vid_7 x y\n", "start/end are not numbers"),
    ],
)
def test_evaluate_option_files_cli_line(tmp_path, capsys, cli_gt, option, content, expected):
    extra = write(tmp_path, "extra.txt", content)
    value = f"@{extra}" if option == "--exclude-videos" else str(extra)
    pred = write(tmp_path, "pred.json", pred_entry())
    assert main(["evaluate", str(cli_gt), str(pred), "--subset", "test", option, value]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert expected in err and (str(extra) in err or option == "--exclude-videos" and "no video ids" in err)


def _only_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_video_commands_refuse_wrong_outputs_and_files_in_one_line(tmp_path, capsys):
    """extract onto a file, label onto a directory, and a non-weights file given as weights: one line each,
    naming the flag and what to give instead (was a FileExistsError traceback / "point file not found" /
    torch's advice to unpickle the file)."""
    video = tmp_path / "a.mp4"
    video.write_bytes(b"not a video")
    assert main(["extract", str(video), "--out", str(video), "--random-init"]) == 2
    assert "--out" in (line := _only_error_line(capsys)) and "is a file" in line
    assert (
        main(
            [
                "extract",
                str(video),
                "--out",
                str(tmp_path / "f"),
                "--rgb-weights",
                str(video),
                "--flow-weights",
                str(video),
            ]
        )
        == 2
    )
    line = _only_error_line(capsys)
    assert "--rgb-weights" in line and "not a PyTorch weights file" in line and "weights_only" not in line
    classes = tmp_path / "classes.txt"
    classes.write_text("Jump\n")
    for argv in (
        ["label", str(tmp_path), "--classes", str(classes), "--out", str(tmp_path)],
        ["label", "--stats", "--out", str(tmp_path)],
    ):
        assert main(argv) == 2
        assert "is a directory" in _only_error_line(capsys)
