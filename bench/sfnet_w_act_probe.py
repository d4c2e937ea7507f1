"""Re-score finished SF-Net runs on their test subset with other inference weights of the actionness
(`method.w_act`; 0 = localize on the class activations alone), no retraining: how much of a run's segment mAP
the actionness branch adds or costs at inference.

    python bench/sfnet_w_act_probe.py RUN_DIR [RUN_DIR ...] --w-act 0 2
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from pointtal.engine.evaluate import evaluate_predictions
from pointtal.engine.predictor import load_trained, predict_videos
from pointtal.engine.setup import load_run_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--w-act", type=float, nargs="+", default=[0.0, 2.0])
    args = parser.parse_args()
    for run in args.runs:
        loaded = load_trained(run)
        data = load_run_data(loaded.config, train=False)
        video_ids = list(data.test.video_ids)
        cells = []
        for w in args.w_act:
            loaded.method.options = dataclasses.replace(loaded.method.options, w_act=w)
            with torch.no_grad():
                predictions = predict_videos(
                    loaded, data.store, data.gt, video_ids, batch_size=8, device=torch.device("cpu"), progress=False
                )
            record = evaluate_predictions(data.gt, video_ids, predictions, loaded.config.eval.tiou)
            cells.append(
                f"w_act {w:g}: avg {record['average']:.2f} mAP@0.5 {record['mAP@0.5']:.2f} "
                f"frame {record['frame_mAP']:.2f}"
            )
        print(f"{run}: " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
