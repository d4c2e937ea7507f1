"""`pointtal sweep`: a hyper-parameter sweep over any config keys, as a study of the ablation engine.

`--grid KEY=V1,V2,...` (repeatable) gives each key's values; the variants are every combination (full grid) or,
with `--zip`, the i-th value of every key together. Each variant is a `Variant` whose overrides are
`KEY=VALUE`, so a sweep is run, reused, resumed, parallelised and tabulated exactly as an `ablate` table is
(pointtal.studies.runner): OUT/<name>/<variant>/seed<k>/ run directories, OUT/table_<name>.md/.json (and .png
when one numeric key is swept). Variants that differ only in inference-only keys are derived from one
trained run per seed (pointtal.engine.raw): such a sweep trains once per seed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from pointtal.config import parse_override
from pointtal.errors import InputError
from pointtal.studies.ablation import Study, Variant


def split_values(text: str) -> list[str]:
    """'a,[1,2],b' -> ['a', '[1,2]', 'b']: commas inside brackets or braces belong to the value."""
    values, depth, current = [], 0, ""
    for char in text:
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        if char == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += char
    values.append(current)
    return [v.strip() for v in values]


def parse_grid(spec: str) -> tuple[str, list[str]]:
    """'KEY=V1,V2' -> (KEY, [V1, V2]); each value is parsed as a `--set` value is (YAML)."""
    if "=" not in spec:
        raise InputError(f"--grid {spec}: give KEY=V1,V2,... (e.g. --grid train.lr=0.001,0.0003)")
    key, text = spec.split("=", 1)
    key = key.strip()
    values = split_values(text)
    if not key or not text.strip() or any(v == "" for v in values):
        raise InputError(f"--grid {spec}: give KEY=V1,V2,... with no empty value")
    if len(set(values)) != len(values):
        raise InputError(f"--grid {spec}: a value is repeated")
    for value in values:
        parse_override(f"{key}={value}")  # malformed YAML names the key here
    return key, values


def _dir_part(text: str) -> str:
    text = re.sub(r"[\[\](){}'\" ]", "", text)  # list values: [0.3,0.5] -> 0.3-0.5
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", text).strip("-") or "v"


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def grid_study(
    grids: Sequence[str], zipped: bool = False, name: str = "sweep", user_overrides: Sequence[str] = ()
) -> Study:
    """The study of a sweep: one variant per combination (or per zipped position) of the grids' values."""
    parsed = [parse_grid(g) for g in grids]
    keys = [k for k, _ in parsed]
    if not parsed:
        raise InputError("sweep: give at least one --grid KEY=V1,V2,...")
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise InputError(f"--grid {repeated[0]}: given twice; list all its values in one --grid")
    fixed = {".".join(parse_override(o)[0]) for o in user_overrides}
    both = [k for k in keys if k in fixed]
    if both:
        raise InputError(f"--grid {both[0]}: also given with --set; a swept key takes its values from --grid only")
    if zipped:
        lengths = {len(v) for _, v in parsed}
        if len(lengths) > 1:
            raise InputError(
                "--zip: every --grid needs the same number of values, got "
                + ", ".join(f"{k}: {len(v)}" for k, v in parsed)
            )
        combos = list(zip(*(v for _, v in parsed), strict=True))
    else:
        combos = list(itertools.product(*(v for _, v in parsed)))
    leaves = [k.rsplit(".", 1)[-1] for k in keys]
    shown = [leaf if leaves.count(leaf) == 1 else key for leaf, key in zip(leaves, keys, strict=True)]
    variants, names = [], set()
    for combo in combos:
        name_ = _dir_part("_".join(f"{s}={v}" for s, v in zip(shown, combo, strict=True)))
        base, i = name_, 2
        while name_ in names:
            name_, i = f"{base}-{i}", i + 1
        names.add(name_)
        x = _number(combo[0]) if len(keys) == 1 else None
        variants.append(
            Variant(
                name_,
                ", ".join(f"{k}={v}" for k, v in zip(keys, combo, strict=True)),
                tuple(f"{k}={v}" for k, v in zip(keys, combo, strict=True)),
                x=x,
            )
        )
    numeric = len(keys) == 1 and all(v.x is not None for v in variants)
    if not numeric:
        variants = [Variant(v.name, v.label, v.overrides) for v in variants]
    title = f"Sweep over {' x '.join(keys)}" if not zipped else f"Sweep over ({', '.join(keys)}) zipped"
    return Study(
        name,
        title,
        tuple(variants),
        plot_x=keys[0] if numeric else None,
        paper="",
        methods=None,
        note=f"{len(variants)} variants ({'zipped' if zipped else 'full grid'}).",
    )
