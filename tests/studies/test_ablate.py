"""`pointtal ablate`: study definitions, the seed runner, mean ± std tables, reuse of finished runs, ensembles."""

from __future__ import annotations

import dataclasses
import json
import statistics

import pytest
import torch
import yaml
from conftest import tiny_raw_config
from reference_eval import reference_average_from_files

from pointtal.cli import main
from pointtal.config import build_config
from pointtal.engine.logs import read_metrics
from pointtal.errors import InputError
from pointtal.methods.base import Scores
from pointtal.studies import ablation
from pointtal.studies.ablation import STUDIES, get_study, run_study, variant_config
from pointtal.studies.ensemble import ENSEMBLE_RULES, ensemble_scores

COLUMNS = ["mAP@0.1", "mAP@0.2", "mAP@0.3", "mAP@0.4", "mAP@0.5", "mAP@0.6", "mAP@0.7", "average"]


@pytest.fixture(scope="module")
def base(tiny_data) -> dict:
    return tiny_raw_config(tiny_data, "soda", steps=4)


def _options(base, table, name, seed=0):
    config = variant_config(base, [], get_study(table).variant(name), seed)
    return config, config.method_options


def test_table4_rows_set_points_frame_loss_background_label_and_m(base):
    expected = {  # points, frame_loss, background_label, M
        "weak": ("weak", False, 1, 1),
        "points-bg1": ("soda", True, 1, 1),
        "points-bg0": ("soda", True, 0, 1),
        "points-bg0-sd": ("soda", True, 0, 2),
        "weak-sd": ("weak", False, 1, 2),
    }
    assert [v.name for v in STUDIES["4"].variants] == list(expected)
    for name, (points, frame_loss, bg, m) in expected.items():
        config, o = _options(base, "4", name, seed=2)
        assert (config.data.points, o.frame_loss, o.background_label, o.n_networks) == (points, frame_loss, bg, m)
        assert (config.train.seed, config.data.point_seed) == (2, 2)


def test_other_tables_vary_the_intended_key(base):
    assert [_options(base, "5", v.name)[0].data.points for v in STUDIES["5"].variants] == [
        "soda-action",
        "soda-background",
        "soda",
    ]
    assert [_options(base, "6", v.name)[1].n_networks for v in STUDIES["6"].variants] == [1, 2, 3, 4]
    assert [
        (o.distill_distance, o.n_networks) for o in (_options(base, "8", v.name)[1] for v in STUDIES["8"].variants)
    ] == [("l1", 2), ("l2", 2), ("kl", 2)]
    assert [_options(base, "12", v.name)[1].distill_weight for v in STUDIES["12"].variants] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert [_options(base, "agg", v.name)[1].aggregation for v in STUDIES["agg"].variants] == [
        "topk",
        "average",
        "temporal_softmax",
        "category_softmax",
    ]
    # table 7: two M=1 networks, same points, different initialisation; every ensemble rule fuses them
    a, b = (_options(base, "7", name, seed=1)[0] for name in ("single", "single-b"))
    assert a.method_options.n_networks == b.method_options.n_networks == 1
    assert a.data.point_seed == b.data.point_seed == 1 and (a.train.seed, b.train.seed) == (1, 1001)  # k, k + 1000
    fused = [v for v in STUDIES["7"].variants if v.fuse]
    assert sorted(v.fuse for v in fused) == sorted(ENSEMBLE_RULES)
    assert all(v.members == ("single", "single-b") for v in fused)
    assert _options(base, "7", "sd")[1].n_networks == 2


def test_table9_distils_the_cas_or_the_video_scores(base):
    rows = [
        (v.name, o.n_networks, o.distill_target, o.distill_weight > 0)
        for v, o in ((v, _options(base, "9", v.name)[1]) for v in STUDIES["9"].variants)
    ]
    assert rows == [("none", 1, "cas", True), ("video", 2, "video", True), ("cas", 2, "cas", True)]
    # a user's distance or lambda applies under the variant; the target is the variant's
    config = variant_config(
        base, ["method.distill_distance=kl", "method.distill_target=cas"], get_study("9").variant("video"), 0
    )
    assert (config.method_options.distill_distance, config.method_options.distill_target) == ("kl", "video")


def test_user_overrides_apply_under_the_variant(base):
    config = variant_config(base, ["method.n_networks=3", "train.lr=0.01"], get_study("6").variant("M1"), 0)
    assert config.method_options.n_networks == 1 and config.train.lr == 0.01


def test_unknown_table_is_one_line_listing_valid_tables(tmp_path, capsys):
    with pytest.raises(InputError, match="valid tables: 4, 5, 6, 7, 8, 9, 12, agg"):
        get_study("10")
    assert main(["ablate", "cfg.yaml", "--table", "10", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "valid tables" in err and "Traceback" not in err


def test_table5_writes_mean_std_table_and_reuses_finished_runs(base, tmp_path, monkeypatch):
    out = tmp_path / "abl"
    lines = []
    result = run_study(get_study("5"), base, out, [0, 1], ["train.progress=false"], on_run=lines.append)
    assert [(o.variant.name, o.seed, o.status) for o in result.outcomes] == [
        (v, k, "trained") for k in (0, 1) for v in ("action", "background", "both")
    ]
    table = (out / "table_5.md").read_text().splitlines()
    header = next(line for line in table if line.startswith("| variant"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["variant", *COLUMNS, "runs"]
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]]
        for line in table
        if line.startswith("| ") and not line.startswith("| variant")
    }
    best = [label for label in rows if label.startswith("**best** ")]
    rows = {label.removeprefix("**best** "): cells for label, cells in rows.items()}
    averages = {
        v.label: statistics.mean(read_metrics(out / "5" / v.name / f"seed{k}")[-1]["average"] for k in (0, 1))
        for v in STUDIES["5"].variants
    }
    assert best == [f"**best** {max(averages, key=averages.get)}"]  # the highest average mAP is marked
    assert list(rows) == [v.label for v in STUDIES["5"].variants]  # no --metric: the study's order
    for variant in STUDIES["5"].variants:
        records = [read_metrics(out / "5" / variant.name / f"seed{k}")[-1] for k in (0, 1)]
        expected = [
            f"{statistics.mean(r[c] for r in records):.2f} ± {statistics.stdev(r[c] for r in records):.2f}"
            for c in COLUMNS
        ]
        assert rows[variant.label] == [*expected, "2"], variant.name
    summary = json.loads((out / "table_5.json").read_text())["summary"]
    assert summary["both"]["n"] == 2

    # a rerun trains nothing: every run is reused and its files are untouched, even when a saved config
    # predates a key added since (it is re-validated with the default) and the progress bar is switched on
    saved = out / "5" / "both" / "seed1" / "config.yaml"
    raw = yaml.safe_load(saved.read_text())
    del raw["train"]["report"]
    saved.write_text(yaml.safe_dump(raw))
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("5/*/seed*/checkpoint.pt")}
    monkeypatch.setattr("pointtal.engine.trainer.train", _no_training)
    again = run_study(get_study("5"), base, out, [0, 1], ["train.progress=true"])
    assert {o.status for o in again.outcomes} == {"reused"}
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("5/*/seed*/checkpoint.pt")} and len(stamps) == 6
    assert [o.metrics for o in again.outcomes] == [o.metrics for o in result.outcomes]

    # an identical config in another table is copied, not retrained (tiny base: M=2, soda points)
    m2 = dataclasses.replace(get_study("6"), variants=(get_study("6").variant("M2"),))
    copied = run_study(m2, base, out, [0], ["train.progress=false"])
    assert copied.outcomes[0].status == "copied from 5/both/seed0"
    assert copied.outcomes[0].metrics == read_metrics(out / "5" / "both" / "seed0")[-1]
    assert (out / "table_6.png").is_file()

    # a different config in an existing run directory is refused, never overwritten
    with pytest.raises(InputError, match="different config"):
        run_study(get_study("5"), base, out, [0], ["train.progress=false", "train.lr=0.5"])


def _no_training(*args, **kwargs):
    raise AssertionError("a finished run was retrained")


def test_table7_fuses_two_tiny_models(base, tmp_path):
    from pointtal.studies.ensemble import fuse_predictions, load_pair

    study = get_study("7")
    study = dataclasses.replace(study, variants=tuple(v for v in study.variants if v.name != "sd"))
    out = tmp_path / "abl"
    result = run_study(study, base, out, [0], ["train.progress=false"])
    fused = [o for o in result.outcomes if o.variant.fuse]
    assert [o.status for o in fused] == ["fused"] * len(ENSEMBLE_RULES)
    for o in fused:
        assert (o.run_dir / "predictions.json").is_file() and read_metrics(o.run_dir)[-1] == o.metrics
        want = reference_average_from_files(
            base["data"]["annotations"], o.run_dir / "predictions.json", build_config(base).eval.tiou
        )  # the slow reference on its predictions
        assert o.metrics["average"] == pytest.approx(want, abs=1e-6)
    rows = [
        line
        for line in (out / "table_7.md").read_text().splitlines()
        if line.replace("**best** ", "").startswith("| ensemble")
    ]
    assert len(rows) == len(ENSEMBLE_RULES)
    # fusing a model with itself by mean or max changes nothing: same predictions as the run's own
    single = out / "7" / "single" / "seed0"
    a, _, data = load_pair(single, single)
    own = json.loads((single / "predictions.json").read_text())["results"]
    for rule in ("score_mean_cas_mean", "score_max_cas_max"):
        assert json.loads(json.dumps(fuse_predictions(a, a, rule, data).segments)) == own, rule
    # a rerun reuses the fused rows too
    assert {o.status for o in run_study(study, base, out, [0], ["train.progress=false"]).outcomes} == {"reused"}


def test_cli_dry_run_lists_runs_and_help_has_an_example(tmp_path, capsys, tiny_data):
    config = tmp_path / "soda.yaml"
    config.write_text(yaml.safe_dump(tiny_raw_config(tiny_data, "soda", steps=4)))
    assert main(["ablate", str(config), "--table", "4", "--seeds", "2", "--out", "o", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10 and lines[0].startswith("o/4/weak/seed0: train.seed=0 data.point_seed=0 data.points=weak")
    with pytest.raises(SystemExit):
        main(["ablate", "--help"])
    assert "Example:" in capsys.readouterr().out
    assert ablation.SECOND_SEED_OFFSET > 100


def test_ensemble_rules():
    cas_a = torch.tensor([[[0.8, 0.2], [0.4, 0.6]]])  # (B=1, T=2, C+1=2)
    cas_b = torch.tensor([[[0.6, 0.4], [0.2, 0.8]]])
    a = Scores(cas_a, torch.tensor([[0.3, 0.7]]))
    b = Scores(cas_b, torch.tensor([[0.1, 0.9]]))
    fused = ensemble_scores(a, b, "score_mean_cas_max")
    assert torch.allclose(fused.video_scores, torch.tensor([[0.2, 0.8]])) and torch.equal(
        fused.cas, cas_a.maximum(cas_b)
    )
    fused = ensemble_scores(a, b, "score_max_cas_mean")
    assert torch.allclose(fused.video_scores, torch.tensor([[0.3, 0.9]]))
    assert torch.allclose(fused.cas, torch.tensor([[[0.7, 0.3], [0.3, 0.7]]]))
    fused = ensemble_scores(a, b, "cas_mean_then_scores", eta=0.5)  # k = 1: max over time of the mean CAS
    assert torch.allclose(fused.video_scores, torch.tensor([[0.7, 0.7]]))
    for rule in ("score_mean_cas_mean", "score_max_cas_max"):
        assert ensemble_scores(a, b, rule).cas.shape == (1, 2, 2)
    with pytest.raises(ValueError, match="ensemble rule"):
        ensemble_scores(a, b, "vote")


def test_dependencies_point_one_way():
    """cli -> engine / studies -> methods -> data: nothing below the studies imports them."""
    from pathlib import Path

    import pointtal

    root = Path(pointtal.__file__).parent
    for layer in ("engine", "methods", "data", "localization", "evaluation"):
        for path in (root / layer).rglob("*.py"):
            assert "pointtal.studies" not in path.read_text(encoding="utf-8"), path
    assert "pointtal.studies" not in (root / "viz.py").read_text(encoding="utf-8")
