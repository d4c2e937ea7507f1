"""Segment supervision: training videos' instances as segments, from the ground truth or a pseudo-label file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from pointtal.data.annotations import load_ground_truth
from pointtal.data.features import SnippetGeometry
from pointtal.data.segments import load_segments
from pointtal.errors import InputError

GEOMETRY = SnippetGeometry(25.0, 16)  # 1 snippet = 0.64 s


def write(path: Path, database: dict) -> Path:
    path.write_text(json.dumps({"database": database}))
    return path


@pytest.fixture
def truth(tmp_path):
    return load_ground_truth(
        write(
            tmp_path / "gt.json",
            {
                "a": {
                    "subset": "validation",
                    "duration": 20.0,
                    "annotations": [
                        {"segment": [3.2, 6.4], "label": "Jump"},  # touches the next one, same class
                        {"segment": [0.64, 3.2], "label": "Jump"},
                        {"segment": [10.0, 12.0], "label": "Run"},
                    ],
                },
                "b": {
                    "subset": "validation",
                    "duration": 9.0,
                    "annotations": [{"segment": [1.0, 2.0], "label": "Run"}],
                },
                "c": {"subset": "validation", "duration": 9.0, "annotations": []},
                "t": {"subset": "test", "duration": 9.0, "annotations": [{"segment": [1.0, 2.0], "label": "Run"}]},
            },
        )
    )


def test_full_segments_keep_touching_instances_apart_in_seconds_and_snippets(truth):
    table = load_segments("full", truth, ["a", "b", "c"], [GEOMETRY] * 3)
    assert table.counts().tolist() == [3, 1, 0]
    rows = table.rows(0)  # time order, the two touching Jumps stay two rows
    np.testing.assert_allclose(table.start_sec[rows], [0.64, 3.2, 10.0])
    np.testing.assert_allclose(table.end_sec[rows], [3.2, 6.4, 12.0])
    np.testing.assert_allclose(table.start[rows], [1.0, 5.0, 15.625])  # seconds * 25 / 16
    np.testing.assert_allclose(table.end[rows], [5.0, 10.0, 18.75])
    assert table.label[rows].tolist() == [1, 1, 2]  # Jump = 1, Run = 2 (sorted class names)
    assert table.weight.tolist() == [1.0] * 4
    np.testing.assert_allclose(table.start[table.rows(1)], [1.5625])


def test_pseudo_label_file_gives_its_instances_with_score_weights(truth, tmp_path, caplog):
    path = write(
        tmp_path / "pseudo.json",
        {
            "a": {
                "subset": "validation",
                "duration": 20.0,
                "annotations": [
                    {"segment": [5.0, 7.0], "label": "Run", "score": 0.25},
                    {"segment": [1.0, 2.0], "label": "Jump", "score": 0.75},
                    {"segment": [2.0, 3.0], "label": "Jump"},
                ],
            },
            "c": {"subset": "validation", "duration": 9.0, "annotations": []},
        },
    )
    with caplog.at_level(logging.WARNING):
        table = load_segments(str(path), truth, ["a", "b", "c"], [GEOMETRY] * 3)
    assert table.counts().tolist() == [3, 0, 0]  # b is not in the file: background only, and said so
    assert "1 of 3 training videos have no pseudo labels" in caplog.text
    np.testing.assert_allclose(table.start_sec, [1.0, 2.0, 5.0])
    assert table.label.tolist() == [1, 1, 2]
    np.testing.assert_allclose(table.weight, [0.75, 1.0, 0.25])  # no score: weight 1
    assert table.source == str(path)


def test_pseudo_label_file_errors_name_the_file(truth, tmp_path):
    unknown = write(
        tmp_path / "unknown.json",
        {
            "a": {
                "subset": "validation",
                "duration": 20.0,
                "annotations": [{"segment": [1.0, 2.0], "label": "Swim", "score": 0.5}],
            }
        },
    )
    with pytest.raises(InputError, match=r"unknown.json: video 'a' has label 'Swim'"):
        load_segments(str(unknown), truth, ["a"], [GEOMETRY])
    other = write(tmp_path / "other.json", {"t": {"subset": "test", "duration": 9.0, "annotations": []}})
    with pytest.raises(InputError, match=r"other.json: holds none of the 2 training videos"):
        load_segments(str(other), truth, ["a", "b"], [GEOMETRY] * 2)
    negative = write(
        tmp_path / "negative.json",
        {
            "a": {
                "subset": "validation",
                "duration": 20.0,
                "annotations": [{"segment": [1.0, 2.0], "label": "Run", "score": -0.5}],
            }
        },
    )
    with pytest.raises(InputError, match=r"scores must be >= 0"):
        load_segments(str(negative), truth, ["a"], [GEOMETRY])


def test_engine_loads_segments_only_for_segment_methods(tiny_data, monkeypatch, tmp_path):
    from conftest import tiny_raw_config

    from pointtal import methods
    from pointtal.config import build_config
    from pointtal.engine.setup import load_run_data
    from pointtal.methods.sfnet import SFNet

    point_run = load_run_data(build_config(tiny_raw_config(tiny_data, "sfnet")), test=False)
    assert point_run.train.segments is None  # point methods keep getting points only

    class SegmentSFNet(SFNet):
        supervision = "segments"

    monkeypatch.setitem(methods.METHODS, "segment-sfnet", SegmentSFNet)
    raw = tiny_raw_config(tiny_data, "sfnet")
    raw["method"]["name"] = "segment-sfnet"
    run = load_run_data(build_config(raw), test=False)
    table, gt = run.train.segments, run.gt
    assert len(table) == sum(len(gt.videos[v].instances) for v in run.train.video_ids)
    first = gt.videos[run.train.video_ids[0]]
    np.testing.assert_allclose(table.start_sec[table.rows(0)], sorted(i.start_sec for i in first.instances))

    # a pseudo-label path in a config file is read from the file's directory; a missing one names the key
    raw["data"]["segments"] = "missing.json"
    config = build_config(raw)
    assert config.data.segments == str(Path.cwd() / "missing.json")
    with pytest.raises(InputError, match=r"missing.json: pseudo-label file not found \(data.segments"):
        load_run_data(config, test=False)
