"""Markdown table of the final metrics of seeded runs: mean ± sample std over OUT/<variant>/seed<k>/.

    python bench/seed_table.py OUT SEEDS table_name.md name=label [name=label ...]

A run counts when it finished (predictions.json beside metrics.jsonl); its last metrics row is its result.
Used by bench/sfnet_thumos14.sh and bench/point_methods_thumos14.sh.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

COLUMNS = [f"mAP@{t}" for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)] + ["average"]


def seed_table(out: Path, seeds: int, rows: list[tuple[str, str]]) -> str:
    lines = ["| variant | " + " | ".join(COLUMNS) + " | runs |", "|---|" + "---:|" * len(COLUMNS) + "---:|"]
    for name, label in rows:
        records = []
        for k in range(seeds):
            path = out / name / f"seed{k}" / "metrics.jsonl"
            if path.is_file() and (path.parent / "predictions.json").is_file():
                records.append(json.loads(path.read_text().splitlines()[-1]))
        if not records:
            continue
        cells = []
        for column in COLUMNS:
            values = [r[column] for r in records]
            std = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.2f}{std}")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {len(records)} |")
    return "mean ± sample std (n-1) over seeds, mAP in percent, test subset, final model\n\n" + "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    out, seeds, table = Path(argv[0]), int(argv[1]), argv[2]
    rows = [tuple(spec.split("=", 1)) for spec in argv[3:]]
    text = seed_table(out, seeds, rows)
    (out / table).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
