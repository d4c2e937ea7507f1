"""HR-Pro's losses, the official training code: stage 1's video scores, focal point / background loss,
prototype contrastive loss and the online prototype memory update; stage 2's completeness-score and
boundary-regression losses."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from pointtal.methods.hrpro.network import InstanceOutput, refine
from pointtal.methods.layers import topk_counts, topk_or_mean

if TYPE_CHECKING:
    pass


# ----------------------------------------------------------------------------- stage 1 losses and memory
def video_scores(
    class_scores: torch.Tensor, mask: torch.Tensor, r_act: int, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, C) top-k mean of s_c, k = max(1, T_i // r_act); with labels (B, C), absent classes take the mean over
    the video instead (`layers.topk_or_mean`, shared with LACP)."""
    return topk_or_mean(class_scores, mask, topk_counts(mask.sum(1), r_act, "floor"), labels)


def focal_frame_loss(cas: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-video focal BCE: sum_t weight_t sum_k (|target - p|^2 BCE(p, target))[t, k] / (sum_t weight_t + 1e-6).

    cas, target (B, T, C+1); weight (B, T) -> (B,)."""
    focal = ((1 - cas) * target + cas * (1 - target)) ** 2
    bce = F.binary_cross_entropy(cas, target, reduction="none")
    return ((focal * bce).sum(-1) * weight).sum(1) / (weight.sum(1) + 1e-6)


def contrastive_loss(
    embedded: torch.Tensor,
    prototypes: torch.Tensor,
    act_seed: torch.Tensor,
    bkg_seed: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    temperature: float,
    regions: str = "code",
) -> torch.Tensor:
    """Per-video prototype contrastive loss (B,).

    sim_k(region) = mean over the region's snippets of exp(cos(embedding, prototype_k) / temperature). For each
    labelled class c with action seeds: 0.5 * -log(a_c / sum_k a_k) + 0.5 * -log(a_c / (a_c + g_c)), a =
    sim(class-c seeds), g = sim(background seeds); summed and divided by the number of labelled classes.
    As the official `extract_region_feat`, a seed set covering none or all of the video counts as absent;
    a video without background seeds gives 0. `regions` "code" reads the seed runs as that function does:
    a run reaching the video's end stops one snippet early (its range ends at T-2), so the last snippet
    never counts and a one-snippet run at the end is dropped; a seed set left empty by that is absent too.
    "all" averages over every seed. prototypes (C, D) shared, or (B, C, D): the memory each video saw.
    """
    valid = mask.sum(1, keepdim=True)  # (B, 1)
    protos = F.normalize(prototypes, dim=-1)
    protos = protos.t() if protos.dim() == 2 else protos.transpose(1, 2)  # (D, C) or (B, D, C)
    # cos = (e / max(|e|, 1e-12)) . p as F.normalize, with the division after the product: no (B, T, D) pass
    norm = torch.linalg.vector_norm(embedded, dim=-1, keepdim=True).clamp_min(1e-12)  # (B, T, 1)
    sim = torch.exp((embedded @ protos) / norm / temperature)  # (B, T, C)
    n_act, n_bkg = act_seed.sum(1), bkg_seed.sum(1, keepdim=True)  # (B, C), (B, 1): the runs' changes
    changes_act, changes_bkg = (n_act > 0) & (n_act < valid), (n_bkg > 0) & (n_bkg < valid)
    if regions == "code":
        before_end = (torch.arange(mask.shape[1], device=mask.device) < valid - 1).to(act_seed.dtype)  # (B, T)
        act_seed, bkg_seed = act_seed * before_end.unsqueeze(-1), bkg_seed * before_end
        n_act, n_bkg = act_seed.sum(1), bkg_seed.sum(1, keepdim=True)
    a = torch.einsum("btc,btk->bck", act_seed, sim) / n_act.clamp(min=1).unsqueeze(-1)  # (B, C, C)
    g = torch.einsum("bt,btk->bk", bkg_seed, sim) / n_bkg.clamp(min=1)  # (B, C)
    present = (labels > 0) & changes_act & (n_act > 0)  # (B, C)
    own = torch.where(present, torch.diagonal(a, dim1=1, dim2=2), 1.0)  # (B, C); 1 keeps absent terms finite
    term = 0.5 * -torch.log(own / torch.where(present, a.sum(-1), 1.0)) + 0.5 * -torch.log(
        own / torch.where(present, own + g, 1.0)
    )
    per_video = torch.where(present, term, 0).sum(1) / labels.sum(1).clamp(min=1)
    has_bkg = (changes_bkg & (n_bkg > 0))[:, 0]
    return torch.where(has_bkg, per_video, 0)


def sequential_memory_update(
    prototypes: torch.Tensor, embedded: torch.Tensor, act_seed: torch.Tensor, labels: torch.Tensor, momentum: float
) -> torch.Tensor:
    """The memory after the official per-video updates, applied in batch order, as one closed form.

    Video b updates class c (labelled, with action seeds) by P_c <- (1 - m) P_c + m f_bc, f_bc the mean
    embedding of its class-c seeds. n updates compose to (1 - m)^n P_c + sum_b m (1 - m)^(later updates) f_bc.
    prototypes (C, D), embedded (B, T, D) (detached), act_seed (B, T, C), labels (B, C) -> (C, D).
    """
    count = act_seed.sum(1)  # (B, C)
    update = ((labels > 0) & (count > 0)).to(embedded.dtype)  # (B, C)
    mean = torch.einsum("btc,btd->bcd", act_seed, embedded) / count.clamp(min=1).unsqueeze(-1)  # (B, C, D)
    later = update.flip(0).cumsum(0).flip(0) - update  # (B, C) updates of class c after video b
    weight = update * momentum * (1 - momentum) ** later  # (B, C)
    return (1 - momentum) ** update.sum(0).unsqueeze(-1) * prototypes + torch.einsum("bc,bcd->cd", weight, mean)


def segment_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """tIoU (B, M, K) of a (B, M, 2) with b (B, K, 2): intersection / (union + 1e-6), negatives -> 0."""
    inter = torch.minimum(a[..., 1:2], b[..., 1].unsqueeze(1)) - torch.maximum(a[..., 0:1], b[..., 0].unsqueeze(1))
    union = (a[..., 1] - a[..., 0]).unsqueeze(-1) + (b[..., 1] - b[..., 0]).unsqueeze(1) - inter
    return torch.clamp(inter / (union + 1e-6), min=0)


def instance_losses(
    output: InstanceOutput,
    proposals: torch.Tensor,
    proposal_mask: torch.Tensor,
    draw: torch.Tensor,
    pseudo: torch.Tensor,
    pseudo_mask: torch.Tensor,
    iou_thresh: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boundary-regression and completeness-score losses, each the mean over videos of a per-video value.

    iou_gt = best tIoU of each proposal with the video's pseudo labels (0 when none). Regression: smooth-L1
    of (best tIoU of the refined proposal, 1) over proposals with iou_gt >= thresh. Score: smooth-L1 of
    (predicted completeness, iou_gt) over the proposals with iou_gt >= thresh plus a random share of the
    others (each kept when its draw in [0, 1) exceeds 1 - min(1, n_high / n_low)). Either is 0 for a video
    with no selected proposal. proposals (B, M, 2), masks (B, M) / (B, K), draw (B, M), pseudo (B, K, 2).
    """
    valid = pseudo_mask.unsqueeze(1)  # (B, 1, K), K >= 1 (the sampler pads an empty list to one masked row)
    iou_gt = torch.where(valid, segment_iou(proposals, pseudo), 0).amax(-1)  # (B, M)
    refined = refine(proposals, output.start_reg, output.end_reg)
    refined_iou = torch.where(valid, segment_iou(refined, pseudo), 0).amax(-1)  # (B, M)
    high = (iou_gt >= iou_thresh) & proposal_mask  # (B, M)
    low = (iou_gt < iou_thresh) & proposal_mask
    reg = F.smooth_l1_loss(refined_iou, torch.ones_like(refined_iou), reduction="none")
    reg = (reg * high).sum(1) / high.sum(1).clamp(min=1)
    n_high, n_low = high.sum(1, keepdim=True).float(), low.sum(1, keepdim=True).float()
    ratio = torch.where(n_low > 0, torch.clamp(n_high / n_low.clamp(min=1), max=1.0), 1.0)
    chosen = high | (low & (draw * low > 1 - ratio))
    score = F.smooth_l1_loss(output.iou, iou_gt, reduction="none")
    score = (score * chosen).sum(1) / chosen.sum(1).clamp(min=1)
    return reg.mean(), score.mean()
