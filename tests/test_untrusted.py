"""Untrusted inputs: no reader may run code or touch files outside what it was pointed at.

Feature files never unpickle without `trust_pickle`; YAML configs cannot construct Python objects; video
ids cannot leave the feature directory; and the package source has no eval/exec/unsafe loaders.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import numpy as np
import pytest

import pointtal.data.features as features_module
from pointtal.config import load_config
from pointtal.data.annotations import load_ground_truth
from pointtal.data.dataset import build_dataset
from pointtal.data.features import FeatureStore, check_video_id
from pointtal.errors import InputError

PACKAGE = Path(__file__).resolve().parents[1] / "pointtal"


class _MakesDirectory:
    """Unpickling this object calls os.mkdir(path): the side effect proves whether a pickle was loaded."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _save_object_array(path: Path, items) -> None:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    np.save(path, array, allow_pickle=True)


# ------------------------------------------------------------------------------------ feature files


def test_plain_features_are_loaded_without_pickle(tmp_path, monkeypatch):
    np.save(tmp_path / "v1.npy", np.ones((3, 4), dtype=np.float32))
    calls = []
    real_load = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(features_module.np, "load", spy)
    for trust in (False, True):  # trust only matters for files that need pickle
        calls.clear()
        assert FeatureStore(tmp_path, trust_pickle=trust).load("v1").shape == (3, 4)
        assert calls and all(kw.get("allow_pickle") is False for kw in calls), calls


def test_object_array_is_refused_unless_trusted(tmp_path):
    marker = tmp_path / "pickle_ran"
    _save_object_array(tmp_path / "evil.npy", [_MakesDirectory(marker)])
    with pytest.raises(InputError) as err:
        FeatureStore(tmp_path).load("evil")
    message = str(err.value)
    assert str(tmp_path / "evil.npy") in message and "video 'evil'" in message
    assert "pickled Python objects" in message and "--trust-pickle" in message and "\n" not in message
    assert not marker.exists()  # nothing was unpickled


def test_trusted_object_arrays_load(tmp_path):
    rows = np.arange(12, dtype=np.float64).reshape(3, 4)
    _save_object_array(tmp_path / "rows.npy", [list(r) for r in rows])  # (T,) object array of lists
    wrapped = np.empty((), dtype=object)
    wrapped[()] = rows.astype(np.float32)
    np.save(tmp_path / "wrapped.npy", wrapped, allow_pickle=True)  # 0-d object array holding an array
    store = FeatureStore(tmp_path, trust_pickle=True)
    for video_id in ("rows", "wrapped"):
        x = store.load(video_id)
        assert x.dtype == np.float32 and x.shape == (3, 4)
        np.testing.assert_array_equal(x, rows)
    _save_object_array(tmp_path / "junk.npy", [{"rgb": 1}, "text"])
    with pytest.raises(InputError, match=r"video 'junk' features have dtype object"):
        store.load("junk")


def test_legacy_single_array_needs_trust(tmp_path):
    marker = tmp_path / "pickle_ran"
    legacy = tmp_path / "features.npy"
    _save_object_array(legacy, [np.ones((3, 4), np.float32), _MakesDirectory(marker)])
    with pytest.raises(InputError, match="needs pickle; pass --trust-pickle"):
        FeatureStore(legacy)
    assert not marker.exists()
    names = tmp_path / "videoname.npy"
    np.save(names, np.array([b"va", b"vb"]))
    store = FeatureStore(legacy, trust_pickle=True, video_names=names)  # the user vouched for the file
    assert marker.exists() and store.ids() == ["va", "vb"]
    assert store.load("va").shape == (3, 4)


# ------------------------------------------------------------------------------------------- YAML


@pytest.mark.parametrize(
    "payload",
    [
        '!!python/object/apply:os.system ["echo pwned > {marker}"]',
        '!!python/object/apply:subprocess.check_output [["touch", "{marker}"]]',
        '!!python/object/new:os.system ["echo pwned > {marker}"]',
        "!!python/name:os.system",
        "!!python/module:os",
    ],
)
def test_yaml_python_tags_cannot_run_code(tmp_path, payload):
    marker = tmp_path / "pwned"
    config = tmp_path / "config.yaml"
    config.write_text(f"train:\n  steps: {payload.format(marker=marker)}\n")
    with pytest.raises(InputError) as err:
        load_config(config)
    assert str(config) in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()
    with pytest.raises(InputError):  # the same through --set
        load_config(None, [f"train.steps={payload.format(marker=marker)}"])
    assert not marker.exists()


# -------------------------------------------------------------------------------------- video ids

ESCAPING_IDS = [
    "../x",
    "../../etc/passwd",
    "/etc/passwd",
    "/tmp/x",
    "a/../../b",
    "sub/dir",
    "..",
    ".",
    "x\\..\\y",
    "C:\\x",
    "x\x00y",
    "",
    "x" * 300,
    "a\nb",
    "\ud800",
]


@pytest.mark.parametrize("video_id", ESCAPING_IDS, ids=range(len(ESCAPING_IDS)))
def test_video_ids_cannot_leave_the_feature_directory(tmp_path, video_id):
    inside = tmp_path / "features"
    inside.mkdir()
    np.save(tmp_path / "x.npy", np.ones((3, 4), np.float32))  # a real target one level up
    with pytest.raises(InputError, match="cannot be a feature file name: it"):
        check_video_id(video_id)
    store = FeatureStore(inside)
    with pytest.raises(InputError, match="cannot be a feature file name: it"):
        store.load(video_id)
    with pytest.raises(InputError, match="cannot be a feature file name: it"):
        video_id in store  # noqa: B015 - membership must not probe outside either


def test_ground_truth_with_an_escaping_id_is_refused_by_the_dataset(tmp_path):
    features = tmp_path / "features"
    features.mkdir()
    np.save(features / "ok.npy", np.ones((5, 4), np.float32))
    np.save(tmp_path / "secret.npy", np.ones((5, 4), np.float32))
    entry = {"subset": "validation", "duration": 4.0, "annotations": [{"segment": [0.5, 2.0], "label": "a"}]}
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps({"database": {"ok": entry, "../secret": entry}}))
    with pytest.raises(InputError, match=r"video id '\.\./secret' cannot be a feature file name: it contains '/'"):
        build_dataset(load_ground_truth(gt_path), "validation", FeatureStore(features), 25.0, 16)


@pytest.mark.parametrize(
    "video_id",
    [
        "video_test_0000896",
        "S1_Cheese_C1",
        "v-1.2_x",
        "0abc",
        "-0RYqpcQyAc",
        "my video 1",
        "vidéo_été",
        "ビデオ",
        "a..b",
        ".hidden",
        "~root",
        " x",
        "take:2",
        "x" * 251,
    ],
)
def test_ordinary_video_ids_pass(video_id):
    assert check_video_id(video_id) == video_id


# ---------------------------------------------------------------------------- no unsafe calls in source

SAFE_YAML = {"safe_load", "safe_dump", "safe_load_all", "dump"}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _dotted(func: ast.AST) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    parts.append(func.id if isinstance(func, ast.Name) else "<expr>")  # x().eval() is a method, not eval
    return ".".join(reversed(parts))


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_calls(source: str, filename: str) -> list[str]:
    """Calls that can execute code from data: eval/exec/compile, unsafe YAML, pickle, torch.load without
    weights_only=True, np.load(allow_pickle=True) outside the one opt-in helper."""
    found = []
    tree = ast.parse(source, filename)
    functions = {id(n): n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    enclosing = {}
    for node in ast.walk(tree):
        if id(node) in functions:
            for child in ast.walk(node):
                enclosing.setdefault(id(child), functions[id(node)])
    for call in _calls(tree):
        name = _dotted(call.func)
        where = f"{filename}:{call.lineno} {name}("
        if name in ("eval", "exec", "compile", "__import__", "builtins.eval", "builtins.exec"):
            found.append(where)
        elif name.startswith("yaml.") and name.split(".")[-1] not in SAFE_YAML:
            found.append(where)
        elif name.startswith(("pickle.", "cPickle.", "dill.", "marshal.", "shelve.", "joblib.")) and name.split(".")[
            -1
        ] in ("load", "loads", "open", "Unpickler"):
            found.append(where)
        elif name == "torch.load" or name.endswith(".torch.load"):
            if not _is_true(_keyword(call, "weights_only")):
                found.append(where + " without weights_only=True")
        elif name.endswith(("np.load", "numpy.load")) and _keyword(call, "allow_pickle") is not None:
            value = _keyword(call, "allow_pickle")
            trusted_helper = enclosing.get(id(call)) == "_load_trusted" and filename.endswith("data/features.py")
            if not (isinstance(value, ast.Constant) and value.value is False) and not trusted_helper:
                found.append(where + " with allow_pickle not False")
    return found


def test_source_scanner_catches_what_it_should():
    bad = """
import yaml, pickle, torch, numpy as np
eval("1")
exec("x = 1")
yaml.load(open("c"), Loader=yaml.Loader)
yaml.unsafe_load("x")
pickle.loads(b"")
torch.load("ckpt.pt")
torch.load("ckpt.pt", weights_only=False)
np.load("x.npy", allow_pickle=True)
"""
    assert len(unsafe_calls(bad, "bad.py")) == 8
    good = """
import yaml, torch, numpy as np
model.eval()
net.to("cpu").eval()
yaml.safe_load("x")
torch.load("ckpt.pt", map_location="cpu", weights_only=True)
np.load("x.npy", mmap_mode="r", allow_pickle=False)
np.load("x.npy")
"""
    assert unsafe_calls(good, "good.py") == []


def test_package_source_has_no_unsafe_calls():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20
    found = [hit for path in files for hit in unsafe_calls(path.read_text(encoding="utf-8"), str(path))]
    assert found == [], "unsafe calls:\n" + "\n".join(found)


def test_package_source_text_has_no_unsafe_patterns():
    """The same as a plain grep, for code the AST scan could miss (e.g. `getattr(yaml, "load")`)."""
    import re

    patterns = [
        r"(?<![\w.])eval\(",
        r"(?<![\w.])exec\(",
        r"yaml\.(unsafe_|full_)?load\(",
        r"pickle\.loads?\(",
        r"getattr\(\s*(yaml|pickle|torch)",
    ]
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            for pattern in patterns:
                assert not re.search(pattern, code), f"{path}:{number}: {line.strip()}"
            if "torch.load(" in code:
                assert "weights_only=True" in code, f"{path}:{number}: torch.load without weights_only=True"
