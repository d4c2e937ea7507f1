"""Experiment tracking: a run's resolved config and final metrics in TensorBoard's HParams view, and the
optional Weights & Biases logger (`train.wandb`: off | offline | online).

The HParams summaries go into the run's own `tensorboard/` directory, beside its `eval/*` scalars, so
`tensorboard --logdir runs/` compares every run of a sweep in one table (HPARAMS tab).

W&B is imported only when `train.wandb` is not `off`. A run's W&B files live in `RUN/wandb/` and its W&B run
id in `RUN/wandb.json`, so `--resume` continues the same W&B run. Offline runs need no network or login;
`wandb sync RUN/wandb/offline-run-*` uploads them later.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
from pathlib import Path
from typing import Any

from pointtal.atomic import write_text_atomic
from pointtal.config import Config
from pointtal.errors import InputError

log = logging.getLogger(__name__)

WANDB_ID = "wandb.json"  # {"id": ...}: the W&B run this run directory logs to
WANDB_INSTALL = "pip install 'pointtal[wandb]'"


def check_installed(config: Config) -> None:
    """A run with `train.wandb` on needs the wandb package: looked for (not imported) before any data is read."""
    import importlib.util

    mode = config.train.wandb
    if mode != "off" and importlib.util.find_spec("wandb") is None:
        raise InputError(f"train.wandb={mode!r} needs the wandb package: {WANDB_INSTALL}")


def flat_config(config: Config) -> dict[str, bool | int | float | str]:
    """The resolved config as flat dotted keys with scalar values (lists as JSON text, null as "null")."""
    flat: dict[str, bool | int | float | str] = {}

    def visit(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                visit(value, f"{prefix}{key}.")
            return
        key = prefix[:-1]
        if node is None:
            flat[key] = "null"
        elif isinstance(node, (bool, int, float, str)):
            flat[key] = node
        else:
            flat[key] = json.dumps(node)

    visit(config.to_dict(), "")
    return flat


def metric_values(record: dict) -> dict[str, float]:
    """The numeric entries of an evaluation record, as their TensorBoard scalar tags (`eval/<key>`)."""
    return {
        f"eval/{key}": float(value)
        for key, value in record.items()
        if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def write_hparams(writer, config: Config, record: dict) -> None:
    """The HParams session start (the flat config) and session end summaries into `writer` (a SummaryWriter).

    No experiment summary is written: TensorBoard takes the first run's one as the whole table's, so a sweep
    over several methods would lose the other methods' keys; without it TensorBoard builds the table from
    every run's session (the union of their keys) and offers their scalars as metrics, among them the final
    record's `eval/*` values, already written at its step."""
    from torch.utils.tensorboard.summary import hparams

    _, start, end = hparams(flat_config(config), metric_values(record))
    for summary in (start, end):
        writer.file_writer.add_summary(summary, global_step=int(record.get("step", 0)))
    writer.flush()


class WandbRun:
    """One W&B run for one pointtal run: the same scalars as TensorBoard (against the `step` axis), the
    resolved config, the final metrics in the summary and the run's figures."""

    def __init__(self, run_dir: Path, config: Config, resume: bool):
        t = config.train
        try:
            import wandb
        except ImportError:
            raise InputError(f"train.wandb={t.wandb} needs the wandb package: {WANDB_INSTALL}") from None
        self._wandb = wandb
        run_id = self._run_id(run_dir, resume)
        try:
            self.run = wandb.init(
                project=t.wandb_project,
                group=t.wandb_group,
                tags=list(t.wandb_tags) or None,
                name=run_dir.name,
                id=run_id,
                resume="allow",
                dir=str(run_dir),
                mode=t.wandb,
                config=config.to_dict(),
                # no banner, no prompts, stdout left alone (a batch job has no terminal); the mode and the
                # directory are given here rather than through WANDB_MODE / WANDB_DIR, so the process's
                # environment is left as it was
                settings=wandb.Settings(silent=True, console="off"),
            )
        except Exception as err:  # noqa: BLE001 - W&B raises many types (login, network, settings)
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            hint = "; run `wandb login` or set train.wandb=offline" if t.wandb == "online" else ""
            raise InputError(f"train.wandb={t.wandb}: W&B could not start a run ({first[:200]}){hint}") from None
        self.run.define_metric("step")
        self.run.define_metric("*", step_metric="step")
        log.info("W&B run %s (%s) in %s", run_id, t.wandb, run_dir / "wandb")

    @staticmethod
    def _run_id(run_dir: Path, resume: bool) -> str:
        """The stored id of a resumed run; a new one (stored) otherwise."""
        path = run_dir / WANDB_ID
        if resume and path.is_file():
            try:
                stored = json.loads(path.read_text(encoding="utf-8")).get("id")
            except (ValueError, AttributeError):
                stored = None
            if isinstance(stored, str) and stored:
                return stored
            log.warning("%s: no W&B run id in it; the resumed run starts a new W&B run", path)
        run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))  # W&B's shape
        write_text_atomic(path, json.dumps({"id": run_id}) + "\n")
        return run_id

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.run.log({"step": step, **values})

    def finish(self, record: dict | None, figures: Path) -> None:
        """The final metrics into the summary, the figures (`figures/*.png`) as images, then close."""
        if record is not None:
            self.run.summary.update(
                {"final/" + key[len("eval/") :]: value for key, value in metric_values(record).items()}
            )
        images = {f"figures/{path.stem}": self._wandb.Image(str(path)) for path in sorted(figures.glob("*.png"))}
        if images:
            self.run.log({"step": int(record["step"]) if record else 0, **images})
        self.run.finish()
        # finish() can return before W&B's service has written the offline transaction log (seen with 0.31:
        # a log read right after held no records); teardown waits for the service to exit, so the run's files
        # are complete when train() returns
        self._wandb.teardown()
