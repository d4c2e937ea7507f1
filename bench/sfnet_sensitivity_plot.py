"""One figure of SF-Net's sensitivity study: a panel per knob (eta, alpha, beta, expansion ratio, radius), average
segment mAP and mean single-frame mAP, mean ± sample std over seeds, from the tables `pointtal ablate --table
sfnet-sensitivity` writes (OUT/table_sfnet-<knob>.json).

    python bench/sfnet_sensitivity_plot.py /tmp/sf22/out/thumos14 bench/results/sfnet_sensitivity.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pointtal.studies.sfnet_tables import SENSITIVITY

COLUMNS = {"average": "segment mAP avg 0.1:0.7", "frame_mAP": "single-frame mAP"}


def main(table_dir: str, out: str) -> None:
    fig = Figure(figsize=(3.0 * len(SENSITIVITY), 3.0), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(SENSITIVITY), sharey=True)
    seeds = set()
    for ax, study in zip(axes, SENSITIVITY, strict=True):
        summary = json.loads((Path(table_dir) / f"table_{study.key}.json").read_text())["summary"]
        rows = [(v.x, summary[v.name]) for v in study.variants if v.name in summary]
        xs = np.array([x for x, _ in rows])  # (R,)
        for (column, label), marker in zip(COLUMNS.items(), "os", strict=False):
            mean = np.array([r["mean"][column] for _, r in rows])
            std = np.array([r["std"][column] if r["std"][column] is not None else 0.0 for _, r in rows])
            ax.errorbar(xs, mean, yerr=std, marker=marker, capsize=3, label=label)
        seeds.update(r["n"] for _, r in rows)
        ax.set_xticks(xs)
        ax.set_xlabel(study.plot_x)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mAP (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"SF-Net sensitivity (synthetic THUMOS14, n = {'/'.join(map(str, sorted(seeds)))} seeds)", fontsize=10)
    fig.savefig(out)
    print(f"{out}: {Path(out).stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main(*sys.argv[1:3])
