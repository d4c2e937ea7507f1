"""What makes `pointtal evaluate` fast as a process, checked for behaviour: the orjson reader still refuses
duplicate keys and reads exactly what the standard library reads; the CLI imports only the chosen command
(and still lists every command in --help); --recall / --proposals reach the table and the JSON."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pointtal.atomic import loads_unique, unique_keys
from pointtal.cli import COMMANDS, main
from pointtal.errors import DuplicateKey
from pointtal.evaluation import load_proposals, load_segment_predictions

ROOT = Path(__file__).resolve().parents[2]
GT_PATH = ROOT / "pointtal" / "data" / "vendor" / "thumos14" / "groundtruth.json"


def _stdlib(raw: bytes):
    return json.loads(raw.decode("utf-8"), object_pairs_hook=unique_keys)


# ---------------------------------------------------------------- JSON reader


@pytest.mark.parametrize(
    "raw, key",
    [
        (b'{"a": 1, "a": 2}', "a"),
        (b'{"results": {"v": [{"label": "x", "score": 1, "score": 2}]}}', "score"),
        (b'{"x": {"k:1": "a:b", "k:1": "c"}}', "k:1"),  # colons inside the duplicated member
        (b'{"s": "\\u003a\\u003a", "a": 1, "a": 2}', "a"),  # escaped colons: the count cannot see them
        (b'{"a": [{"b": {"c": 1, "c": 1}}]}', "c"),  # identical duplicate, deep
    ],
)
def test_duplicate_keys_are_refused(raw, key):
    with pytest.raises(DuplicateKey) as err:
        loads_unique(raw)
    assert err.value.args[0] == key


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": "x:y", "b": ["::", {"c:": 1}], "\\u00e9t\\u00e9": "\\ud83d\\ude00", "d": -0.0}',
        b'{"f": [0.1, 1e-320, 1.7976931348623157e308, -9223372036854775808, 18446744073709551615]}',
        b'{"nan": NaN, "big": 1e400, "lone": "\\ud800"}',  # the standard library's extensions: same result
        b'[1, 2.5, true, false, null, "", {}]',
    ],
)
def test_reader_reads_what_the_standard_library_reads(raw):
    fast, slow = loads_unique(raw), _stdlib(raw)
    assert json.dumps(fast) == json.dumps(slow)  # same values, same float digits, same order
    assert [type(v) for v in _leaves(fast)] == [type(v) for v in _leaves(slow)]


def test_integers_beyond_64_bits_read_as_their_float():
    """The one difference from the standard library: orjson reads such an integer as a float, the same
    float that the loaders' float() of the int gives (error messages re-read the file exactly)."""
    big = 123456789012345678901234567890
    assert loads_unique(f"[{big}]".encode()) == [float(big)] and _stdlib(f"[{big}]".encode()) == [big]


def _leaves(value):
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def test_random_prediction_floats_read_exactly(tmp_path):
    """The fast reader's columns equal float() of the written text, for random and extreme floats."""
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.random(500), rng.normal(0, 1e6, 500), 10.0 ** rng.uniform(-300, 300, 500)])
    starts = [repr(float(v)) for v in values]
    text = ", ".join(f'{{"label": "a", "score": {s}, "segment": [{s}, 1e301]}}' for s in starts)
    path = tmp_path / "p.json"
    path.write_text(f'{{"results": {{"v": [{text}]}}}}')
    table = load_segment_predictions(path, ["a"])
    assert table.score.tolist() == [float(s) for s in starts] == table.start_sec.tolist()


def test_proposals_need_no_label(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(
        '{"results": {"v1": [{"score": 0.5, "segment": [1, 2]}], "v0": [], '
        '"v2": [{"score": 1, "segment": [0, 3], "label": "anything"}]}}'
    )
    table = load_proposals(path, ["a", "b"])
    assert table.video_ids == ("v1", "v2") and table.label.tolist() == [0, 0]
    assert table.score.tolist() == [0.5, 1.0] and table.end_sec.tolist() == [2.0, 3.0]
    path.write_text('{"results": {"v1": [{"score": 0.5, "segment": [1, 2]}, {"segment": [1, 2]}]}}')
    with pytest.raises(ValueError, match="video 'v1' prediction 1: missing 'score'"):
        load_proposals(path, ["a"])


# ---------------------------------------------------------------- lazy command imports


def test_evaluate_imports_only_what_it_needs(tmp_path):
    """`pointtal evaluate` must not pay for torch, tqdm, yaml or the other commands' modules."""
    pred = tmp_path / "p.json"
    pred.write_text('{"results": {"video_test_0000896": [{"label": "HighJump", "score": 1, "segment": [18.6, 24.8]}]}}')
    code = (
        "import sys; from pointtal.cli import main; rc = main(['evaluate', sys.argv[1], sys.argv[2]]); "
        "print(rc, *sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'tqdm', 'yaml', 'matplotlib') or m.startswith('pointtal.cli.') "
        "or m.startswith('pointtal.data.synthetic')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(GT_PATH), str(pred)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    ).stdout
    # pointtal.cli.checks: the option checks every command shares (no command of its own)
    assert out.splitlines()[-1].split() == ["0", "pointtal.cli.checks", "pointtal.cli.evaluate"]


def test_top_level_help_lists_every_command_with_its_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name, module_name in COMMANDS.items():
        help_line = " ".join(importlib.import_module(module_name).HELP.split())
        assert f"{name} {help_line}" in text


def test_help_before_the_command_still_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["-h", "evaluate"])
    out = capsys.readouterr().out
    assert [name for name in COMMANDS if name not in out] == []


def test_unknown_command_names_the_choices(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evalute"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'evalute'" in err and "'evaluate'" in err and "'train'" in err


def test_yaml_errors_are_still_one_line(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("train: [unclosed\n")
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pointtal train: error:") and "Traceback" not in err


# ---------------------------------------------------------------- --recall / --proposals


def _gt_as_predictions(tmp_path, labelled: bool) -> Path:
    """The THUMOS14 test ground truth as predictions, scores falling with the position in each video."""
    database = json.loads(GT_PATH.read_text())["database"]
    results = {}
    for video_id, video in database.items():
        if video["subset"] == "test":
            results[video_id] = [
                {"score": 1.0 / (k + 1), "segment": a["segment"], **({"label": a["label"]} if labelled else {})}
                for k, a in enumerate(video["annotations"])
            ]
    path = tmp_path / "pred.json"
    path.write_text(json.dumps({"results": results}))
    return path


def test_cli_recall_table_and_json(tmp_path, capsys):
    pred = _gt_as_predictions(tmp_path, labelled=True)
    out = tmp_path / "m.json"
    assert main(["evaluate", str(GT_PATH), str(pred), "--recall", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Average recall" in text and "AR@100" in text and "avg 0.1:0.7" in text
    doc = json.loads(out.read_text())
    recall = doc["recall"]
    assert doc["map"] == [100.0] * 7 and recall["tiou"] == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    assert recall["ar"]["100"] == 100.0 and 0 < recall["ar"]["1"] < recall["ar"]["10"] < 100
    assert len(recall["average_recall"]) == 100 and recall["an"][0] == pytest.approx(1.0)


def test_cli_proposals_without_labels(tmp_path, capsys):
    pred = _gt_as_predictions(tmp_path, labelled=False)
    out = tmp_path / "m.json"
    assert main(["evaluate", str(GT_PATH), str(pred), "--proposals", "--recall-tiou", "0.5", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "mAP" not in text and "tIoU 0.5" in text
    doc = json.loads(out.read_text())
    assert "map" not in doc and doc["recall"]["ar"]["100"] == 100.0 and doc["recall"]["tiou"] == [0.5]


@pytest.mark.parametrize(
    "extra, expect",
    [
        (["--frames", "--recall"], "drop them with --frames"),
        (["--proposals", "--tiou", "0.5"], "AR@AN only"),
        (["--recall", "--recall-tiou", "0"], "threshold 0.0 must be"),
    ],
)
def test_cli_recall_bad_options(tmp_path, capsys, extra, expect):
    pred = _gt_as_predictions(tmp_path, labelled=True)
    assert main(["evaluate", str(GT_PATH), str(pred), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pointtal evaluate: error:") and expect in err and err.count("\n") == 1
