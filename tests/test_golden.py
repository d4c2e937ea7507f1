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

GOLDEN = Path(__file__).parent / "golden"
TOL = 1e-5


def load(name: str) -> dict[str, np.ndarray]:
    with np.load(GOLDEN / f"{name}.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def split(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


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
WEIGHTS = {"video": "w_video", "point": "w_point", "point_bkg": "w_point_bkg", "score": "w_score",
           "feature": "w_feature"}


def _lacp_loss(g, monkeypatch, **weights):
    from pointtal.methods.lacp import pseudo_runs

    method, batch = lacp_method(g, **weights), lacp_batch(g)
    method.pseudo = torch.from_numpy(g["pseudo"] > 0)
    method.offsets = torch.from_numpy(g["offsets"])
    pseudo, searched = method.batch_pseudo(batch)
    uniform = _official_uniform(g, pseudo_runs(pseudo, searched, batch.video_labels[:, 1:], batch.mask))
    real_rand = torch.rand
    monkeypatch.setattr(torch, "rand", lambda size, **kw: uniform.to(torch.float32) if tuple(size) == tuple(uniform.shape)
                        else real_rand(size, **kw))
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
    for mine, name in [(net.embed.weight, "cls_module.conv_1.0.weight"), (net.embed.bias, "cls_module.conv_1.0.bias"),
                       (net.classifier.weight, "cls_module.classifier.0.weight")]:
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
