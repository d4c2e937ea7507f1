"""Run logs: `metrics.jsonl` (one JSON object per evaluation), TensorBoard scalars and HParams, the optional
W&B run (pointtal.engine.tracking), and the text progress lines a run prints where it shows no progress bar
(output to a file or pipe)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pointtal.atomic import write_text_atomic

if TYPE_CHECKING:
    from pointtal.config import Config

log = logging.getLogger(__name__)


class MetricsLog:
    """Appends evaluation records to `metrics.jsonl` and scalars to a TensorBoard directory (and to W&B where
    `config.train.wandb` asks for it). With a `config`, `close` writes the HParams summaries (config and final
    metrics) and finishes the W&B run with the run's figures."""

    def __init__(self, run_dir: Path, tensorboard: bool = True, config: Config | None = None, resume: bool = False):
        self.path = run_dir / "metrics.jsonl"
        self.run_dir, self.config, self.last = run_dir, config, None
        self._writer = self._wandb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # heavy import: only where logs are written

            self._writer = SummaryWriter(str(run_dir / "tensorboard"))
        if config is not None and config.train.wandb != "off":
            from pointtal.engine.tracking import WandbRun  # imports wandb: never when train.wandb is off

            self._wandb = WandbRun(run_dir, config, resume)

    def truncate_after(self, step: int) -> None:
        """Drop records past `step` (a resumed run repeats those steps)."""
        if not self.path.is_file():
            return
        kept = [
            line
            for line in self.path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step
        ]
        write_text_atomic(self.path, "".join(line + "\n" for line in kept))

    def record(self, entry: dict) -> None:
        self.last = entry
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
        self.scalars(
            entry["step"],
            {k: v for k, v in entry.items() if isinstance(v, (int, float)) and k != "step"},
            prefix="eval/",
        )

    def scalars(self, step: int, values: dict[str, float], prefix: str = "") -> None:
        if self._wandb is not None:
            self._wandb.scalars(step, {prefix + key: value for key, value in values.items()})
        if self._writer is None:
            return
        for key, value in values.items():
            self._writer.add_scalar(prefix + key, value, step)

    def close(self) -> None:
        """HParams of the config and the last record, the W&B run finished (figures/ as images); idempotent."""
        if self._writer is not None:
            if self.config is not None and self.last is not None:
                from pointtal.engine.tracking import write_hparams

                write_hparams(self._writer, self.config, self.last)
            self._writer.close()
            self._writer = None
        if self._wandb is not None:
            self._wandb.finish(self.last, self.run_dir / "figures")
            self._wandb = None


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def format_duration(seconds: float) -> str:
    """12s, 3m05s, 2h07m: a compact ETA."""
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class StepLog:
    """One INFO line every `every` steps and at the last step: step, loss, steps/s, ETA.

    For runs whose stderr is not a terminal (no progress bar): without it a 40-minute run writes nothing
    until its first evaluation. The rate is measured since the previous line, and `restart` (after an
    evaluation) keeps evaluation time out of it.
    """

    def __init__(
        self, total: int, start: int, every: int, enabled: bool, clock: Callable[[], float] = time.perf_counter
    ):
        self.total, self.every, self.enabled, self.clock = total, max(every, 1), enabled, clock
        self.restart(start)

    def restart(self, step: int) -> None:
        self._since_step, self._since = step, self.clock()

    def step(self, step: int, loss: float) -> None:
        if not self.enabled or (step % self.every and step != self.total):
            return
        elapsed = self.clock() - self._since
        rate = (step - self._since_step) / elapsed if elapsed > 0 else float("inf")
        eta = format_duration((self.total - step) / rate) if rate > 0 else "?"
        log.info("step %d/%d loss %.4f %.2f steps/s ETA %s", step, self.total, loss, rate, eta)
        self.restart(step)
