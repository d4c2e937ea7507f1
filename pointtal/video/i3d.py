"""Two-stream Inflated Inception-v1 (I3D, Carreira & Zisserman 2017), pointtal's own implementation.

Parameter names and shapes follow the widely used public PyTorch weight files (`rgb_imagenet.pt`,
`flow_imagenet.pt`: `Conv3d_1a_7x7.conv3d.weight`, `Mixed_3b.b1b.bn.running_mean`, `logits.conv3d.bias`, ...)
so those files load by name. Convolutions and max-pools use TensorFlow's "SAME" padding, as the network was
trained with it. A snippet's feature is the mean of the last Inception block's output over time and space:
for 16 frames at 224x224 that is exactly the reference (2, 7, 7) average pool, and it also works on the tiny
inputs the tests use.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pointtal.errors import InputError

BN_EPS = 1e-3  # the TensorFlow original's batch-norm epsilon

# (name, output channels of b0, b1a, b1b, b2a, b2b, b3b): the Inception-v1 block widths
INCEPTION_BLOCKS = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}

# The layer sequence: ("conv", name, out, kernel, stride) | ("pool", kernel, stride) | ("mixed", name)
LAYERS = (
    ("conv", "Conv3d_1a_7x7", 64, (7, 7, 7), (2, 2, 2)),
    ("pool", (1, 3, 3), (1, 2, 2)),
    ("conv", "Conv3d_2b_1x1", 64, (1, 1, 1), (1, 1, 1)),
    ("conv", "Conv3d_2c_3x3", 192, (3, 3, 3), (1, 1, 1)),
    ("pool", (1, 3, 3), (1, 2, 2)),
    ("mixed", "Mixed_3b"),
    ("mixed", "Mixed_3c"),
    ("pool", (3, 3, 3), (2, 2, 2)),
    ("mixed", "Mixed_4b"),
    ("mixed", "Mixed_4c"),
    ("mixed", "Mixed_4d"),
    ("mixed", "Mixed_4e"),
    ("mixed", "Mixed_4f"),
    ("pool", (2, 2, 2), (2, 2, 2)),
    ("mixed", "Mixed_5b"),
    ("mixed", "Mixed_5c"),
)


def same_padding(sizes: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> list[int]:
    """F.pad arguments (last dim first) for TensorFlow "SAME" padding: output size = ceil(size / stride)."""
    pad = []
    for size, k, s in zip(reversed(sizes), reversed(kernel), reversed(stride), strict=True):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pad += [total // 2, total - total // 2]  # the extra pixel goes after, as in TensorFlow
    return pad


class Unit3D(nn.Module):
    """Conv3d (no bias) + batch norm + ReLU with "SAME" padding; `conv3d` / `bn` are the public weight names."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel=(1, 1, 1),
        stride=(1, 1, 1),
        *,
        bn: bool = True,
        relu: bool = True,
        bias: bool = False,
    ):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(c_in, c_out, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(c_out, eps=BN_EPS, momentum=0.01) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W) -> (B, C', T', H', W')
        x = self.conv3d(F.pad(x, same_padding(x.shape[2:], self.kernel, self.stride)))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class SamePool(nn.Module):
    """Max-pool with "SAME" padding. Inputs are ReLU outputs (>= 0), so zero padding equals -inf padding."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(F.pad(x, same_padding(x.shape[2:], self.kernel, self.stride)), self.kernel, self.stride)


class Inception(nn.Module):
    """Four parallel branches (1x1 | 1x1->3x3 | 1x1->3x3 | pool->1x1) concatenated along channels."""

    def __init__(self, c_in: int, widths: tuple[int, ...]):
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(c_in, w0)
        self.b1a = Unit3D(c_in, w1a)
        self.b1b = Unit3D(w1a, w1b, (3, 3, 3))
        self.b2a = Unit3D(c_in, w2a)
        self.b2b = Unit3D(w2a, w2b, (3, 3, 3))
        self.b3a = SamePool((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(c_in, w3b)
        self.out_channels = w0 + w1b + w2b + w3b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


class InceptionI3d(nn.Module):
    """One I3D stream: `in_channels` 3 (RGB) or 2 (flow x, y); `features` gives (B, 1024) per snippet."""

    def __init__(self, in_channels: int = 3, num_classes: int = 400):
        super().__init__()
        self.in_channels = in_channels
        self.blocks: list[str | nn.Module] = []  # module names (have weights) or pools, in order
        channels = in_channels
        for layer in LAYERS:
            if layer[0] == "conv":
                _, name, c_out, kernel, stride = layer
                self.add_module(name, Unit3D(channels, c_out, kernel, stride))
                self.blocks.append(name)
                channels = c_out
            elif layer[0] == "pool":
                self.blocks.append(SamePool(layer[1], layer[2]))
            else:
                block = Inception(channels, INCEPTION_BLOCKS[layer[1]])
                self.add_module(layer[1], block)
                self.blocks.append(layer[1])
                channels = block.out_channels
        # Kinetics classifier of the weight files: loaded so the files load strictly, unused for features
        self.logits = Unit3D(channels, num_classes, bn=False, relu=False, bias=True)
        for module in self.modules():  # He init keeps activations O(1) through 60 layers (random-init features)
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")

    def stages(self, x: torch.Tensor):
        """Yield (name, output) after every layer: the per-block shape test walks this."""
        for i, block in enumerate(self.blocks):
            if isinstance(block, str):
                x = getattr(self, block)(x)
                yield block, x
            else:
                x = block(x)
                yield f"pool{i}", x

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W) -> (B, 1024)
        _, last = deque(self.stages(x), maxlen=1)[0]  # (B, 1024, T', H', W'), earlier outputs freed
        return last.mean(dim=(2, 3, 4))


class TwoStreamI3D(nn.Module):
    """RGB and flow I3D streams; a snippet's feature is rgb (1024) | flow (1024), the THUMOS14 release layout."""

    def __init__(self):
        super().__init__()
        self.rgb = InceptionI3d(3)
        self.flow = InceptionI3d(2)

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        # rgb (B, 3, T, H, W) in [-1, 1], flow (B, 2, T, H, W) in [-1, 1] -> (B, 2048)
        return torch.cat([self.rgb.features(rgb), self.flow.features(flow)], dim=1)


def read_state_dict(path: str | Path, flag: str) -> dict[str, torch.Tensor]:
    """A weight file's tensors by name; never unpickles arbitrary objects (weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{flag} {path}: file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt or non-tensor file fails in many ways; one line names it
        reason = (str(err).splitlines() or [""])[0].split(". ")[0]  # torch's advice to unpickle is not ours
        raise InputError(f"{flag} {path}: not a PyTorch weights file ({type(err).__name__}: {reason})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{flag} {path}: expected a state dict of tensors by parameter name")
    return {k.removeprefix("module."): v for k, v in state.items()}  # DataParallel saves a prefix


def load_stream_weights(model: InceptionI3d, path: str | Path, flag: str) -> None:
    """Load one stream strictly by name, with one error listing missing, unexpected and mis-shaped keys.

    `num_batches_tracked` buffers may be absent (the public files predate them). A classifier of another
    width (e.g. Charades' 157 classes) is accepted: the unused `logits` layer is resized to fit.
    """
    state = read_state_dict(path, flag)
    bias = state.get("logits.conv3d.bias")
    if bias is not None and bias.ndim == 1 and bias.shape[0] != model.logits.conv3d.out_channels:
        model.logits = Unit3D(model.logits.conv3d.in_channels, int(bias.shape[0]), bn=False, relu=False, bias=True)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or misshaped:
        parts = [
            f"{len(keys)} {what} (first: {', '.join(keys[:3])})"
            for what, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("mis-shaped, file vs model", misshaped),
            )
            if keys
        ]
        kind = "RGB (3-channel)" if model.in_channels == 3 else "flow (2-channel)"
        raise InputError(f"{flag} {path}: not an I3D {kind} weight file: {'; '.join(parts)}")
    model.load_state_dict({k: state.get(k, v) for k, v in expected.items()})
