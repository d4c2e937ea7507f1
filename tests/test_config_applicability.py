"""Config keys given explicitly (file or --set) that cannot apply given the other values are refused (issue 18 §5)."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from pointtal.applies import shown
from pointtal.config import (
    APPLIES,
    build_config,
    check_applicable,
    given_keys,
    load_config,
    read_config,
    save_config,
    to_dict,
)
from pointtal.data.points import SCHEMES
from pointtal.errors import InputError
from pointtal.methods import METHODS
from pointtal.studies.ablation import STUDIES, Variant, variant_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
SODA_PRESETS = [p for p in CONFIGS if read_config(p)["method"].get("name") == "soda"]  # not the route presets


def _load(tmp_path: Path, raw: dict, overrides: list[str] | None = None):
    """load_config on `raw` written as a config file (the path a user's file takes)."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_config(path, overrides)


# ----------------------------------------------------------------------------- the examples, word for word


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["data.window_sec=5"],
            "config: data.window_sec=5: does not apply with data.points=weak (the window length is read only by the "
            "simulated SODA point schemes)",
        ),
        (
            ["method.name=lacp", "method.search=exact", "method.budget=10"],
            "config: method.budget=10: does not apply with method.search=exact (the exact search has no beam)",
        ),
        (
            ["method.conv_dilations=[2, 4]"],
            "config: method.conv_dilations=[2, 4]: does not apply with method.conv_backbone=false (the FC classification "
            "branch has no convolutions)",
        ),
        (
            ["method.name=soda", "method.n_networks=1", "method.distill_target=video"],
            "config: method.distill_target=video: does not apply with method.n_networks=1 (one network has nothing to "
            "distil)",
        ),
        (
            ["data.gaussian_std=0.02", "data.points=soda"],
            "config: data.gaussian_std=0.02: does not apply with data.points=soda (only the gaussian point scheme reads "
            "it)",
        ),
        (
            ["data.points=[/x/a.csv, b.csv]", "data.window_sec=5"],
            "config: data.window_sec=5: does not apply with data.points=[a.csv, b.csv] (the window length",
        ),
        (["data.segments=labels.json"], "config: data.segments="),
        (
            ["train.wandb_group=sweep1"],
            "config: train.wandb_group=sweep1: does not apply with train.wandb=off (Weights & Biases is off)",
        ),
    ],
)
def test_refused_with_one_line_naming_key_and_why(overrides, message):
    with pytest.raises(InputError) as err:
        load_config(None, overrides)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["data.points=soda-action", "data.window_sec=5"], 5.0),
        (["method.name=lacp", "method.search=beam", "method.budget=10"], 10),
        (["method.conv_backbone=true", "method.conv_dilations=[2, 4]"], (2, 4)),
        (["method.name=soda", "method.n_networks=3", "method.distill_target=video"], "video"),
        (["data.points=gaussian", "data.gaussian_std=0.02"], 0.02),
        (["method.name=actionformer", "data.segments=labels.json"], str(Path("labels.json").resolve())),
        (["train.wandb=offline", "train.wandb_group=sweep1"], "sweep1"),
    ],
)
def test_same_key_accepted_where_it_applies(overrides, expected):
    config = load_config(None, overrides)
    section, key = overrides[-1].split("=", 1)[0].split(".")
    owner = config.method_options if section == "method" else getattr(config, section)
    assert getattr(owner, key) == expected


def test_a_file_key_is_refused_by_a_set_that_switches_it_off(tmp_path):
    """The file gives method.budget: 10; --set method.search=exact leaves it nothing to do."""
    raw = {"method": {"name": "lacp", "budget": 10}}
    with pytest.raises(
        InputError,
        match=r"config.yaml: method.budget=10: does not apply with "
        r"method.search=exact \(the exact search has no beam\)",
    ):
        _load(tmp_path, raw, ["method.search=exact"])
    assert _load(tmp_path, raw, ["method.search=beam"]).method_options.budget == 10


def test_file_keys_at_their_default_and_keys_not_given_are_not_refused(tmp_path):
    """A file key at its default is what a run's config.yaml writes for every key: not refused (a --set of the same
    value is); keys not given at all are never checked."""
    lacp = next(p for p in CONFIGS if p.name == "thumos14_lacp.yaml")  # gives budget: 25, the default
    assert load_config(lacp, ["method.search=exact"]).method_options.budget == 25
    with pytest.raises(InputError, match=r"method.budget=25: does not apply"):
        load_config(lacp, ["method.search=exact", "method.budget=25"])
    config = _load(tmp_path, {"method": {"name": "lacp", "search": "exact"}})
    assert config.method_options.search == "exact" and config.method_options.budget == 25


# ----------------------------------------------------------------------------- every rule, both ways


def _other_values(options: type, rule) -> tuple[object, object]:
    """(a value of rule.other under which rule.key cannot apply, one under which it applies)."""
    field = {f.name: f for f in dataclasses.fields(options)}[rule.other]
    hint = typing.get_type_hints(options)[rule.other]
    candidates = list(typing.get_args(hint)) if typing.get_origin(hint) is typing.Literal else []
    if hint is bool:
        candidates = [True, False]
    if rule.excluded:
        applies = (
            field.default if field.default not in rule.values else next(c for c in candidates if c not in rule.values)
        )
        return rule.values[0], applies
    return next(c for c in candidates if c not in rule.values), rule.values[0]


METHOD_RULES = [
    (name, rule) for name, method in sorted(METHODS.items()) for rule in getattr(method.Options, "APPLIES", ())
]


def test_every_method_has_rules_and_each_rule_names_real_fields():
    assert {name for name, _ in METHOD_RULES} >= {"sfnet", "soda", "lacp", "hrpro", "actionformer", "weak"}
    for name, rule in METHOD_RULES:
        fields = {f.name for f in dataclasses.fields(METHODS[name].Options)}
        assert {rule.key, rule.other} <= fields, (name, rule)


@pytest.mark.parametrize(("name", "rule"), METHOD_RULES, ids=[f"{n}.{r.key}" for n, r in METHOD_RULES])
def test_each_method_rule_refuses_and_accepts(tmp_path, name, rule):
    options = METHODS[name].Options
    given = [f"method.{rule.key}={shown({f.name: f for f in dataclasses.fields(options)}[rule.key].default)}"]
    blocked, applies = _other_values(options, rule)
    raw = {"method": {"name": name, rule.other: to_dict(blocked)}}
    with pytest.raises(InputError, match=rf"method\.{rule.key}=.*: does not apply with method\.{rule.other}="):
        _load(tmp_path, raw, given)
    raw["method"][rule.other] = to_dict(applies)
    config = _load(tmp_path, raw, given)
    assert getattr(config.method_options, rule.other) == applies


@pytest.mark.parametrize("rule", APPLIES, ids=[r.key for r in APPLIES])
def test_each_data_and_train_rule_refuses_and_accepts(rule):
    default = {
        "data.window_sec": 10.0,
        "data.gaussian_std": 0.01,
        "data.strict_points": "true",
        "train.wandb_project": "p",
        "train.wandb_group": "g",
        "train.wandb_tags": "[t]",
    }[rule.key]
    blocked = {"data.points": "sfnet-uniform", "train.wandb": "off"}[rule.other]
    assert rule.key != "data.strict_points" or set(rule.values) == set(SCHEMES)
    with pytest.raises(InputError, match=rf"{rule.key}=.*: does not apply with {rule.other}={blocked}"):
        load_config(None, [f"{rule.other}={blocked}", f"{rule.key}={default}"])
    for value in rule.values if not rule.excluded else ("[clicks.csv]",):
        config = load_config(None, [f"{rule.other}={value}", f"{rule.key}={default}"])
        value = (str(Path("clicks.csv").resolve()),) if rule.excluded else value
        assert getattr(config.data if rule.key.startswith("data") else config.train, rule.other.split(".")[1]) == value


# ----------------------------------------------------------------------------- presets, ablations, saved configs


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_preset_builds(path):
    config = load_config(path)
    # stricter than load_config (non-default file keys): no key a preset writes, defaults included, is inapplicable
    check_applicable(config, given_keys(read_config(path)), str(path))
    assert config.method == read_config(path)["method"]["name"]


def test_a_saved_config_is_a_valid_config_and_set_keys_on_it_are_checked(tmp_path):
    """A run's config.yaml holds every key (expand: false with every expand_* key at its default): it loads as
    CONFIG (and on --resume), while a --set of an expand_* key on it is refused."""
    config = load_config(next(p for p in CONFIGS if p.name == "thumos14_sfnet_full.yaml"))
    saved = config.to_dict()
    with pytest.raises(InputError, match="does not apply"):  # every key counted as given would refuse it
        check_applicable(build_config(saved), given_keys(saved))
    path = tmp_path / "config.yaml"
    save_config(config, path)
    assert load_config(path).method_options == config.method_options
    with pytest.raises(InputError, match=r"method.expand_step=10: does not apply with method.expand=false"):
        load_config(path, ["method.expand_step=10"])


def test_resume_refuses_a_set_key_that_cannot_apply(tmp_path, capsys):
    """`train --resume` reads the run's own config.yaml unchecked but checks its --set (before any work)."""
    from pointtal.cli import main

    run = tmp_path / "run"
    run.mkdir()
    save_config(load_config(None, ["method.expand=false"]), run / "config.yaml")
    assert main(["train", "--out", str(run), "--resume", "--set", "method.radius=2"]) == 2
    assert (
        "method.radius=2: does not apply with method.expand=false (anchor expansion is off)" in capsys.readouterr().err
    )


@pytest.mark.parametrize("path", SODA_PRESETS, ids=[p.name for p in SODA_PRESETS])
def test_every_ablation_variant_builds(path):
    base = read_config(path)
    built = {(key, v.name): variant_config(base, [], v, 0) for key, study in STUDIES.items() for v in study.variants}
    m1 = built[("9", "none")]  # the preset's distill_weight stays in the M=1 row: it applies to the other rows
    assert m1.method_options.n_networks == 1 and "distill_weight" in base["method"]
    assert len(built) == sum(len(s.variants) for s in STUDIES.values())


def test_ablation_refuses_a_variant_key_and_a_user_set_that_cannot_apply():
    base = read_config(SODA_PRESETS[0])
    bad = Variant("bad", "bad", ("method.n_networks=1", "method.distill_distance=l2"))
    with pytest.raises(
        InputError,
        match=r"table variant bad: method\.distill_distance=l2: does not apply with "
        r"method\.n_networks=1",
    ):
        variant_config(base, [], bad, 0)
    with pytest.raises(InputError, match=r"CONFIG and --set: data\.gaussian_std=0\.02: does not apply"):
        variant_config(base, ["data.gaussian_std=0.02"], STUDIES["12"].variants[0], 0)
