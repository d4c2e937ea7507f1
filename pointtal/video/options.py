"""Extraction settings, without torch: the CLI builds its parser from these and `pointtal --help` stays fast."""

from __future__ import annotations

from dataclasses import dataclass

from pointtal.errors import InputError

# torchvision video classifiers (RGB only): the head to drop and the feature width it leaves
TV_BACKBONES = {
    "r2plus1d_18": ("fc", 512),
    "s3d": ("classifier", 1024),
    "mvit_v2_s": ("head", 768),
    "swin3d_t": ("head", 768),
}
BACKBONES = ("i3d", *TV_BACKBONES)
I3D_DIM = 2048  # rgb 1024 | flow 1024


@dataclass(frozen=True)
class ExtractOptions:
    """Everything that decides the features' values (recorded in extract.json) plus how to run."""

    fps: float = 25.0
    stride: int = 16
    backbone: str = "i3d"
    flow: str = "tvl1"
    resize: int = 256
    crop: int = 224
    rgb_weights: str | None = None
    flow_weights: str | None = None
    raft_model: str = "raft_small"
    raft_weights: str | None = None
    random_init: bool = False
    seed: int = 0
    batch: int = 8  # snippets per forward pass
    device: str = "auto"


def feature_width(backbone: str) -> int:
    """D of the (T, D) features a backbone gives."""
    return I3D_DIM if backbone == "i3d" else TV_BACKBONES[backbone][1]


def streams_of(opts: ExtractOptions) -> tuple[str, ...]:
    """The streams the backbone's features join: I3D's rgb | flow halves, or RGB alone."""
    return ("rgb", "flow") if opts.backbone == "i3d" else ("rgb",)


def check_options(opts: ExtractOptions) -> None:
    """Refuse settings that cannot give features, before any video is decoded."""
    if opts.backbone not in BACKBONES:
        raise InputError(f"--backbone {opts.backbone!r}: expected one of {', '.join(BACKBONES)}")
    if not (0 < opts.fps <= 1000) or opts.stride < 1 or opts.crop < 8 or opts.resize < opts.crop or opts.batch < 1:
        raise InputError(
            f"--fps {opts.fps} --stride {opts.stride} --resize {opts.resize} --crop {opts.crop} "
            f"--batch {opts.batch}: need fps in (0, 1000], stride >= 1, resize >= crop >= 8, batch >= 1"
        )
    if opts.random_init:
        return
    needed = {"--rgb-weights": opts.rgb_weights}
    if opts.backbone == "i3d":
        needed["--flow-weights"] = opts.flow_weights
        if opts.flow == "raft":
            needed["--raft-weights"] = opts.raft_weights
    missing = [flag for flag, value in needed.items() if not value]
    if missing:
        raise InputError(
            f"backbone {opts.backbone} needs weights: pass {' and '.join(missing)} "
            "(or --random-init for a smoke test with random weights)"
        )
