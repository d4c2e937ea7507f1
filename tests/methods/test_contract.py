"""The method contract as the engine drives it: phases with their own optimizer and batches, state kept across
`--resume` at and inside a phase, detections straight from a method, and configs of the former layout."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from conftest import interrupt_training_at, tiny_raw_config

from pointtal.config import build_config
from pointtal.data.samplers import CropSampler, ResampleSampler
from pointtal.engine.checkpoint import load_checkpoint
from pointtal.engine.trainer import train
from pointtal.errors import InputError
from pointtal.localization.detections import Detections
from pointtal.methods import METHODS
from pointtal.methods.base import Phase
from pointtal.methods.sfnet import SFNet
from pointtal.methods.soda import SODA
from pointtal.methods.weak import Options as WeakOptions
from pointtal.methods.weak import Weak

FIRST_STEPS = 4


@dataclass(frozen=True)
class TwoPhaseOptions(WeakOptions):
    second_steps: int = 3
    second_lr: float = 1e-2
    second_batch: int = 2


class TwoPhase(Weak):
    """The weak baseline, then a second phase that trains only the fusion weights at another lr and batch."""

    name = "twophase"
    Options = TwoPhaseOptions

    def __init__(self, options, in_dim, n_classes):
        super().__init__(options, in_dim, n_classes)
        self.register_buffer("phase_calls", torch.zeros(2))  # start_phase calls per phase
        self.register_buffer("cas_mean", torch.zeros(()))  # state computed in start_phase(1)
        self.register_buffer("batch_seen", torch.zeros(2))  # largest batch seen per phase

    def phases(self, train_config, n_videos):
        (first,) = super().phases(train_config, n_videos)
        o = self.options
        return first, Phase("second", o.second_steps, o.second_lr, o.second_batch, 0.0)

    def start_phase(self, index, context):
        self.phase_calls[index] += 1
        if index == 1:
            self.cas_mean.fill_(float(context.predict_cas().mean()))

    def phase_parameters(self, index):
        return list(self.parameters()) if index == 0 else [self.net.cas_weights]

    def loss(self, output, batch, step):
        phase = int(step >= FIRST_STEPS)
        self.batch_seen[phase] = max(float(self.batch_seen[phase]), float(batch.features.shape[0]))
        return super().loss(output, batch, step)


@pytest.fixture
def two_phase(monkeypatch):
    monkeypatch.setitem(METHODS, "twophase", TwoPhase)


def _raw(tiny_data, **train):
    raw = tiny_raw_config(tiny_data, "weak", steps=FIRST_STEPS, checkpoint_every=1, **train)
    raw["method"]["name"] = "twophase"
    return raw


@pytest.mark.parametrize("stop", [FIRST_STEPS, FIRST_STEPS + 1])  # at the phase boundary, and inside phase 2
def test_two_phases_resume_at_or_inside_the_second_equals_an_uninterrupted_run(
    two_phase, tiny_data, tmp_path, monkeypatch, stop
):
    config = build_config(_raw(tiny_data))
    whole = train(config, tmp_path / "whole")
    assert whole.step == FIRST_STEPS + 3
    final = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["model"]
    assert final["phase_calls"].tolist() == [1.0, 1.0]  # each phase started exactly once
    assert final["batch_seen"].tolist() == [4.0, 2.0]  # each phase has its own batch size
    assert float(final["cas_mean"]) != 0.0

    with monkeypatch.context() as patch:
        interrupt_training_at(patch, stop)
        with pytest.raises(KeyboardInterrupt):
            train(config, tmp_path / "cut")
    at_stop = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert at_stop["step"] == stop
    train(config, tmp_path / "cut", resume=True)
    resumed = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["model"]
    assert resumed.keys() == final.keys()
    assert all(torch.equal(resumed[k], final[k]) for k in final), "resumed run differs from the uninterrupted one"

    if stop == FIRST_STEPS:  # the checkpoint at the boundary holds phase 1's final weights
        frozen = [k for k in final if k.startswith("net.") and k != "net.cas_weights"]
        assert frozen and all(torch.equal(at_stop["model"][k], final[k]) for k in frozen)  # phase 2 froze them
        assert not torch.equal(at_stop["model"]["net.cas_weights"], final["net.cas_weights"])  # ... not these
        lr = [g["lr"] for g in at_stop["optimizer"]["param_groups"]]
        assert lr == [1e-3]  # the checkpoint still carries phase 1's optimizer


def test_phase_two_optimizer_has_the_phase_learning_rate(two_phase, tiny_data, tmp_path):
    train(build_config(_raw(tiny_data)), tmp_path / "run")
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert [g["lr"] for g in saved["optimizer"]["param_groups"]] == [1e-2]
    assert len(saved["optimizer"]["param_groups"][0]["params"]) == 1  # only cas_weights


class FixedProposals(Weak):
    """A proposal method: segments come from `detect`, not from thresholding a CAS."""

    name = "fixedproposals"

    def localize(self, cas, actionness, video_scores):
        raise AssertionError("the engine must call detect, which this method overrides")

    def detect(self, output, videos):
        return [Detections(np.array([[1.0, 3.5, 2.0, 0.25 + v.row]]), np.zeros((0, 3))) for v in videos]


def test_a_method_that_overrides_detect_gives_its_segments(monkeypatch, tiny_data, tmp_path):
    monkeypatch.setitem(METHODS, "fixedproposals", FixedProposals)
    raw = tiny_raw_config(tiny_data, "weak", steps=2)
    raw["method"]["name"] = "fixedproposals"
    config = build_config(raw)
    train(config, tmp_path / "run")
    results = json.loads((tmp_path / "run" / "predictions.json").read_text())["results"]
    snippet_sec = config.data.stride / config.data.fps
    classes = sorted({s["label"] for segments in results.values() for s in segments})
    assert len(results) > 1 and len(classes) == 1  # class index 2 is one class name for every video
    for segments in results.values():
        (segment,) = segments
        assert segment["segment"] == pytest.approx([1.0 * snippet_sec, 3.5 * snippet_sec])
        assert segment["score"] in (0.25, 1.25, 2.25, 3.25, 4.25, 5.25, 6.25, 7.25)  # + its row in the batch


def test_methods_own_their_batches(tiny_data):
    from pointtal.engine.setup import load_run_data

    sfnet = build_config(tiny_raw_config(tiny_data, "sfnet"))
    soda = build_config(tiny_raw_config(tiny_data, "soda"))
    data = load_run_data(sfnet, test=False)
    crop = SFNet(sfnet.method_options, data.train.dim, 3).training_sampler(data.train, 4, 0)
    resample = SODA(soda.method_options, data.train.dim, 3).training_sampler(data.train, 4, 0)
    assert isinstance(crop, CropSampler) and crop.windows == (750, 2800)
    assert isinstance(resample, ResampleSampler) and resample.size == 64
    assert resample(0).features.shape[1] == 64
    assert SODA(soda.method_options, data.train.dim, 3).inference_length == 64
    assert SFNet(sfnet.method_options, data.train.dim, 3).inference_length is None


def test_configs_of_the_former_layout_move_batching_keys_to_the_method(tiny_data):
    raw = tiny_raw_config(tiny_data, "sfnet")
    raw["data"].update(t_max=40, t_max_alt=90, resample_t=33)  # resample_t: SF-Net has none (ignored, warned)
    config = build_config(raw)
    assert (config.method_options.t_max, config.method_options.t_max_alt) == (40, 90)
    assert "t_max" not in config.to_dict()["data"]
    soda = tiny_raw_config(tiny_data, "soda")
    soda["data"]["resample_t"] = 32
    with pytest.raises(InputError, match=r"data.resample_t=32 and method.resample_t=64"):
        build_config(soda)
    del soda["method"]["resample_t"]
    assert build_config(soda).method_options.resample_t == 32


def test_excluded_videos_are_neither_trained_nor_evaluated(tiny_data, caplog):
    from pointtal.engine.setup import load_run_data

    raw = tiny_raw_config(tiny_data, "weak")
    whole = load_run_data(build_config(raw))
    dropped = (whole.train.video_ids[0], whole.test.video_ids[-1])
    raw["data"]["exclude_videos"] = [*dropped, "no_such_video"]
    with caplog.at_level("WARNING"):
        less = load_run_data(build_config(raw))
    assert less.train.video_ids == whole.train.video_ids[1:]
    assert less.test.video_ids == whole.test.video_ids[:-1]
    assert not set(dropped) & set(less.gt.videos)
    assert "no_such_video" in caplog.text


def test_every_preset_loads_and_the_lacp_hrpro_dataset_presets_follow_thumos14():
    import dataclasses
    from pathlib import Path

    from pointtal.config import load_config

    configs = Path(__file__).resolve().parents[2] / "configs"
    loaded = {path.stem: load_config(path) for path in sorted(configs.glob("*.yaml"))}
    assert len(loaded) >= 20
    data_of = {"gtea": "gtea_sfnet", "beoid": "beoid_sfnet", "activitynet13": "activitynet13_soda"}
    nms_key = {"lacp": "nms_extent", "hrpro": "soft_nms_offset"}
    for method in ("lacp", "hrpro"):
        reference = loaded[f"thumos14_{method}"]
        for dataset, sibling in data_of.items():
            config = loaded[f"{dataset}_{method}"]
            same = loaded[sibling]
            assert (config.data.fps, config.data.train_subset, config.data.test_subset, config.eval.tiou) == (
                same.data.fps,
                same.data.train_subset,
                same.data.test_subset,
                same.eval.tiou,
            )
            assert getattr(config.method_options, nms_key[method]) == pytest.approx(config.data.fps / 16)
            # everything else is the official THUMOS14 setting
            assert dataclasses.replace(config.method_options, **{nms_key[method]: 25 / 16}) == reference.method_options
            assert (config.train.steps, config.train.batch_size, config.train.lr) == (
                reference.train.steps,
                reference.train.batch_size,
                reference.train.lr,
            )
            assert config.data.exclude_videos == ()
