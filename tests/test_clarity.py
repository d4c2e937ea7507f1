"""Clarity for a new user (issue 13): video ids that are file names, runs that work from any directory,
a repository that stands alone (docs/), and a `synth` that says how to train on what it wrote."""

from __future__ import annotations

import json
import os
import re
import shlex
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml

from pointtal.cli import main
from pointtal.data.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]

# ids a real dataset has (ActivityNet starts ids with '-'), each a plain file name on Linux and macOS
ODD_TEST_ID = "-Ab c_vidéo"
ODD_TRAIN_ID = "ビデオ 1:take"


@contextmanager
def cwd(path: Path):
    old = Path.cwd()
    path.mkdir(parents=True, exist_ok=True)
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(old)


def rename_video(data: Path, old: str, new: str) -> None:
    """Give one video of a synth dataset another id: ground truth, feature file and click files."""
    gt_path = data / "annotations.json"
    gt = json.loads(gt_path.read_text(encoding="utf-8"))
    gt["database"][new] = gt["database"].pop(old)
    gt_path.write_text(json.dumps(gt, ensure_ascii=False), encoding="utf-8")
    (data / "features" / f"{old}.npy").rename(data / "features" / f"{new}.npy")
    for csv in (data / "points").glob("*.csv"):
        lines = csv.read_text(encoding="utf-8").splitlines()
        csv.write_text(
            "".join(f"{new}{line[len(old) :]}\n" if line.startswith(f"{old},") else f"{line}\n" for line in lines),
            encoding="utf-8",
        )


@pytest.fixture(scope="module")
def odd_run(tmp_path_factory) -> Path:
    """SF-Net trained from `cfg/sfnet.yaml`, whose data paths are relative to the config file (not to the
    directory train runs in), on the tiny preset with two videos renamed to odd but valid ids."""
    root = tmp_path_factory.mktemp("clarity")
    data = root / "data"
    generate(data, "tiny", seed=0, progress=False)
    rename_video(data, "video_test_0001", ODD_TEST_ID)
    rename_video(data, "video_validation_0001", ODD_TRAIN_ID)
    config = {
        "data": {
            "annotations": "../data/annotations.json",
            "features": "../data/features",
            "points": [f"../data/points/annotator{i}.csv" for i in range(1, 5)],
        },
        "method": {"name": "sfnet", "hidden": 16, "expand_step": 3},
        "train": {
            "steps": 6,
            "batch_size": 4,
            "lr": 1e-3,
            "eval_every": 0,
            "device": "cpu",
            "progress": False,
            "report": True,
        },
    }
    (root / "cfg").mkdir()
    (root / "cfg" / "sfnet.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with cwd(root):
        assert main(["train", "cfg/sfnet.yaml", "--out", "runs/odd"]) == 0
    return root / "runs" / "odd"


# ------------------------------------------------------------------------------------------ video ids


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # the default font has no Japanese glyphs
def test_odd_video_ids_train_predict_and_draw(odd_run, tmp_path, capsys):
    """Ids with spaces, non-ASCII letters, ':' and a leading '-' go through every command; an id starting
    with '-' is passed as --video=ID."""
    predictions = tmp_path / "p.json"
    assert main(["predict", str(odd_run), "--out", str(predictions), "--no-progress"]) == 0
    assert ODD_TEST_ID in json.loads(predictions.read_text(encoding="utf-8"))["results"]
    out = tmp_path / "odd.png"
    assert main(["visualize", str(odd_run), f"--video={ODD_TEST_ID}", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["visualize", str(odd_run), "--video", ODD_TRAIN_ID, "--out", str(tmp_path / "t.png")]) == 0
    assert "training video" in capsys.readouterr().out


def test_report_links_resolve_for_odd_ids(odd_run):
    """report.md draws the first test video ('-Ab c_vidéo', with a space): its image link must resolve."""
    from urllib.parse import unquote

    from pointtal.engine.report import timeline_name

    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (odd_run / "report.md").read_text(encoding="utf-8"))
    assert any("timeline_" in link for link in links) and all(" " not in link for link in links)
    assert all((odd_run / unquote(link)).is_file() for link in links)
    long_a, long_b = timeline_name("a" * 251), timeline_name("a" * 250 + "b")
    assert long_a != long_b and max(len(long_a.encode()), len(long_b.encode())) <= 255


@pytest.mark.parametrize(
    ("video_id", "reason"),
    [
        ("sub/dir", "it contains '/' (a path separator)"),
        ("..", "it is '..', which names a directory"),
        ("a\\b", "a path separator on Windows"),
        ("line\nbreak", "control character U+000A"),
    ],
)
def test_refused_ids_say_exactly_why(tmp_path, capsys, video_id, reason):
    data = tmp_path / "data"
    generate(data, "tiny", seed=0, progress=False)
    gt = json.loads((data / "annotations.json").read_text(encoding="utf-8"))
    gt["database"][video_id] = gt["database"].pop("video_test_0002")
    (data / "annotations.json").write_text(json.dumps(gt), encoding="utf-8")
    config = tmp_path / "c.yaml"
    config.write_text(
        "data:\n  annotations: data/annotations.json\n  features: data/features\n  points: weak\n"
        "train:\n  steps: 1\n  device: cpu\n",
        encoding="utf-8",
    )
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert reason in err and "cannot be a feature file name" in err and "leading '.'" not in err
    assert len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------ runs from any directory


def test_run_config_stores_absolute_paths_and_works_from_elsewhere(odd_run, tmp_path):
    saved = yaml.safe_load((odd_run / "config.yaml").read_text(encoding="utf-8"))["data"]
    paths = [saved["annotations"], saved["features"], *saved["points"]]
    assert all(Path(p).is_absolute() and Path(p).exists() for p in paths)
    with cwd(tmp_path / "elsewhere"):
        assert main(["predict", str(odd_run), "--out", "p.json", "--no-progress"]) == 0
        # the same data read: the predictions the run wrote itself
        assert json.loads(Path("p.json").read_text()) == json.loads((odd_run / "predictions.json").read_text())
        assert main(["visualize", str(odd_run), "--video", "video_test_0002", "--out", "v.png"]) == 0
        assert Path("v.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert main(["train", "--out", str(odd_run), "--resume"]) == 0  # reads the run's data again


def test_missing_data_of_a_run_names_its_config(odd_run, tmp_path, capsys):
    """A run whose ground truth moved: the error names the key and the run's config.yaml."""
    run = tmp_path / "moved"
    run.mkdir()
    saved = torch.load(odd_run / "checkpoint.pt", weights_only=True)
    saved["config"]["data"]["annotations"] = str(tmp_path / "gone" / "annotations.json")
    torch.save(saved, run / "checkpoint.pt")
    (run / "config.yaml").write_text(yaml.safe_dump(saved["config"]), encoding="utf-8")
    with cwd(tmp_path / "elsewhere"):
        assert main(["predict", str(run), "--out", "p.json"]) == 2
        err = capsys.readouterr().err
        assert "data.annotations" in err and str(run / "config.yaml") in err and "not found" in err
        assert main(["train", "--out", str(run), "--resume"]) == 2
        err = capsys.readouterr().err
        assert "data.annotations" in err and str(run / "config.yaml") in err


def test_set_paths_are_read_from_the_current_directory(tmp_path):
    from pointtal.config import load_config

    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "c.yaml").write_text("data:\n  features: feats\n  points: soda\n", encoding="utf-8")
    with cwd(tmp_path / "work"):
        config = load_config(tmp_path / "cfg" / "c.yaml", ["data.annotations=gt.json"])
    assert config.data.features == str(tmp_path / "cfg" / "feats")  # from the file's directory
    assert config.data.annotations == str(tmp_path / "work" / "gt.json")  # from where --set was typed
    assert config.data.points == "soda"  # a scheme is not a path


# ---------------------------------------------------------------------------- synth: the next step


def test_synth_prints_a_train_command_that_works(tmp_path, capsys):
    with cwd(tmp_path / "a"):
        assert main(["synth", "my data", "--preset", "tiny", "--no-progress"]) == 0
        lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("next: ")]
        assert len(lines) == 1
        command = shlex.split(lines[0][len("next: ") :])
        assert command[:2] == ["pointtal", "train"]
    with cwd(tmp_path / "a"):  # the command as printed, shortened
        args = [
            *command[1:],
            "--set",
            "train.steps=2",
            "--set",
            "method.expand_step=1",
            "--set",
            "train.device=cpu",
            "--no-progress",
        ]
        out = Path(args[args.index("--out") + 1])
        assert main(args) == 0
    saved = yaml.safe_load((tmp_path / "a" / out / "config.yaml").read_text(encoding="utf-8"))
    assert saved["data"]["annotations"] == str(tmp_path / "a" / "my data" / "annotations.json")
    assert len(saved["data"]["points"]) == 4
    capsys.readouterr()
    assert main(["train", str(tmp_path / "a" / "my data" / "dataset.yaml"), "--out", str(tmp_path / "r")]) == 2
    assert "train with the train.yaml beside it" in capsys.readouterr().err  # the metadata file says where to go


# ------------------------------------------------------------------------ the repository stands alone

TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".toml", ".txt", ".cfg"}


def repo_text_files() -> list[Path]:
    """Every text file of the repository outside docs/ (what a clone holds, less build and run output)."""
    skip = {".git", ".venv", "runs", "docs", "__pycache__", ".pytest_cache", "build", "dist"}
    files = []
    for path in ROOT.rglob("*"):
        parts = set(path.relative_to(ROOT).parts)
        if (
            path.is_file()
            and not parts & skip
            and not any(p.endswith(".egg-info") for p in parts)
            and (path.suffix in TEXT_SUFFIXES or path.name == "Makefile")
        ):
            files.append(path)
    return files


def method_sections() -> set[str]:
    text = (ROOT / "docs" / "methods.md").read_text(encoding="utf-8")
    return set(re.findall(r"^#+ (\d+(?:\.\d+)?)\.? ", text, flags=re.M))


def test_no_reference_leaves_the_repository():
    """No file points at the spec folder beside the repository, at an upper-case spec document the
    repository lacks, or at a section of docs/methods.md that does not exist."""
    outside = re.compile(r"\.\./" + "shared|shared/" + "spec")
    document = re.compile(r"\b([A-Z][A-Z_]+)\.md\b")
    cited = re.compile(r"(docs/[\w./-]+\.md)")
    section = re.compile("\u00a7" + r"(\d+(?:\.\d+)?)")
    sections = method_sections()
    assert {"1", "2", "2.3", "3.4", "4"} <= sections
    problems = []
    for path in repo_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        name = path.relative_to(ROOT)
        problems += [f"{name}: {m.group(0)}" for m in outside.finditer(text)]
        problems += [f"{name}: {m.group(0)}" for m in document.finditer(text) if not (ROOT / m.group(0)).is_file()]
        problems += [f"{name}: {m.group(1)}" for m in cited.finditer(text) if not (ROOT / m.group(1)).is_file()]
        problems += [
            f"{name}: section {m.group(1)}" for m in section.finditer(text) if m.group(1).rstrip(".") not in sections
        ]
    assert not problems, problems


# ------------------------------------------------------------------------------ visualize --out format


def test_visualize_writes_the_format_of_the_suffix(odd_run, tmp_path, capsys):
    out = tmp_path / "v.pdf"
    assert main(["visualize", str(odd_run), "--video", "video_test_0002", "--out", str(out)]) == 0
    assert out.read_bytes()[:5] == b"%PDF-"
    bad = tmp_path / "v.jpg"
    assert main(["visualize", str(odd_run), "--video", "video_test_0002", "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown figure format '.jpg'" in err and ".pdf" in err
    assert not bad.exists()
    assert main(["visualize", str(odd_run), "--video", "video_test_0002", "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
