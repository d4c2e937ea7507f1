"""`pointtal label`: a local web page to click points on videos (SF-Net style), or `--stats` of the clicks so far."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from pointtal.cli import checks
from pointtal.data.annotations import BACKGROUND, read_class_list
from pointtal.errors import InputError
from pointtal.limits import MAX_FPS
from pointtal.outputs import check_outputs
from pointtal.video.clicks import ClickStore, label_stats
from pointtal.video.label_server import VIDEO_TYPES, LabelSession, list_videos, load_reference, make_server

log = logging.getLogger(__name__)

HELP = "annotate points on your videos in a local web page (frame steps, speed, zoom, review; ? lists the keys)"
EXAMPLE = (
    "pointtal label videos/ --classes classes.txt --out clicks.csv --annotator alice\n"
    "  pointtal label videos/ --classes classes.txt --out clicks.csv --ground-truth GT.json "
    "--predictions results.json   # review: r on the page\n"
    "  pointtal label --stats --out clicks.csv"
)
SERVE_DEFAULTS = {"annotator": "", "host": "127.0.0.1", "port": 8765, "fps": 25.0, "stride": 16}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "videos_dir",
        metavar="VIDEOS_DIR",
        nargs="?",
        help="directory of videos (.mp4, .webm, ...); video id = file name without extension",
    )
    parser.add_argument(
        "--classes", metavar="classes.txt", help="action class names, one per line (keys 1-9 pick the first nine)"
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="clicks.csv",
        help="click CSV (video_id,time_seconds,label) rewritten after every change; its journal "
        "<out>.journal lets a new session continue",
    )
    parser.add_argument("--annotator", help="name recorded with every click in the journal")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1: only this machine can reach the page)")
    parser.add_argument(
        "--port", type=int, help=f"port 0..65535 (default {SERVE_DEFAULTS['port']}; 0 picks a free one)"
    )
    parser.add_argument("--fps", type=float, help="feature fps, for the snippet step (default 25)")
    parser.add_argument(
        "--stride", type=int, help="frames per snippet; left/right step stride/fps seconds (default 16)"
    )
    parser.add_argument(
        "--predictions",
        metavar="P.json",
        help="ActivityNet results JSON to show on the timeline and beside each point in review",
    )
    parser.add_argument(
        "--ground-truth", metavar="GT.json", help="ground truth to show on the timeline and beside each point in review"
    )
    parser.add_argument("--background-label", default=BACKGROUND, help="label of background points (key b)")
    parser.add_argument(
        "--stats",
        action="store_true",
        help="print points, active seconds per video and per point, and done marks recorded in "
        "--out's journal, and exit",
    )


def check_args(args: argparse.Namespace) -> None:
    checks.number(args, "port", 0, 65535)
    checks.number(args, "fps", 0, MAX_FPS, low_open=True)
    checks.number(args, "stride", 1)
    serving = ("classes", *SERVE_DEFAULTS, "predictions", "ground_truth")
    checks.only_with(args, serving, not args.stats, "--stats only reports the journal of --out; it serves no page")
    if args.stats and args.videos_dir is not None:
        raise InputError(f"VIDEOS_DIR {args.videos_dir}: --stats only reports the journal of --out; it serves no page")
    if not args.stats and (args.videos_dir is None or args.classes is None):
        raise InputError("give VIDEOS_DIR and --classes FILE (or --stats --out FILE for the time report)")


def run(args: argparse.Namespace) -> int:
    for name, value in SERVE_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    # the click file is read and rewritten in place (an existing CSV is continued, never lost): only the
    # shared guard's refusals of a directory, a path under a file, or an input file apply
    check_outputs({"--out": args.out}, _inputs(args), overwrite=True)
    if args.stats:
        return _print_stats(Path(args.out), args.background_label)
    session = _session(args)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "pointtal label: listening on %s: anyone who can reach this machine can watch the videos and "
            "change the clicks",
            args.host,
        )
    store = ClickStore(args.out, args.annotator)
    try:
        server = make_server(session, store, args.host, args.port)
        n_points = len(store.points())
        print(f"pointtal label: {len(session.videos)} videos, {n_points} points so far in {args.out}", flush=True)
        print(
            f"pointtal label: open {server.url} (Ctrl+C or SIGTERM to stop; every click is saved at once)", flush=True
        )
        try:
            with _stop_on_sigterm():
                server.serve_forever()
        except (KeyboardInterrupt, _Stopped):
            pass
        server.server_close()
        print(f"pointtal label: stopped; {len(store.points())} points in {args.out}")
    finally:
        store.close()
    return 0


def _inputs(args: argparse.Namespace) -> dict:
    """What the server reads: the class list, the reference files, the videos."""
    videos = {}
    if args.videos_dir and Path(args.videos_dir).is_dir():  # the files list_videos may serve, without its warnings
        videos = {f"video {p}": p for p in Path(args.videos_dir).iterdir() if p.suffix.lower() in VIDEO_TYPES}
    return {"--classes": args.classes, "--predictions": args.predictions, "--ground-truth": args.ground_truth, **videos}


class _Stopped(Exception):
    """SIGTERM arrived: stop serving like Ctrl+C (close the server, release the click file's lock)."""


class _stop_on_sigterm:
    """While serving, SIGTERM (kill, systemd, docker stop) raises _Stopped in the main thread."""

    def __enter__(self):
        self.installed = threading.current_thread() is threading.main_thread()  # signals reach only that one
        if self.installed:
            self.previous = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise _Stopped

    def __exit__(self, *exc) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, self.previous if self.previous is not None else signal.SIG_DFL)


def _session(args: argparse.Namespace) -> LabelSession:
    classes = read_class_list(args.classes)
    for name in (*classes, args.background_label):
        if not name or any(c in name for c in ',"\n\r'):
            raise InputError(f"{args.classes}: class name {name!r} cannot be written to a click CSV (comma or quote)")
    if args.background_label in classes:
        raise InputError(f"{args.classes}: '{args.background_label}' is the background label, not a class")
    root = Path(args.videos_dir).resolve()
    videos = list_videos(root)
    return LabelSession(
        root=root,
        videos=videos,
        classes=classes,
        background=args.background_label,
        fps=args.fps,
        stride=args.stride,
        annotator=args.annotator,
        reference=load_reference(classes, args.ground_truth, args.predictions, videos),
    )


def _print_stats(out: Path, background: str) -> int:
    """One line per video: points, active seconds, seconds per point, done mark; then the totals."""
    stats = label_stats(out, background)
    rows = [
        (s.video, s.n_action, s.n_background, s.active_sec, s.sec_per_point, "yes" if s.done else "-") for s in stats
    ]
    n_action, n_background = sum(s.n_action for s in stats), sum(s.n_background for s in stats)
    total_sec = sum(s.active_sec for s in stats)
    n_points = n_action + n_background
    rows.append(
        (
            f"total ({len(stats)} videos)",
            n_action,
            n_background,
            total_sec,
            total_sec / n_points if n_points else None,
            str(sum(s.done for s in stats)),
        )
    )
    width = max(len("video"), *(len(r[0]) for r in rows))
    print(f"{'video':<{width}}  {'action':>6}  {'backgr':>6}  {'active_s':>9}  {'s/point':>8}  {'done':>4}")
    for name, action, backgr, seconds, per_point, done in rows:
        shown = "-" if per_point is None else f"{per_point:.1f}"
        print(f"{name:<{width}}  {action:>6}  {backgr:>6}  {seconds:>9.1f}  {shown:>8}  {done:>4}")
    if stats:
        print(f"mean active seconds per video: {total_sec / len(stats):.1f}")
    return 0
