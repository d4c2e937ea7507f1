"""Size of HR-Pro's fidelity switches on one trained stage-1 model (docs/methods.md §6.5), and how often LACP's
search meets the case the official code asserts against (§5.5).

    python bench/fidelity_switches.py RUN_DIR [--batch 16] [--videos N]

For a LACP run: the fused CAS of every training video with the run's final weights, the official seed selection,
and the number of searched (video, class) sequences with two action groups and no background seed between them
(the official `greedy_search_with_id` fails its assert there; pointtal joins them into one action core).

RUN_DIR is a finished `pointtal train` run of HR-Pro (its checkpoint.pt holds the stage-1 weights and memory; the
training videos and points are read again from its config). On those weights, with dropout off, over the training
videos in batches of `--batch` whole videos:
* `contrastive_regions` code vs all: the stage-1 contrastive loss and its gradient w.r.t. the S-model's weights
  (relative difference, per parameter tensor; not the attention key biases, whose gradient is zero in exact
  arithmetic: softmax ignores a shift shared by all keys);
* `memory_update` video vs batch: one step's loss and memory from the same weights and memory;
* `ranking_point_time` exact vs centre: how many points of the reliability ranking match another proposal.
Writes one line per figure to stdout.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from pointtal.engine.predictor import load_trained
from pointtal.engine.setup import load_run_data
from pointtal.localization.hrpro import match_points
from pointtal.methods.hrpro import contrastive_loss, select_seeds, sequential_memory_update


def batches(method, dataset, size):
    """(videos, Batch, points (B, T, C), labels (B, C)) over the dataset, whole videos, in order."""
    for videos, batch, _ in method._stage1_batches(dataset, torch.device("cpu"), size):
        points = ((batch.point_labels[..., 1:] > 0) & batch.mask.unsqueeze(-1)).float()
        yield videos, batch, points, batch.video_labels[:, 1:].float()


def contrastive_figures(method, dataset, size) -> None:
    o = method.options
    names, params = zip(*method.snippet.named_parameters(), strict=False)
    for p in params:
        p.requires_grad_(True)
    losses, worst, norms = {"code": [], "all": []}, [], {}
    for _, batch, points, labels in batches(method, dataset, size):
        with torch.enable_grad():
            out = method._snippet_forward(batch.features, batch.mask)
            act, bkg = select_seeds(out.cas[..., 0].detach(), points, batch.mask, o.seed_act_thresh, o.seed_bkg_thresh)
            grads = {}
            for regions in ("code", "all"):
                loss = contrastive_loss(
                    out.embedded, method.snippet.prototypes, act, bkg, labels, batch.mask, o.temperature, regions
                ).mean()
                losses[regions].append(float(loss.detach()))
                grads[regions] = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        for name, a, b in zip(names, grads["code"], grads["all"], strict=False):
            if a is not None and b is not None and float(b.norm()) > 0 and not name.endswith("key.bias"):
                worst.append(float((a - b).norm() / b.norm()))
                norms[name] = max(norms.get(name, 0.0), worst[-1])
    code, every = np.array(losses["code"]), np.array(losses["all"])
    print(
        f"contrastive_regions: loss code {code.mean():.4f} vs all {every.mean():.4f} (mean over {len(code)} batches); "
        f"|difference| mean {np.abs(code - every).mean():.2e}, max {np.abs(code - every).max():.2e}; gradient "
        f"relative difference per weight tensor and batch: median {np.median(worst):.3f}, 90th percentile "
        f"{np.percentile(worst, 90):.3f}, max {np.max(worst):.3f} "
        f"({max(norms, key=norms.get)})"
    )


def memory_figures(method, dataset, size) -> None:
    o = method.options
    start = method.snippet.prototypes.clone()
    gaps, shifts, loss_gaps, totals = [], [], [], []
    for _, batch, points, labels in batches(method, dataset, size):
        method.snippet.prototypes = start.clone()
        with torch.no_grad():
            out = method._forward_per_video(batch.features, batch.mask, points, labels)  # moves the memory
            per_video = method.snippet.prototypes.clone()
            loss_video = float(method.snippet_losses(out, batch)["total"])
            method.snippet.prototypes = start.clone()
            out = method._snippet_forward(batch.features, batch.mask)
            loss_batch = float(method.snippet_losses(out, batch)["total"])
            act, _ = select_seeds(out.cas[..., 0], points, batch.mask, o.seed_act_thresh, o.seed_bkg_thresh)
            after_batch = sequential_memory_update(start, out.embedded, act, labels, o.memory_momentum)
        gaps.append(float((per_video - after_batch).norm()))
        shifts.append(float((after_batch - start).norm()))
        loss_gaps.append(abs(loss_video - loss_batch))
        totals.append(loss_batch)
    method.snippet.prototypes = start
    print(
        f"memory_update: one step from the same weights, video vs batch: loss |difference| mean "
        f"{np.mean(loss_gaps):.2e} (loss {np.mean(totals):.4f}); memory |difference| / the step's memory move: "
        f"mean {np.mean(np.array(gaps) / np.maximum(shifts, 1e-12)):.2e}"
    )


def ranking_figures(method, dataset, size) -> None:
    changed = total = unmatched = 0
    for videos, batch, points, _ in batches(method, dataset, size):
        with torch.no_grad():
            out = method._snippet_forward(batch.features, batch.mask)
            scores = method.scores(out, batch.mask)
        cas, vid = scores.cas.numpy(), scores.video_scores.numpy()
        for row, v in enumerate(videos):
            n = int(dataset.n_snippets[v])
            raw = method._stage1_raw(cas[row, :n], vid[row])
            exact = match_points(raw, *method.ranking_points(dataset, int(v), points[row, :n].numpy()))
            centre_t, centre_c = np.nonzero(points[row, :n].numpy())
            centre = match_points(raw, centre_t + 0.5, centre_c + 1)
            if len(exact) != len(centre):  # several clicks on one (snippet, class): compare the matched sets
                changed += len(set(exact.tolist()) ^ set(centre.tolist()))
                total += max(len(exact), len(centre))
                continue
            changed += int((exact != centre).sum())
            total += len(exact)
            unmatched += int((exact < 0).sum())
    print(
        f"ranking_point_time: {changed} of {total} points match another proposal with exact times than with "
        f"snippet centres ({unmatched} unmatched with exact times)"
    )


def lacp_figures(method, dataset, size) -> None:
    from pointtal.methods.lacp.method import padded
    from pointtal.methods.lacp.search import _spans, select_seeds

    o = method.options
    sequences = joined = videos_hit = several = 0
    for start in range(0, len(dataset.offsets) - 1, size):
        offsets = dataset.offsets[start : start + size + 1]
        rows = slice(int(offsets[0]), int(offsets[-1]))
        feats, mask = padded(dataset.features[rows].float(), offsets - offsets[0])
        points, _ = padded((dataset.point_labels[rows, 1:] > 0).float(), offsets - offsets[0])
        with torch.no_grad():
            cas = method.scores(method(feats, mask), mask).cas  # (B, T, K) fused
        act_seed, bkg_seed = select_seeds(cas[..., 0], points, mask, o.act_thresh, o.bkg_thresh)
        a = (act_seed > 0) & mask.unsqueeze(-1)
        qv, qc = torch.nonzero(a.any(1), as_tuple=True)  # one sequence per (video, class) with an action seed
        act = a[qv, :, qc]
        bkg = (bkg_seed[qv] | (a.any(-1)[qv] & ~act)) & mask[qv] & ~act
        sp = _spans(act, bkg, mask[qv])
        lengths = mask[qv].sum(1, keepdim=True)
        between = sp.inside & (sp.prev >= 0) & (sp.nxt < lengths) & (sp.last < 0)  # (Q, T) no background seed
        hit = between.any(1)
        several += int((sp.inside & (sp.prev >= 0) & (sp.nxt < lengths)).any(1).sum())
        sequences += len(qv)
        joined += int(hit.sum())
        videos_hit += len(set(qv[hit].tolist()))
    print(
        f"lacp search: {joined} of {sequences} (video, class) sequences ({videos_hit} of "
        f"{len(dataset.offsets) - 1} videos) have two action groups without a background seed between them "
        f"(the official search's assert); {several} have two or more action groups"
    )


def first_videos(dataset, n: int):
    """The dataset cut to its first n videos (features, labels and point times)."""
    import dataclasses

    end = int(dataset.offsets[n])
    times = dataset.point_times
    if times is not None:
        keep = times.video < n
        times = dataclasses.replace(
            times, video=times.video[keep], position=times.position[keep], class_index=times.class_index[keep]
        )
    return dataclasses.replace(
        dataset,
        video_ids=dataset.video_ids[:n],
        geometries=dataset.geometries[:n],
        offsets=dataset.offsets[: n + 1],
        features=dataset.features[:end],
        video_labels=dataset.video_labels[:n],
        point_labels=dataset.point_labels[:end],
        truth_labels=dataset.truth_labels[:end],
        point_times=times,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--videos", type=int, default=0, help="only the first N training videos (0: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_trained(args.run_dir)
    method = loaded.method.eval()
    dataset = load_run_data(loaded.config, test=False).train
    if args.videos:
        dataset = first_videos(dataset, args.videos)
    if loaded.method.name == "lacp":
        lacp_figures(method, dataset, args.batch)
        return
    contrastive_figures(method, dataset, args.batch)
    memory_figures(method, dataset, args.batch)
    ranking_figures(method, dataset, args.batch)


if __name__ == "__main__":
    main()
