"""Regenerate tests/golden/hrpro_*.npz by running the official HR-Pro code on CPU (see tests/golden/README.md).

    python tests/golden/make_hrpro.py /tmp/official/HR-Pro --commit SHA

The official modules (model_S.py, model_I.py, utils.py, test.py, ranking.py) are imported from the checkout
with `.cuda()` a no-op. torchvision is only needed by the I-model's RoI-Align (extract_roi_features); where it
cannot load (no CPU build for this torch), a stub module stands in for the import and the I-model fixture
starts from given RoI features (the boundary-completeness regressor, refinement and both stage-2 losses).
Writes:
  hrpro_stage1.npz     inputs, S-model weights, memory initialisation, per video (one forward each, as S_train):
                       the memory it saw, forward outputs, seeds, every loss term; the memory after every
                       update; gradients of each term's batch mean;
  hrpro_proposals.npz  crafted fused CAS + video scores -> S_test's proposals ("test" mode, before NMS),
                       utils.post_process soft-NMS, ranking.match_point on exact point times, utils.select_seed;
  hrpro_stage2.npz     RoI features, proposals, pseudo labels -> the regressor's outputs, refined proposals,
                       the regression and score losses (with the recorded np.random.rand draws), gradients;
  hrpro_roi.npz        (needs a torchvision whose ops load: `--only roi` in a venv with torch 2.14.1 and
                       torchvision 0.29.1) whole-video features and stage-1 proposals -> I_Model.extract_roi_features
                       (RoI-Align of the widened proposals on the zero-padded features), I_Model.forward at test
                       time (refined proposals, completeness of the original and of the refined proposals), and
                       I_test's scoring: utils.get_prediction + utils.post_process (soft-NMS per class).
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

D, C, FF = 16, 3, 16  # feature width (8 heads of 2), classes, attention feed-forward width
LENGTHS = [33, 47, 21, 40]
NAMES = [f"class_{c}" for c in range(C)]


def random_points(rng: np.random.Generator, t: int, n: int) -> np.ndarray:
    points = np.zeros((t, C), dtype=np.float32)
    for i in np.sort(rng.choice(np.arange(1, t - 1, 3), size=n, replace=False)):
        points[i, rng.integers(0, C)] = 1
    return points


def make_args(tmp: str):
    return types.SimpleNamespace(
        feature_dim=D,
        num_class=C,
        r_act=8,
        dropout=0.7,
        lambdas=[0, 0.5, 1, 1],
        dataset="Other",
        RAB_args={"layer_num": 2, "drop_out": 0.3, "num_heads": 8, "dim_feedforward": FF},
        device=torch.device("cpu"),
        class_thresh=0.5,
        scale=2,
        act_thresh_cas=np.arange(0.0, 0.25, 0.025),
        act_thresh_agnostic=np.arange(0.5, 0.725, 0.025),
        _lambda=0.25,
        gamma=0,
        frames_per_sec=25,
        mode="test",
        output_path_s1=tmp,
        class_name_lst=NAMES,
        seed=0,
        max_proposal=1000,
        weight_loss_reg=1,
        weight_loss_score=1,
    )


def stage1(mod, args) -> dict[str, np.ndarray]:
    """S_Model: memory.init, then one forward + criterion per video (S_train's loop), eval mode (no dropout)."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    net = mod["model_S"].S_Model(args)
    with torch.no_grad():
        net.classifier[1].weight.mul_(4.0)  # spread the scores so seeds and contrastive regions are non-trivial
    out: dict[str, np.ndarray] = {
        f"w_{k}": v.detach().numpy().copy() for k, v in net.named_parameters() if k != "memory.proto_vectors"
    }
    feats, points, labels = [], [], []
    for i, t in enumerate(LENGTHS):
        feats.append(rng.normal(size=(t, D)).astype(np.float32))
        pts = random_points(rng, t, int(rng.integers(2, 5)))
        pts[1 + 3 * i, i % C] = 1  # every class has points somewhere (the memory initialisation needs it)
        points.append(pts)
        labels.append((pts.max(0) > 0).astype(np.float32))
    samples = [
        {"data": torch.from_numpy(f), "vid_label": torch.from_numpy(lab), "point_label": torch.from_numpy(p)}
        for f, lab, p in zip(feats, labels, points, strict=False)
    ]
    net.memory.init(args, net, types.SimpleNamespace(dataset=samples))
    out["memory_init"] = net.memory.proto_vectors.detach()[:, 0].numpy().copy()
    net.eval()
    params = {k: v for k, v in net.named_parameters() if v.requires_grad}
    names = ["loss_vid", "loss_frame", "loss_frame_bkg", "loss_contrastive", "loss_total"]
    terms: dict[str, list[torch.Tensor]] = {k: [] for k in names}
    rec = {k: [] for k in ["memory_before", "cas_fuse", "vid_score", "embedded", "act_seed", "bkg_seed"]}
    select = mod["utils"].select_seed
    for i in range(len(LENGTHS)):
        rec["memory_before"].append(net.memory.proto_vectors.detach()[:, 0].numpy().copy())
        x, lab = samples[i]["data"][None], samples[i]["vid_label"][None]
        pts = samples[i]["point_label"][None]
        outputs = net(x, lab)
        seeds = {}

        def recording(bkg, point, _seeds=seeds):
            _seeds["value"] = select(bkg, point)
            return _seeds["value"]

        mod["model_S"].utils.select_seed = recording
        _, loss = net.criterion(args, outputs, lab, pts)
        mod["model_S"].utils.select_seed = select
        for k in names:
            v = loss[k]
            terms[k].append(v if torch.is_tensor(v) else torch.tensor(float(v)))
        rec["cas_fuse"].append(outputs["cas_fuse"][0].detach().numpy())
        rec["vid_score"].append(outputs["vid_score"][0].detach().numpy())
        rec["embedded"].append(outputs["embeded_feature"][0].detach().numpy())
        rec["act_seed"].append(seeds["value"][0][0, :, :C].numpy())
        rec["bkg_seed"].append(seeds["value"][1][0].numpy())
    out["memory_after"] = net.memory.proto_vectors.detach()[:, 0].numpy().copy()
    for k, values in terms.items():
        mean = torch.stack([v.reshape(()) for v in values]).mean()  # S_train: sum / batch_size
        out[f"loss_{k[5:]}"] = np.array([float(v.detach()) for v in values])
        grads = torch.autograd.grad(mean, list(params.values()), retain_graph=True, allow_unused=True)
        for name, g in zip(params, grads, strict=False):
            if g is not None:
                out[f"grad_{k[5:]}_{name}"] = g.numpy()
    out["memory_before"] = np.stack(rec.pop("memory_before"))
    out["features"], out["offsets"] = ragged(feats)
    out["points"], _ = ragged(points)
    out["labels"] = np.stack(labels)
    out["vid_score"] = np.stack(rec.pop("vid_score"))
    for k, v in rec.items():
        out[k], _ = ragged(v)
    return out


def crafted(rng: np.random.Generator, t: int, points: np.ndarray) -> np.ndarray:
    """(t, C+1) fused CAS, background last, with actions around the points."""
    act = np.full((t, C), 0.05) + rng.uniform(0, 0.1, (t, C))
    bkg = rng.uniform(0.85, 1.0, t)
    for i, c in zip(*np.nonzero(points), strict=False):
        lo, hi = max(0, i - int(rng.integers(1, 5))), min(t, i + int(rng.integers(2, 6)))
        act[lo:hi, c] = rng.uniform(0.4, 0.95, hi - lo)
        bkg[lo:hi] = rng.uniform(0.0, 0.3, hi - lo)
    noisy = rng.random(t) < 0.15
    bkg[noisy] = rng.uniform(0.3, 0.99, int(noisy.sum()))
    return np.concatenate([act * (1 - bkg[:, None]), bkg[:, None]], axis=1).astype(np.float32)


class _Replay(torch.nn.Module):
    def __init__(self, outputs):
        super().__init__()
        self.outputs, self.i = outputs, 0

    def forward(self, x, labels=None):
        self.i += 1
        return self.outputs[self.i - 1]


def proposals(mod, args, n_videos: int = 5) -> dict[str, np.ndarray]:
    """S_test (mode "test": every proposal, no NMS) on crafted CAS; post_process's soft-NMS per class;
    ranking.match_point of points given as frames (exact times frame / fps)."""
    rng = np.random.default_rng(3)
    cas_l, score_l, pts_l, frames_l = [], [], [], []
    for v in range(n_videos):
        t = int(rng.integers(20, 45))
        pts = random_points(rng, t, int(rng.integers(1, 4)))
        cas_l.append(crafted(rng, t, pts))
        score = rng.uniform(0.0, 1.0, C).astype(np.float32)
        score[pts.max(0) > 0] = rng.uniform(0.55, 1.0, int((pts.max(0) > 0).sum()))
        if v == n_videos - 1:
            score[:] = rng.uniform(0.0, 0.4, C)  # no class above the threshold: the arg-max class
        score_l.append(score)
        pts_l.append(pts)
        frames_l.append(np.nonzero(pts)[0] * 16 + rng.integers(0, 16, int(pts.sum())))  # a frame in the snippet
    names = [f"video_{v}" for v in range(n_videos)]
    loader = [
        {
            "data": torch.zeros(1, len(c), D),
            "vid_label": torch.zeros(1, C),
            "vid_name": [n],
            "vid_len": torch.tensor([len(c)]),
            "vid_duration": torch.tensor([len(c) * 16 / 25]),
        }
        for c, n in zip(cas_l, names, strict=False)
    ]
    replay = _Replay(
        [
            {"vid_score": torch.from_numpy(s)[None], "cas_fuse": torch.from_numpy(c)[None]}
            for s, c in zip(score_l, cas_l, strict=False)
        ]
    )
    mod["test"].S_test(replay, args, loader, None, 0, {}, subset="test")
    with open(f"{args.output_path_s1}/snippet_result_test.json") as f:
        result = json.load(f)["results"]
    raw, raw_video, nms, nms_video, match, match_video, point_rows = [], [], [], [], [], [], []
    for v, name in enumerate(names):
        props = {}
        for r in result[name]:
            props.setdefault(r["label"], []).append(
                [r["segment"][0], r["segment"][1], NAMES.index(r["label"]), r["score"]]
            )
            raw.append(props[r["label"]][-1])
            raw_video.append(v)
        for r in mod["utils"].post_process(args, name, props, None):
            nms.append([r["segment"][0], r["segment"][1], NAMES.index(r["label"]), r["score"]])
            nms_video.append(v)
        pp = {k: [[p[0], p[1], p[3]] for p in rows] for k, rows in props.items()}
        snip, cls = np.nonzero(pts_l[v])
        order = np.argsort(frames_l[v], kind="stable")
        points = [[float(frames_l[v][i]) / 25, NAMES[cls[i]]] for i in order]
        rp = mod["ranking"].match_point(pp, points)
        taken = {k: 0 for k in rp}
        for (_time, label), i in zip(points, order, strict=False):
            got = rp[label][taken[label]]
            taken[label] += 1
            match.append([np.nan] * 3 if got is None else got)
            match_video.append(v)
            point_rows.append([frames_l[v][i], cls[i]])
    out = {
        "video_scores": np.stack(score_l),
        "raw": np.array(raw),
        "raw_video": np.array(raw_video),
        "nms": np.array(nms),
        "nms_video": np.array(nms_video),
        "match": np.array(match, dtype=np.float64),
        "match_video": np.array(match_video),
        "point_frame_class": np.array(point_rows, dtype=np.int64),
    }
    seeds = [
        mod["utils"].select_seed(torch.from_numpy(c[:, -1])[None], torch.from_numpy(np.pad(p, ((0, 0), (0, 1))))[None])
        for c, p in zip(cas_l, pts_l, strict=False)
    ]  # the ranking's call: background score, points + a zero column
    out["act_seed"], _ = ragged([a[0, :, :C].numpy() for a, _ in seeds])
    out["bkg_seed"], _ = ragged([b[0].numpy() for _, b in seeds])
    out["cas"], out["offsets"] = ragged(cas_l)
    out["points"], _ = ragged(pts_l)
    return out


def stage2(mod, args) -> dict[str, np.ndarray]:
    """Boundary_Completeness_Regressor on given RoI features: outputs, refinement and both losses."""
    rng = np.random.default_rng(4)
    torch.manual_seed(4)
    bcr = mod["model_I"].Boundary_Completeness_Regressor(D, 0.7, 12).eval()
    out: dict[str, np.ndarray] = {f"w_{k}": v.detach().numpy().copy() for k, v in bcr.named_parameters()}
    counts = [9, 14, 6]
    props, pseudo = [], []
    for m in counts:
        s = rng.uniform(0, 40, m)
        props.append(np.stack([s, s + rng.uniform(1, 12, m)], 1).astype(np.float32))
        k = int(rng.integers(1, 4))
        ps = rng.uniform(0, 40, k)
        pseudo.append(np.stack([ps, ps + rng.uniform(2, 10, k)], 1).astype(np.float32))
        pseudo[-1][0] = props[-1][0] + rng.uniform(-0.5, 0.5, 2)  # a proposal well above the tIoU threshold
    m_max = max(counts)
    roi = torch.from_numpy(rng.normal(size=(len(counts), m_max, 12, D)).astype(np.float32))
    mask = torch.zeros(len(counts), m_max)
    for i, m in enumerate(counts):
        mask[i, :m] = 1
    draws: list[np.ndarray] = []
    real_rand = np.random.rand

    def rand(*shape):
        draws.append(real_rand(*shape))
        return draws[-1]

    np.random.seed(4)
    mod["model_I"].np.random.rand = rand
    refined, iou_pred, reg_loss, iou_loss = bcr(
        roi, [torch.from_numpy(p) for p in props], mask, [torch.from_numpy(p) for p in pseudo], 0.3, is_training=True
    )
    mod["model_I"].np.random.rand = real_rand
    start_reg = bcr.start_reg_conv(roi[:, :, :2].max(2)[0].transpose(-1, -2)).squeeze(1)
    end_reg = bcr.end_reg_conv(roi[:, :, 10:].max(2)[0].transpose(-1, -2)).squeeze(1)
    params = dict(bcr.named_parameters())
    for name, value in [("reg", reg_loss), ("iou", iou_loss), ("total", reg_loss + iou_loss)]:
        out[f"loss_{name}"] = np.array(float(value))
        grads = torch.autograd.grad(value, list(params.values()), retain_graph=True, allow_unused=True)
        for k, g in zip(params, grads, strict=False):
            out[f"grad_{name}_{k}"] = np.zeros(params[k].shape, np.float32) if g is None else g.numpy()
    out.update(
        roi=roi.numpy(),
        counts=np.array(counts),
        iou_pred=iou_pred.detach().numpy(),
        start_reg=start_reg.detach().numpy(),
        end_reg=end_reg.detach().numpy(),
        draws=np.concatenate([np.pad(d, (0, m_max - len(d))) for d in draws]).reshape(len(counts), m_max),
    )
    out["proposals"], out["proposal_offsets"] = ragged(props)
    out["pseudo"], out["pseudo_offsets"] = ragged(pseudo)
    out["refined"], _ = ragged([r.detach().numpy() for r in refined])
    return out


def roi_inference(mod, args) -> dict[str, np.ndarray]:
    """I_Model on whole videos (eval mode): RoI-Align, the test-time forward and I_test's scoring per video."""
    rng = np.random.default_rng(5)
    torch.manual_seed(5)
    net = mod["model_I"].I_Model(args).eval()
    out: dict[str, np.ndarray] = {
        f"w_{k.removeprefix('bcr.')}": v.detach().numpy().copy() for k, v in net.named_parameters()
    }
    lengths, counts = [30, 45, 20], [7, 10, 5]
    feats, props = [], []
    for t, m in zip(lengths, counts, strict=True):
        feats.append(rng.normal(size=(t, D)).astype(np.float32))
        s = rng.uniform(0, t - 1, m)
        e = np.minimum(s + rng.uniform(0.4, 14, m), t)
        s[0], e[1], e[2] = 0.0, float(t), s[2] + 0.3  # at the video's start, at its end, narrower than a snippet
        props.append(np.stack([s, e, rng.uniform(0.1, 0.9, m), rng.integers(0, C, m)], 1).astype(np.float32))
    feats_t = [torch.from_numpy(f) for f in feats]
    props_t = [torch.from_numpy(p) for p in props]
    roi, mask = net.extract_roi_features(feats_t, props_t, False)  # (B, M, 12, D), (B, M)
    with torch.no_grad():
        scale = types.SimpleNamespace(t_factor=25 / 16)  # I_test's dataset: frames_per_sec / segment_frames_num
        refined, iou_orig, iou_refined, final = [], [], [], []
        for f, p in zip(feats_t, props_t, strict=True):  # I_test: batch_size 1
            o = net([f], [p], is_training=False)
            refined.append(o["prop_refined"][0].numpy())
            iou_orig.append(o["iou_pred_orig"][0, :, 0].numpy())
            iou_refined.append(o["iou_pred_refined"][0, :, 0].numpy())
            rows = mod["utils"].post_process(args, "v", mod["utils"].get_prediction(p.numpy(), o, scale), None)
            final.append(
                np.array(
                    [[r["segment"][0], r["segment"][1], NAMES.index(r["label"]), r["score"]] for r in rows],
                    dtype=np.float64,
                )
            )
    out.update(roi=roi.numpy(), roi_mask=mask.numpy())
    out["features"], out["offsets"] = ragged(feats)
    out["proposals"], out["proposal_offsets"] = ragged(props)
    out["refined"], _ = ragged(refined)
    out["iou_orig"], _ = ragged(iou_orig)
    out["iou_refined"], _ = ragged(iou_refined)
    out["final"], out["final_offsets"] = ragged(final)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("official", help="path of the official HR-Pro checkout (outside this repository)")
    parser.add_argument("--commit", help="the commit the checkout was exported from (else git rev-parse HEAD)")
    parser.add_argument("--only", choices=["roi"], help="write only hrpro_roi.npz (needs torchvision's ops)")
    args_cli = parser.parse_args()
    root = official_path(args_cli.official)
    cpu_only()
    try:
        import torchvision.ops  # noqa: F401

        torch.ops.torchvision.roi_align  # noqa: B018  the compiled ops are there
        have_ops = True
    except Exception:  # no CPU torchvision for this torch: stand in for the import (RoI-Align is not run)
        for key in [k for k in sys.modules if k.startswith("torchvision")]:
            del sys.modules[key]
        sys.modules["torchvision"] = types.ModuleType("torchvision")
        have_ops = False
    sys.modules.setdefault("tensorboard_logger", types.SimpleNamespace(Logger=None))
    mod = {name: __import__(name) for name in ["utils", "model_S", "model_I", "test", "ranking"]}
    commit = np.array(head_commit(root, args_cli.commit))
    with tempfile.TemporaryDirectory() as tmp:
        args = make_args(tmp)
        if have_ops:
            save("hrpro_roi", {**roi_inference(mod, args), "commit": commit})
        elif args_cli.only:
            sys.exit("hrpro_roi.npz needs torchvision's compiled ops (see the module docstring)")
        if args_cli.only:
            return
        save("hrpro_stage1", {**stage1(mod, args), "commit": commit})
        save("hrpro_proposals", {**proposals(mod, args), "commit": commit})
        save("hrpro_stage2", {**stage2(mod, args), "commit": commit})


if __name__ == "__main__":
    main()
