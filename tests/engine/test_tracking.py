"""Experiment tracking: every run's config and final metrics in TensorBoard's HParams view; the optional W&B
logger's offline run read back from W&B's own transaction log (its protobuf records); no W&B import when off."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import tiny_raw_config

from pointtal.config import build_config, load_config
from pointtal.engine.logs import read_metrics
from pointtal.engine.trainer import train
from pointtal.errors import InputError


def flatten(node, prefix: str = "") -> dict:
    """config.yaml's nested mapping as dotted keys (lists and nulls kept as they are)."""
    if not isinstance(node, dict):
        return {prefix[:-1]: node}
    out = {}
    for key, value in node.items():
        out.update(flatten(value, f"{prefix}{key}."))
    return out


def numeric(record: dict) -> dict[str, float]:
    return {
        key: value
        for key, value in record.items()
        if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


# ----------------------------------------------------------------------------- TensorBoard HParams


def read_hparams(tensorboard_dir: Path):
    """(session start hparams, scalar values by tag and step) of a run's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import api_pb2, metadata

    acc = EventAccumulator(str(tensorboard_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    assert end.status == api_pb2.STATUS_SUCCESS
    # no experiment summary: TensorBoard would take one run's as a whole sweep's table (tracking.write_hparams)
    assert metadata.EXPERIMENT_TAG not in content
    hparams = {}
    for key, value in start.hparams.items():
        kind = value.WhichOneof("kind")
        hparams[key] = {
            "number_value": value.number_value,
            "string_value": value.string_value,
            "bool_value": value.bool_value,
        }[kind]
    scalars = {}
    for tag in acc.Tags()["scalars"]:
        scalars[tag] = {event.step: event.value for event in acc.Scalars(tag)}
    for tag in acc.Tags()["tensors"]:  # newer TensorBoard reads add_scalar summaries as tensors
        scalars.setdefault(
            tag,
            {
                event.step: float(event.tensor_proto.float_val[0])
                for event in acc.Tensors(tag)
                if event.tensor_proto.float_val
            },
        )
    return hparams, scalars


def test_hparams_hold_the_resolved_config_and_the_final_metrics(tiny_data, tmp_path):
    """Each flat key of the run's config.yaml is an HParams value (lists as JSON text, null as "null"), the
    session ends as a success, and the `eval/*` scalars at the final step (the HParams view's metrics) equal
    metrics.jsonl's final record."""
    raw = tiny_raw_config(tiny_data, "sfnet", steps=10, eval_every=5, seed=3)
    train(build_config(raw), tmp_path / "run")
    hparams, scalars = read_hparams(tmp_path / "run" / "tensorboard")

    saved = flatten(yaml.safe_load((tmp_path / "run" / "config.yaml").read_text()))
    assert set(hparams) == set(saved)
    for key, value in saved.items():
        if isinstance(value, list):
            assert json.loads(hparams[key]) == value, key
        elif value is None:
            assert hparams[key] == "null", key
        elif isinstance(value, bool) or isinstance(value, str):
            assert hparams[key] == value, key
        else:
            assert hparams[key] == pytest.approx(value), key
    assert hparams["train.seed"] == 3 and hparams["method.name"] == "sfnet"

    records = read_metrics(tmp_path / "run")
    final = records[-1]
    assert final["step"] == 10 and len(records) == 2
    for key, value in numeric(final).items():
        assert scalars[f"eval/{key}"][10] == pytest.approx(value, rel=1e-6), key


# ----------------------------------------------------------------------------- W&B


def wandb_records(path: Path) -> list:
    """The protobuf records of a `.wandb` transaction log: a 7-byte header (":W&B", magic, version), then
    LevelDB-log framing (32 KiB blocks; each chunk: crc32 (4), length (2), type (1 full, 2 first, 3 middle,
    4 last)), each record a wandb_internal_pb2.Record."""
    from wandb.proto import wandb_internal_pb2

    raw = path.read_bytes()
    assert raw[:4] == b":W&B"
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(raw):
        if block - pos % block < 7:  # the block's tail is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        if length == 0 and kind == 0:
            break
        pending += raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def nest(items) -> dict:
    """History / summary items as a mapping: a key with a nested path (an image's `path`, `width`, ...)
    becomes a dict under its first part."""
    out = {}
    for item in items:
        path = list(item.nested_key) or [item.key]
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = json.loads(item.value_json)
    return out


def read_offline_run(directory: Path) -> dict:
    """Run id, project, group, tags, config, history rows and summary of one offline run directory."""
    (log_file,) = directory.glob("run-*.wandb")
    out = {"config": {}, "history": [], "summary": {}}
    records = wandb_records(log_file)
    out["complete"] = records[-1].WhichOneof("record_type") == "exit"  # the run's last record: written in full
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            out.update(id=run.run_id, project=run.project, group=run.run_group, tags=list(run.tags))
            out["config"].update({item.key: json.loads(item.value_json) for item in run.config.update})
        elif kind == "config":
            out["config"].update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            out["history"].append(nest(record.history.item))
        elif kind == "summary":
            out["summary"].update(nest(record.summary.update))
    return out


def eval_rows(history: list[dict]) -> dict[int, dict]:
    return {row["step"]: row for row in history if any(key.startswith("eval/") for key in row)}


def test_wandb_offline_run_holds_config_metrics_figures_and_resumes_the_same_run(tiny_data, tmp_path):
    """train.wandb=offline: RUN/wandb/offline-run-*/run-ID.wandb holds the resolved config (= config.yaml),
    project, group and tags, every evaluation's metrics at its step (= metrics.jsonl), the losses, the final
    metrics in the summary and the report's figures; `--resume` writes a second offline run with the same id."""
    pytest.importorskip("wandb")
    raw = tiny_raw_config(
        tiny_data,
        "sfnet",
        steps=10,
        eval_every=5,
        report=True,
        wandb="offline",
        wandb_project="pt-test",
        wandb_group="sweep-a",
        wandb_tags=["tiny", "s0"],
    )
    run = tmp_path / "run"
    train(build_config(raw), run)
    stored_id = json.loads((run / "wandb.json").read_text())["id"]
    (first,) = sorted((run / "wandb").glob("offline-run-*"))
    got = read_offline_run(first)
    assert got["complete"]  # train() returns with the transaction log written to its end
    assert (got["id"], got["project"], got["group"], got["tags"]) == (stored_id, "pt-test", "sweep-a", ["tiny", "s0"])
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert {key: got["config"][key] for key in config} == config

    records = read_metrics(run)
    rows = eval_rows(got["history"])
    assert sorted(rows) == [record["step"] for record in records] == [5, 10]
    for record in records:
        for key, value in numeric(record).items():
            assert rows[record["step"]][f"eval/{key}"] == pytest.approx(value, rel=1e-9), (record["step"], key)
    for key, value in numeric(records[-1]).items():
        assert got["summary"][f"final/{key}"] == pytest.approx(value, rel=1e-9)
    losses = [row for row in got["history"] if "loss/total" in row]
    assert [row["step"] for row in losses] == [1, 5, 10]  # log_every=5 and the first step, as TensorBoard
    figures = {key: value for row in got["history"] for key, value in row.items() if key.startswith("figures/")}
    assert {"figures/pr_curves", "figures/class_ap"} <= set(figures)
    assert {p.stem for p in (run / "figures").glob("*.png")} == {key.split("/", 1)[1] for key in figures}
    for image in figures.values():  # each image is stored in the offline run's files
        assert image["_type"] == "image-file" and (first / "files" / image["path"]).read_bytes()[:4] == b"\x89PNG"

    # resume with a longer schedule (a runtime key): the same W&B run id, the new steps logged to it
    longer = build_config({**raw, "train": {**raw["train"], "steps": 15}})
    train(longer, run, resume=True)
    runs = sorted((run / "wandb").glob("offline-run-*"))
    assert len(runs) == 2
    resumed = read_offline_run(next(r for r in runs if r != first))
    assert resumed["id"] == stored_id
    final = read_metrics(run)[-1]
    assert final["step"] == 15
    assert eval_rows(resumed["history"])[15]["eval/average"] == pytest.approx(final["average"], rel=1e-9)


def test_nothing_of_wandb_is_imported_when_the_key_is_off(tiny_data, tmp_path):
    """A tiny run with train.wandb left off (the default) in a fresh interpreter: no `wandb` module loaded."""
    raw = tiny_raw_config(tiny_data, "sfnet", steps=4, report=True)
    script = (
        "import json, sys\n"
        "from pointtal.config import build_config\n"
        "from pointtal.engine.trainer import train\n"
        f"train(build_config(json.loads({json.dumps(json.dumps(raw))})), {str(tmp_path / 'run')!r})\n"
        "loaded = sorted(m for m in sys.modules if m == 'wandb' or m.startswith('wandb.'))\n"
        "print(json.dumps(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    assert (tmp_path / "run" / "metrics.jsonl").is_file() and not (tmp_path / "run" / "wandb").exists()


# ----------------------------------------------------------------------------- the keys


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.wandb=on", "train.wandb"),
        ("train.wandb=true", "train.wandb"),
        ("train.wandb_project=a/b", "train.wandb_project"),
        ("train.wandb_project=", "train.wandb_project"),
        ("train.wandb_group=x:y", "train.wandb_group"),
        ("train.wandb_tags=[ok, '']", "train.wandb_tags"),
        (f"train.wandb_tags=[{'t' * 65}]", "train.wandb_tags"),
        ("train.wandb_tags=tiny", "train.wandb_tags"),
        ("train.wandb_project=3", "train.wandb_project"),
    ],
)
def test_bad_wandb_keys_are_one_line_errors_naming_the_key(override, key):
    with pytest.raises(InputError) as err:
        load_config(None, [override])
    assert key in str(err.value) and "\n" not in str(err.value)


def test_wandb_keys_read_from_set():
    """A bare `off` (YAML false) is the mode off; modes, group and tags are kept as given."""
    assert load_config(None, ["train.wandb=off"]).train.wandb == "off"
    assert load_config(None, []).train.wandb == "off"
    pytest.importorskip("wandb")
    t = load_config(None, ["train.wandb=offline", "train.wandb_group=g1", "train.wandb_tags=[a, b]"]).train
    assert (t.wandb, t.wandb_group, t.wandb_tags) == ("offline", "g1", ("a", "b"))


def test_wandb_without_the_package_names_the_extra_before_any_data_is_read(monkeypatch, tmp_path):
    """Without wandb installed, `train` with train.wandb=offline stops at the run-directory guard (no data
    path exists here, so reading data would fail otherwise) with one line naming the key and the extra; the
    config itself still loads (`predict` on a machine without wandb reads a run's config.yaml)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    config = load_config(None, ["train.wandb=offline", "train.device=cpu", "data.annotations=missing.json"])
    needs = r"^train.wandb='offline' needs the wandb package: pip install 'pointtal\[wandb\]'$"
    with pytest.raises(InputError, match=needs):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
