"""Optical flow between consecutive frames: TV-L1 (OpenCV, the default) or RAFT (torchvision).

The released THUMOS14 I3D features (W-TALC, BaSNet, SF-Net, LACP) were extracted from TV-L1 flow, so `tvl1`
is the default; RAFT is much faster on a GPU but gives features of another distribution. Flow fields are in
pixels, shape (N, H, W, 2) = (dx, dy) from frame i to frame i + 1.
"""

from __future__ import annotations

import numpy as np
import torch

from pointtal.errors import InputError

FLOW_METHODS = ("tvl1", "raft")
RAFT_MODELS = ("raft_small", "raft_large")


def import_torchvision(what: str):
    """torchvision, or a one-line error naming why it cannot be imported (e.g. a CUDA build beside CPU torch)."""
    try:
        import torchvision  # noqa: F401 (the optional extra `video-tv`)
        from torchvision import models

        return models
    except Exception as err:  # a torchvision built for another torch fails at import in several ways
        raise InputError(
            f"{what} needs torchvision built for torch {torch.__version__}: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from None


class TVL1:
    """OpenCV's dual TV-L1 flow on grayscale frames (OpenCV's default parameters)."""

    name = "tvl1"

    def __init__(self):
        try:
            import cv2
        except ImportError as err:
            raise InputError(f"--flow tvl1 needs opencv-contrib-python-headless ({err})") from None
        if not hasattr(cv2, "optflow"):
            raise InputError(
                "--flow tvl1 needs cv2.optflow: install opencv-contrib-python-headless "
                "(not opencv-python, which lacks the contrib modules)"
            )
        self._cv2 = cv2
        self._tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()

    def __call__(self, frames: np.ndarray) -> np.ndarray:  # (N+1, H, W, 3) uint8 -> (N, H, W, 2) float32
        cv2 = self._cv2
        gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        # one C++ call per frame pair: OpenCV's solver has no batched form
        return np.stack([self._tvl1.calc(a, b, None) for a, b in zip(gray[:-1], gray[1:], strict=False)])


class RAFT:
    """torchvision's RAFT, batched over frame pairs; weights from a state-dict file or torchvision's enum."""

    name = "raft"

    def __init__(self, model: str, weights: str | None, device: torch.device, batch: int = 16):
        if model not in RAFT_MODELS:
            raise InputError(f"--raft-model {model!r}: expected one of {', '.join(RAFT_MODELS)}")
        flow_models = import_torchvision("--flow raft").optical_flow
        build = getattr(flow_models, model)
        if weights in ("DEFAULT", "default"):  # torchvision downloads them (needs internet once)
            net = build(weights="DEFAULT")
        else:
            net = build(weights=None)
            if weights:
                from pointtal.video.i3d import read_state_dict

                try:
                    net.load_state_dict(read_state_dict(weights, "--raft-weights"))
                except RuntimeError as err:
                    raise InputError(
                        f"--raft-weights {weights}: not {model} weights ({str(err).splitlines()[0]})"
                    ) from None
        self.net, self.device, self.batch = net.to(device).eval(), device, batch

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray) -> np.ndarray:  # (N+1, H, W, 3) uint8 -> (N, H, W, 2) float32
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1
        h, w = x.shape[2:]
        # RAFT needs sides that are multiples of 8, and >= 128 px for its 4-level correlation pyramid
        pad_h, pad_w = max(128, h + -h % 8) - h, max(128, w + -w % 8) - w
        x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        out = []
        for i in range(0, len(x) - 1, self.batch):
            a, b = x[i : i + self.batch + 1][:-1], x[i + 1 : i + self.batch + 1]
            out.append(self.net(a, b)[-1][:, :, :h, :w].float())
        return torch.cat(out).permute(0, 2, 3, 1).cpu().numpy()


def flow_for_snippets(flow_fn, frames: np.ndarray, lookahead: np.ndarray | None) -> np.ndarray:
    """Flow for each of `frames` (N, H, W, 3): to the next frame, the lookahead frame for the last one; at the
    end of a video (no lookahead) the last frame repeats the previous flow. -> (N, H, W, 2)"""
    pairs = frames if lookahead is None else np.concatenate([frames, lookahead[None]])
    if len(pairs) < 2:
        return np.zeros((*frames.shape[:3], 2), np.float32)
    flow = flow_fn(pairs)
    if len(flow) < len(frames):
        flow = np.concatenate([flow, flow[-1:]])
    return flow.astype(np.float32, copy=False)


def build_flow(method: str, *, raft_model: str, raft_weights: str | None, device: torch.device):
    if method == "tvl1":
        return TVL1()
    if method == "raft":
        return RAFT(raft_model, raft_weights, device)
    raise InputError(f"--flow {method!r}: expected one of {', '.join(FLOW_METHODS)}")
