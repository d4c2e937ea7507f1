"""`pointtal ablate --table sfnet-*`: SF-Net's studies resolve to the intended configs, the points table trains on
the right point files, several datasets give one table each plus a combined one, runs record frame mAP per
distance."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import tiny_raw_config

from pointtal.cli import ablate as ablate_cli
from pointtal.cli import main
from pointtal.config import build_config
from pointtal.errors import InputError
from pointtal.evaluation import FRAME_DISTANCES
from pointtal.studies.ablation import format_cell, variant_config
from pointtal.studies.sfnet_tables import (
    COMPONENTS,
    GROUPS,
    SCHEMES,
    SENSITIVITY,
    STUDIES,
    prepare_study,
)


@pytest.fixture(scope="module")
def base(tiny_data) -> dict:
    raw = tiny_raw_config(tiny_data, "sfnet", steps=4)
    assert len(raw["data"]["points"]) == 4  # the tiny preset ships four annotators' click files
    return raw


def _resolve(base, study, name, seed=0, user=()):
    return variant_config(base, list(user), study.variant(name), seed)


def _switches(config):
    o = config.method_options
    return (o.background, o.actionness, o.expand)


def test_components_switch_one_component_on_per_row(base):
    expected = {
        "SF": (False, False, False),
        "SFB": (True, False, False),
        "SFBA": (True, True, False),
        "SFBAE": (True, True, True),
    }
    assert [v.name for v in COMPONENTS.variants] == ["weak", "SF", "SFB", "SFBA", "SFBAE", "full"]
    for name, switches in expected.items():
        config = _resolve(base, COMPONENTS, name, seed=2)
        assert config.method == "sfnet" and _switches(config) == switches, name
        assert config.data.points == tuple(base["data"]["points"]) and config.data.annotator is None
        assert (config.train.seed, config.data.point_seed) == (2, 2)
    full = _resolve(base, COMPONENTS, "full")
    assert (full.method, full.data.points, _switches(full)) == ("sfnet", "full", (True, True, False))


def test_weak_row_switches_method_and_keeps_the_shared_keys(base):
    # CONFIG's SF-Net-only keys (expand_step here, eta from --set) are dropped; shared ones (hidden, t_max) kept
    weak = _resolve(base, COMPONENTS, "weak", user=["method.eta=3", "method.t_max=50"])
    assert (weak.method, weak.data.points) == ("weak", "weak")
    assert (weak.method_options.hidden, weak.method_options.t_max) == (16, 50)
    assert not hasattr(weak.method_options, "eta") and not hasattr(weak.method_options, "expand_step")
    # the same --set reaches the SF-Net rows
    assert _resolve(base, COMPONENTS, "SFB", user=["method.eta=3"]).method_options.eta == 3


def test_points_rows_train_on_the_intended_points(base, tmp_path):
    from pointtal.engine.setup import load_points, load_run_data

    files = base["data"]["points"]
    study = prepare_study(STUDIES["sfnet-points"], base, tmp_path / "sfnet-points")
    names = [v.name for v in study.variants]
    assert names == [
        "random",
        "annotator1",
        "annotator2",
        "annotator3",
        "annotator4",
        *(s for s, _ in SCHEMES),
        "consensus",
    ]

    def points_of(config):
        run = load_run_data(config, test=False)
        mapped = load_points(config, run.gt, run.train)
        return sorted(zip(mapped.video_id.tolist(), mapped.snippet.tolist(), mapped.class_index.tolist(), strict=True))

    def alone(path):
        return build_config({**base, "data": {**base["data"], "points": [str(path)]}})

    for i, path in enumerate(files):
        config = variant_config(base, [], study.variant(f"annotator{i + 1}"), 1)
        assert config.data.annotator == i
        assert points_of(config) == points_of(alone(path)), f"annotator {i + 1}"
    random = variant_config(base, [], study.variant("random"), 1)
    assert random.data.annotator is None and random.data.points == tuple(files)
    for scheme, _ in SCHEMES:
        config = variant_config(base, [], study.variant(scheme), 1)
        assert (config.data.points, config.data.annotator, config.data.point_seed) == (scheme, None, 1)

    # the consensus row trains on the file `pointtal annotate --agreement ... --merge` writes (its defaults)
    merged = tmp_path / "merged.csv"
    assert main(["annotate", base["data"]["annotations"], "--agreement", *files, "--merge", str(merged)]) == 0
    consensus = tmp_path / "consensus.csv"  # beside the table's directory: shared with sfnet-consensus
    assert consensus.read_bytes() == merged.read_bytes() and merged.stat().st_size > 0
    config = variant_config(base, [], study.variant("consensus"), 0)
    assert config.data.points == (str(consensus),) or config.data.points == str(consensus)
    assert points_of(config) == points_of(alone(merged))
    assert json.loads((tmp_path / "consensus.json").read_text())["kept"] == len(merged.read_text().splitlines())
    # sfnet-consensus is the two rows issue 23 compares, with the same configs (finished runs are shared)
    pair = prepare_study(STUDIES["sfnet-consensus"], base, tmp_path / "sfnet-consensus", write=False)
    assert [v.name for v in pair.variants] == ["random", "consensus"]
    for name in ("random", "consensus"):
        assert variant_config(base, [], pair.variant(name), 2) == variant_config(base, [], study.variant(name), 2)


def test_points_table_needs_several_click_files(base, tmp_path):
    with pytest.raises(InputError, match="data.points.*two or more annotators"):
        prepare_study(STUDIES["sfnet-points"], {**base, "data": {**base["data"], "points": "sfnet-uniform"}}, tmp_path)
    two = {**base, "data": {**base["data"], "points": base["data"]["points"][:2]}}
    assert [v.name for v in prepare_study(STUDIES["sfnet-points"], two, tmp_path, write=False).variants][:3] == [
        "random",
        "annotator1",
        "annotator2",
    ]


def test_sensitivity_rows_change_only_their_knob(base):
    keys = {
        "sfnet-eta": "eta",
        "sfnet-alpha": "alpha",
        "sfnet-beta": "beta",
        "sfnet-ratio": "expand_ratio",
        "sfnet-radius": "radius",
    }
    assert GROUPS["sfnet-sensitivity"] == tuple(keys) == tuple(s.key for s in SENSITIVITY)
    preset = build_config(base).method_options
    for study in SENSITIVITY:
        key = keys[study.key]
        values = [v.x for v in study.variants]
        assert values == sorted(values) and getattr(preset, key) in values and study.plot_x, study.key
        for v in study.variants:
            options = _resolve(base, study, v.name).method_options
            assert getattr(options, key) == v.x
            assert dataclasses.replace(options, **{key: getattr(preset, key)}) == preset, v.name
    # the preset-value row of each knob is the SFBAE row (so finished runs are copied between tables)
    sfbae = _resolve(base, COMPONENTS, "SFBAE")
    assert _resolve(base, STUDIES["sfnet-eta"], "eta5") == sfbae


def test_run_records_single_frame_map_per_distance(base, tmp_path):
    """The run's frame_mAP@d are what `pointtal evaluate GT frames.json --frames` reports for its frames."""
    from pointtal.engine.trainer import train

    run = tmp_path / "run"
    record = train(build_config(base), run).metrics
    report = tmp_path / "frames_eval.json"
    assert (
        main(
            [
                "evaluate",
                base["data"]["annotations"],
                str(run / "frames.json"),
                "--frames",
                "--subset",
                "test",
                "--json",
                str(report),
            ]
        )
        == 0
    )
    expected = json.loads(report.read_text())
    assert expected["distance"] == list(FRAME_DISTANCES)
    got = [record[f"frame_mAP@{d:g}"] for d in FRAME_DISTANCES]
    assert np.allclose(got, expected["map"], atol=1e-9) and max(got) > 0
    assert record["frame_mAP"] == pytest.approx(float(np.mean(got)), abs=1e-9)


def test_several_datasets_write_one_table_each_and_a_combined_one(base, tiny_data, tmp_path, monkeypatch):
    from pointtal.data.synthetic import generate

    other = tmp_path / "other"
    generate(other, "tiny", seed=1, progress=False)
    configs = []
    for name, data in (("a", tiny_data), ("b", other)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(tiny_raw_config(data, "sfnet", steps=4)))
        configs.append(str(path))
    small = dataclasses.replace(COMPONENTS, variants=(COMPONENTS.variant("weak"), COMPONENTS.variant("SF")))
    monkeypatch.setitem(ablate_cli.ALL_STUDIES, "sfnet-components", small)
    out = tmp_path / "out"
    assert (
        main(["ablate", *configs, "--dataset", "a,b", "--table", "sfnet-components", "--seeds", "2", "--out", str(out)])
        == 0
    )
    combined = (out / "table_sfnet-components.md").read_text().splitlines()
    header = next(line for line in combined if line.startswith("| variant"))
    assert [c.strip() for c in header.strip("|").split("|")][1:] == [
        f"{d} {c}" for d in ("a", "b") for c in ("mAP@0.5", "average", "frame_mAP")
    ]
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]]
        for line in combined
        if line.startswith("| ") and not line.startswith("| variant")
    }
    for dataset in ("a", "b"):
        table = (out / dataset / "table_sfnet-components.md").read_text()
        assert table.startswith("# SF-Net component ablation") and "Budget: 4 steps, batch 4" in table
        assert "points 4 click files (unless a row sets data.points)" in table  # CONFIG's, not the weak row's
        assert "frame_mAP@0.25" in table
        summary = json.loads((out / dataset / "table_sfnet-components.json").read_text())["summary"]
        for v in small.variants:
            s = summary[v.name]
            assert s["n"] == 2
            cells = [format_cell(s["mean"][c], s["std"][c]) for c in ("mAP@0.5", "average", "frame_mAP")]
            offset = 0 if dataset == "a" else 3
            assert rows[v.label][offset : offset + 3] == cells, (dataset, v.name)
        runs = sorted(
            p.parent.parent.name for p in (out / dataset / "sfnet-components").glob("*/seed*/predictions.json")
        )
        assert runs == ["SF", "SF", "weak", "weak"]
    # the two datasets' runs differ (each trained on its own data)
    a = json.loads((out / "a" / "table_sfnet-components.json").read_text())["summary"]["SF"]["mean"]
    b = json.loads((out / "b" / "table_sfnet-components.json").read_text())["summary"]["SF"]["mean"]
    assert a != b


def test_cli_refusals_are_one_line(base, tmp_path, capsys):
    config = tmp_path / "sfnet.yaml"
    config.write_text(yaml.safe_dump(base))
    soda = tmp_path / "soda.yaml"
    soda.write_text(yaml.safe_dump({**base, "method": {"name": "soda"}, "data": {**base["data"], "points": "soda"}}))
    cases = [
        (["ablate", str(config), "--table", "sfnet-nothing", "--out", "o"], "valid tables: 4, 5,"),
        (["ablate", str(config), str(config), "--table", "sfnet-points", "--out", "o"], "share the dataset name"),
        (["ablate", str(config), "--dataset", "a,b", "--table", "sfnet-points", "--out", "o"], "one non-empty name"),
        (["ablate", str(soda), "--table", "sfnet-components", "--out", "o"], "method.name=sfnet or weak, got soda"),
        (["ablate", str(config), "--table", "4", "--out", "o"], "method.name=soda, got"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err and "Traceback" not in err, (argv, err)


def test_dry_run_lists_each_dataset_and_the_sensitivity_group(base, tmp_path, capsys):
    config = tmp_path / "sfnet.yaml"
    config.write_text(yaml.safe_dump(base))
    assert main(["ablate", str(config), "--table", "sfnet-sensitivity", "--seeds", "1", "--out", "o", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == sum(len(s.variants) for s in SENSITIVITY)
    assert lines[0] == "o/sfnet-eta/eta1/seed0: train.seed=0 data.point_seed=0 method.eta=1"
    assert (
        main(
            [
                "ablate",
                str(config),
                str(config),
                "--dataset",
                "x,y",
                "--table",
                "sfnet-points",
                "--seeds",
                "1",
                "--out",
                "o",
                "--dry-run",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[-1] == "o/y/sfnet-points/consensus/seed0: train.seed=0 data.point_seed=0 "
        "data.points=o/y/consensus.csv data.annotator=null"
    )
    assert not Path("o").exists()


def test_an_interrupted_study_is_finished_by_rerunning_the_command(base, tmp_path, monkeypatch):
    """The tables written before an interruption are the command's own outputs: the rerun replaces them and
    trains only the runs that did not finish."""
    from pointtal.engine import trainer

    config = tmp_path / "sfnet.yaml"
    config.write_text(yaml.safe_dump(base))
    small = dataclasses.replace(COMPONENTS, variants=(COMPONENTS.variant("weak"), COMPONENTS.variant("SF")))
    monkeypatch.setitem(ablate_cli.ALL_STUDIES, "sfnet-components", small)
    original, trained = trainer.train, []

    def train_until_second(config, run_dir, **kwargs):
        if len(trained) == 1:
            raise KeyboardInterrupt  # the study process stops during its second run
        trained.append(run_dir)
        return original(config, run_dir, **kwargs)

    monkeypatch.setattr(trainer, "train", train_until_second)
    argv = ["ablate", str(config), "--table", "sfnet-components", "--seeds", "1", "--out", str(tmp_path / "o")]
    assert main(argv) == 130
    assert (tmp_path / "o" / "table_sfnet-components.md").is_file()  # written after the first run
    trained.clear()
    monkeypatch.setattr(
        trainer, "train", lambda config, run_dir, **kw: (trained.append(run_dir), original(config, run_dir, **kw))[1]
    )
    assert main(argv) == 0
    assert [p.parent.name for p in trained] == ["SF"]  # the finished weak run is reused, not retrained
    table = (tmp_path / "o" / "table_sfnet-components.md").read_text()
    assert all(f"| {v.label} |" in table or f"| **best** {v.label} |" in table for v in small.variants)
