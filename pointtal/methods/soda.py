"""SODA (docs/methods.md §3): CASNet, astute background response and self-distillation.

The engine drives this class through the `Method` contract only:
  * training and test videos are resampled to a fixed T = `resample_t` snippets;
  * `forward` -> `SODAOutput` (class activation logits of the M networks);
  * `loss` -> {"total", "video", "frame", "distill", "video_master"};
  * `scores` -> master network's softmax CAS and softmax video scores;
  * `localize` -> multi-threshold OIC proposals + NMS (pointtal/localization/soda.py).

Shapes: B videos, T snippets, D feature width, H hidden width, C action classes (+1 background column 0),
M networks (network 0 in code = "network 1", the master, in the paper).

Self-distillation runs the M CASNets as one stacked network: the first convolution, whose input is the same
for all networks, is one conv `D -> M*H`; the next two are grouped convolutions (`groups=M`). Parameters are
stored with a leading M axis (`weight1[m]` is network m's first kernel), so slicing `[:1]` gives the master.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pointtal.applies import Applies
from pointtal.data.samplers import ResampleSampler
from pointtal.localization.soda import DEFAULT_THRESHOLDS, localize_soda
from pointtal.methods.base import Batch, Detections, Method, PointDataset, Scores, check_options
from pointtal.methods.layers import topk_counts

Aggregation = Literal["topk", "average", "temporal_softmax", "category_softmax"]


@dataclass(frozen=True)
class Options:
    """SODA switches. Defaults are the paper's THUMOS14 setting; [choice] marks what the text leaves open."""

    # --- batches (§3.3)
    resample_t: int = 750  # every video is resampled to this many snippets (one random snippet per bin in training)
    # --- network (§3.1)
    hidden: int = 2048  # H, width of the two temporal convolutions [choice]
    kernel_size: int = 3  # temporal kernel of the first two convolutions (zero "same" padding) [choice: padding]
    dropout: float = 0.7  # dropout before the classifier convolution (training only)
    init: Literal["default", "xavier"] = "default"  # [choice] PyTorch's Conv1d init, or Xavier-uniform + zero bias
    n_networks: int = 2  # M CASNets; network 1 is the master, M = 1 disables self-distillation
    # --- aggregation and losses (§3.2)
    eta: float = 0.125  # top-k ratio: k = max(1, floor(T * eta)) with T the video's valid length
    aggregation: Aggregation = "topk"  # see `aggregate`
    background_label: Literal[0, 1] = 0  # y_0 in the video loss: 0 = "astute background response", 1 = baseline
    frame_loss: bool = True  # point (frame) loss on annotated action and background snippets
    frame_normalization: Literal["batch", "video"] = "batch"  # [choice] N_a pooled over the batch, or per video
    distill_weight: float = 0.6  # lambda
    distill_distance: Literal["l1", "l2", "kl"] = "l1"  # see `distillation_loss`
    distill_target: Literal["cas", "video"] = (
        "cas"  # distil the CAS (default) or the video-level scores (Table 9; see `distillation_loss`)
    )
    distill_normalized: bool = True  # [choice] P = softmax over classes; False: raw logits (not with "kl")
    distill_detach_master: bool = False  # [choice] False: L_sd's gradient reaches every network incl. the master
    # --- inference (§3.4, master network only)
    tau_cls: float = 0.25  # keep classes with video score > tau_cls (else the best one)
    scale: int = 24  # temporal upsampling factor of the CAS before thresholding
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS  # 0.0, 0.025, ..., 0.225
    outer_ratio: float = 0.25  # outer region length on each side, as a fraction of the proposal
    gamma: float = 0.2  # weight of the video score in a proposal's score
    nms_tiou: float = 0.7  # per-class NMS threshold (suppress tIoU > nms_tiou)

    # keys that apply only under a condition (pointtal.config.check_applicable refuses them elsewhere)
    APPLIES: ClassVar[tuple[Applies, ...]] = (
        *(
            Applies(key, "n_networks", (1,), "one network has nothing to distil", excluded=True)
            for key in (
                "distill_weight",
                "distill_distance",
                "distill_target",
                "distill_normalized",
                "distill_detach_master",
            )
        ),
        Applies("eta", "aggregation", ("topk",), "eta is the top-k ratio of the topk aggregation"),
        Applies("frame_normalization", "frame_loss", (True,), "there is no frame loss to normalise"),
    )

    def __post_init__(self):
        checks = [
            (self.resample_t >= 1, "resample_t", "must be >= 1"),
            (self.hidden >= 1, "hidden", "must be >= 1"),
            (self.kernel_size >= 1 and self.kernel_size % 2 == 1, "kernel_size", "must be odd and >= 1"),
            (0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)"),
            (self.n_networks >= 1, "n_networks", "must be >= 1"),
            (0.0 < self.eta <= 1.0, "eta", "must be in (0, 1]"),
            (self.distill_weight >= 0.0, "distill_weight", "must be >= 0"),
            (
                self.distill_normalized or self.distill_distance != "kl",
                "distill_normalized",
                "must be true with distill_distance=kl (KL needs probabilities)",
            ),
            (0.0 <= self.tau_cls <= 1.0, "tau_cls", "must be in [0, 1]"),
            (self.scale >= 1, "scale", "must be >= 1"),
            (
                len(self.thresholds) >= 1 and all(0.0 <= t <= 1.0 for t in self.thresholds),
                "thresholds",
                "must be non-empty, each in [0, 1] (thresholds on probabilities)",
            ),
            (self.outer_ratio >= 0.0, "outer_ratio", "must be >= 0"),
            (self.gamma >= 0.0, "gamma", "must be >= 0 (weight of the video score)"),
            (0.0 <= self.nms_tiou <= 1.0, "nms_tiou", "must be in [0, 1]"),
        ]
        check_options(self, checks)


@dataclass
class SODAOutput:
    """What `SODA.forward` returns."""

    cas_logits: torch.Tensor  # (M', B, T, C+1) raw class activations; M' = M in training, 1 (master) in eval
    mask: torch.Tensor  # (B, T) bool


# ----------------------------------------------------------------------------- network
class CASNets(nn.Module):
    """M independent CASNets run as one stacked network (conv D->H k, ReLU; conv H->H k, ReLU; dropout;
    conv H->C+1 k1), each with its own random initialisation drawn from the global torch RNG."""

    def __init__(
        self,
        n_networks: int,
        in_dim: int,
        hidden: int,
        n_outputs: int,
        kernel_size: int,
        dropout: float,
        init: str,
    ):
        super().__init__()
        m, k = n_networks, kernel_size
        self.n_networks = m
        self.hidden = hidden
        self.n_outputs = n_outputs  # C+1
        self.kernel_size = k
        self.dropout = dropout
        self.weight1 = nn.Parameter(torch.empty(m, hidden, in_dim, k))
        self.bias1 = nn.Parameter(torch.empty(m, hidden))
        self.weight2 = nn.Parameter(torch.empty(m, hidden, hidden, k))
        self.bias2 = nn.Parameter(torch.empty(m, hidden))
        self.weight3 = nn.Parameter(torch.empty(m, n_outputs, hidden, 1))
        self.bias3 = nn.Parameter(torch.empty(m, n_outputs))
        for weight, bias in (
            (self.weight1, self.bias1),
            (self.weight2, self.bias2),
            (self.weight3, self.bias3),
        ):
            _init_conv_(weight, bias, init)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, n_networks: int) -> torch.Tensor:
        """x (B, D, T) already zeroed on padding, mask (B, T) -> logits (n, B, T, C+1) of the first n networks.

        Hidden activations are zeroed on padding so each video sees the same zero padding it would alone.
        """
        n, h, k = n_networks, self.hidden, self.kernel_size
        keep = mask[:, None, :].to(x.dtype)  # (B, 1, T)
        weight1 = self.weight1[:n].reshape(n * h, -1, k)  # (n*H, D, k): one conv, the input is shared
        weight2 = self.weight2[:n].reshape(n * h, h, k)  # (n*H, H, k): grouped, network m sees its own H
        weight3 = self.weight3[:n].reshape(-1, h, 1)  # (n*(C+1), H, 1): grouped
        z = F.relu(F.conv1d(x, weight1, self.bias1[:n].reshape(-1), padding=k // 2)) * keep  # (B, n*H, T)
        z = F.relu(F.conv1d(z, weight2, self.bias2[:n].reshape(-1), padding=k // 2, groups=n))  # (B, n*H, T)
        z = F.dropout(z, self.dropout, self.training)
        z = F.conv1d(z, weight3, self.bias3[:n].reshape(-1), groups=n)  # (B, n*(C+1), T)
        b, _, t = z.shape
        return z.view(b, n, self.n_outputs, t).permute(1, 0, 3, 2)  # (n, B, T, C+1)


def _init_conv_(weight: torch.Tensor, bias: torch.Tensor, init: str) -> None:
    """Initialise stacked conv kernels (M, out, in, k) as M independent Conv1d layers would be.

    "default": PyTorch's Conv1d init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
    "xavier": Xavier-uniform, U(-sqrt(6/(fan_in+fan_out))), zero bias. Fans are per network (in*k, out*k).
    """
    _, fan_out_ch, fan_in_ch, k = weight.shape
    fan_in, fan_out = fan_in_ch * k, fan_out_ch * k
    with torch.no_grad():
        if init == "xavier":
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            weight.uniform_(-bound, bound)
            bias.zero_()
        else:
            bound = 1.0 / math.sqrt(fan_in)
            weight.uniform_(-bound, bound)
            bias.uniform_(-bound, bound)


# ----------------------------------------------------------------------------- aggregation and losses
def topk_k(lengths: torch.Tensor, eta: float) -> torch.Tensor:
    """k = max(1, floor(T * eta)) per video from valid lengths (B,) -> (B,) long (epsilon-safe floor).
    The product T * eta (not T / (1 / eta)), floored by the shared rule."""
    return topk_counts(lengths.double() * eta, 1.0, "floor")


def aggregate(cas: torch.Tensor, mask: torch.Tensor, method: str, eta: float) -> torch.Tensor:
    """Video-level class scores s (..., B, C+1) from class activations cas (..., B, T, C+1), valid snippets only.

    * "topk": s_c = mean of the k largest cas[t, c], k = max(1, floor(T_valid * eta)).
    * "average": global average pooling, s_c = (1/T) sum_t cas[t, c].
    * "temporal_softmax": s_c = sum_t w[t, c] cas[t, c], w[:, c] = softmax over t of cas[:, c].
    * "category_softmax": s_c = sum_t p[t, c] cas[t, c] / sum_t p[t, c], p[t, :] = softmax over classes of
      cas[t, :] (a mean weighted by each snippet's probability of class c).
    """
    valid = mask[..., None]  # (B, T, 1)
    lengths = mask.sum(-1)  # (B,)
    if method == "topk":
        k = topk_k(lengths, eta)  # (B,)
        top = cas.masked_fill(~valid, float("-inf")).topk(int(k.max()), dim=-2).values  # (..., B, kmax, C+1)
        rank = torch.arange(top.shape[-2], device=cas.device)  # (kmax,)
        take = rank[None, :] < k[:, None]  # (B, kmax)
        return torch.where(take[..., None], top, 0.0).sum(-2) / k[:, None].to(cas.dtype)
    if method == "average":
        return torch.where(valid, cas, 0.0).sum(-2) / lengths.clamp(min=1)[:, None].to(cas.dtype)
    if method == "temporal_softmax":
        weight = torch.softmax(cas.masked_fill(~valid, float("-inf")), dim=-2)  # (..., B, T, C+1)
        return torch.where(valid, weight * cas, 0.0).sum(-2)
    if method == "category_softmax":
        prob = torch.where(valid, torch.softmax(cas, dim=-1), 0.0)  # (..., B, T, C+1)
        return (prob * cas).sum(-2) / prob.sum(-2).clamp(min=1e-12)
    raise ValueError(f"aggregation={method!r} is not one of topk, average, temporal_softmax, category_softmax")


def video_targets(video_labels: torch.Tensor, background_label: int) -> tuple[torch.Tensor, torch.Tensor]:
    """L1-normalised video targets (B, C+1) with y_0 = background_label, and which videos have any label (B,).

    Videos whose target is all zero (no action, background label 0) are skipped by the video loss.
    """
    y = video_labels.clone()
    y[:, 0] = float(background_label)
    total = y.sum(-1, keepdim=True)  # (B, 1)
    return y / total.clamp(min=1e-12), total[:, 0] > 0


def video_loss(video_logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of softmax(s) (M, B, C+1) against target (B, C+1), mean over valid videos: (M,)."""
    ce = -(target * F.log_softmax(video_logits, dim=-1)).sum(-1)  # (M, B)
    return (ce * valid).sum(-1) / valid.sum().clamp(min=1)


def frame_loss(
    cas: torch.Tensor, point_labels: torch.Tensor, annotated: torch.Tensor, normalization: str
) -> torch.Tensor:
    """-(1/N_a) sum_{annotated t, c} a[t, c] log softmax_c(cas)[t, c] for each network: (M,).

    cas (M, B, T, C+1), point_labels (B, T, C+1) (mean one-hot rows, background points in column 0),
    annotated (B, T). "batch": N_a = annotated snippets of the whole batch; "video": per-video mean, then
    mean over videos with at least one point. No annotated snippet -> 0.
    """
    ce = -(point_labels * F.log_softmax(cas, dim=-1)).sum(-1) * annotated  # (M, B, T)
    if normalization == "batch":
        return ce.sum((-2, -1)) / annotated.sum().clamp(min=1)
    per_video = annotated.sum(-1)  # (B,)
    video_mean = ce.sum(-1) / per_video.clamp(min=1)  # (M, B)
    return video_mean.sum(-1) / (per_video > 0).sum().clamp(min=1)


def distillation_loss(
    logits: torch.Tensor,
    mask: torch.Tensor,
    present: torch.Tensor,
    distance: str,
    normalized: bool,
    detach_master: bool,
) -> torch.Tensor:
    """Self-distillation between the master (index 0) and networks 1..M-1, averaged over the batch: scalar.

    logits (M, B, T, C+1) on the CAS, or (M, B, C+1) on video scores (then T = 1 and no mask); mask (B, T);
    present (B, C+1) bool: the action classes C* of each video (column 0 False).
    P = softmax over classes of the logits (or the raw logits when not normalized). Per video:
      L1: 1/(T (M-1)) sum_{c in C*, t, m} |P1[c,t] - Pm[c,t]|
      L2: the same with (P1 - Pm)^2
      KL: 1/(T (M-1)) sum_{t, m} KL(P1[:,t] || Pm[:,t]), over all C+1 classes [choice: C* is not used,
          KL needs the full distribution]
    with T the video's valid length; the batch value is the mean over all B videos (a video without any
    action class contributes 0) [choice]. M = 1 -> 0.
    """
    n = logits.shape[0]
    if n < 2:
        return logits.new_zeros(())
    if logits.dim() == 3:  # video scores: one "snippet" per video
        logits, mask = logits[:, :, None, :], torch.ones_like(mask[:, :1])
    valid = mask.to(logits.dtype)  # (B, T)
    if distance == "kl":
        log_p = F.log_softmax(logits, dim=-1)  # (M, B, T, C+1)
        master = log_p[:1].detach() if detach_master else log_p[:1]
        per_snippet = (master.exp() * (master - log_p[1:])).sum(-1)  # (M-1, B, T)
    else:
        p = torch.softmax(logits, dim=-1) if normalized else logits
        master = p[:1].detach() if detach_master else p[:1]
        diff = master - p[1:]  # (M-1, B, T, C+1)
        diff = diff.abs() if distance == "l1" else diff.square()
        per_snippet = (diff * present[None, :, None, :].to(diff.dtype)).sum(-1)  # (M-1, B, T)
    per_video = (per_snippet * valid).sum((0, 2)) / (valid.sum(-1).clamp(min=1) * (n - 1))  # (B,)
    return per_video.mean()


# ----------------------------------------------------------------------------- the method
class SODA(Method[SODAOutput]):
    """SODA: M CASNets trained with video + point losses and master-to-peer self-distillation."""

    name = "soda"
    Options = Options

    def __init__(self, options: Options, in_dim: int, n_classes: int):
        super().__init__(options, in_dim, n_classes)
        self.casnets = CASNets(
            options.n_networks,
            in_dim,
            options.hidden,
            n_classes + 1,
            options.kernel_size,
            options.dropout,
            options.init,
        )

    def training_sampler(self, dataset: PointDataset, batch_size: int, seed: int, phase: int = 0) -> ResampleSampler:
        return ResampleSampler(dataset, batch_size, seed, self.options.resample_t)

    @property
    def inference_length(self) -> int:
        return self.options.resample_t

    def training_length(self, longest: int) -> tuple[int, str]:
        return self.options.resample_t, "method.resample_t"

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> SODAOutput:
        """features (B, T, D), mask (B, T) -> logits of all M networks in training, of the master in eval.

        [choice] Evaluation runs only the master (§3.4 uses nothing else), which also makes a model holding
        only the master's weights (see `load_inference_state_dict`) score exactly like the full one.
        """
        x = (features * mask[..., None].to(features.dtype)).transpose(1, 2)  # (B, D, T)
        n = self.options.n_networks if self.training else 1
        return SODAOutput(self.casnets(x, mask, n), mask)

    def loss(self, output: SODAOutput, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        """sum_m (L_vid^m + L_frame^m) + lambda * L_sd; the other keys are detached, for logging."""
        o = self.options
        logits = output.cas_logits.float()  # (M, B, T, C+1)
        mask = batch.mask
        video_logits = aggregate(logits, mask, o.aggregation, o.eta)  # (M, B, C+1)
        target, has_label = video_targets(batch.video_labels.float(), o.background_label)
        vid = video_loss(video_logits, target, has_label)  # (M,)
        if o.frame_loss:
            frame = frame_loss(logits, batch.point_labels.float(), batch.point_mask & mask, o.frame_normalization)
        else:
            frame = logits.new_zeros(logits.shape[0])
        if o.distill_weight > 0 and logits.shape[0] > 1:
            present = batch.video_labels > 0
            present[:, 0] = False  # C*: action classes only
            source = logits if o.distill_target == "cas" else video_logits
            distill = distillation_loss(
                source, mask, present, o.distill_distance, o.distill_normalized, o.distill_detach_master
            )
        else:
            distill = logits.new_zeros(())
        total = vid.sum() + frame.sum() + o.distill_weight * distill
        return {
            "total": total,
            "video": vid.sum().detach(),
            "video_master": vid[0].detach(),
            "frame": frame.sum().detach(),
            "distill": distill.detach(),
        }

    def scores(self, output: SODAOutput, mask: torch.Tensor) -> Scores:
        """Master network only: cas = softmax over classes (B, T, C+1), video_scores = softmax(aggregate) (B, C+1)."""
        master = output.cas_logits[:1].float()  # (1, B, T, C+1)
        video_logits = aggregate(master, mask, self.options.aggregation, self.options.eta)[0]  # (B, C+1)
        return Scores(cas=torch.softmax(master[0], dim=-1), video_scores=torch.softmax(video_logits, dim=-1))

    def localize(self, cas: np.ndarray, actionness: np.ndarray | None, video_scores: np.ndarray) -> Detections:
        """cas (T, C+1) softmax over the video's real snippets, video_scores (C+1,); actionness is unused."""
        o = self.options
        return localize_soda(
            cas,
            video_scores,
            tau_cls=o.tau_cls,
            scale=o.scale,
            thresholds=o.thresholds,
            outer_ratio=o.outer_ratio,
            gamma=o.gamma,
            nms_tiou=o.nms_tiou,
        )

    # --- checkpoints: the master alone is enough for inference
    def inference_state_dict(self) -> dict[str, torch.Tensor]:
        """The master network's weights only: every parameter sliced to its first network (leading axis 1).

        This is exactly the `state_dict()` of a SODA built with `n_networks=1` (same keys), so it loads into
        one directly, and into a SODA with any M through `load_inference_state_dict` or `load_state_dict`.
        """
        return {key: value[:1].detach().clone() for key, value in self.state_dict().items()}

    def load_inference_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load master-only weights (from `inference_state_dict`) into network 1; the others keep their values
        (irrelevant for scoring: evaluation runs only the master)."""
        own = self.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(f"SODA inference state dict: missing {missing}, unexpected {unexpected}")
        with torch.no_grad():
            for key, value in state.items():
                if tuple(value.shape) != (1, *own[key].shape[1:]):
                    raise ValueError(
                        f"SODA inference state dict: {key} has shape {tuple(value.shape)}, "
                        f"expected {(1, *own[key].shape[1:])}"
                    )
                own[key][:1].copy_(value)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """A full state dict loads normally; a master-only one (leading axis 1 while M > 1) loads into the
        master, so an engine that only knows `load_state_dict` can evaluate from an inference checkpoint."""
        if self.options.n_networks > 1 and _is_master_only(state_dict, self.state_dict()):
            self.load_inference_state_dict(state_dict)
            return nn.modules.module._IncompatibleKeys([], [])
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def _is_master_only(state: dict, own: dict) -> bool:
    """Same keys as `own`, every tensor with leading axis 1 where own's has M > 1."""
    return set(state) == set(own) and all(
        state[key].dim() == own[key].dim() and state[key].shape[0] == 1 for key in own
    )
