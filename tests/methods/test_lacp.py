"""LACP (pointtal/methods/lacp/, pointtal/localization/lacp.py): every batched piece against a plain per-video
loop written from the official code's logic (utils.select_seed, search.py + decode.py, train.Total_loss,
test.py), the search against brute-force enumeration of all seed-consistent sequences, post-processing on a
hand-computed example, and a tiny end-to-end run with the search, resume and evaluation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from pointtal.data.batch import make_batch
from pointtal.localization.lacp import lacp_nms, localize_lacp, upsample
from pointtal.methods.lacp import (
    LACP,
    Options,
    feature_loss,
    focal_point_loss,
    fuse,
    optimal_sequences,
    pseudo_runs,
    score_loss,
    select_seeds,
    video_loss,
    video_scores,
)

C = 3


# ----------------------------------------------------------------------------- plain references


def ref_oic(x, start, end, delta=0.25):
    """Outer-inner contrast of x[start..end] (python lists, the official get_oic_score)."""
    n = len(x)
    length = end - start + 1
    inner = sum(x[start : end + 1]) / length
    lo = max(0, int(start - delta * length))
    hi = min(n - 1, int(end + delta * length))
    outer = list(range(lo, start)) + list(range(end + 1, hi + 1))
    return inner - (sum(x[i] for i in outer) / len(outer) if outer else 0.0)


def ref_select_seed(bkg, points, act_thresh=0.1, bkg_thresh=0.95):
    """One video: bkg list (T,), points (T, C) 0/1 lists -> act_seed (T, C), bkg_seed (T,)."""
    t = len(bkg)
    act = [row[:] for row in points]
    seed = [0] * t
    idx = [i for i in range(t) if max(points[i]) > 0]
    if not idx:
        return act, seed
    first, last = idx[0], idx[-1]
    if first > 0:
        cands = [j for j in range(first) if bkg[j] >= bkg_thresh]
        stop = cands[-1] if cands else max(range(first), key=lambda j: (bkg[j], -j))
        for j in range(stop + 1):
            seed[j] = 1
        for j in range(first - 1, -1, -1):
            if bkg[j] <= act_thresh and seed[j] < 1:
                act[j] = points[first][:]
            else:
                break
    if last < t - 1:
        cands = [j for j in range(last + 1, t) if bkg[j] >= bkg_thresh]
        begin = cands[0] if cands else max(range(last + 1, t), key=lambda j: (bkg[j], -j))
        for j in range(begin, t):
            seed[j] = 1
        for j in range(last + 1, t):
            if bkg[j] <= act_thresh and seed[j] < 1:
                act[j] = points[last][:]
            else:
                break
    for p, q in zip(idx[:-1], idx[1:], strict=False):
        if q - p <= 1:
            continue
        cands = [j for j in range(p + 1, q) if bkg[j] >= bkg_thresh]
        for j in cands:
            seed[j] = 1
        if len(cands) >= 2:
            for j in range(cands[0], cands[-1] + 1):
                seed[j] = 1
        else:
            seed[max(range(p + 1, q), key=lambda j: (bkg[j], -j))] = 1
        for j in range(p + 1, q):
            if bkg[j] <= act_thresh and seed[j] < 1:
                act[j] = points[p][:]
            else:
                break
        for j in range(q - 1, p, -1):
            if bkg[j] <= act_thresh and seed[j] < 1:
                act[j] = points[q][:]
            else:
                break
    return act, seed


def ref_ranges(act_c, bkg_c):
    """The official transcript and core ranges of one class (search.greedy_search_with_id), plain lists."""
    t = len(act_c)
    bkg_c = bkg_c[:]
    act_idx = [i for i in range(t) if act_c[i]]
    act_seq = [[act_idx[0]]]
    if act_idx[0] > 0:
        if any(bkg_c[: act_idx[0]]):
            top = max(i for i in range(act_idx[0]) if bkg_c[i])
            for i in range(top + 1):
                bkg_c[i] = 1
            transcript = [0, 1]
        else:
            act_seq = [[-1, act_idx[0]]]
            transcript = [1]
    else:
        transcript = [1]
    for prev, cur in zip(act_idx[:-1], act_idx[1:], strict=False):
        if cur - prev > 1:
            transcript += [0, 1]
            act_seq.append([cur])
            between = [i for i in range(prev + 1, cur) if bkg_c[i]]
            for i in range(between[0], between[-1] + 1):
                bkg_c[i] = 1
        else:
            act_seq[-1].append(cur)
    if act_idx[-1] < t - 1:
        after = [i for i in range(act_idx[-1] + 1, t) if bkg_c[i]]
        if after:
            for i in range(after[0], t):
                bkg_c[i] = 1
            transcript += [0]
        else:
            act_seq[-1].append(t - 1)
    bkg_runs, i = [], 0
    while i < t:
        if bkg_c[i]:
            j = i
            while j + 1 < t and bkg_c[j + 1]:
                j += 1
            bkg_runs.append([i, j])
            i = j + 1
        else:
            i += 1
    ranges = []
    for item in act_seq:
        x1, x2 = item[0], item[-1]
        before = [r for r in bkg_runs if r[0] < x1]
        if before:
            ranges.append([min(r[0] for r in before), before[-1][1]])
            bkg_runs = [r for r in bkg_runs if r not in before]
        ranges.append([x1, x2])
    if bkg_runs:
        ranges.append([bkg_runs[0][0], bkg_runs[-1][1]])
    assert len(transcript) == len(ranges)
    return transcript, ranges


def ref_best_sequence(p, act_c, bkg_c):
    """Brute force: every sequence the transcript and ranges allow, scored as the official finalize does (mean
    outer-inner score of its action groups on p and background groups on 1 - p); the best labels and score."""
    t = len(p)
    transcript, ranges = ref_ranges(act_c, bkg_c)
    choices = [range(ranges[i - 1][1] + 1, ranges[i][0] + 1) for i in range(1, len(transcript))]
    best = (-math.inf, None)
    for bounds in itertools.product(*choices):
        edges = [0, *bounds, t]
        if any(b <= a for a, b in zip(edges[:-1], edges[1:], strict=False)):
            continue
        labels = []
        for k, lab in enumerate(transcript):
            labels += [lab] * (edges[k + 1] - edges[k])
        scores = [
            ref_oic(p if lab else [1 - v for v in p], s, e - 1)
            for lab, s, e in zip(transcript, edges[:-1], edges[1:], strict=False)
        ]
        score = sum(scores) / len(scores)
        if score > best[0]:
            best = (score, labels)
    return best[1], best[0]


def ref_beam(p, act_c, bkg_c, budget, prune=0.1):
    """The official decoder, frame by frame with plain lists: hypotheses (segment, starts, score) stay or move
    to the next segment inside free stretches, must move at the next core's start; after each frame the ones
    below `prune` go (the best stays), then all but the `budget` best (ties kept). Best final mean wins."""
    t_len = len(p)
    transcript, ranges = ref_ranges(act_c, bkg_c)
    x = [[1 - v for v in p], p]
    lims = ranges + [[t_len, t_len]]
    hyps = [(0, (0,), math.inf)]
    for t in range(1, t_len):
        new = []
        for seg, starts, score in hyps:
            last = seg + 1 == len(transcript)
            o = None if last else ref_oic(x[transcript[seg]], starts[-1], t - 1)
            moved = None if last else (seg + 1, starts + (t,), o if seg == 0 else (score * seg + o) / (seg + 1))
            if t == lims[seg + 1][0]:
                new += [moved] if moved else []
                continue
            new.append((seg, starts, score))
            if t > lims[seg][1] and moved:
                new.append(moved)
        new.sort(key=lambda h: h[2])
        count = 0
        for h in new[:-1]:
            if h[2] >= prune:
                break
            count += 1
        new = new[count:]
        if len(new) > budget:
            cut = new[len(new) - budget][2]
            new = [h for h in new if h[2] >= cut]
        hyps = new
    best = (-math.inf, None)
    for _, starts, _ in hyps:
        edges = list(starts) + [t_len]
        scores = [ref_oic(x[lab], s, e - 1) for lab, s, e in zip(transcript, edges[:-1], edges[1:], strict=False)]
        labels = [lab for lab, s, e in zip(transcript, edges[:-1], edges[1:], strict=False) for _ in range(e - s)]
        if sum(scores) / len(scores) >= best[0]:
            best = (sum(scores) / len(scores), labels)
    return best[1], best[0]


def ref_runs(seq):
    """The official range_idx reading of one class's 0/1 pseudo labels: action runs and background runs
    (start, end) and the feature list [(label, start, end)] in time order; None if the labels never change."""
    t = len(seq)
    diff = [seq[i + 1] - seq[i] for i in range(t - 1)]

    def ranges(d):
        idx = [i for i, v in enumerate(d) if v != 0]
        if not idx:
            return None
        if d[idx[0]] != 1:
            idx = [-1] + idx
        if d[idx[-1]] != -1:
            idx = idx + [len(d) - 1]
        return idx

    r = ranges(diff)
    if r is None:
        return None
    acts, feats = [], []
    if r[0] > -1:
        feats.append((0, 0, r[0]))
    for i in range(len(r) // 2):
        if r[2 * i + 1] - r[2 * i] < 1:
            continue
        feats.append((1, r[2 * i] + 1, r[2 * i + 1]))
        if r[2 * i + 1] != len(diff) - 1:
            end = len(diff) - 1 if i == len(r) // 2 - 1 else r[2 * i + 2]
            feats.append((0, r[2 * i + 1] + 1, end))
        acts.append((r[2 * i] + 1, r[2 * i + 1]))
    rb = ranges([-v for v in diff])
    bkgs = [(rb[2 * i] + 1, rb[2 * i + 1]) for i in range(len(rb) // 2) if rb[2 * i + 1] - rb[2 * i] >= 1]
    return acts, bkgs, feats


def ref_sample(start, end_excl, u):
    step = (end_excl - start) / len(u)
    out = []
    for i, ui in enumerate(u):
        lo, hi = int(start + step * i), int(start + step * (i + 1))
        if lo >= hi:
            hi += 1
        out.append(min(lo + int(ui * (hi - lo)), hi - 1))
    return out


def ref_video_losses(sig, feats, label, points, pseudo, uniforms, r_act=8, tau=0.1, classes="last"):
    """All five losses of one video (sig (T, K) background first, un-fused; numpy float64), looping as train.py."""
    t, k = sig.shape
    fused = sig.copy()
    fused[:, 1:] = sig[:, 1:] * (1 - sig[:, :1])
    kk = max(t // r_act, 1)
    top = np.sort(sig[:, 1:], axis=0)[::-1][:kk].mean(0)
    vid = top * label + sig[:, 1:].mean(0) * (1 - label)

    def bce(p, y):
        return -(y * max(math.log(p), -100) + (1 - y) * max(math.log(1 - p), -100)) if 0 < p < 1 else 100.0 * (p != y)

    l_vid = np.mean([bce(vid[c], label[c]) for c in range(k - 1)])

    def focal(rows, target_row):
        tot = 0.0
        for i in rows:
            y = target_row(i)
            for c in range(k):
                w = ((1 - fused[i, c]) * y[c] + fused[i, c] * (1 - y[c])) ** 2
                tot += w * bce(fused[i, c], y[c])
        return tot / len(rows) if rows else 0.0

    pts = [i for i in range(t) if points[i].max() > 0]
    l_point = focal(pts, lambda i: np.concatenate([[0.0], points[i]]))
    _, seed = ref_select_seed(list(fused[:, 0]), [list(r) for r in points])
    l_bkg = focal([i for i in range(t) if seed[i]], lambda i: np.eye(k)[0])
    l_score = l_feat = 0.0
    if pseudo is not None:
        act_terms, bkg_terms, feat_value = [], [], 0.0
        feat_values = []
        for c in range(k - 1):
            if not label[c]:
                continue
            parsed = ref_runs(list(pseudo[:, c].astype(int)))
            if parsed is None:
                continue
            acts, bkgs, flist = parsed
            p = list(fused[:, c + 1])
            act_terms += [1 - ref_oic(p, s, e) for s, e in acts]
            bkg_terms += [1 - ref_oic([1 - v for v in p], s, e) for s, e in bkgs]
            vecs = []
            for _, s, e in flist:
                picks = ref_sample(s, e + 1, uniforms.pop(0))
                vecs.append(np.mean([feats[i] for i in picks], axis=0))
            labels = np.array([lab for lab, _, _ in flist], dtype=np.float64)
            if labels.sum() > 1:
                f = np.array(vecs) / np.linalg.norm(vecs, axis=1, keepdims=True)
                sim = np.exp(f @ f.T / tau)
                np.fill_diagonal(sim, 0)
                s = (sim * labels[:, None]).sum(0) / sim.sum(0)
                feat_value = (-labels * np.log(s)).sum() / labels.sum()
                feat_values.append(feat_value)
        a = np.mean(act_terms) if act_terms else 0.0
        b = np.mean(bkg_terms) if bkg_terms else 0.0
        l_score = (a + b) ** 2
        l_feat = (feat_values[-1] if classes == "last" else np.mean(feat_values)) if feat_values else 0.0
    return l_vid, l_point, l_bkg, l_score, l_feat


# ----------------------------------------------------------------------------- inputs


def random_bkg(rng, t):
    """P(background) mixing confident background (>= 0.95), confident action (<= 0.1) and the rest."""
    kind = rng.integers(0, 3, t)
    return np.where(
        kind == 0, rng.uniform(0.95, 1.0, t), np.where(kind == 1, rng.uniform(0, 0.1, t), rng.uniform(0.1, 0.95, t))
    )


def random_points(rng, t, n):
    points = np.zeros((t, C))
    for i in rng.choice(t, size=n, replace=False):
        points[i, rng.integers(0, C)] = 1
    if rng.random() < 0.5:  # sometimes a second class on a labelled snippet
        i = int(np.flatnonzero(points.max(1))[0])
        points[i, (int(points[i].argmax()) + 1) % C] = 1
    return points


def padded_batch(rows):
    """List of (T_i, ...) arrays -> (B, T, ...) float tensor and (B, T) mask."""
    t = max(len(r) for r in rows)
    out = torch.zeros((len(rows), t, *rows[0].shape[1:]), dtype=torch.float64)
    mask = torch.zeros((len(rows), t), dtype=torch.bool)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(r)
        mask[i, : len(r)] = True
    return out, mask


# ----------------------------------------------------------------------------- seeds and search


def test_select_seeds_match_the_per_video_loop():
    rng = np.random.default_rng(0)
    for trial in range(30):
        lengths = rng.integers(4, 25, 5)
        bkgs = [random_bkg(rng, t) for t in lengths]
        pts = [random_points(rng, t, int(rng.integers(1, min(5, t)))) for t in lengths]
        pts[0][:] = 0 if trial % 3 == 0 else pts[0]  # a video without points gets nothing
        bkg, mask = padded_batch([b[:, None] for b in bkgs])
        points, _ = padded_batch(pts)
        act, seed = select_seeds(bkg[..., 0].float(), points.float(), mask)
        for i, t in enumerate(lengths):
            ref_act, ref_seed = ref_select_seed(list(bkgs[i]), [list(r) for r in pts[i]])
            assert seed[i, :t].int().tolist() == ref_seed, (trial, i)
            assert act[i, :t].tolist() == ref_act, (trial, i)
            assert not seed[i, t:].any() and not act[i, t:].any()


def test_select_seeds_on_a_hand_example():
    # points at 2 (class 0) and 7 (class 1); background 0.97 at 5 and 6, 0.05 next to the points
    bkg = torch.tensor([[0.5, 0.05, 0.3, 0.05, 0.5, 0.97, 0.97, 0.3, 0.5, 0.99]])
    points = torch.zeros(1, 10, C)
    points[0, 2, 0] = points[0, 7, 1] = 1
    act, seed = select_seeds(bkg, points, torch.ones(1, 10, dtype=torch.bool))
    # left: no >= 0.95 -> 0..argmax(0.5 at 0); between: 5..6; right: from the first >= 0.95 (9) to the end
    assert seed[0].int().tolist() == [1, 0, 0, 0, 0, 1, 1, 0, 0, 1]
    assert act[0, :, 0].int().tolist() == [0, 1, 1, 1, 0, 0, 0, 0, 0, 0]  # 1 and 3 have bkg <= 0.1
    assert act[0, :, 1].int().tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0, 0]


def search_cases(seed, trials, t_min, t_max):
    """Random fused CAS (V, T, K) and points; yields (cas, mask, rows, points) per trial."""
    rng = np.random.default_rng(seed)
    for _ in range(trials):
        lengths = rng.integers(t_min, t_max + 1, 4)
        cas_rows, pts = [], []
        for t in lengths:
            bkg = random_bkg(rng, t)
            cls = rng.uniform(0, 1, (t, C)) * (1 - bkg[:, None])
            cas_rows.append(np.concatenate([bkg[:, None], cls], axis=1))
            pts.append(random_points(rng, t, int(rng.integers(1, 3))))
        cas, mask = padded_batch(cas_rows)
        points, _ = padded_batch(pts)
        yield cas.float(), mask, points.float()


def check_search(options, reference, seed, trials=25, t_min=5, t_max=10) -> int:
    """optimal_sequences(options) against `reference(p, act_c, bkg_c)` per video and class; sequences checked."""
    checked = 0
    for trial, (cas, mask, points) in enumerate(search_cases(seed, trials, t_min, t_max)):
        pseudo, score = optimal_sequences(cas, points, mask, options)
        for i, t in enumerate(mask.sum(1).tolist()):
            act, seed_rows = ref_select_seed(list(cas[i, :t, 0].double().numpy()), points[i, :t].tolist())
            act = np.array(act)
            scores = []
            for c in range(C):
                if not act[:, c].any():
                    assert not pseudo[i, :, c].any()
                    continue
                other = (act.max(1) - act[:, c]) > 0
                bkg_c = [int(seed_rows[j] or other[j]) for j in range(t)]
                labels, best = reference(list(cas[i, :t, c + 1].double().numpy()), list(act[:, c]), bkg_c)
                assert pseudo[i, :t, c].int().tolist() == labels, (trial, i, c)
                scores.append(best)
                checked += 1
            assert float(score[i]) == pytest.approx(np.mean(scores) if scores else 0.0, abs=1e-6)
    return checked


def test_exact_search_equals_brute_force_over_all_seed_consistent_sequences():
    assert check_search(Options(search="exact"), ref_best_sequence, seed=1) > 50  # T <= 10


@pytest.mark.parametrize("budget", [1, 2, 3, 25])
def test_beam_search_equals_the_official_decoder_frame_by_frame(budget):
    checked = check_search(
        Options(budget=budget), lambda p, a, b: ref_beam(p, a, b, budget), seed=budget, trials=12, t_min=8, t_max=18
    )
    assert checked > 25


def test_beam_without_pruning_finds_the_exact_optimum():
    assert check_search(Options(budget=400, search_prune=-math.inf), ref_best_sequence, seed=5) > 50


def test_small_beams_do_prune_on_these_inputs():
    """The beam tests above compare something: on their inputs budget 1 and the exact search disagree."""
    differ = 0
    for cas, mask, points in search_cases(1, 12, 8, 18):
        beam, _ = optimal_sequences(cas, points, mask, Options(budget=1))
        exact, _ = optimal_sequences(cas, points, mask, Options(search="exact"))
        differ += int((beam != exact).any(1).any(1).sum())
    assert differ > 0


# ----------------------------------------------------------------------------- losses


def loss_inputs(seed=0, b=4, h=6):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(9, 30, b)
    sig = [rng.uniform(0.02, 0.98, (t, C + 1)) for t in lengths]
    feats = [rng.normal(size=(t, h)) for t in lengths]
    pts = [random_points(rng, t, int(rng.integers(1, 4))) for t in lengths]
    labels = np.array([(p.max(0) > 0).astype(float) for p in pts])
    labels[0, (int(labels[0].argmax()) + 1) % C] = 1  # a labelled class without points
    pseudo = []
    for t in lengths:
        seq = np.zeros((t, C), dtype=bool)
        for c in range(C):  # a few random runs; sometimes constant, sometimes ending with a 1-snippet run
            cuts = np.sort(rng.choice(np.arange(1, t), size=int(rng.integers(0, 6)), replace=False))
            value = bool(rng.integers(0, 2))
            for s, e in zip(np.r_[0, cuts], np.r_[cuts, t], strict=False):
                seq[s:e, c] = value
                value = not value
        pseudo.append(seq)
    return lengths, sig, feats, pts, labels, pseudo


@pytest.mark.parametrize("classes", ["last", "mean"])
def test_every_loss_matches_the_per_video_loop(classes):
    for seed in range(4):
        lengths, sig, feats, pts, labels, pseudo = loss_inputs(seed)
        searched = torch.tensor([True, True, False, True])
        sig_t, mask = padded_batch(sig)
        feat_t, _ = padded_batch(feats)
        pts_t, _ = padded_batch(pts)
        pseudo_t, _ = padded_batch([p.astype(float) for p in pseudo])
        labels_t = torch.as_tensor(labels)
        fused = fuse(sig_t)
        runs = pseudo_runs(pseudo_t > 0, searched, labels_t, mask)
        uniform = torch.rand(
            (runs.video.numel(), 3), generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        )
        got = [
            video_loss(video_scores(sig_t, mask, 8, labels_t), labels_t),
            focal_point_loss(fused, torch.nn.functional.pad(pts_t, (1, 0)), pts_t.amax(-1) > 0),
            focal_point_loss(
                fused,
                torch.eye(C + 1, dtype=torch.float64)[0].expand_as(fused),
                select_seeds(fused[..., 0], pts_t, mask)[1],
            ),
            score_loss(fused, runs, mask),
            feature_loss(feat_t, runs, 0.1, 3, classes, uniform),
        ]
        rows = uniform.tolist()
        for i in range(len(lengths)):
            mine = [u for u, v in zip(rows, runs.video.tolist(), strict=False) if v == i]
            want = ref_video_losses(
                sig[i], feats[i], labels[i], pts[i], pseudo[i] if searched[i] else None, mine, classes=classes
            )
            for name, g, w in zip(["video", "point", "point_bkg", "score", "feature"], got, want, strict=False):
                assert float(g[i]) == pytest.approx(w, abs=1e-5), (seed, i, name)
        assert float(got[3][2]) == 0.0 and float(got[4][2]) == 0.0  # not searched: no completeness losses


def test_method_loss_is_the_weighted_batch_mean_of_per_video_terms():
    torch.manual_seed(0)
    lengths, sig, feats, pts, labels, pseudo = loss_inputs(3, b=3)
    method = LACP(Options(hidden=8, dropout=0.0), 5, C).eval()
    x, mask = padded_batch([np.random.default_rng(0).normal(size=(t, 5)) for t in lengths])
    pts_t, _ = padded_batch(pts)
    batch = make_batch(
        x.float(),
        mask,
        torch.nn.functional.pad(torch.as_tensor(labels), (1, 0)).float(),
        torch.nn.functional.pad(pts_t, (1, 0)).float(),
    )
    out = method(batch.features, mask)
    losses = method.loss(out, batch, 0)
    assert float(losses["score"]) == 0.0 and float(losses["feature"]) == 0.0  # no search yet
    expected = losses["video"] + 0.5 * losses["point"] + losses["point_bkg"]
    assert float(losses["total"].detach()) == pytest.approx(float(expected), rel=1e-6)
    for i, t in enumerate(lengths):  # padding changes nothing: each video alone gives its own terms
        alone = method(batch.features[i : i + 1, :t], mask[i : i + 1, :t])
        assert torch.allclose(alone.cas[0], out.cas[i, :t], atol=1e-6)


# ----------------------------------------------------------------------------- post-processing


def test_upsample_is_linear_with_extrapolation():
    out = upsample(np.array([0.0, 1.0, 3.0]), 2)
    assert out.tolist() == [0.0, 0.5, 1.0, 2.0, 3.0, 4.0]  # positions 0, .5, 1, 1.5, 2, 2.5


def test_lacp_nms_uses_the_plus_extent_iou():
    segs = np.array([[0.0, 2.0], [1.0, 3.0], [10.0, 11.0]])
    # extent 1: IoU = (1 + 1) / (3 + 3 - 2) = 0.5 -> kept at 0.6, dropped at 0.5 (>=)
    assert lacp_nms(segs, np.array([0.9, 0.8, 0.7]), 0.6, 1.0).tolist() == [0, 1, 2]
    assert lacp_nms(segs, np.array([0.9, 0.8, 0.7]), 0.5, 1.0).tolist() == [0, 2]


def test_localize_on_a_hand_computed_example():
    # 6 snippets, one class above the class threshold; scale 1 (no upsampling), one CAS threshold 0.5
    cas = np.zeros((6, 3))
    cas[:, 1] = [0.1, 0.6, 0.8, 0.2, 0.9, 0.0]
    cas[:, 2] = 0.3
    video = np.array([0.0, 0.7, 0.2])
    dets = localize_lacp(
        cas,
        np.zeros(6),
        video,
        class_threshold=0.5,
        cas_thresholds=(0.5,),
        actionness_thresholds=(),
        scale=1,
        gamma=0.2,
        nms_threshold=0.7,
        nms_extent=0.0,
    )
    # run [1, 2]: inner 0.7; L=2, outer [max(0, int(0.5)), 1) = [0] and (2, int(2.5)] = {}: w[0] = 0 (zeroed
    # below 0.5) -> 0.7 + 0.2*0.7. run [4, 4]: inner 0.9; outer [int(3.75)=3] and (4, min(5, int(4.25))] = {}
    # -> w[3] = 0 -> 0.9 + 0.14
    got = sorted(map(tuple, dets.segments.round(6).tolist()))
    assert got == [(1.0, 3.0, 1.0, 0.84), (4.0, 5.0, 1.0, 1.04)]
    # the actionness runs are scored on the un-thresholded CAS: a >= 0.5 on [1, 4]
    dets = localize_lacp(
        cas,
        np.array([0.0, 0.6, 0.6, 0.6, 0.6, 0.0]),
        video,
        class_threshold=0.5,
        cas_thresholds=(),
        actionness_thresholds=(0.5,),
        scale=1,
        gamma=0.2,
        nms_threshold=0.7,
        nms_extent=0.0,
    )
    # inner mean(0.6, 0.8, 0.2, 0.9) = 0.625, L=4, outer {0} and {5}: mean(0.1, 0.0) = 0.05
    assert dets.segments.round(6).tolist() == [[1.0, 5.0, 1.0, round(0.625 - 0.05 + 0.14, 6)]]
    # no class reaches the threshold: the arg-max class alone
    low = localize_lacp(
        cas,
        np.zeros(6),
        np.array([0.0, 0.1, 0.3]),
        class_threshold=0.5,
        cas_thresholds=(0.25,),
        actionness_thresholds=(),
        scale=1,
        gamma=0.2,
        nms_threshold=0.7,
        nms_extent=0.0,
    )
    assert set(low.segments[:, 2]) == {2.0}


def test_scores_fuse_background_and_give_topk_video_scores():
    method = LACP(Options(hidden=8), 5, C).eval()
    x = torch.randn(2, 16, 5)
    mask = torch.ones(2, 16, dtype=torch.bool)
    mask[1, 9:] = False
    out = method(x, mask)
    s = method.scores(out, mask)
    assert torch.allclose(s.cas[..., 1:], out.cas[..., 1:] * (1 - out.cas[..., :1]))
    assert torch.allclose(s.actionness, 1 - out.cas[..., 0])
    k = 9 // 8
    want = out.cas[1, :9, 1:].topk(k, dim=0).values.mean(0)
    assert torch.allclose(s.video_scores[1, 1:], want) and float(s.video_scores[:, 0].detach().abs().sum()) == 0


def test_search_runs_after_every_search_freq_steps_and_is_carried_by_the_state_dict():
    method = LACP(Options(hidden=8), 5, C)
    assert [s for s in range(35) if method.refresh_due(s)] == [10, 20, 30]
    late = LACP(Options(hidden=8, search_start=25), 5, C)
    assert [s for s in range(35) if late.refresh_due(s)] == [30] and late.first_search == 30
    assert late.plan_notes(30) and not late.plan_notes(31) and not method.plan_notes(11)
    method.pseudo = torch.tensor([[True, False, True]])
    method.offsets = torch.tensor([0, 1])
    other = LACP(Options(hidden=8), 5, C)
    other.load_state_dict(method.state_dict())
    assert torch.equal(other.pseudo, method.pseudo) and torch.equal(other.offsets, method.offsets)


def official_labels_in_use(steps: int, n_videos: int, batch_size: int, search_freq: int, workers: int) -> list:
    """The official main.py loop, step by step: which search's labels (its step, None before any) each
    training step reads. The loader's iterator is re-created every len(train) // batch_size steps; with
    workers its dataset copy is the one of that moment, without workers it reads the live dataset."""
    stored, copy, used = None, None, []
    for step in range(1, steps + 1):
        if (step - 1) % (n_videos // batch_size) == 0:
            copy = stored  # iter(train_loader): the workers fork with the dataset as it is now
        used.append(copy if workers else stored)
        if step % search_freq == 0:
            stored = step  # optimal_sequence_search writes train_loader.dataset.stored_info_all
    return used


class _Videos:
    """What `LACP.training_sampler` reads of a dataset."""

    def __init__(self, n: int):
        self.n_snippets = np.full(n, 4)

    def __len__(self) -> int:
        return len(self.n_snippets)


@pytest.mark.parametrize("delay,workers", [("iterator", 2), ("immediate", 0)])
def test_search_labels_take_effect_when_the_official_loader_reads_them(delay, workers, monkeypatch):
    n_videos, batch, steps = 200, 16, 75  # THUMOS14: 200 training videos, 16 per step, iterator every 12 steps

    def search(self, step, dataset, predict_cas):  # labels that name their search: `step` rows set
        self.pending = torch.arange(200).unsqueeze(1).expand(200, C) < step
        self.pending_offsets = torch.tensor([0, 200])

    monkeypatch.setattr(LACP, "_search", search)
    method = LACP(Options(hidden=8, label_delay=delay), 5, C)
    method.training_sampler(_Videos(n_videos), batch, 0)
    used = []
    for step in range(steps):  # pointtal step s is the official step s + 1
        if step in (23, 41):  # resume from the state of a checkpoint: pending labels survive
            state = method.get_extra_state()
            method = LACP(Options(hidden=8, label_delay=delay), 5, C)
            method.set_extra_state(state)
            method.training_sampler(_Videos(n_videos), batch, 0)
        if method.refresh_due(step):
            method.refresh_labels(step, None, lambda: None)
        used.append(int(method.pseudo[:, 0].sum()) if method.offsets.numel() else None)
    want = official_labels_in_use(steps, n_videos, batch, 10, workers)
    assert used == want
    if delay == "iterator":  # labels 1-14 steps old; the step-50 search is never read (overwritten at 60)
        assert used[12] == 10 and used[23] == 10 and used[24] == 20 and used[36] == 30 and used[48] == 40
        assert 50 not in used and used[60] == 60
    else:
        assert used[10] == 10 and used[19] == 10 and used[20] == 20


def test_options_name_the_bad_key():
    from pointtal.errors import InputError

    with pytest.raises(InputError, match="method.search_freq"):
        Options(search_freq=0)
    with pytest.raises(InputError, match="method.feature_classes"):
        Options(feature_classes="all")


# ----------------------------------------------------------------------------- end to end


def _lacp_config(tiny_data, steps, method=None, **train):
    from conftest import tiny_raw_config

    from pointtal.config import build_config

    raw = tiny_raw_config(tiny_data, "lacp", steps=steps, **train)
    raw["method"].update(hidden=32, **(method or {}))
    return build_config(raw)


def test_perturb_index_draws_from_the_official_bins():
    from pointtal.data.samplers import perturb_index

    def candidates(length, size):  # random_perturb's choices, bin by bin, as plain loops
        if length == size:
            return [[i] for i in range(size)]
        starts = [i * length / size for i in range(size)]
        out = []
        for i in range(size):
            lo = int(starts[i])
            hi = int(starts[i + 1]) if i < size - 1 else length - 1
            out.append(list(range(lo, max(hi, lo) + 1)))
        return out

    lengths = np.array([10, 4, 6, 37, 1])
    draws = np.stack([perturb_index(lengths, 6, np.random.default_rng(k)) for k in range(300)])  # (300, B, 6)
    for b, length in enumerate(lengths):
        for i, allowed in enumerate(candidates(int(length), 6)):
            assert sorted(set(draws[:, b, i].tolist())) == allowed, (length, i)


def test_train_runs_the_search_and_checkpoints_its_labels(tiny_data, tmp_path, monkeypatch):
    from pointtal.engine.checkpoint import load_checkpoint
    from pointtal.engine.trainer import train

    completeness = {}

    def loss(self, output, batch, step, __f=LACP.loss):
        out = __f(self, output, batch, step)
        completeness[step] = float(out["score"]) + float(out["feature"])
        return out

    monkeypatch.setattr(LACP, "loss", loss)
    config = _lacp_config(tiny_data, 12, method={"label_delay": "immediate"})
    result = train(config, tmp_path / "run")
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    state = saved["model"]["_extra_state"]
    assert state["pseudo"].shape[1] == 4 and int(state["pseudo"].sum()) > 0  # the step-10 search's labels
    assert int(state["offsets"][-1]) == state["pseudo"].shape[0] and state["pending_offsets"].numel() == 0
    from reference_eval import reference_average_from_files

    want = reference_average_from_files(
        tiny_data / "annotations.json", tmp_path / "run" / "predictions.json", config.eval.tiou
    )  # the slow reference on the run's predictions
    assert result.metrics["average"] == pytest.approx(want, abs=1e-6)
    assert all(completeness[s] == 0 for s in range(10)) and completeness[10] > 0 and completeness[11] > 0
    # the official loader (24 videos, 4 per step: a new iterator every 6 steps): the step-10 labels wait for step 12
    completeness.clear()
    train(_lacp_config(tiny_data, 13), tmp_path / "delayed")
    assert all(completeness[s] == 0 for s in range(12)) and completeness[12] > 0
    state = load_checkpoint(tmp_path / "delayed" / "checkpoint.pt")["model"]["_extra_state"]
    assert state["pending_offsets"].numel() == 0 and int(state["pseudo"].sum()) > 0


@pytest.mark.slow  # ~5 s
def test_training_on_perturbed_samples_reads_the_whole_video_pseudo_labels(tiny_data, tmp_path):
    from pointtal.engine.trainer import train

    seen = []
    original = LACP.loss

    def loss(self, output, batch, step):
        seen.append(batch.mask.shape[1])
        return original(self, output, batch, step)

    LACP.loss = loss
    try:
        result = train(_lacp_config(tiny_data, 12, method={"num_segments": 48}), tmp_path / "run")
    finally:
        LACP.loss = original
    assert set(seen) == {48} and np.isfinite(result.metrics["average"])


@pytest.mark.slow  # 60 steps (~6 s)
def test_tiny_training_localizes_well_above_an_untrained_model(tiny_data, tmp_path):
    from pointtal.engine.trainer import train

    trained = train(_lacp_config(tiny_data, 60), tmp_path / "run").metrics["average"]
    untrained = train(_lacp_config(tiny_data, 60, lr=1e-12), tmp_path / "still").metrics["average"]
    # measured: 11.1 vs 1.9 average mAP (tIoU 0.1:0.7) on the tiny synthetic preset
    assert trained > 6.0 and trained > 3 * untrained


@pytest.mark.slow  # three short runs
@pytest.mark.parametrize("stop,held,every", [(17, 15, 5), (11, 11, 1)])
def test_resume_after_a_search_equals_an_uninterrupted_run(tiny_data, tmp_path, monkeypatch, stop, held, every):
    from conftest import interrupt_training_at

    from pointtal.engine.checkpoint import load_checkpoint
    from pointtal.engine.trainer import train

    # step 15: after the step-10 search and its use from step 12 (label_delay iterator, a new iterator every
    # 6 steps), before the step-20 one; step 11: the step-10 labels wait in the checkpoint for step 12
    config = _lacp_config(tiny_data, 24, checkpoint_every=every)
    train(config, tmp_path / "whole")
    final = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["model"]
    with monkeypatch.context() as patch:
        interrupt_training_at(patch, stop)
        with pytest.raises(KeyboardInterrupt):
            train(config, tmp_path / "cut")
    cut = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert cut["step"] == held
    assert (cut["model"]["_extra_state"]["pending_offsets"].numel() > 0) == (held == 11)
    searches = []
    monkeypatch.setattr(LACP, "_search", lambda self, s, *a, __f=LACP._search: searches.append(s) or __f(self, s, *a))
    train(config, tmp_path / "cut", resume=True)
    assert searches == [20]  # the step-10 labels came from the checkpoint
    resumed = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["model"]
    for key in final:
        if key == "_extra_state":
            assert all(torch.equal(resumed[key][k], final[key][k]) for k in final[key])
        else:
            assert torch.equal(resumed[key], final[key]), key


def test_gradients_stay_finite_at_saturated_scores_and_dead_features():
    feats = torch.zeros(1, 12, 4, requires_grad=True)  # dead ReLUs: zero features
    pseudo = torch.zeros(1, 12, C, dtype=torch.bool)
    pseudo[0, 2:4, 0] = pseudo[0, 6:8, 0] = True  # two action runs of class 0
    pseudo[0, 5:9, 1] = True  # one action run of class 1 (no feature loss: a lone group with s = 0/0)
    runs = pseudo_runs(
        pseudo, torch.tensor([True]), torch.tensor([[1.0, 1.0, 0.0]]), torch.ones(1, 12, dtype=torch.bool)
    )
    loss = feature_loss(feats, runs, 0.1, 3, "mean").sum()
    p = torch.full((1, 12, C + 1), 0.5, requires_grad=True)
    sat = torch.where(torch.arange(C + 1) == 1, torch.ones_like(p), p)  # a fused score of exactly 1
    focal = focal_point_loss(sat, torch.zeros_like(sat), torch.ones(1, 12, dtype=torch.bool)).sum()
    (loss + focal).backward()
    assert torch.isfinite(feats.grad).all() and torch.isfinite(p.grad).all()


def reference_losses(method, output, batch, step) -> dict:
    """The per-video loop reference of `LACP.loss` (bench/train_speed.py times it against the batched loss)."""
    mask = batch.mask
    pseudo, searched = method.batch_pseudo(batch)
    totals = np.zeros(5)
    for i in range(mask.shape[0]):
        t = int(mask[i].sum())
        sig = output.cas[i, :t].detach().double().cpu().numpy()
        feats = output.features[i, :t].detach().double().cpu().numpy()
        points = (batch.point_labels[i, :t, 1:] > 0).double().cpu().numpy()
        label = batch.video_labels[i, 1:].double().cpu().numpy()
        seq = pseudo[i, :t].cpu().numpy() if bool(searched[i]) else None
        uniforms = [list(np.random.default_rng(i).random(method.options.sampling_size)) for _ in range(4 * t)]
        totals += ref_video_losses(
            sig,
            feats,
            label,
            points,
            seq,
            uniforms,
            method.options.r_act,
            method.options.tau,
            method.options.feature_classes,
        )
    terms = dict(zip(["video", "point", "point_bkg", "score", "feature"], totals / mask.shape[0], strict=False))
    o = method.options
    terms["total"] = (
        o.w_video * terms["video"]
        + o.w_point * terms["point"]
        + o.w_point_bkg * terms["point_bkg"]
        + o.w_score * terms["score"]
        + o.w_feature * terms["feature"]
    )
    return {k: torch.tensor(v) for k, v in terms.items()}


def test_thumos14_preset_is_the_official_setting():
    from pathlib import Path

    from pointtal.config import load_config

    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "configs" / "thumos14_lacp.yaml", ["data.annotations=gt.json", "data.features=f"])
    assert config.method == "lacp" and config.method_options == Options()  # the defaults are the official ones
    t = config.train
    assert (t.steps, t.batch_size, t.lr, t.weight_decay, t.eval_every) == (2000, 16, 1e-4, 5e-4, 100)
    assert set(config.data.exclude_videos) == {f"video_test_{n:07d}" for n in (270, 1292, 1496)}  # LACP README
    o = Options()
    assert np.allclose(o.cas_thresholds, np.arange(0.0, 0.25, 0.025))  # config.act_thresh_cas
    assert np.allclose(o.actionness_thresholds, np.arange(0.5, 0.725, 0.025))  # config.act_thresh_agnostic
    assert (o.w_video, o.w_point, o.w_point_bkg, o.w_score, o.w_feature) == (1, 0.5, 1, 1, 1)  # lambdas
    assert (o.search_freq, o.budget, o.r_act, o.class_threshold, o.scale) == (10, 25, 8, 0.5, 24)


def test_reproduction_presets_train_in_fp32_as_the_original_code():
    """LACP, HR-Pro and SF-Net presets reproduce code that trains in fp32 (no autocast): train.amp false;
    SODA (no published code) keeps the bf16 default."""
    from pathlib import Path

    from pointtal.config import load_config

    root = Path(__file__).resolve().parents[2] / "configs"
    presets = sorted(root.glob("*.yaml"))
    assert len(presets) >= 17
    for path in presets:
        config = load_config(path, ["data.annotations=gt.json", "data.features=f"])
        assert config.train.amp == (config.method == "soda"), path.name


@pytest.mark.parametrize("order", ["iterator", "stream"])
def test_training_videos_come_in_the_official_loader_order(order):
    """main.py: `if (step - 1) % (len(train_loader) // batch_size) == 0: loader_iter = iter(train_loader)`, then
    batch_size `next()` a step: a fresh shuffle every E steps, its last len % batch_size videos never read.
    "stream": every video once an epoch. Plain loop of the official schedule on pointtal's permutations."""
    from pointtal.data.samplers import epoch_order, step_videos

    n, batch, steps = 23, 4, 40  # E = 5 steps per shuffle; 3 videos of each shuffle unread
    method = LACP(Options(hidden=8, video_order=order), 5, C)
    sampler = method.training_sampler(_Videos(n), batch, 7)
    assert sampler.order == order and method.iterator_steps == 5
    got = [step_videos(n, batch, 7, s, order).tolist() for s in range(steps)]
    if order == "iterator":
        want, shuffle, read = [], None, 0
        for step in range(1, steps + 1):
            if (step - 1) % (n // batch) == 0:
                shuffle, read = list(epoch_order(n, 7, (step - 1) // (n // batch))), 0  # iter(train_loader)
            want.append(shuffle[read : read + batch])
            read += batch
        assert got == want
        assert len({v for b in got[:5] for v in b}) == 20  # 3 of 23 videos unread in the first shuffle
    else:
        flat = [v for b in got for v in b]
        assert sorted(flat[:n]) == list(range(n)) and sorted(flat[n : 2 * n]) == list(range(n))
