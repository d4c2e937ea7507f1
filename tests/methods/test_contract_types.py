"""The method boundary is typed: every method names its forward output, and batch, dataset and train config
have their real types, not `Any` (issue 20 item 4)."""

from __future__ import annotations

import typing

import pytest

from pointtal.config import TrainConfig
from pointtal.data.batch import Batch
from pointtal.data.dataset import PointDataset
from pointtal.data.samplers import Sampler
from pointtal.methods import METHODS
from pointtal.methods.base import Method, TrainSchedule


def output_type(cls) -> object:
    """The `Output` of `class X(Method[Output])`."""
    (base,) = [b for b in getattr(cls, "__orig_bases__", ()) if typing.get_origin(b) is Method]
    (output,) = typing.get_args(base)
    return output


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_names_its_output_and_takes_typed_inputs(name):
    cls = METHODS[name]
    output = output_type(cls)
    forward = typing.get_type_hints(cls.forward)
    assert forward["return"] == output  # forward returns the declared output ...
    for hook in ("loss", "scores", "detect"):  # ... and the hooks that read it take exactly that type
        if getattr(cls, hook) is not getattr(Method, hook):
            hints = typing.get_type_hints(getattr(cls, hook))
            assert hints["output"] in (output, *typing.get_args(output)), (name, hook)
    assert typing.get_type_hints(cls.loss)["batch"] is Batch
    sampler = typing.get_type_hints(cls.training_sampler)
    assert sampler["dataset"] is PointDataset
    assert typing.get_type_hints(cls.phases)["train"] is TrainSchedule
    assert typing.get_type_hints(cls.refresh_labels)["dataset"] is PointDataset
    for hook in ("forward", "loss", "scores", "detect", "training_sampler", "phases", "refresh_labels"):
        hints = typing.get_type_hints(getattr(cls, hook))
        assert typing.Any not in hints.values(), (name, hook, hints)


def test_the_train_config_is_a_train_schedule_and_samplers_are_samplers():
    config = TrainConfig()
    schedule: TrainSchedule = config  # structural: TrainConfig has what phases() reads
    assert all(
        isinstance(getattr(schedule, key), (int, float, type(None)))
        for key in ("steps", "epochs", "batch_size", "lr", "weight_decay")
    )
    ret = typing.get_type_hints(Method.training_sampler)["return"]
    assert ret is Sampler
