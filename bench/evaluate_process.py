"""Whole-process evaluation time: `pointtal evaluate GT PRED` vs the official ActivityNet evaluation code on
the same predictions file, in one run, with the ratio and a check that both give the same APs.

    python bench/evaluate_process.py --official ActivityNet/Evaluation [--official-python PY]
                                     [--n 200000] [--seed 0] [--repeats 5] [--official-repeats 1]

Each side is timed as a whole process, as a user waits for it: interpreter start, imports, reading the
ground truth and the predictions JSON, matching, printing. The predictions are the random ones of
bench/eval_speed.py (jittered THUMOS14 test ground truth, 20% wrong labels, 5% on a video without ground
truth), scored against the THUMOS14 `test` subset at tIoU 0.1:0.7.

The official code (ActivityNet `Evaluation/eval_detection.py` + `utils.py`, pandas and joblib, Python 2)
is read from --official DIR, ported to Python 3 in a temporary directory by mechanical substitutions
(print statements, iteritems, urllib2, xrange, np.float; the algorithm is untouched) and run with
`check_status=False` (no network) by --official-python, a Python with pandas and joblib. Nothing of it is
stored in this repository. Without --official, the loop transcription tests/reference_eval.py (lists
instead of pandas, no joblib) stands in for it, and the output says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from eval_speed import GT_PATH, ROOT, random_predictions, to_json  # bench/ is on sys.path as the script's dir

from pointtal.data.annotations import load_ground_truth
from pointtal.evaluation import THUMOS_TIOUS, SegmentTable

PORTED = {  # Python 2 -> 3, applied to the official files in a temporary directory
    r"^(\s*)print (.+)$": r"\1print(\2)",
    r"\.iteritems\(\)": ".items()",
    r"^import urllib2$": "import urllib.request as urllib2",
    r"\bxrange\(": "range(",
    r"np\.float\)": "float)",
}

OFFICIAL_DRIVER = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from eval_detection import ANETdetection
gt, pred, out = sys.argv[2:5]
tious = np.array(json.loads(sys.argv[5]))
anet = ANETdetection(gt, pred, subset="test", tiou_thresholds=tious, check_status=False)
anet.evaluate()
index = anet.activity_index
with open(out, "w") as f:
    json.dump({"per_class": {name: list(anet.ap[:, c]) for name, c in index.items()}}, f)
"""

REFERENCE_DRIVER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from reference_eval import reference_map
gt, pred, out = sys.argv[2:5]
tious = json.loads(sys.argv[5])
database = json.load(open(gt))["database"]
gt_rows = [(v, float(a["segment"][0]), float(a["segment"][1]), a["label"])
           for v, video in database.items() if video["subset"] == "test" for a in video["annotations"]]
known = {row[3] for row in gt_rows}
pred_rows = [(v, float(p["segment"][0]), float(p["segment"][1]), p["label"], p["score"])
             for v, entries in json.load(open(pred))["results"].items() for p in entries if p["label"] in known]
classes, ap = reference_map(gt_rows, pred_rows, tious)
with open(out, "w") as f:
    json.dump({"per_class": {name: list(ap[:, c]) for c, name in enumerate(classes)}}, f)
"""


def port_official(source: Path, target: Path) -> None:
    """Copy eval_detection.py and utils.py from `source` to `target`, ported to Python 3 (PORTED)."""
    for name in ("eval_detection.py", "utils.py"):
        text = (source / name).read_text()
        for pattern, replacement in PORTED.items():
            text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
        (target / name).write_text(text)


def timed(command: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and the children it waited for) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def max_difference(ours: dict, theirs: dict) -> float:
    """Largest |AP difference| in percent over the classes and thresholds, classes matched by name."""
    assert set(ours) == set(theirs), (sorted(ours), sorted(theirs))
    return max(float(np.abs(np.asarray(ours[c]) - 100 * np.asarray(theirs[c])).max()) for c in ours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--official", type=Path, metavar="DIR", help="ActivityNet's Evaluation/ directory (eval_detection.py, utils.py)"
    )
    parser.add_argument(
        "--official-python",
        default=sys.executable,
        help="Python with pandas and joblib for the official code (default: this one)",
    )
    parser.add_argument("--n", type=int, default=200_000, help="number of predictions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="timed `pointtal evaluate` runs")
    parser.add_argument("--official-repeats", type=int, default=1, help="timed runs of the official code")
    args = parser.parse_args()

    gt_file = load_ground_truth(GT_PATH)
    gt = SegmentTable.from_ground_truth(gt_file.subset("test"), gt_file.classes)
    tious = json.dumps(list(THUMOS_TIOUS))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as installed: .pyc
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pred_path = tmp / "predictions.json"
        to_json(random_predictions(gt, args.n, np.random.default_rng(args.seed)), pred_path)
        ours = [
            sys.executable,
            "-m",
            "pointtal",
            "evaluate",
            str(GT_PATH),
            str(pred_path),
            "--subset",
            "test",
            "--json",
            str(tmp / "ours.json"),
        ]
        if args.official is not None:
            port_official(args.official, tmp)
            theirs_name = f"official ActivityNet eval_detection.py ({args.official}, ported to Python 3)"
            driver, code_dir, python = OFFICIAL_DRIVER, tmp, args.official_python
        else:
            theirs_name = "tests/reference_eval.py (loop transcription; no --official given)"
            driver, code_dir, python = REFERENCE_DRIVER, ROOT / "tests", sys.executable
        (tmp / "driver.py").write_text(driver)
        theirs = [
            python,
            str(tmp / "driver.py"),
            str(code_dir),
            str(GT_PATH),
            str(pred_path),
            str(tmp / "theirs.json"),
            tious,
        ]

        print(
            f"{args.n} predictions ({pred_path.stat().st_size / 1e6:.1f} MB JSON) vs {len(gt)} THUMOS14 test "
            f"instances, tIoU 0.1:0.7"
        )
        print(
            f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        subprocess.run(ours, check=True, stdout=subprocess.DEVNULL, env=env)  # warm-up: .pyc, file cache
        runs = {"pointtal evaluate": [], "reference": []}
        for i in range(max(args.repeats, args.official_repeats)):  # interleaved: both see the same load
            if i < args.official_repeats:
                runs["reference"].append(timed(theirs, env))
            if i < args.repeats:
                runs["pointtal evaluate"].append(timed(ours, env))
        ours_ap = json.loads((tmp / "ours.json").read_text())["per_class"]
        theirs_ap = json.loads((tmp / "theirs.json").read_text())["per_class"]
    diff = max_difference(ours_ap, theirs_ap)
    report(runs, theirs_name, diff, args)


def report(runs: dict, theirs_name: str, diff: float, args) -> None:
    wall = {k: np.array([w for w, _ in v]) for k, v in runs.items()}
    cpu = {k: np.array([c for _, c in v]) for k, v in runs.items()}
    ours, theirs = "pointtal evaluate", "reference"
    print()
    print("| process | runs | wall s (median) | wall s (best) | CPU s (median) |")
    print("|---------|------|-----------------|---------------|----------------|")
    for key, label in ((ours, "`pointtal evaluate`"), (theirs, "official code" if args.official else "loop reference")):
        print(
            f"| {label} | {wall[key].size} | {np.median(wall[key]):.2f} | {wall[key].min():.2f} | "
            f"{np.median(cpu[key]):.2f} |"
        )
    print()
    print(
        f"whole process, wall: {np.median(wall[theirs]) / np.median(wall[ours]):.0f}x faster "
        f"(median / median); CPU: {np.median(cpu[theirs]) / np.median(cpu[ours]):.0f}x "
        f"(CPU of joblib workers counted only when reaped)"
    )
    print(f"compared with: {theirs_name}")
    print(f"max |AP pointtal - AP other| over classes and tIoUs = {diff:.1e} (percent points)")
    print(f"load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
