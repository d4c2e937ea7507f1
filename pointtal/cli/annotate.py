"""`pointtal annotate`: simulate point annotations from a ground truth, or check click files against it."""

from __future__ import annotations

import argparse
from pathlib import Path

from pointtal.cli import checks
from pointtal.data.annotations import BACKGROUND
from pointtal.data.interchange import (
    EXPORT_FORMATS,
    IMPORT_FORMATS,
    import_clicks,
    write_labelstudio,
    write_lacp,
    write_via,
)
from pointtal.data.layouts import Subsets, load_truth, open_features
from pointtal.data.points import (
    GAUSSIAN_STD,
    SCHEMES,
    fps_lookup_for,
    map_points,
    read_fps_dict,
    read_points,
    simulate_points,
    videos_elsewhere,
    write_points,
)
from pointtal.errors import InputError
from pointtal.limits import MAX_FPS
from pointtal.outputs import check_outputs, record_output

DEFAULT_TOLERANCE = 1.0

HELP = (
    "simulate point annotations (SF-Net / SODA / gaussian schemes), check point files against a ground truth, "
    "import / export clicks of VIA 3, Label Studio and LACP, or measure and merge several annotators' clicks"
)
EXAMPLE = (
    "pointtal annotate GT.json --scheme sfnet-uniform --subset validation --fps 25 --stride 16 --seed 0 "
    "--out points.csv\n  pointtal annotate GT.json --check points_annotator1.csv --check points_annotator2.csv "
    "--fps 25 --stride 16"
    "\n  pointtal annotate GT.json --import project_via.json --format via --out clicks.csv"
    "\n  pointtal annotate GT.json --export clicks.csv --format labelstudio --out tasks.json"
    "\n  pointtal annotate GT.json --agreement a.csv b.csv c.csv --tolerance 1 --json agreement.json "
    "--merge consensus.csv --min-agree 2"
)

CLI_SCHEMES = tuple(s for s in SCHEMES if s != "weak")  # weak supervision has no point file to write
DEFAULTS = {"seed": 0, "window_sec": 10.0, "start_ratio": 0.25, "jitter": 0.2, "gaussian_std": GAUSSIAN_STD}
SCHEME_OPTIONS = {  # simulation options and the schemes that read them
    "window_sec": ("soda", "soda-action", "soda-background"),
    "start_ratio": ("sfnet-start",),
    "jitter": ("sfnet-center-jitter",),
    "gaussian_std": ("gaussian",),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "ground_truth",
        metavar="GT.json",
        help="ground truth (ActivityNet-style JSON), or a LACP / HR-Pro dataset folder or its "
        "gt.json / gt_full.json (split files decide the subsets, fps_dict.json the native fps)",
    )
    mode = parser.add_argument_group("simulate (writes --out)")
    mode.add_argument("--scheme", choices=CLI_SCHEMES, help="simulation scheme (docs/methods.md §1)")
    mode.add_argument(
        "--out", help="point CSV to write (video_id,time_seconds,label); with --export, the file of --format"
    )
    mode.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out that pointtal did not write (its own outputs are replaced "
        "without it; an input is never replaced)",
    )
    mode.add_argument("--seed", type=int, help=f"random seed; same seed -> identical file (default {DEFAULTS['seed']})")
    mode.add_argument(
        "--window-sec",
        type=float,
        help=f"soda schemes: window length in seconds (> 0, default {DEFAULTS['window_sec']:g})",
    )
    mode.add_argument(
        "--start-ratio",
        type=float,
        help=f"sfnet-start: first fraction of the instance (0 < R <= 1, default {DEFAULTS['start_ratio']})",
    )
    mode.add_argument(
        "--jitter",
        type=float,
        help=f"sfnet-center-jitter: max offset / instance length (0..0.5, default {DEFAULTS['jitter']})",
    )
    mode.add_argument(
        "--gaussian-std",
        type=float,
        help=f"gaussian: std of the point around the instance centre / instance length (> 0, default {GAUSSIAN_STD})",
    )
    check = parser.add_argument_group("check (maps point files onto snippets and reports)")
    check.add_argument(
        "--check",
        action="append",
        metavar="POINTS.csv",
        default=[],
        help="point file to check; repeat for several annotators",
    )
    check.add_argument(
        "--strict",
        action="store_true",
        help="points beyond a video or for videos not in the ground truth are errors, not dropped",
    )
    check.add_argument("--fps-dict", metavar="FPS.json", help="video id -> native fps, for LACP-style point files")
    move = parser.add_argument_group("import / export clicks (writes --out)")
    move.add_argument(
        "--import",
        dest="import_file",
        metavar="FILE",
        help="clicks of another tool to read into a point CSV (--out): a VIA 3 project JSON or CSV "
        "export, or a Label Studio JSON export (a segment becomes one click at its middle)",
    )
    move.add_argument(
        "--export", metavar="POINTS.csv", help="point file (any pointtal reads) to write as --format into --out"
    )
    move.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        help="the other tool's format: via (.json project, else CSV), labelstudio (JSON, frames at "
        "the video's fps), lacp (export only: LACP / HR-Pro point_labels.csv)",
    )
    agree = parser.add_argument_group("several annotators (docs: pointtal/data/agreement.py)")
    agree.add_argument(
        "--agreement",
        nargs="+",
        metavar="POINTS.csv",
        help="two or more annotators' point files: hit rate, clicks outside instances and the "
        "position histogram per annotator against GT.json, pairwise matching and "
        "Krippendorff's alpha on snippet labels between them",
    )
    agree.add_argument(
        "--tolerance",
        type=float,
        help=f"seconds within which two clicks of the same class match (> 0, default {DEFAULT_TOLERANCE:g})",
    )
    agree.add_argument("--json", metavar="OUT.json", help="--agreement: write the figures as JSON")
    agree.add_argument(
        "--merge", metavar="OUT.csv", help="--agreement: write a consensus point file (matched clicks, median time)"
    )
    agree.add_argument(
        "--min-agree",
        type=int,
        help="--merge: annotators that must agree for a click to be kept (1..number of files, default 2)",
    )
    parser.add_argument(
        "--subset",
        help="only videos of this subset, matched regardless of case (default: all videos of the ground truth)",
    )
    parser.add_argument(
        "--features",
        metavar="DIR",
        help="feature folder (any layout training reads): a video's duration, where the ground truth has none "
        "(LACP's gt.json), is its feature length T x stride / fps",
    )
    parser.add_argument(
        "--fps", type=float, default=25.0, help="feature fps where the ground truth gives none (default 25)"
    )
    parser.add_argument("--stride", type=int, default=16, help="frames per snippet (default 16)")
    parser.add_argument("--background-label", default=BACKGROUND, help="name of background points")


def check_args(args: argparse.Namespace) -> None:
    checks.number(args, "tolerance", 0, low_open=True)
    checks.number(args, "min_agree", 1)
    if args.agreement is not None:
        _check_agreement(args)
        return
    checks.only_with(args, ("tolerance", "json", "merge", "min_agree"), False, "applies to --agreement FILE ...")
    checks.number(args, "fps", 0, MAX_FPS, low_open=True)
    checks.number(args, "stride", 1)
    checks.number(args, "seed", 0)
    checks.number(args, "window_sec", 0, low_open=True)
    checks.number(args, "start_ratio", 0, 1, low_open=True)
    checks.number(args, "jitter", 0, 0.5)
    checks.number(args, "gaussian_std", 0, low_open=True)
    moving = bool(args.import_file or args.export)
    if args.import_file and args.export:
        raise InputError("give either --import FILE or --export FILE, not both")
    if moving and (args.check or args.scheme):
        raise InputError("--import / --export cannot be combined with --check or --scheme")
    if moving and not (args.format and args.out):
        raise InputError(
            f"{'--import' if args.import_file else '--export'} needs --format "
            f"({'|'.join(EXPORT_FORMATS)}) and --out FILE"
        )
    if args.import_file and args.format not in IMPORT_FORMATS:
        raise InputError(
            f"--format {args.format}: cannot be imported ({', '.join(IMPORT_FORMATS)} can); pointtal "
            "reads LACP / HR-Pro point files directly (train, --check)"
        )
    checks.only_with(args, ("format",), moving, "applies to --import / --export")
    if not moving and args.check and (args.scheme or args.out):
        raise InputError("give either --check FILE ... or --scheme NAME --out FILE, not both")
    if not moving and not args.check and not (args.scheme and args.out):
        raise InputError(
            "give --scheme NAME and --out FILE to simulate points, --check FILE to check a point file, or "
            "--import / --export FILE --format NAME --out FILE"
        )
    simulate = not args.check and not moving
    checks.only_with(
        args,
        ("seed", "window_sec", "start_ratio", "jitter", "gaussian_std"),
        simulate,
        "applies when simulating points (--scheme NAME --out FILE), not to --check",
    )
    checks.only_with(args, ("overwrite",), not args.check, "applies when writing --out, not to --check")
    checks.only_with(
        args,
        ("fps_dict",),
        not simulate,
        "applies to --check, --import and --export (reading or writing frame numbers)",
    )
    checks.only_with(args, ("strict",), bool(args.check), "applies to --check (reading point files)")
    for name, schemes in SCHEME_OPTIONS.items():
        checks.only_with(
            args,
            (name,),
            not simulate or args.scheme in schemes,
            f"applies to --scheme {' / '.join(schemes)}, not {args.scheme}",
        )


def _check_agreement(args: argparse.Namespace) -> None:
    others = (
        "scheme",
        "out",
        "check",
        "import_file",
        "export",
        "format",
        "strict",
        "seed",
        "window_sec",
        "start_ratio",
        "jitter",
        "gaussian_std",
    )
    checks.only_with(args, others, False, "cannot be combined with --agreement")
    if len(args.agreement) < 2:
        raise InputError(f"--agreement {' '.join(args.agreement)}: give two or more point files")
    for path in args.agreement:
        if not Path(path).is_file():
            raise InputError(f"--agreement {path}: point file not found")
    checks.only_with(args, ("min_agree",), bool(args.merge), "applies to --merge OUT.csv")
    checks.only_with(args, ("overwrite",), bool(args.merge or args.json), "applies when writing --json / --merge")
    if args.min_agree is not None and args.min_agree > len(args.agreement):
        raise InputError(
            f"--min-agree {args.min_agree}: must be <= the number of --agreement files ({len(args.agreement)})"
        )


def run(args: argparse.Namespace) -> int:
    if args.agreement is not None:
        return run_agreement(args)
    for name, value in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.out:
        check_outputs(
            {"--out": args.out},
            {
                "ground truth": args.ground_truth,
                "--import": args.import_file,
                "--export": args.export,
                "--fps-dict": args.fps_dict,
            },
            overwrite=args.overwrite,
        )
    gt = _ground_truth(args)
    if args.subset:
        args.subset = gt.subset_name(args.subset, args.ground_truth)  # HR-Pro's 'Validation' for 'validation'
    videos = gt.subset(args.subset, args.ground_truth) if args.subset else [gt.videos[k] for k in sorted(gt.videos)]
    if args.check:
        return _check(args, gt, {v.video_id: v for v in videos})
    if args.import_file or args.export:
        return _move(args, gt)
    return _simulate(args, videos)


def _ground_truth(args: argparse.Namespace):
    """The ground truth; missing durations (LACP) from --features, else an error that names both sources."""
    if args.features and not Path(args.features).exists():
        raise InputError(f"{args.features}: --features folder not found")
    store = (lambda: open_features(args.features)) if args.features else None
    return load_truth(args.ground_truth, names=Subsets(fps=args.fps, stride=args.stride), store=store)


def _simulate(args: argparse.Namespace, videos) -> int:
    points = simulate_points(
        videos,
        args.scheme,
        args.fps,
        args.stride,
        args.seed,
        window_sec=args.window_sec,
        start_ratio=args.start_ratio,
        jitter=args.jitter,
        background_label=args.background_label,
        gaussian_std=args.gaussian_std,
    )
    write_points(points, args.out)
    record_output(args.out, "annotate")
    n_background = sum(p.label == args.background_label for p in points)
    print(
        f"wrote {args.out}: {len(videos)} videos, {len(points)} points "
        f"({len(points) - n_background} action, {n_background} background), scheme {args.scheme}, seed {args.seed}"
    )
    return 0


def _move(args: argparse.Namespace, gt) -> int:
    """--import: another tool's clicks -> a point CSV; --export: a point file -> another tool's file."""
    lookup = fps_lookup_for(gt.videos, read_fps_dict(args.fps_dict) if args.fps_dict else gt.frame_fps)
    if args.import_file:
        points = import_clicks(args.import_file, args.format, lookup, gt.videos)
        mapped = map_points(
            points,
            gt.videos,
            args.fps,
            args.stride,
            gt.class_index,
            args.background_label,
            source=args.import_file,
            scope="the ground truth",
        )  # labels are classes? on videos?
        write_points(points, args.out)
        verb = f"imported {args.import_file} ({args.format}; {mapped.report.summary})"
    else:
        points = read_points(args.export, args.background_label, lookup)
        if args.format == "via":
            write_via(points, args.out)
        elif args.format == "labelstudio":
            write_labelstudio(points, args.out, lookup)
        else:
            dropped = write_lacp(points, args.out, lookup, gt.classes, gt.videos, args.background_label)
            if dropped:
                print(f"left out {dropped} background point(s): a LACP point file holds action clicks only")
        verb = f"exported {args.export} as {args.format}"
    record_output(args.out, "annotate")
    print(f"{verb}: wrote {args.out}, {len(points)} points on {len({p.video_id for p in points})} videos")
    return 0


def _check(args: argparse.Namespace, gt, videos: dict) -> int:
    fps_dict = read_fps_dict(args.fps_dict) if args.fps_dict else gt.frame_fps  # a published layout's own
    lookup = fps_lookup_for(gt.videos, fps_dict)
    for path in args.check:
        points = read_points(path, args.background_label, lookup)
        mapped = map_points(
            points,
            videos,
            args.fps,
            args.stride,
            gt.class_index,
            args.background_label,
            strict=args.strict,
            source=path,
            elsewhere={
                **videos_elsewhere(gt.videos, videos, args.subset),
                **{v: f"subset '{s}' without a feature file" for v, s in gt.skipped.items()},
            },
            scope=f"subset '{args.subset}'" if args.subset else "the ground truth",
        )
        n_videos = len(set(mapped.video_id))
        print(f"{mapped.report.summary}, {n_videos} videos")
    return 0


def run_agreement(args: argparse.Namespace) -> int:
    """--agreement: figures per annotator, between annotators, and (--merge) a consensus file."""
    from pointtal.cli.agreement_report import report

    if args.json or args.merge:
        inputs = {"ground truth": args.ground_truth, "--fps-dict": args.fps_dict}
        inputs.update({f"--agreement {p}": p for p in args.agreement})
        check_outputs({"--json": args.json, "--merge": args.merge}, inputs, overwrite=args.overwrite)
    gt = _ground_truth(args)
    if args.subset:
        args.subset = gt.subset_name(args.subset, args.ground_truth)
    lookup = fps_lookup_for(gt.videos, read_fps_dict(args.fps_dict) if args.fps_dict else gt.frame_fps)
    annotators = [read_points(path, args.background_label, lookup) for path in args.agreement]
    return report(args, gt, annotators, DEFAULT_TOLERANCE)
