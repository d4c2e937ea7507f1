"""Presets that extend another (`extends: PARENT.yaml` plus the keys they change): resolution, merging, errors, and
the shipped presets resolved to complete configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from pointtal.config import build_config, load_config, read_config, read_yaml, save_config
from pointtal.errors import InputError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PRESETS = sorted(CONFIGS.glob("*.yaml"))
CHILDREN = [p for p in PRESETS if "extends" in read_yaml(p)]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


BASE = """\
data:
  fps: 25
  stride: 16
  points: [a.csv, b.csv]
method:
  name: sfnet
  eta: 5.0
  radius: 3
train:
  steps: 4000
  lr: 1.0e-4
eval:
  tiou: [0.1, 0.3, 0.5, 0.7]
"""


def test_a_child_gets_every_parent_key_and_replaces_those_it_gives(tmp_path):
    write(tmp_path / "base.yaml", BASE)
    child = write(tmp_path / "child.yaml", "extends: base.yaml\ndata:\n  fps: 15\nmethod:\n  eta: 7.0\n")
    raw = read_config(child)
    assert "extends" not in raw
    assert raw["data"]["fps"] == 15 and raw["data"]["stride"] == 16  # section merged key by key
    assert raw["method"] == {"name": "sfnet", "eta": 7.0, "radius": 3}
    assert raw["train"] == {"steps": 4000, "lr": 1.0e-4}  # a section the child does not name: the parent's
    config = load_config(child)
    assert (config.data.fps, config.method_options.eta, config.method_options.radius) == (15, 7.0, 3)


def test_lists_are_replaced_not_appended(tmp_path):
    write(tmp_path / "base.yaml", BASE)
    child = write(tmp_path / "child.yaml", "extends: base.yaml\neval:\n  tiou: [0.5]\ndata:\n  points: [c.csv]\n")
    raw = read_config(child)
    assert raw["eval"]["tiou"] == [0.5]
    assert [Path(p).name for p in raw["data"]["points"]] == ["c.csv"]


def test_extends_is_resolved_recursively_and_relative_to_each_file(tmp_path):
    write(tmp_path / "base.yaml", BASE)
    write(tmp_path / "mid" / "mid.yaml", "extends: ../base.yaml\ntrain:\n  steps: 100\ndata:\n  points: [m.csv]\n")
    child = write(tmp_path / "leaf" / "deep" / "leaf.yaml", "extends: ../../mid/mid.yaml\ntrain:\n  lr: 0.5\n")
    raw = read_config(child)
    assert raw["train"] == {"steps": 100, "lr": 0.5}
    assert raw["data"]["fps"] == 25
    # a data path is read from the directory of the file that wrote it
    assert raw["data"]["points"] == [str(tmp_path / "mid" / "m.csv")]


def test_a_cycle_is_a_one_line_error_naming_the_files(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\ntrain:\n  steps: 1\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\ntrain:\n  lr: 1.0\n")
    with pytest.raises(InputError, match="cycle") as err:
        read_config(tmp_path / "a.yaml")
    message = str(err.value)
    assert "\n" not in message and "a.yaml" in message and "b.yaml" in message
    write(tmp_path / "self.yaml", "extends: self.yaml\n")
    with pytest.raises(InputError, match="cycle.*self.yaml -> .*self.yaml"):
        read_config(tmp_path / "self.yaml")


def test_a_missing_parent_is_an_error_naming_both_files(tmp_path):
    child = write(tmp_path / "child.yaml", "extends: nowhere.yaml\ntrain:\n  steps: 1\n")
    with pytest.raises(InputError, match=r"child\.yaml: extends: .*nowhere\.yaml: config file not found"):
        read_config(child)
    bad = write(tmp_path / "bad.yaml", "extends: [base.yaml]\n")
    with pytest.raises(InputError, match=r"bad\.yaml: extends: expected the path"):
        read_config(bad)


def test_a_parent_key_counts_as_a_file_key_for_applicability(tmp_path):
    """`load_config` refuses a file key that cannot apply; one the parent sets is refused the same way."""
    write(tmp_path / "base.yaml", BASE.replace("  radius: 3\n", "  radius: 3\n  expand_step: 10\n"))
    child = write(tmp_path / "child.yaml", "extends: base.yaml\nmethod:\n  expand: false\n")
    flat = write(tmp_path / "flat.yaml", yaml.safe_dump(read_config(child), sort_keys=False))
    with pytest.raises(InputError) as from_flat:
        load_config(flat)
    with pytest.raises(InputError) as from_child:
        load_config(child)
    assert "expand_step" in str(from_child.value)
    assert str(from_child.value).split(": ", 1)[1] == str(from_flat.value).split(": ", 1)[1]


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_preset_loads_and_its_saved_config_is_complete(path, tmp_path):
    config = load_config(path)
    save_config(config, tmp_path / "config.yaml")
    saved = read_yaml(tmp_path / "config.yaml")
    assert "extends" not in saved
    assert build_config(saved, "saved") == config  # the run directory's copy stands alone


def test_a_child_drops_the_parent_keys_it_lists(tmp_path):
    write(tmp_path / "base.yaml", BASE.replace("eta: 5.0", "eta: 9.5"))
    mid = write(tmp_path / "mid.yaml", "extends: base.yaml\ndrop: [method.eta, train.lr]\ndata:\n  fps: 15\n")
    raw = read_config(mid)
    assert "drop" not in raw and "extends" not in raw
    assert raw["method"] == {"name": "sfnet", "radius": 3}
    assert raw["train"] == {"steps": 4000}
    assert raw["data"]["fps"] == 15 and raw["data"]["stride"] == 16
    leaf = write(tmp_path / "leaf.yaml", "extends: mid.yaml\nmethod:\n  eta: 9.0\n")  # a grandchild may give it again
    assert read_config(leaf)["method"] == {"name": "sfnet", "radius": 3, "eta": 9.0}
    assert load_config(mid).method_options.eta == load_config(None).method_options.eta != 9.5  # the default


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("[method.expand_ratio]", r"child\.yaml: drop: method\.expand_ratio: not a key of the parent config"),
        ("[nosection.eta]", r"drop: nosection\.eta: not a key of the parent config"),
        ("[method]", r"drop: method: not a key of the parent config"),
        ("method.eta", r"drop: expected a list of section\.key names, got 'method\.eta'"),
        ("[method.eta]\nmethod:\n  eta: 7.0", r"drop: method\.eta: the file both drops and gives this key"),
        ("[train.lr, method.eta, train.lr]", r"drop: train\.lr: listed twice"),
    ],
)
def test_a_bad_drop_is_a_one_line_error_naming_the_key(tmp_path, drop, message):
    write(tmp_path / "base.yaml", BASE)
    child = write(tmp_path / "child.yaml", f"extends: base.yaml\ndrop: {drop}\n")
    with pytest.raises(InputError, match=message) as err:
        read_config(child)
    assert "\n" not in str(err.value)


def test_drop_without_extends_is_an_error(tmp_path):
    lone = write(tmp_path / "lone.yaml", BASE + "drop: [method.eta]\n")
    with pytest.raises(InputError, match=r"lone\.yaml: drop: only a config that extends another can drop keys"):
        read_config(lone)


def test_the_near_copies_extend_their_parent():
    names = {p.name: read_yaml(p)["extends"] for p in CHILDREN}
    for dataset in ("gtea", "beoid", "activitynet13"):
        for method in ("lacp", "hrpro"):
            assert names[f"{dataset}_{method}.yaml"] == f"thumos14_{method}.yaml"
    for dataset in ("gtea", "beoid"):
        assert names[f"{dataset}_sfnet.yaml"] == "thumos14_sfnet.yaml"
    for dataset in ("thumos14", "gtea", "beoid"):
        for variant in ("full", "weak"):
            assert names[f"{dataset}_sfnet_{variant}.yaml"] == f"{dataset}_sfnet.yaml"
    assert names["activitynet13_soda.yaml"] == "thumos14_soda.yaml"
    assert names["activitynet12_soda.yaml"] == "activitynet13_soda.yaml"
    assert names["thumos14_hrpro_actionformer.yaml"] == "thumos14_actionformer.yaml"  # the route (test_route.py)
    for teacher in ("lacp", "sfnet", "soda"):
        assert names[f"thumos14_{teacher}_actionformer.yaml"] == "thumos14_hrpro_actionformer.yaml"
    assert len(names) == 20


@pytest.mark.parametrize("path", CHILDREN, ids=lambda p: p.stem)
def test_a_child_preset_is_its_parent_with_its_own_keys_applied(path):
    """Read independently of the merge code: every key of the resolved child is the child file's value where it
    gives one, else the parent's resolved value; and it has no key neither gives, nor one it drops."""
    own = read_yaml(path)
    parent = read_config(path.parent / own.pop("extends"))
    dropped = {tuple(dotted.split(".", 1)) for dotted in own.pop("drop", [])}
    child = read_config(path)
    assert set(child) == set(parent) | set(own)
    for section in child:
        given = own.get(section, {})
        kept = {key for key in parent.get(section, {}) if (section, key) not in dropped}
        assert set(child[section]) == kept | set(given)
        for key, value in child[section].items():
            if key not in given:
                assert value == parent[section][key], f"{path.name}: {section}.{key}"
    config, reference = load_config(path), load_config(path.parent / read_yaml(path)["extends"])
    changed = {
        f.name
        for f in dataclasses.fields(config.data)
        if getattr(config.data, f.name) != getattr(reference.data, f.name)
    }
    assert changed <= set(own.get("data", {}))  # nothing changes that the child does not say
