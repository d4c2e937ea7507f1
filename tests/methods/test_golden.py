"""Golden tests: pointtal's ports against outputs of the official code (tests/golden/*.npz, README there).

Each fixture holds inputs, the official network's initial weights and what the official functions returned
on them (run on CPU by tests/golden/make_*.py). Here the weights are copied into pointtal's networks, the same
inputs go through pointtal, and every output must agree to 1e-5 (discrete outputs exactly).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

GOLDEN = Path(__file__).parents[1] / "golden"
TOL = 1e-5


def load(name: str) -> dict[str, np.ndarray]:
    with np.load(GOLDEN / f"{name}.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def split(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=False)]


def pad(rows: list[np.ndarray], dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """List of (T_i, ...) -> (B, T, ...) zero-padded tensor and (B, T) mask."""
    t = max(len(r) for r in rows)
    out = torch.zeros((len(rows), t, *rows[0].shape[1:]), dtype=dtype)
    mask = torch.zeros((len(rows), t), dtype=torch.bool)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(np.asarray(r), dtype=dtype)
        mask[i, : len(r)] = True
    return out, mask


def close(got, want, tol: float = TOL, what: str = "") -> None:
    got = np.asarray(got.detach() if torch.is_tensor(got) else got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    err = float(np.max(np.abs(got - want))) if got.size else 0.0
    assert err <= tol, f"{what}: max |diff| {err:.3g} > {tol}"


def bg_first(official: np.ndarray) -> np.ndarray:
    """Official column order (classes, background last) -> pointtal's (background first)."""
    return np.concatenate([official[..., -1:], official[..., :-1]], axis=-1)


# ----------------------------------------------------------------------------- LACP


def lacp_method(g: dict[str, np.ndarray], **options):
    from pointtal.methods.lacp import LACP, Options

    d, h = g["w_cls_module.conv_1.0.weight"].shape[1], g["w_cls_module.conv_1.0.weight"].shape[0]
    c = g["labels"].shape[1]
    method = LACP(Options(hidden=h, **options), d, c).eval()  # eval: dropout off, as the fixture
    with torch.no_grad():
        method.net.embed.weight.copy_(torch.from_numpy(g["w_cls_module.conv_1.0.weight"]))
        method.net.embed.bias.copy_(torch.from_numpy(g["w_cls_module.conv_1.0.bias"]))
        method.net.classifier.weight.copy_(torch.from_numpy(g["w_cls_module.classifier.0.weight"]))
    return method


def lacp_batch(g: dict[str, np.ndarray]):
    from pointtal.data.batch import make_batch

    feats, mask = pad(split(g["features"], g["offsets"]))
    points, _ = pad(split(g["points"], g["offsets"]))
    labels = torch.from_numpy(g["labels"])
    return make_batch(feats, mask, F.pad(labels, (1, 0)), F.pad(points, (1, 0)))


def test_lacp_forward_matches_the_official_model():
    from pointtal.methods.lacp import video_scores

    g = load("lacp_network")
    method, batch = lacp_method(g), lacp_batch(g)
    with torch.no_grad():
        out = method(batch.features, batch.mask)
    mask = batch.mask
    close(out.fused[mask], bg_first(g["fused"]), what="fused CAS")
    close(out.features[mask], g["embedding"], what="embedding")
    labels = torch.from_numpy(g["labels"])
    close(video_scores(out.cas, mask, 8, labels), g["video_scores"], what="video scores (training)")
    close(video_scores(out.cas, mask, 8), g["video_scores_test"], what="video scores (test)")


def _official_uniform(g: dict[str, np.ndarray], runs) -> torch.Tensor:
    """The official feature-sampling picks as pointtal's uniforms (after checking the runs are the same)."""
    from pointtal.methods.lacp import sample_snippets

    assert runs.video.tolist() == g["sample_video"].tolist()
    assert runs.start.tolist() == g["sample_start"].tolist()
    assert (runs.end + 1).tolist() == g["sample_end"].tolist()
    start, end = runs.start, runs.end
    lo = sample_snippets(start, end, 3, torch.zeros((len(start), 3)))
    hi = sample_snippets(start, end, 3, torch.full((len(start), 3), 1 - 1e-9)) + 1
    picks = torch.from_numpy(g["sample_picks"])
    assert bool(((picks >= lo) & (picks < hi)).all())
    return ((picks - lo).double() + 0.5) / (hi - lo).double()  # maps back to exactly these picks


TERMS = {"video": "vid", "point": "frame", "point_bkg": "frame_bkg", "score": "score", "feature": "feat"}
WEIGHTS = {
    "video": "w_video",
    "point": "w_point",
    "point_bkg": "w_point_bkg",
    "score": "w_score",
    "feature": "w_feature",
}


def _lacp_loss(g, monkeypatch, **weights):
    from pointtal.methods.lacp import pseudo_runs

    method, batch = lacp_method(g, **weights), lacp_batch(g)
    method.pseudo = torch.from_numpy(g["pseudo"] > 0)
    method.offsets = torch.from_numpy(g["offsets"])
    pseudo, searched = method.batch_pseudo(batch)
    uniform = _official_uniform(g, pseudo_runs(pseudo, searched, batch.video_labels[:, 1:], batch.mask))
    real_rand = torch.rand
    monkeypatch.setattr(
        torch,
        "rand",
        lambda size, **kw: uniform.to(torch.float32) if tuple(size) == tuple(uniform.shape) else real_rand(size, **kw),
    )
    losses = method.loss(method(batch.features, batch.mask), batch, step=20)
    monkeypatch.setattr(torch, "rand", real_rand)
    return method, losses


def test_lacp_every_loss_term_matches_the_official_total_loss(monkeypatch):
    g = load("lacp_network")
    _, losses = _lacp_loss(g, monkeypatch)
    for mine, theirs in TERMS.items():
        close(losses[mine], g[f"loss_{theirs}"].mean(), what=mine)
    close(losses["total"], g["loss_total"].mean(), what="total")


@pytest.mark.parametrize("term", ["total", *TERMS])
def test_lacp_gradient_of_each_loss_term_matches_the_official(monkeypatch, term):
    g = load("lacp_network")
    weights = {} if term == "total" else {w: float(k == term) for k, w in WEIGHTS.items()}
    method, losses = _lacp_loss(g, monkeypatch, **weights)
    losses["total"].backward()
    theirs = "total" if term == "total" else TERMS[term]
    net = method.net
    for mine, name in [
        (net.embed.weight, "cls_module.conv_1.0.weight"),
        (net.embed.bias, "cls_module.conv_1.0.bias"),
        (net.classifier.weight, "cls_module.classifier.0.weight"),
    ]:
        want = g[f"grad_{theirs}_{name}"]
        assert np.abs(want).max() > 0 or term == "feature", (term, name)  # the fixture exercises every term
        close(mine.grad, want, what=f"grad of {term} wrt {name}")


def test_lacp_seed_selection_and_sequence_search_match_the_official():
    from pointtal.methods.lacp import Options, optimal_sequences, select_seeds

    g = load("lacp_search")
    cas, mask = pad([bg_first(c) for c in split(g["cas"], g["offsets"])])
    points, _ = pad(split(g["points"], g["offsets"]))
    act, bkg = select_seeds(cas[..., 0], points, mask)
    assert act[mask].numpy().tolist() == g["act_seed"].tolist()
    assert bkg[mask].numpy().astype(np.float32).tolist() == g["bkg_seed"].tolist()
    pseudo, score = optimal_sequences(cas, points, mask, Options(budget=int(g["budget"])))
    assert pseudo[mask].numpy().astype(np.float32).tolist() == g["pseudo"].tolist()
    close(score, g["sequence_score"], what="sequence score")


def test_lacp_post_processing_matches_the_official_test_loop():
    from pointtal.methods.lacp import LACP, Options

    g = load("lacp_post")
    n_classes = g["video_scores"].shape[1]
    method = LACP(Options(hidden=4), 4, n_classes)
    seconds = 16 / 25  # the official segments are in seconds (16-frame snippets at 25 fps)
    for v, cas in enumerate(split(g["cas"], g["offsets"])):
        det = method.localize(bg_first(cas), None, np.r_[0.0, g["video_scores"][v]]).segments
        mine = np.column_stack([det[:, 0] * seconds, det[:, 1] * seconds, det[:, 2] - 1, det[:, 3]])
        want = g["detections"][g["detection_video"] == v]
        order = lambda a: a[np.lexsort((a[:, 1], a[:, 0], a[:, 2]))]  # noqa: E731 class, start, end
        assert len(mine) == len(want) > 0, v
        close(order(mine), order(want), what=f"detections of video {v}")


# ----------------------------------------------------------------------------- HR-Pro

FIDELITY = "issue 19 item {}: fixed on branch fidelity"


def _hrpro_pairs(layers: int) -> list[tuple[str, str, str]]:
    """(pointtal parameter, official parameter, how to map) of the S-model."""
    pairs = []
    for i in range(layers):
        mine, theirs = f"snippet.blocks.{i}", f"encoder.RAB.{i}"
        for p in ["weight", "bias"]:
            pairs += [
                (f"{mine}.query.{p}", f"{theirs}.conv_query.{p}", "conv1x1"),
                (f"{mine}.key.{p}", f"{theirs}.conv_key.{p}", "conv1x1"),
                (f"{mine}.attention.out_proj.{p}", f"{theirs}.self_atten.out_proj.{p}", ""),
                (f"{mine}.attention.in_proj_{p}", f"{theirs}.self_atten.in_proj_{p}", ""),
            ]
            pairs += [(f"{mine}.{n}.{p}", f"{theirs}.{n}.{p}", "") for n in ["linear1", "linear2", "norm1", "norm2"]]
    pairs += [
        ("snippet.embedding.weight", "encoder.feature_embedding.0.weight", ""),
        ("snippet.embedding.bias", "encoder.feature_embedding.0.bias", ""),
        ("snippet.classifier.weight", "classifier.1.weight", "classifier"),
    ]
    return pairs


def _to_pointtal(value: np.ndarray, how: str) -> torch.Tensor:
    value = torch.from_numpy(np.asarray(value))
    if how == "conv1x1" and value.ndim == 3:
        return value[..., 0]
    if how == "classifier":  # (C+1, D, 1) background last -> (C+1, D) background first
        return torch.cat([value[-1:, :, 0], value[:-1, :, 0]])
    return value


def hrpro_method(g: dict[str, np.ndarray], **options):
    from pointtal.methods.hrpro import HRPro, Options

    d, c = g["features"].shape[1], g["labels"].shape[1]
    ff = g["w_encoder.RAB.0.linear1.weight"].shape[0]
    method = HRPro(Options(dim_feedforward=ff, **options), d, c).eval()
    params = dict(method.named_parameters())
    with torch.no_grad():
        for mine, theirs, how in _hrpro_pairs(len(method.snippet.blocks)):
            params[mine].copy_(_to_pointtal(g[f"w_{theirs}"], how))
    return method


def hrpro_batch(g: dict[str, np.ndarray], videos: list[int]):
    from pointtal.data.batch import make_batch

    feats, mask = pad([split(g["features"], g["offsets"])[v] for v in videos])
    points, _ = pad([split(g["points"], g["offsets"])[v] for v in videos])
    labels = torch.from_numpy(g["labels"][videos])
    return make_batch(feats, mask, F.pad(labels, (1, 0)), F.pad(points, (1, 0)))


HR_TERMS = {"video": "vid", "frame": "frame", "frame_bkg": "frame_bkg", "contrastive": "contrastive"}
HR_WEIGHTS = {
    "video": "weight_video",
    "frame": "weight_frame",
    "frame_bkg": "weight_frame_bkg",
    "contrastive": "weight_contrastive",
}


def _hrpro_per_video(g, **weights):
    """Each video alone, with the memory the official code had when it reached that video."""
    out = []
    for v in range(len(g["offsets"]) - 1):
        method = hrpro_method(g, **weights)
        method.snippet.prototypes = torch.from_numpy(g["memory_before"][v])
        batch = hrpro_batch(g, [v])
        output = method(batch.features, batch.mask)
        out.append((method, batch, output, method.snippet_losses(output, batch)))
    return out


def test_hrpro_memory_initialisation_and_forward_match_the_official_s_model():
    from pointtal.methods.hrpro import video_scores

    g = load("hrpro_stage1")
    method = hrpro_method(g)
    batch = hrpro_batch(g, list(range(len(g["offsets"]) - 1)))
    with torch.no_grad():  # memory.init: the mean embedding of each class's points, the memory being zero
        out = method(batch.features, batch.mask)
        pts = batch.point_labels[..., 1:] * batch.mask.unsqueeze(-1)
        init = torch.einsum("btc,btd->cd", pts, out.embedded) / pts.sum((0, 1)).unsqueeze(1)
    close(init, g["memory_init"], what="memory initialisation")
    for v, (_, b, o, _) in enumerate(_hrpro_per_video(g)):
        mask = b.mask
        close(o.cas[mask], bg_first(split(g["cas_fuse"], g["offsets"])[v]), what=f"fused CAS of video {v}")
        close(o.embedded[mask], split(g["embedded"], g["offsets"])[v], what=f"embedding of video {v}")
        labels = b.video_labels[:, 1:]
        close(video_scores(o.class_scores, mask, 8, labels)[0], g["vid_score"][v], what=f"video score of video {v}")


def test_hrpro_seed_selection_matches_the_official_on_the_network_and_on_crafted_scores():
    from pointtal.methods.hrpro import select_seeds

    g = load("hrpro_stage1")
    for v, (_, b, o, _) in enumerate(_hrpro_per_video(g)):
        act, bkg = select_seeds(o.cas[..., 0].detach(), b.point_labels[..., 1:], b.mask)
        assert act[0].tolist() == split(g["act_seed"], g["offsets"])[v].tolist()
        assert bkg[0].tolist() == split(g["bkg_seed"], g["offsets"])[v].tolist()
    p = load("hrpro_proposals")
    for v, (cas, points) in enumerate(
        zip(split(p["cas"], p["offsets"]), split(p["points"], p["offsets"]), strict=False)
    ):
        act, bkg = select_seeds(
            torch.from_numpy(cas[None, :, -1]),
            torch.from_numpy(points[None]),
            torch.ones(1, len(cas), dtype=torch.bool),
        )
        assert act[0].tolist() == split(p["act_seed"], p["offsets"])[v].tolist(), v
        assert bkg[0].tolist() == split(p["bkg_seed"], p["offsets"])[v].tolist(), v


@pytest.mark.parametrize("term", ["video", "frame", "frame_bkg"])
def test_hrpro_loss_terms_and_gradients_match_the_official_criterion(term):
    g = load("hrpro_stage1")
    _check_hrpro_term(g, term)


@pytest.mark.parametrize("term", ["contrastive", "total"])
def test_hrpro_contrastive_loss_and_total_gradient_match_the_official_criterion(term):
    g = load("hrpro_stage1")
    _check_hrpro_term(g, term)


def _check_hrpro_term(g, term: str) -> None:
    weights = {} if term == "total" else {w: float(k == term) for k, w in HR_WEIGHTS.items()}
    runs = _hrpro_per_video(g, **weights)
    n = len(runs)
    for v, (_method, _, _, losses) in enumerate(runs):
        if term != "total":
            close(losses[term], g[f"loss_{HR_TERMS[term]}"][v], what=f"{term} of video {v}")
        (losses["total"] / n).backward()  # the official step: the mean of the per-video totals
    theirs = "total" if term == "total" else HR_TERMS[term]
    for mine, name, how in _hrpro_pairs(len(runs[0][0].snippet.blocks)):
        grads = [dict(m.named_parameters())[mine].grad for m, *_ in runs]
        key = f"grad_{theirs}_{name}"
        if key not in g:  # the official term does not reach this parameter (autograd: unused)
            assert all(x is None or not x.any() for x in grads), f"{term} reaches {mine}; the official does not"
            continue
        close(sum(grads), _to_pointtal(g[key], how), what=f"grad of {term} wrt {mine}")


def test_hrpro_memory_update_matches_the_official_per_video_updates():
    from pointtal.methods.hrpro import sequential_memory_update

    g = load("hrpro_stage1")
    memory = torch.from_numpy(g["memory_before"][0])
    after = list(g["memory_before"][1:]) + [g["memory_after"]]
    for v in range(len(after)):  # the official update of video v reads the embeddings it computed
        emb = torch.from_numpy(split(g["embedded"], g["offsets"])[v])[None]
        act = torch.from_numpy(split(g["act_seed"], g["offsets"])[v])[None]
        memory = sequential_memory_update(memory, emb, act, torch.from_numpy(g["labels"][v : v + 1]), 0.001)
        close(memory, after[v], tol=1e-6, what=f"memory after video {v}")


def test_hrpro_a_batch_step_matches_the_official_sequential_step():
    """One training step on the four videos (dropout off): the official runs them one by one, each forward
    seeing the memory updated by the videos before it."""
    g = load("hrpro_stage1")
    method = hrpro_method(g, dropout=0.0, rab_dropout=0.0, attention_dropout=0.0).train()
    method.snippet.prototypes = torch.from_numpy(g["memory_init"])
    batch = hrpro_batch(g, list(range(len(g["offsets"]) - 1)))
    extras = {
        "points": ((batch.point_labels[..., 1:] > 0) & batch.mask.unsqueeze(-1)).float(),
        "labels": batch.video_labels[:, 1:].float(),
    }  # what training's sampler (WithPoints) adds
    losses = method.loss(method(batch.features, batch.mask, **extras), batch, step=0)
    for mine, theirs in HR_TERMS.items():
        close(losses[mine], g[f"loss_{theirs}"].mean(), what=mine)
    close(method.snippet.prototypes, g["memory_after"], tol=1e-6, what="memory after the step")


def test_hrpro_stage1_proposals_soft_nms_and_point_matching_match_the_official():
    from pointtal.localization.hrpro import RawProposals, match_points, soft_nms_per_class, stage1_proposals

    p = load("hrpro_proposals")
    seconds = 16 / 25
    order = lambda a: a[np.lexsort((a[:, 3], a[:, 1], a[:, 0], a[:, 2]))]  # noqa: E731 class, start, end, score
    for v, cas in enumerate(split(p["cas"], p["offsets"])):
        raw = stage1_proposals(bg_first(cas), np.r_[0.0, p["video_scores"][v]])
        mine = np.column_stack([raw.start * seconds, raw.end * seconds, raw.label - 1, raw.score])
        want = p["raw"][p["raw_video"] == v]
        assert len(mine) == len(want) > 0, v
        close(order(mine), order(want), what=f"stage-1 proposals of video {v}")
        # soft-NMS on the official proposals in the official order (snippet units, offset 1 s = 25/16)
        nms = soft_nms_per_class(want[:, :2] / seconds, want[:, 3], want[:, 2], 0.3, 25 / 16)
        got = np.column_stack([nms[:, :2] * seconds, nms[:, 2:]])
        close(got, p["nms"][p["nms_video"] == v], what=f"soft-NMS of video {v}")
        # reliable proposals: each point (exact time, frame / fps) matched on pointtal's proposals
        rows = p["point_frame_class"][p["match_video"] == v]
        idx = match_points(RawProposals(raw.start, raw.end, raw.label, raw.score), rows[:, 0] / 16, rows[:, 1] + 1)
        matched = np.where(
            idx[:, None] >= 0,
            np.column_stack([raw.start[idx] * seconds, raw.end[idx] * seconds, raw.score[idx]]),
            np.nan,
        )
        want_match = p["match"][p["match_video"] == v]
        assert np.array_equal(np.isnan(matched), np.isnan(want_match)), v
        close(np.nan_to_num(matched), np.nan_to_num(want_match), what=f"matches of video {v}")


def test_hrpro_instance_model_and_stage2_losses_match_the_official_regressor(monkeypatch):
    import pointtal.methods.hrpro as hr

    g = load("hrpro_stage2")
    d = g["roi"].shape[-1]
    model = hr.InstanceModel(d, 0.7, 12, 0.25).eval()
    mapping = {
        "start_reg": "start_reg_conv",
        "end_reg": "end_reg_conv",
        "completeness": "prop_completeness",
        "fusion": "prop_fusion",
    }
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in params.items():
            head, rest = name.split(".", 1)
            value.copy_(_to_pointtal(g[f"w_{mapping[head]}.{rest}"], "conv1x1"))
    roi = torch.from_numpy(g["roi"])
    monkeypatch.setattr(
        hr.network, "roi_pool", lambda *a, **k: roi
    )  # the given RoI features (RoI-Align: hrpro_roi.npz)
    props, pmask = pad(split(g["proposals"], g["proposal_offsets"]))
    pseudo, qmask = pad(split(g["pseudo"], g["pseudo_offsets"]))
    out = model(torch.zeros(len(props), 1, d), torch.ones(len(props)), props)
    close(out.iou[pmask], g["iou_pred"][pmask.numpy()], what="completeness")
    close(out.start_reg, g["start_reg"], what="start offsets")
    close(out.end_reg, g["end_reg"], what="end offsets")
    close(hr.refine(props, out.start_reg, out.end_reg)[pmask], g["refined"], what="refined proposals")
    reg, score = hr.instance_losses(out, props, pmask, torch.from_numpy(g["draws"]).float(), pseudo, qmask, 0.3)
    close(reg, g["loss_reg"], what="regression loss")
    close(score, g["loss_iou"], what="score loss")
    for name, value in [("reg", reg), ("iou", score), ("total", reg + score)]:
        grads = torch.autograd.grad(value, list(params.values()), retain_graph=True, allow_unused=True)
        for (pname, _), grad in zip(params.items(), grads, strict=False):
            head, rest = pname.split(".", 1)
            want = _to_pointtal(g[f"grad_{name}_{mapping[head]}.{rest}"], "conv1x1")
            close(torch.zeros_like(want) if grad is None else grad, want, what=f"grad of {name} wrt {pname}")


def _hrpro_stage2_method(g: dict[str, np.ndarray]):
    """HRPro in eval mode with stage 2 ready and the official I-model's weights."""
    from pointtal.methods.hrpro import HRPro, Options

    d = g["features"].shape[1]
    method = HRPro(Options(), d, int(g["proposals"][:, 3].max()) + 1).eval()
    mapping = {
        "start_reg": "start_reg_conv",
        "end_reg": "end_reg_conv",
        "completeness": "prop_completeness",
        "fusion": "prop_fusion",
    }
    with torch.no_grad():
        for name, value in method.instance.named_parameters():
            head, rest = name.split(".", 1)
            value.copy_(_to_pointtal(g[f"w_{mapping[head]}.{rest}"], "conv1x1"))
    method.stage2_ready = True
    return method


def test_hrpro_roi_align_matches_the_official_extract_roi_features():
    """torchvision's roi_align on the zero-padded (D, T, 1) map of proposals widened by 25 % on each side:
    proposals at a video's start and end and narrower than a snippet (sampled past the video: zeros)."""
    from pointtal.methods.hrpro.network import roi_pool

    g = load("hrpro_roi")
    feats, fmask = pad(split(g["features"], g["offsets"]))
    props, pmask = pad(split(g["proposals"][:, :2], g["proposal_offsets"]))
    got = roi_pool(feats, fmask.sum(1), props, 12, 0.25)
    assert np.array_equal(pmask.numpy(), g["roi_mask"].astype(bool))
    # 2e-5, not 1e-5: the official samples at float32 positions shifted by its padding length (positions up to
    # ~50 carry 4e-6 rounding, times feature slopes up to ~4); the median difference is 6e-8
    close(got[pmask], g["roi"][g["roi_mask"].astype(bool)], tol=2e-5, what="RoI features")


def test_hrpro_stage2_inference_matches_the_official_i_test():
    """I_test per video: completeness of the stage-1 proposals and of their refinements (a second RoI-Align on
    the refined boundaries, some past the video's end), each + the stage-1 score, soft-NMS per class; through
    `HRPro.detect` with the stage-1 proposals of the fixture."""
    from types import SimpleNamespace

    from pointtal.localization.hrpro import RawProposals
    from pointtal.methods.hrpro.network import refine

    g = load("hrpro_roi")
    method = _hrpro_stage2_method(g)
    feats, fmask = pad(split(g["features"], g["offsets"]))
    props = split(g["proposals"], g["proposal_offsets"])
    refined, iou_o, iou_r = (split(g[k], g["proposal_offsets"]) for k in ["refined", "iou_orig", "iou_refined"])
    finals = split(g["final"], g["final_offsets"])
    per_video = iter(props)
    method._stage1_raw = lambda cas, scores: (
        lambda p: RawProposals(  # noqa: E731  the fixture's proposals
            p[:, 0].astype(np.float64),
            p[:, 1].astype(np.float64),
            p[:, 3].astype(np.int64) + 1,
            p[:, 2].astype(np.float64),
        )
    )(next(per_video))
    videos = [
        SimpleNamespace(row=v, cas=np.zeros((int(n), 4)), video_scores=np.zeros(4))
        for v, n in enumerate(fmask.sum(1).tolist())
    ]
    found = method.detect(SimpleNamespace(features=feats), videos)
    order = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731
    for v, p in enumerate(props):
        n = int(fmask[v].sum())
        box = torch.from_numpy(p[None, :, :2])
        with torch.no_grad():
            first = method.instance(feats[v : v + 1, :n], torch.tensor([n]), box)
            moved = refine(box, first.start_reg, first.end_reg)
            second = method.instance(feats[v : v + 1, :n], torch.tensor([n]), moved)
        close(first.iou[0], iou_o[v], what=f"completeness of video {v}")
        close(moved[0], refined[v][:, :2], what=f"refined proposals of video {v}")
        close(second.iou[0], iou_r[v], what=f"completeness of the refined proposals of video {v}")
        want = np.column_stack(
            [finals[v][:, :2] * 25 / 16, finals[v][:, 2] + 1, finals[v][:, 3]]
        )  # seconds -> snippets
        assert len(found[v].segments) == len(want) == 2 * len(p), v
        close(order(found[v].segments), order(want), tol=2e-5, what=f"final detections of video {v}")


# ----------------------------------------------------------------------------- SF-Net


def sfnet_method(g: dict[str, np.ndarray], **options):
    from pointtal.methods.sfnet import Options, SFNet

    h, k = g["w_rgb_classifier.weight"].shape[1], g["w_rgb_classifier.weight"].shape[0]
    method = SFNet(Options(hidden=h, **options), 2 * h, k - 1).eval()
    net = method.net
    with torch.no_grad():
        for mine, theirs in [("rgb", "rgb"), ("flow", "flow")]:
            stream = getattr(net, mine)
            for i in range(2):
                stream.cls_layers[i].weight.copy_(torch.from_numpy(g[f"w_{theirs}_cls_layer.{i}.0.weight"]))
                stream.cls_layers[i].bias.copy_(torch.from_numpy(g[f"w_{theirs}_cls_layer.{i}.0.bias"]))
                conv = torch.from_numpy(g[f"w_{theirs}_act_layer.layer.{i}.0.weight"])  # (H, D, k)
                stream.act_layers[i].weight.copy_(conv.permute(1, 2, 0))  # (D, k, H)
                stream.act_layers[i].bias.copy_(torch.from_numpy(g[f"w_{theirs}_act_layer.layer.{i}.0.bias"]))
            stream.classifier.weight.copy_(torch.from_numpy(g[f"w_{theirs}_classifier.weight"]))
            stream.classifier.bias.copy_(torch.from_numpy(g[f"w_{theirs}_classifier.bias"]))
            stream.act_head.weight.copy_(torch.from_numpy(g[f"w_{theirs}_action.weight"]))
            stream.act_head.bias.copy_(torch.from_numpy(g[f"w_{theirs}_action.bias"]))
        net.cas_weights.copy_(torch.from_numpy(np.stack([g["w_mul_r"], g["w_mul_f"]])))
        net.act_weights.copy_(torch.from_numpy(np.concatenate([g["w_act_r"], g["w_act_f"]])))
    return method


def test_sfnet_forward_matches_the_official_two_stream_network():
    g = load("sfnet_network")
    method = sfnet_method(g)
    feats, mask = pad(split(g["features"], g["offsets"]))
    with torch.no_grad():
        out = method(feats, mask)
    for mine, theirs in [("cas_rgb", "cls_x_r"), ("cas_flow", "cls_x_f"), ("cas", "tcam")]:
        close(getattr(out, mine)[mask], g[theirs], what=mine)
    for mine, theirs in [("act_rgb", "a_x_r"), ("act_flow", "a_x_f"), ("act", "a_x")]:
        close(getattr(out, mine)[mask], g[theirs][:, 0], what=mine)


def _sfnet_loss_inputs():
    g = load("sfnet_losses")
    lengths = torch.from_numpy(g["lengths"])
    mask = torch.arange(g["points"].shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
    return g, mask, torch.from_numpy(g["points"]), torch.from_numpy(g["labels"])


@pytest.mark.parametrize("stream", ["cls_x_r", "cls_x_f", "tcam"])
def test_sfnet_video_and_frame_losses_match_the_official_with_the_reference_switches(stream):
    """The reference code's mining: rank by the raw background logit, k_i from tm = 7 (pointtal's eta)."""
    from pointtal.methods.sfnet import frame_loss, mining_pool, video_loss

    g, mask, points, labels = _sfnet_loss_inputs()
    x = torch.from_numpy(g[stream]).requires_grad_()
    v = video_loss(x, mask, labels, 8, 5)
    close(v, g[f"video_{stream}"], what="video loss")
    close(torch.autograd.grad(v, x)[0], g[f"grad_video_{stream}"], what="video loss gradient")
    f = frame_loss(x, points, mining_pool(mask, points, 7.0), True, "logit")
    close(f, g[f"frame_{stream}"], what="frame loss")
    close(torch.autograd.grad(f, x)[0], g[f"grad_frame_{stream}"], what="frame loss gradient")


@pytest.mark.parametrize("stream", ["a_x_r", "a_x_f", "a_x"])
def test_sfnet_actionness_loss_matches_the_official_with_the_code_negatives(stream):
    """act_negatives="code": the official act_loss 'sorts' the (n, 1) pool along its last axis (a no-op) and
    takes the last sum(k_i) snippets of the concatenated pool as negatives."""
    from pointtal.methods.sfnet import actionness_loss, mining_pool

    g, mask, points, _ = _sfnet_loss_inputs()
    x = torch.from_numpy(g[stream]).requires_grad_()
    a = actionness_loss(x, mining_pool(mask, points, 7.0), 1e-3, "code")
    close(a, g[f"act_{stream}"], what="actionness loss")
    close(torch.autograd.grad(a, x)[0], g[f"grad_act_{stream}"], what="actionness loss gradient")


def _check_sfnet_expansion(which: str) -> None:
    from pointtal.methods.sfnet import anchor_expansion

    g = {k.split("_", 1)[1]: v for k, v in load("sfnet_expand").items() if k.startswith(which + "_")}
    labels = F.pad(torch.from_numpy(g["points"]), (1, 0))  # background column 0
    cas = F.pad(torch.from_numpy(g["cas"]), (1, 0), value=-1e9)  # the official expands on tcam[:, 1:]
    got = anchor_expansion(labels, cas, g["offsets"], radius=3, ratio=0.95, stop_on_failure=False, edge="code")
    assert int(got.pseudo.sum()) > 0
    assert got.labels[:, 1:].numpy().tolist() == g["expanded"].tolist()


def test_sfnet_anchor_expansion_matches_the_official_with_the_reference_switch():
    _check_sfnet_expansion("interior")


def test_sfnet_anchor_expansion_near_the_video_ends_matches_the_official_with_the_code_edge():
    """expand_edge="code": the official walk ends where the snippet after a candidate is outside the video."""
    _check_sfnet_expansion("edge")


def _check_sfnet_detections(got, segments: np.ndarray, frames: np.ndarray, what: str) -> None:
    """pointtal's Detections (classes 1..C) against generate_segment's rows (classes 0..C-1), in any order."""
    seg = np.column_stack([segments[:, 1:3], segments[:, 0] + 1, segments[:, 3]]) if len(segments) else segments
    frm = np.column_stack([frames[:, 1], frames[:, 0] + 1, frames[:, 2]]) if len(frames) else frames
    order = lambda a: a[np.lexsort(a.T[::-1])] if len(a) else a.reshape(0, a.shape[1])  # noqa: E731
    assert len(got.segments) == len(seg) and len(got.frames) == len(frm), what
    close(order(got.segments), order(seg), what=f"segments of {what}")
    close(order(got.frames), order(frm), what=f"frames of {what}")


def test_sfnet_inference_matches_the_official_evaluate_on_the_network_outputs():
    """eval.evaluate per video: the classification score (pointtal averages the three softmaxes the official
    sums) and generate_segment on the fused CAS plus 2 x actionness, through `SFNet.scores` and `localize`."""
    g, p = load("sfnet_network"), load("sfnet_post")
    method = sfnet_method(g)
    feats, mask = pad(split(g["features"], g["offsets"]))
    with torch.no_grad():
        scores = method.scores(method(feats, mask), mask)
    close(3 * scores.video_scores, p["net_video_scores"], what="video scores")
    segs, frames = split(p["net_segments"], p["net_segment_offsets"]), split(p["net_frames"], p["net_frame_offsets"])
    assert sum(len(s) for s in segs) > 0
    for v, n in enumerate(mask.sum(1).tolist()):
        got = method.localize(scores.cas[v, :n].numpy(), scores.actionness[v, :n].numpy(), scores.video_scores[v])
        _check_sfnet_detections(got, segs[v], frames[v], f"video {v}")


@pytest.mark.parametrize("setting", ["w2", "w0", "adj"])
def test_sfnet_localization_matches_the_official_generate_segment_on_crafted_scores(setting):
    """Kept classes (top-T/12 mean > max / 1.5 and > 0), mean thresholds, runs >= 2 snippets, a frame per run
    at its first maximum; actionness weight 2, 0 (`--use-anchor` off) and adjust_mean 0.8."""
    from pointtal.methods.sfnet import Options
    from pointtal.methods.two_stream import sfnet_detections

    p = load("sfnet_post")
    w_act, adjust = {"w2": (2.0, 1.0), "w0": (0.0, 1.0), "adj": (2.0, 0.8)}[setting]
    options = Options(w_act=w_act, adjust=adjust)
    cas_l, act_l = split(p["crafted_cas"], p["crafted_offsets"]), split(p["crafted_act"], p["crafted_offsets"])
    segs = split(p[f"crafted_{setting}_segments"], p[f"crafted_{setting}_segment_offsets"])
    frames = split(p[f"crafted_{setting}_frames"], p[f"crafted_{setting}_frame_offsets"])
    assert sum(len(s) for s in segs) > 5 and any(len(f) > len(s) for f, s in zip(frames, segs, strict=True))
    for v, (cas, act) in enumerate(zip(cas_l, act_l, strict=True)):
        got = sfnet_detections(options, np.pad(cas, ((0, 0), (1, 0))), act[:, 0], w_act)
        _check_sfnet_detections(got, segs[v], frames[v], f"{setting} video {v}")
