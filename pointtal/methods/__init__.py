"""Methods: one module per method holding its network and losses. The engine reads only `METHODS`."""

from __future__ import annotations

from typing import Any

from pointtal.errors import InputError
from pointtal.methods.actionformer import ActionFormer
from pointtal.methods.base import Detections, LabelRefresh, Method, Scores
from pointtal.methods.hrpro import HRPro
from pointtal.methods.lacp import LACP
from pointtal.methods.sfnet import SFNet
from pointtal.methods.soda import SODA
from pointtal.methods.weak import Weak

METHODS: dict[str, type[Method]] = {
    "actionformer": ActionFormer,
    "hrpro": HRPro,
    "lacp": LACP,
    "sfnet": SFNet,
    "soda": SODA,
    "weak": Weak,
}


def build_method(name: str, options: Any, in_dim: int, n_classes: int) -> Method:
    """The method `name` for features `in_dim` wide and `n_classes` action classes."""
    if name not in METHODS:
        raise InputError(f"method '{name}' is unknown; valid: {', '.join(sorted(METHODS))}")
    return METHODS[name](options, in_dim, n_classes)


__all__ = ["METHODS", "Detections", "LabelRefresh", "Method", "Scores", "build_method"]
