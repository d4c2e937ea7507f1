"""A run that can finish: HR-Pro's stage-2 segments are valid by construction, no method can hand the writer an
invalid segment, a resume whose schedule cannot be honoured is refused, and HR-Pro trains, is interrupted
inside stage 2, resumes and evaluates on release-layout data (LACP's and HR-Pro's)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import interrupt_training_at, tiny_raw_config

from pointtal.errors import InputError
from pointtal.localization.detections import Detections, InvalidDetections, check_detections
from pointtal.localization.hrpro import soft_nms, soft_nms_per_class, valid_segments
from pointtal.methods.base import Method, Scores, VideoScores
from pointtal.methods.hrpro import HRPro, Options, refine


# ----------------------------------------------------------------------------- stage-2 segments
def _stage2_method(start_bias: float, end_bias: float, **options) -> HRPro:
    """A small HR-Pro in stage 2 whose I-model regresses every proposal by the same offsets (proposal widths)."""
    torch.manual_seed(0)
    method = HRPro(Options(num_heads=2, dim_feedforward=16, **{"max_per_class": None, **options}), 8, 3)
    for head, bias in ((method.instance.start_reg, start_bias), (method.instance.end_reg, end_bias)):
        torch.nn.init.zeros_(head[2].weight)
        torch.nn.init.constant_(head[2].bias, bias)
    method.stage2_ready = True
    return method.eval()


def _video(method: HRPro, n: int = 40):
    features = torch.randn(1, n, 8, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(1, n, dtype=torch.bool)
    with torch.no_grad():
        out = method(features, mask)
        s = method.scores(out, mask)
    return out, VideoScores("video_test_0000007", s.cas[0].numpy(), None, s.video_scores[0].numpy(), 0)


def _official_stage2(method: HRPro, out, video: VideoScores) -> np.ndarray:
    """The official I_test output: proposals as is and refined, both scored, soft-NMS per class, nothing
    dropped (what the port wrote before: rows with start >= end included)."""
    o = method.options
    raw = method._stage1_raw(video.cas, video.video_scores)
    n = len(video.cas)
    proposals = torch.from_numpy(np.column_stack([raw.start, raw.end])).float()[None]
    with torch.no_grad():
        first = method.instance(out.features[:, :n], torch.tensor([n]), proposals)
        refined = refine(proposals, first.start_reg, first.end_reg)
        second = method.instance(out.features[:, :n], torch.tensor([n]), refined)
    bounds = np.concatenate([proposals[0].numpy(), refined[0].numpy()]).astype(np.float64)
    score = np.concatenate([first.iou[0].numpy() + raw.score, second.iou[0].numpy() + raw.score])
    return soft_nms_per_class(
        bounds, score, np.concatenate([raw.label, raw.label]), o.soft_nms_sigma, o.soft_nms_offset
    )


def test_refined_segments_whose_start_passes_their_end_are_dropped_and_every_other_row_is_official():
    # the reported case: a start regressed past its end by ~2 % of the proposal ([12.944, 12.937] s)
    method = _stage2_method(0.511, -0.511)
    out, video = _video(method)
    official = _official_stage2(method, out, video)
    inverted = official[:, 0] >= official[:, 1]
    assert inverted.sum() == len(official) // 2  # every refined proposal is inverted: the failing input
    (found,) = method.detect(out, [video])
    assert np.all(found.segments[:, 0] < found.segments[:, 1]) and np.all(np.isfinite(found.segments))
    np.testing.assert_array_equal(found.segments, official[~inverted])  # the rest: bounds, scores, order
    check_detections(found, 3, "hrpro", video.video_id)  # what the engine demands
    assert len(found.frames) == len(found.segments)


def test_valid_refined_segments_pass_untouched_and_boundaries_outside_the_video_stay_unless_clipped():
    method = _stage2_method(-3.0, 3.0)  # every refined proposal widened by 3 widths on each side
    out, video = _video(method)
    official = _official_stage2(method, out, video)
    (found,) = method.detect(out, [video])
    np.testing.assert_array_equal(found.segments, official)  # nothing degenerate: the official output
    assert found.segments[:, 0].min() < 0 and found.segments[:, 1].max() > 40  # as the official code
    clipped = _stage2_method(-3.0, 3.0, refined_bounds="clip")
    (inside,) = clipped.detect(*_with_list(_video(clipped)))
    assert inside.segments[:, 0].min() >= 0 and inside.segments[:, 1].max() <= 40
    assert len(inside.segments) == len(found.segments)


def _with_list(pair):
    out, video = pair
    return out, [video]


def test_valid_segments_drops_inverted_empty_and_non_finite_rows_and_keeps_order():
    rows = np.array(
        [
            [1.0, 2.0, 1, 0.9],
            [3.0, 2.99, 1, 0.8],
            [4.0, 4.0, 2, 0.7],
            [np.nan, 5.0, 2, 0.6],
            [5.0, 6.0, 2, np.inf],
            [-1.0, 0.5, 3, 0.5],
            [7.0, 9.0, 3, 0.4],
        ]
    )
    np.testing.assert_array_equal(valid_segments(rows), rows[[0, 5, 6]])


def _official_soft_nms(segments, scores, sigma, offset):
    """The official utils.soft_nms loop (gaussian), in snippet units with `offset` for its +1."""
    dets = np.column_stack([segments, np.zeros(len(segments)), scores, np.arange(len(segments))]).astype(float)
    dets = np.concatenate([dets, (dets[:, 1] - dets[:, 0] + offset)[:, None]], 1)
    kept = []
    while dets.size > 0:
        best = np.argmax(dets[:, 3], axis=0)
        dets[[0, best], :] = dets[[best, 0], :]
        kept.append((int(dets[0, 4]), dets[0, 3]))
        inter = np.maximum(np.minimum(dets[0, 1], dets[1:, 1]) - np.maximum(dets[0, 0], dets[1:, 0]) + offset, 0.0)
        iou = inter / (dets[0, -1] + dets[1:, -1] - inter)
        dets[1:, 3] *= np.exp(-(iou * iou) / sigma)
        dets = dets[1:, :]
    return np.array([k[0] for k in kept]), np.array([k[1] for k in kept])


@pytest.mark.parametrize("ties", [False, True])
def test_soft_nms_equals_the_official_loop_with_ties_and_inverted_rows(ties):
    rng = np.random.default_rng(int(ties))
    start = rng.uniform(0, 60, 250)
    segments = np.column_stack([start, start + rng.uniform(-1.0, 15, 250)])  # some rows inverted
    scores = rng.integers(0, 4, 250) / 3.0 if ties else rng.random(250)
    order, decayed = soft_nms(segments, scores, 0.3, 1.5625)
    reference = _official_soft_nms(segments, scores, 0.3, 1.5625)
    np.testing.assert_array_equal(order, reference[0])
    np.testing.assert_array_equal(decayed, reference[1])


@pytest.mark.parametrize("ties", [False, True])
def test_soft_nms_of_all_classes_at_once_equals_the_official_loop_per_class(ties):
    rng = np.random.default_rng(2 + int(ties))
    start = rng.uniform(0, 60, 400)
    segments = np.column_stack([start, start + rng.uniform(-1.0, 15, 400)])
    scores = rng.integers(0, 4, 400) / 3.0 if ties else rng.random(400)
    labels = rng.choice([7, 2, 5, 11], 400, p=[0.6, 0.3, 0.09, 0.01])  # classes of very different sizes
    rows = soft_nms_per_class(segments, scores, labels, 0.3, 1.5625)
    expected = []
    for label in dict.fromkeys(labels.tolist()):  # classes in order of first appearance
        index = np.flatnonzero(labels == label)
        order, decayed = _official_soft_nms(segments[index], scores[index], 0.3, 1.5625)
        expected.append(np.column_stack([segments[index[order]], np.full(len(order), label), decayed]))
    np.testing.assert_array_equal(rows, np.concatenate(expected))


@pytest.mark.parametrize("seed", [0, 1])
def test_soft_nms_cut_after_k_visits_is_the_k_best_rows_of_the_full_output(seed):
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 100, 300)
    segments = np.column_stack([start, start + rng.uniform(0.5, 20, 300)])
    scores = rng.random(300)
    order, decayed = soft_nms(segments, scores, 0.3, 1.5625)
    assert np.all(np.diff(decayed) <= 0)  # visiting order is by decayed score
    for k in (1, 17, 300, 1000):
        part, part_scores = soft_nms(segments, scores, 0.3, 1.5625, max_kept=k)
        np.testing.assert_array_equal(part, order[:k])
        np.testing.assert_array_equal(part_scores, decayed[:k])
    labels = rng.integers(1, 4, 300)
    full = soft_nms_per_class(segments, scores, labels, 0.3, 1.5625)
    capped = soft_nms_per_class(segments, scores, labels, 0.3, 1.5625, max_per_class=10)
    for c in (1, 2, 3):
        np.testing.assert_array_equal(capped[capped[:, 2] == c], full[full[:, 2] == c][:10])


def test_max_per_class_caps_hrpro_detections_per_class():
    method = _stage2_method(0.1, -0.1)
    out, video = _video(method)
    (full,) = method.detect(out, [video])
    capped_method = _stage2_method(0.1, -0.1, max_per_class=5)
    (capped,) = capped_method.detect(out, [video])
    for c in np.unique(full.segments[:, 2]):
        np.testing.assert_array_equal(
            capped.segments[capped.segments[:, 2] == c], full.segments[full.segments[:, 2] == c][:5]
        )
    with pytest.raises(InputError, match=r"method.max_per_class=0 must be >= 1"):
        Options(max_per_class=0)


# ----------------------------------------------------------------------------- the method/engine boundary
class ToyMethod(Method):
    """Returns whatever segments it is given for every video (to test the engine's check)."""

    name = "toy"
    Options = Options

    def __init__(self, rows: np.ndarray, frames: np.ndarray | None = None):
        super().__init__(None, 4, 2)
        self.rows, self.frame_rows = rows, np.zeros((0, 3)) if frames is None else frames
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, features, mask, **extras):
        return features

    def scores(self, output, mask):
        b, t, _ = output.shape
        return Scores(cas=torch.zeros(b, t, 3), video_scores=torch.zeros(b, 3))

    def detect(self, output, videos):
        return [Detections(self.rows, self.frame_rows) for _ in videos]


def _toy_predict(rows, frames=None):
    from pointtal.data.features import SnippetGeometry
    from pointtal.engine.inference import predict

    items = [
        ("video_a", np.ones((10, 4), np.float32)),
        ("video_b", np.ones((10, 4), np.float32)),
    ]  # equal lengths: checked in order
    geometry = {v: SnippetGeometry(25.0, 16) for v, _ in items}
    return predict(
        ToyMethod(np.asarray(rows, np.float64), frames),
        items,
        geometry,
        ("Jump", "Run"),
        batch_size=2,
        device=torch.device("cpu"),
    )


@pytest.mark.parametrize(
    "rows, pattern",
    [
        ([[1.0, 2.0, 1, 0.5], [3.0, 3.0, 2, 0.4]], r"row 1 of 2 is \[3\.0, 3\.0\]"),
        ([[5.0, 4.9, 1, 0.5]], r"row 0 of 1 is \[5\.0, 4\.9\]"),
        ([[1.0, np.inf, 1, 0.5]], r"\[1\.0, inf\]"),
        ([[1.0, 2.0, 1, np.nan]], r"score nan"),
        ([[1.0, 2.0, 0, 0.5]], r"class 0\.0"),  # 0 would be written as the last class
        ([[1.0, 2.0, 3, 0.5]], r"class 3\.0"),
    ],
)
def test_the_engine_refuses_a_methods_invalid_segment_naming_method_and_video(rows, pattern):
    with pytest.raises(
        InvalidDetections,
        match=r"method 'toy' returned an invalid segment for video 'video_a': .*" + pattern + r".*nothing was written",
    ):
        _toy_predict(rows)


def test_the_engine_refuses_invalid_frames_and_shapes_and_passes_valid_detections():
    with pytest.raises(InvalidDetections, match=r"method 'toy' returned an invalid frame for video 'video_a'"):
        _toy_predict([[1.0, 2.0, 1, 0.5]], np.array([[np.nan, 1, 0.5]]))
    with pytest.raises(InvalidDetections, match=r"shape segments \(2, 3\)"):
        _toy_predict([[1.0, 2.0, 1], [2.0, 3.0, 1]])
    out = _toy_predict([[1.0, 2.0, 1, 0.5], [0.0, 10.0, 2, 0.25]], np.array([[1.0, 2, 0.5]]))
    assert out.segments["video_b"] == [
        {"label": "Jump", "score": 0.5, "segment": [0.64, 1.28]},
        {"label": "Run", "score": 0.25, "segment": [0.0, 6.4]},
    ]
    assert out.frames["video_a"] == [{"label": "Run", "score": 0.5, "frame": 0.96}]


# ----------------------------------------------------------------------------- resume schedule
def _hrpro_raw(data, steps: int, epochs: int, **train) -> dict:
    raw = tiny_raw_config(data, "sfnet", steps=steps, **train)
    raw["method"] = {
        "name": "hrpro",
        "num_heads": 4,
        "dim_feedforward": 32,
        "stage2_epochs": epochs,
        "stage2_batch_size": 8,
        "stage2_lr": 1e-3,
    }
    return raw


def _with_steps(raw: dict, steps: int) -> dict:
    return {**raw, "train": {**raw["train"], "steps": steps}}


def test_resume_refuses_a_schedule_it_cannot_honour_and_names_the_key(tiny_data, tmp_path, monkeypatch):
    from pointtal.config import build_config
    from pointtal.engine.checkpoint import load_checkpoint
    from pointtal.engine.trainer import train

    raw = _hrpro_raw(tiny_data, 4, 2, checkpoint_every=1)  # stage 1: steps 0..3, stage 2: steps 4..9
    with monkeypatch.context() as patch:
        interrupt_training_at(patch, 6)
        with pytest.raises(KeyboardInterrupt):
            train(build_config(raw), tmp_path / "run")
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 6
    for steps in (3, 5, 2):  # inside stage 2, any other stage-1 length moves stage 2 behind the run
        with pytest.raises(
            InputError,
            match=rf"--resume at step 6 cannot honour train.steps={steps} \(was 4\): "
            r"phase 2 \(instance\) began at step 4 and would begin at step "
            rf"{steps}",
        ) as err:
            train(build_config(_with_steps(raw, steps)), tmp_path / "run", resume=True)
        assert "\n" not in str(err.value)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 6  # nothing was touched
    result = train(build_config(raw), tmp_path / "run", resume=True)  # the same schedule finishes
    assert result.step == 10


def test_resume_refuses_fewer_steps_than_the_checkpoint_in_a_one_phase_run(tiny_data, tmp_path, monkeypatch):
    from pointtal.config import build_config
    from pointtal.engine.trainer import train

    raw = tiny_raw_config(tiny_data, "lacp", steps=10, checkpoint_every=2)
    raw["method"] = {"name": "lacp"}
    with monkeypatch.context() as patch:
        interrupt_training_at(patch, 6)
        with pytest.raises(KeyboardInterrupt):
            train(build_config(raw), tmp_path / "run")
    with pytest.raises(
        InputError,
        match=r"--resume at step 6 cannot honour train.steps=4 \(was 10\): phase 1 "
        r"\(train\) would end at step 4, before the checkpoint's step",
    ):
        train(build_config(_with_steps(raw, 4)), tmp_path / "run", resume=True)
    assert train(build_config(_with_steps(raw, 6)), tmp_path / "run", resume=True).step == 6  # ends there
    assert train(build_config(_with_steps(raw, 8)), tmp_path / "run", resume=True).step == 8  # lengthened


def test_resume_inside_stage1_may_change_its_length_while_stage2_has_not_begun(tiny_data, tmp_path, monkeypatch):
    from pointtal.config import build_config
    from pointtal.engine.trainer import Trainer, train

    raw = _hrpro_raw(tiny_data, 6, 1, checkpoint_every=1)
    with monkeypatch.context() as patch:
        interrupt_training_at(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            train(build_config(raw), tmp_path / "run")
    trainer = Trainer(build_config(_with_steps(raw, 4)), tmp_path / "run", resume=True)  # still ahead of 3
    assert trainer.starts == [0, 4] and trainer.state.step == 3
    with pytest.raises(InputError, match=r"train.steps=2 \(was 6\): phase 1 \(snippet\) would end at step 2"):
        Trainer(build_config(_with_steps(raw, 2)), tmp_path / "run", resume=True)


# ----------------------------------------------------------------------------- the journey on release layouts
def _release_data(tiny_data: Path, root: Path, hrpro: bool) -> tuple[Path, Path, Path]:
    """The tiny benchmark in LACP's or HR-Pro's release layout: (ground truth, features root, point CSV)."""
    from test_layouts import _native_fps, write_lacp

    from pointtal.data.annotations import load_ground_truth
    from pointtal.data.points import simulate_points

    gt = load_ground_truth(tiny_data / "annotations.json")
    features = {v: np.load(tiny_data / "features" / f"{v}.npy") for v in gt.videos}
    train_videos = gt.subset("validation")
    counts = {v.video_id: features[v.video_id].shape[0] for v in train_videos}
    points = simulate_points(train_videos, "gaussian", 25.0, 16, seed=3, snippet_counts=counts)
    frames = [(p, int(round(p.time_sec * _native_fps(p.video_id)))) for p in points]
    folder = write_lacp(root / "THUMOS14", (gt, features, frames), hrpro=hrpro)
    if hrpro:
        return folder / "gt_full.json", folder, folder / "point_labels" / "point_gaussian.csv"
    return folder / "gt.json", folder, folder / "point_gaussian" / "point_labels.csv"


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["lacp", "hrpro"])
def test_hrpro_journey_on_release_layout_is_interrupted_in_stage2_resumes_finishes_and_evaluates(
    layout, tiny_data, tmp_path, monkeypatch
):
    """As the README says: the THUMOS14 preset on the release files (small step counts), killed inside stage 2,
    `--resume`d to the end; its predictions are valid and `pointtal evaluate` reads them."""
    from pointtal.cli import main
    from pointtal.engine.checkpoint import load_checkpoint

    gt, features, points = _release_data(tiny_data, tmp_path / "data", hrpro=layout == "hrpro")
    run = tmp_path / "run"
    args = [
        "train",
        str(Path(__file__).resolve().parents[2] / "configs" / "thumos14_hrpro.yaml"),
        "--out",
        str(run),
        "--set",
        f"data.annotations={gt}",
        "--set",
        f"data.features={features}",
        "--set",
        f"data.points={points}",
        "--set",
        "train.steps=8",
        "--set",
        "method.stage2_epochs=3",
        "--set",
        "method.stage2_batch_size=8",
        "--set",
        "train.batch_size=8",
        "--set",
        "train.eval_every=8",
        "--set",
        "train.checkpoint_every=2",
        "--set",
        "train.device=cpu",
        "--set",
        "train.report=false",
        "--no-progress",
    ]
    # 24 training videos: stage 1 is steps 0..7, stage 2 is 3 epochs of 3 steps, steps 8..16
    with monkeypatch.context() as patch:
        interrupt_training_at(patch, 12)  # killed inside stage 2
        assert main(args) == 130
    saved = load_checkpoint(run / "checkpoint.pt")
    assert saved["step"] == 12 and saved["model"]["_extra_state"]["stage2_ready"]
    assert not (run / "predictions.json").exists()
    assert main([*args[:1], *args[1:], "--resume"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 17
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r["step"] for r in records if "average" in r]
    assert evaluated == [8, 16, 17]  # stage 1's end, then stage 2 (resumed) twice
    predictions = json.loads((run / "predictions.json").read_text())["results"]
    segments = np.array([e["segment"] for rows in predictions.values() for e in rows])
    assert len(segments) > 0 and np.all(segments[:, 0] < segments[:, 1])
    # the written file evaluates (read back as `pointtal evaluate` reads it) to the run's final record
    from pointtal.config import load_config
    from pointtal.engine.setup import load_run_data
    from pointtal.evaluation import SegmentTable, load_segment_predictions, segment_map

    data = load_run_data(load_config(run / "config.yaml"), train=False)
    truth = SegmentTable.from_ground_truth([data.gt.videos[v] for v in data.test.video_ids], data.classes)
    table = load_segment_predictions(run / "predictions.json", data.classes)
    result = segment_map(truth, table, (0.1, 0.3, 0.5))
    assert 100 * result.map[0] == pytest.approx(records[-1]["mAP@0.1"]) and records[-1]["mAP@0.1"] > 0
