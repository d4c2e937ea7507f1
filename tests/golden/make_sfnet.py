"""Regenerate tests/golden/sfnet_*.npz by running the official SF-Net code on CPU (see tests/golden/README.md).

    python tests/golden/make_sfnet.py /tmp/official/SF-Net --commit SHA

The official modules (model.py, train.py) are imported from the checkout with `.cuda()` and
`torch.set_default_tensor_type` made no-ops (model.py and train.py switch the default to CUDA at import).
The official network hard-codes 1024-wide RGB and flow streams (`inputs[:, :, :1024]`), whose weights are
34 MB: here its weights are zero except an H x H block of every layer (features likewise only fill their
first H columns of each stream), which makes it compute exactly what an H-wide network does; the fixture
stores those blocks. Writes:
  sfnet_network.npz  features (B, T, 2H) -> every output of SFNET.forward (eval: is_training=False);
  sfnet_losses.npz   logits of the three outputs + points -> video_loss, frame_loss (background mining),
                     act_loss of train_SF (values and gradients with respect to the logits);
  sfnet_expand.npz   crafted CAS + points -> anchor_expand (act_expand's per-video call, pv 0.95, radius 3):
                     "interior_*" points >= 5 snippets from the video's ends, "edge_*" points anywhere;
  sfnet_post.npz     eval.evaluate's inference per video: the classification score (softmax of the top-k mean,
                     k = ceil(T / 8), of each of the three outputs, summed) and eval.generate_segment (segments
                     and single frames: mean threshold, arg-max frames) on the network outputs of
                     sfnet_network.npz (actionness weight 2, the options.py default) and on crafted CAS and
                     actionness in three settings ("crafted_<s>_*": weight 2; weight 0 as `--use-anchor` off;
                     weight 2 with adjust_mean 0.8).
"""

from __future__ import annotations

import argparse
import sys
import types

import numpy as np
import torch
from _official import cpu_only, head_commit, official_path, ragged, save

H, C = 8, 4  # stream width, action classes (K = C + 1 with background)
WIDE = 1024  # the official stream width


def network(mod) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    net = mod["model"].SFNET(2 * WIDE, C + 1).eval()
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.zero_()
            block = tuple(slice(0, H) if s == WIDE else slice(None) for s in p.shape)
            small = rng.normal(0, 0.4, p[block].shape).astype(np.float32)
            if name in ("mul_r", "mul_f"):
                small = rng.uniform(0.5, 1.5, p.shape).astype(np.float32)
            if name in ("act_f", "act_r"):
                small = rng.uniform(0.2, 1.0, p.shape).astype(np.float32)
            p[block] = torch.from_numpy(small)
            out[f"w_{name}"] = small
    lengths = [23, 31, 17]
    feats = [rng.normal(size=(t, 2 * H)).astype(np.float32) for t in lengths]
    wide = torch.zeros(len(lengths), max(lengths), 2 * WIDE)
    for i, f in enumerate(feats):
        wide[i, : len(f), :H] = torch.from_numpy(f[:, :H])  # RGB half
        wide[i, : len(f), WIDE : WIDE + H] = torch.from_numpy(f[:, H:])  # flow half
    with torch.no_grad():  # one video per forward: a padded batch would let the convs read past a video's end
        outs = [net(wide[i : i + 1, : len(f)], "cpu", is_training=False) for i, f in enumerate(feats)]
    names = ["c_x_f", "cls_x_f", "c_x_r", "cls_x_r", "tcam", "a_x_f", "a_x_r", "a_x"]
    for k, name in enumerate(names):
        if name.startswith("c_x"):
            continue  # hidden features: 1024 wide
        out[name], _ = ragged([o[k][0].numpy() for o in outs])
    out["features"], out["offsets"] = ragged(feats)
    return out


def _segments(gen, cas: np.ndarray, act: np.ndarray, weight: float, adjust: float):
    """generate_segment as eval.evaluate calls it (threshold 'mean', frames at the arg-max)."""
    segs, frames = gen(
        cas.astype(np.float32),
        act.astype(np.float32),
        threshold_type="mean",
        adjust_mean=adjust,
        frame_type="max",
        act_weight=weight,
    )
    return np.array(segs, np.float64).reshape(-1, 4), np.array(frames, np.float64).reshape(-1, 3)


SETTINGS = {"w2": (2.0, 1.0), "w0": (0.0, 1.0), "adj": (2.0, 0.8)}  # (act_weight, adjust_mean)


def post(mod, net: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """eval.evaluate's per-video inference on the network's outputs, then generate_segment on crafted inputs."""
    gen = mod["eval"].generate_segment
    out: dict[str, np.ndarray] = {}
    scores, segs, frames = [], [], []
    offs = net["offsets"]
    for a, b in zip(offs[:-1], offs[1:], strict=True):
        t = b - a
        topk = int(np.ceil(t / 8))
        tmp = sum(
            torch.softmax(torch.from_numpy(net[n][a:b]).topk(topk, dim=0)[0].mean(0), 0).numpy()
            for n in ["cls_x_f", "cls_x_r", "tcam"]
        )
        scores.append(tmp)
        s, f = _segments(gen, net["tcam"][a:b, 1:], net["a_x"][a:b, 0], 2.0, 1.0)
        segs.append(s)
        frames.append(f)
    out["net_video_scores"] = np.stack(scores)
    out["net_segments"], out["net_segment_offsets"] = ragged(segs)
    out["net_frames"], out["net_frame_offsets"] = ragged(frames)
    rng = np.random.default_rng(6)
    cas_l, act_l = [], []
    for t in [6, 13, 25, 40, 60, 33, 18, 47]:
        cls = np.repeat(rng.integers(0, C, t // 3 + 1), 3)[:t]
        cas = rng.normal(0, 1.0, (t, C)) + 2.5 * np.eye(C)[cls] * (rng.random((t, 1)) < 0.7)
        cas_l.append(cas.astype(np.float32))
        act_l.append(rng.normal(0, 1.0, t).astype(np.float32))
    cas_l[3][:, 1:] -= 3.0  # one class far above the rest: the others are not kept
    cas_l[5][10:14, 0] = cas_l[5][10:14, 0].max() + 1.0  # a plateau: the frame is its first snippet
    out["crafted_cas"], out["crafted_offsets"] = ragged(cas_l)
    out["crafted_act"], _ = ragged([a[:, None] for a in act_l])
    for name, (weight, adjust) in SETTINGS.items():
        got = [
            _segments(gen, c, a if weight else np.zeros_like(a), weight, adjust)
            for c, a in zip(cas_l, act_l, strict=True)
        ]
        out[f"crafted_{name}_segments"], out[f"crafted_{name}_segment_offsets"] = ragged([g[0] for g in got])
        out[f"crafted_{name}_frames"], out[f"crafted_{name}_frame_offsets"] = ragged([g[1] for g in got])
    return out


def losses(mod) -> dict[str, np.ndarray]:
    """train_SF's loss calls on a padded batch (seq_len real snippets per video), tm = 7 (options.py)."""
    rng = np.random.default_rng(1)
    train = mod["train"]
    lengths = np.array([26, 9, 33, 4])  # the last is shorter than 5 snippets: skipped by video_loss
    t = int(lengths.max())
    k = C + 1
    logits = {
        n: torch.from_numpy(rng.normal(0, 1.5, (len(lengths), t, k)).astype(np.float32)).requires_grad_()
        for n in ["cls_x_r", "cls_x_f", "tcam"]
    }
    acts = {
        n: torch.from_numpy(rng.normal(0, 1.5, (len(lengths), t, 1)).astype(np.float32)).requires_grad_()
        for n in ["a_x_r", "a_x_f", "a_x"]
    }
    labels = np.zeros((len(lengths), k), np.float32)
    frame_ids, frame_labels = [], []
    for i, n in enumerate(lengths):
        ids = np.sort(rng.choice(n, size=int(rng.integers(1, 4)), replace=False))
        frame_ids.append(ids.tolist())
        for _ in ids:
            row = np.zeros(k, np.float32)
            row[1 + rng.integers(0, C)] = 1
            frame_labels.append(row)
            labels[i] = np.maximum(labels[i], row)
    labels[1, 1 + (int(labels[1, 1:].argmax()) + 1) % C] = 1  # a video label without a point
    flabels = torch.from_numpy(np.stack(frame_labels))
    lab = torch.from_numpy(labels)
    out: dict[str, np.ndarray] = {}
    for name, x in logits.items():
        v = train.video_loss(x, lengths, lab, "cpu")
        f = train.frame_loss(x, frame_ids, lengths, flabels, "cpu", background=True, tm=7)
        for term, value in [("video", v), ("frame", f)]:
            out[f"{term}_{name}"] = np.array(float(value.detach()))
            out[f"grad_{term}_{name}"] = torch.autograd.grad(value, x)[0].numpy()
    for name, x in acts.items():
        a = train.act_loss(x, frame_ids, lengths, "cpu", tm=7)
        out[f"act_{name}"] = np.array(float(a.detach()))
        out[f"grad_act_{name}"] = torch.autograd.grad(a, x)[0].numpy()[..., 0]
    out.update({n: x.detach().numpy() for n, x in logits.items()})
    out.update({n: x.detach().numpy()[..., 0] for n, x in acts.items()})
    out["lengths"], out["labels"] = lengths, labels
    points = np.zeros((len(lengths), t, k), np.float32)
    row = 0
    for i, ids in enumerate(frame_ids):
        for j in ids:
            points[i, j] = frame_labels[row]
            row += 1
    out["points"] = points
    return out


def expand(mod, n_videos: int = 6, seed: int = 2, margin: int = 0) -> dict[str, np.ndarray]:
    """Points at least `margin` snippets from either end of the video (margin 0: anywhere)."""
    rng = np.random.default_rng(seed)
    cas_l, pts_l, new_l = [], [], []
    for _ in range(n_videos):
        t = int(rng.integers(18, 40))
        cls = np.zeros(t, np.int64)
        pos = 0
        while pos < t:  # stretches of one arg-max class
            n = int(rng.integers(2, 8))
            cls[pos : pos + n] = rng.integers(0, C)
            pos += n
        cas = rng.normal(0, 0.3, (t, C)) + 2.0 * np.eye(C)[cls] + rng.uniform(-0.6, 0.6, (t, 1))
        cas = cas.astype(np.float32)
        labels: list[list[int]] = [[] for _ in range(t)]
        for i in rng.choice(np.arange(margin, t - margin), size=int(rng.integers(2, 6)), replace=False):
            labels[i] = [int(cls[i])]
            if rng.random() < 0.2:
                labels[i].append(int((cls[i] + 1) % C))
        new = mod["train"].anchor_expand(cas, labels, None, radious=3, pv=0.95)
        pts = np.zeros((t, C), np.float32)
        got = np.zeros((t, C), np.float32)
        for i in range(t):
            pts[i, labels[i]] = 1
            got[i, new[i]] = 1
        cas_l.append(cas)
        pts_l.append(pts)
        new_l.append(got)
    out = {}
    out["cas"], out["offsets"] = ragged(cas_l)
    out["points"], _ = ragged(pts_l)
    out["expanded"], _ = ragged(new_l)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("official", help="path of the official SF-Net checkout (outside this repository)")
    parser.add_argument("--commit", help="the commit the checkout was exported from (else git rev-parse HEAD)")
    args = parser.parse_args()
    root = official_path(args.official)
    cpu_only()
    torch.set_default_tensor_type = lambda *a, **k: None  # the official modules switch to CUDA tensors
    sys.modules.setdefault("tensorboard_logger", types.SimpleNamespace(log_value=None, Logger=None))
    mod = {name: __import__(name) for name in ["model", "train", "eval"]}
    commit = np.array(head_commit(root, args.commit))
    net = network(mod)
    save("sfnet_network", {**net, "commit": commit})
    save("sfnet_post", {**post(mod, net), "commit": commit})
    save("sfnet_losses", {**losses(mod), "commit": commit})
    edge = {f"edge_{k}": v for k, v in expand(mod).items()}
    interior = {f"interior_{k}": v for k, v in expand(mod, 8, seed=3, margin=5).items()}
    save("sfnet_expand", {**interior, **edge, "commit": commit})


if __name__ == "__main__":
    main()
