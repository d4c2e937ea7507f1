"""Regenerate tests/golden/lacp_*.npz by running the official LACP code on CPU (see tests/golden/README.md).

    python tests/golden/make_lacp.py /tmp/official/Learning-Action-Completeness-from-Points --commit SHA

The official modules (model.py, train.py, utils.py, search.py, test.py) are imported from the checkout; only
`.cuda()` is patched (a no-op) and the network's hard-coded 2048-wide embedding is replaced by a narrow one
(HIDDEN) after construction so the copied weights stay small. Writes:
  lacp_network.npz  inputs, initial weights, forward outputs, every loss term per video, gradients of each
                    term's batch mean, the feature-sampling calls (runs and picked snippets);
  lacp_search.npz   crafted fused CAS + points -> select_seed, greedy_search_with_id (pseudo labels, scores);
  lacp_post.npz     crafted fused CAS + video scores -> test.test's proposals after NMS (per video).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import types

import numpy as np
import torch
from _official import cpu_only, head_commit, official_path, ragged, save
from torch import nn

D, HIDDEN, C = 16, 32, 3  # feature width, embedding width, action classes
LENGTHS = [37, 52, 24, 45]


def random_points(rng: np.random.Generator, t: int, n: int) -> np.ndarray:
    """(t, C) one-hot points at n distinct snippets (never adjacent, so every video has stretches between)."""
    points = np.zeros((t, C), dtype=np.float32)
    where = np.sort(rng.choice(np.arange(2, t - 2, 4), size=n, replace=False))
    for i in where:
        points[i, rng.integers(0, C)] = 1
    return points


def random_pseudo(rng: np.random.Generator, t: int, labels: np.ndarray) -> np.ndarray:
    """(t, C) pseudo labels with a few runs per labelled class (some ending with a one-snippet run)."""
    seq = np.zeros((t, C), dtype=np.float32)
    for c in np.flatnonzero(labels):
        cuts = np.sort(rng.choice(np.arange(1, t), size=int(rng.integers(2, 7)), replace=False))
        value = bool(rng.integers(0, 2))
        for s, e in zip(np.r_[0, cuts], np.r_[cuts, t], strict=False):
            seq[s:e, c] = value
            value = not value
    return seq


def network(mod) -> dict[str, np.ndarray]:
    """Forward, the five loss terms and their gradients on four videos, one forward each (train.train)."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    net = mod["model"].Model(D, C, r_act=8)
    net.cls_module.conv_1[0] = nn.Conv1d(D, HIDDEN, kernel_size=3, stride=1, padding=1)
    net.cls_module.classifier[0] = nn.Conv1d(HIDDEN, C + 1, kernel_size=1, stride=1, padding=0, bias=False)
    with torch.no_grad():
        net.cls_module.classifier[0].weight.mul_(6.0)  # spread the CAS so seeds and runs are non-trivial
    net.eval()  # dropout off: the only randomness left is feature sampling (recorded below)
    params = dict(net.named_parameters())
    out: dict[str, np.ndarray] = {f"w_{k}": v.detach().numpy().copy() for k, v in params.items()}
    feats, points, pseudo, labels = [], [], [], []
    for t in LENGTHS:
        feats.append(rng.normal(size=(t, D)).astype(np.float32))
        points.append(random_points(rng, t, int(rng.integers(2, 5))))
        lab = (points[-1].max(0) > 0).astype(np.float32)
        pseudo.append(random_pseudo(rng, t, lab))
        labels.append(lab)
    labels[0][(int(labels[0].argmax()) + 1) % C] = 1  # a labelled class without points or pseudo runs
    utils, train = mod["utils"], mod["train"]
    calls: list[tuple[int, int, int, list[int]]] = []  # (video, start, end exclusive, picks)
    real_sampling, real_randint = utils.feature_sampling, np.random.randint
    current = [0]

    def sampling(features, start, end, num_divide):
        picks: list[int] = []

        def randint(lo, hi):
            picks.append(int(real_randint(lo, hi)))
            return picks[-1]

        np.random.randint = randint
        try:
            value = real_sampling(features, start, end, num_divide)
        finally:
            np.random.randint = real_randint
        calls.append((current[0], int(start), int(end), picks))
        return value

    utils.feature_sampling = sampling
    criterion = train.Total_loss([1, 0.5, 1, 1, 1])
    np.random.seed(0)
    terms = {k: [] for k in ["loss_vid", "loss_frame", "loss_frame_bkg", "loss_score", "loss_feat", "loss_total"]}
    fused_all, feat_all, score_all = [], [], []
    for i in range(len(LENGTHS)):
        current[0] = i
        x = torch.from_numpy(feats[i]).unsqueeze(0)
        label = torch.from_numpy(labels[i]).unsqueeze(0)
        vid_score, fused, feature = net(x, label)
        stored = {"new_dense_anno": torch.from_numpy(pseudo[i]).unsqueeze(0)}
        _, loss = criterion(vid_score, fused, feature, stored, label, torch.from_numpy(points[i]).unsqueeze(0), 1)
        for k in terms:
            v = loss[k]
            terms[k].append(v if torch.is_tensor(v) else torch.tensor(float(v)))
        fused_all.append(fused[0].detach().numpy())
        feat_all.append(feature[0].detach().numpy())
        score_all.append(vid_score[0].detach().numpy())
    utils.feature_sampling = real_sampling
    for k, values in terms.items():
        mean = torch.stack([v.reshape(()) for v in values]).mean()  # train.train: sum / batch_size
        out[f"loss_{k[5:]}"] = np.array([float(v) for v in values], dtype=np.float64)
        grads = torch.autograd.grad(mean, list(params.values()), retain_graph=True, allow_unused=True)
        for name, g in zip(params, grads, strict=False):
            out[f"grad_{k[5:]}_{name}"] = np.zeros(params[name].shape, np.float32) if g is None else g.numpy()
    out["features"], out["offsets"] = ragged(feats)
    out["points"], _ = ragged(points)
    out["pseudo"], _ = ragged(pseudo)
    out["labels"] = np.stack(labels)
    out["fused"], _ = ragged(fused_all)  # (N, C+1) official order: classes, background last
    out["embedding"], _ = ragged(feat_all)
    out["video_scores"] = np.stack(score_all)  # training form (labels given)
    with torch.no_grad():
        out["video_scores_test"] = np.stack([net(torch.from_numpy(f).unsqueeze(0))[0][0].numpy() for f in feats])
    out["sample_video"] = np.array([c[0] for c in calls], dtype=np.int64)
    out["sample_start"] = np.array([c[1] for c in calls], dtype=np.int64)
    out["sample_end"] = np.array([c[2] for c in calls], dtype=np.int64)  # exclusive
    out["sample_picks"] = np.array([c[3] for c in calls], dtype=np.int64).reshape(len(calls), 3)
    return out


def crafted_cas(rng: np.random.Generator, t: int, points: np.ndarray) -> np.ndarray:
    """(t, C+1) fused CAS (background last) with actions around the points: seeds and searches have work."""
    act = np.full((t, C), 0.05) + rng.uniform(0, 0.1, (t, C))
    bkg = rng.uniform(0.9, 1.0, t)
    for i, c in zip(*np.nonzero(points), strict=False):
        lo, hi = max(0, i - int(rng.integers(1, 5))), min(t, i + int(rng.integers(2, 6)))
        act[lo:hi, c] = rng.uniform(0.5, 0.95, hi - lo)
        bkg[lo:hi] = rng.uniform(0.0, 0.15, hi - lo)
    noise = rng.random(t) < 0.15
    bkg[noise] = rng.uniform(0.3, 0.99, int(noise.sum()))
    fused = act * (1 - bkg[:, None])
    return np.concatenate([fused, bkg[:, None]], axis=1).astype(np.float32)


def search(mod, n_videos: int = 10, budget: int = 25) -> dict[str, np.ndarray]:
    """utils.select_seed and search.greedy_search_with_id on crafted CAS (videos where the official search
    asserts, two action groups without background between them, are drawn again)."""
    rng = np.random.default_rng(1)
    utils, srch = mod["utils"], mod["search"]
    cas_l, pts_l, act_l, bkg_l, pseudo_l, score_l = [], [], [], [], [], []
    while len(cas_l) < n_videos:
        t = int(rng.integers(20, 61))
        points = random_points(rng, t, int(rng.integers(1, min(6, (t - 4) // 4))))
        cas = crafted_cas(rng, t, points)
        act_seed, bkg_seed = utils.select_seed(
            torch.from_numpy(cas).unsqueeze(0), torch.from_numpy(points).unsqueeze(0)
        )
        try:
            pseudo, score = srch.greedy_search_with_id(
                budget, torch.from_numpy(cas), act_seed[0].clone(), bkg_seed[0].clone()
            )
        except AssertionError:
            continue
        cas_l.append(cas)
        pts_l.append(points)
        act_l.append(act_seed[0].numpy())
        bkg_l.append(bkg_seed[0].numpy())
        pseudo_l.append(pseudo.numpy())
        score_l.append(float(score))
    out = {"budget": np.array(budget)}
    out["cas"], out["offsets"] = ragged(cas_l)
    out["points"], _ = ragged(pts_l)
    out["act_seed"], _ = ragged(act_l)
    out["bkg_seed"], _ = ragged(bkg_l)
    out["pseudo"], _ = ragged(pseudo_l)
    out["sequence_score"] = np.array(score_l, dtype=np.float64)
    return out


class _Replay(nn.Module):
    """Stands in for the network in test.test: returns the stored (video score, fused CAS, None) in turn."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs, self.i = outputs, 0

    def forward(self, x, labels=None):
        value = self.outputs[self.i]
        self.i += 1
        return value


def post(mod, n_videos: int = 4) -> dict[str, np.ndarray]:
    """test.test's post-processing (upsampling, thresholds, outer-inner scores, NMS) on crafted CAS."""
    rng = np.random.default_rng(2)
    test_mod = mod["test"]
    cas_l, score_l, names = [], [], []
    for v in range(n_videos):
        t = int(rng.integers(20, 50))
        points = random_points(rng, t, int(rng.integers(1, 4)))
        cas_l.append(crafted_cas(rng, t, points))
        score = rng.uniform(0.0, 1.0, C).astype(np.float32)
        score[v % C] = max(score[v % C], 0.6)
        if v == n_videos - 1:
            score[:] = rng.uniform(0.0, 0.4, C)  # no class above the threshold: the arg-max class is used
        score_l.append(score)
        names.append(f"video_{v}")
    outputs = [
        (torch.from_numpy(s).unsqueeze(0), torch.from_numpy(c).unsqueeze(0), None)
        for s, c in zip(score_l, cas_l, strict=False)
    ]
    items = [
        (None, torch.zeros(1, len(c), D), torch.zeros(1, C), None, None, [n], torch.tensor([len(c)]))
        for c, n in zip(cas_l, names, strict=False)
    ]
    loader = types.SimpleNamespace(dataset=items, __iter__=None)

    class Loader:
        dataset = items

        def __iter__(self):
            return iter(items)

    captured = {}
    real_dump = json.dump
    test_mod.json = types.SimpleNamespace(dump=lambda obj, f: captured.update(obj))
    test_mod.ANETdetection = lambda *a, **k: types.SimpleNamespace(evaluate=lambda: (np.zeros(7), None))
    with tempfile.TemporaryDirectory() as tmp:
        config = types.SimpleNamespace(
            class_thresh=0.5,
            num_classes=C,
            scale=24,
            feature_fps=25,
            act_thresh_cas=np.arange(0.0, 0.25, 0.025),
            act_thresh_agnostic=np.arange(0.5, 0.725, 0.025),
            output_path=tmp,
            gt_path=None,
        )
        logger = types.SimpleNamespace(log_value=lambda *a: None)
        info = {
            k: []
            for k in ["step", "test_acc", "average_mAP[0.1:0.7]", "average_mAP[0.1:0.5]", "average_mAP[0.3:0.7]"]
            + [f"mAP@{x:.1f}" for x in np.linspace(0.1, 0.7, 7)]
        }
        test_mod.test(_Replay(outputs), config, logger, Loader(), info, 1)
    del loader, real_dump
    names_to_id = {v: k for k, v in mod["config"].class_dict.items()}
    rows, video = [], []
    for v, name in enumerate(names):
        for r in captured["results"][name]:
            rows.append([r["segment"][0], r["segment"][1], names_to_id[r["label"]], r["score"]])
            video.append(v)
    out = {
        "video_scores": np.stack(score_l),
        "detections": np.array(rows, dtype=np.float64),
        "detection_video": np.array(video, dtype=np.int64),
    }
    out["cas"], out["offsets"] = ragged(cas_l)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("official", help="path of the official LACP checkout (outside this repository)")
    parser.add_argument("--commit", help="the commit the checkout was exported from (else git rev-parse HEAD)")
    args = parser.parse_args()
    root = official_path(args.official)
    cpu_only()
    sys.argv = [sys.argv[0]]
    mod = {name: __import__(name) for name in ["config", "utils", "model", "train", "search", "test"]}
    commit = np.array(head_commit(root, args.commit))
    save("lacp_network", {**network(mod), "commit": commit})
    save("lacp_search", {**search(mod), "commit": commit})
    save("lacp_post", {**post(mod), "commit": commit})


if __name__ == "__main__":
    main()
