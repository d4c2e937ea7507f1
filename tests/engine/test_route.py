"""The pseudo-label route in one run directory (pointtal.engine.route, issue 21 item 4): a point method (the teacher)
in RUN/teacher, its pseudo labels in RUN/pseudo_labels.json, ActionFormer (the student) in RUN; each stage resumed
exactly, a finished teacher never retrained, a teacher run reused, bad teacher keys refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import tiny_raw_config

from pointtal.cli import main
from pointtal.config import build_config, load_config
from pointtal.engine import route as route_module
from pointtal.engine import trainer as trainer_module
from pointtal.engine.checkpoint import load_checkpoint
from pointtal.engine.route import train_route
from pointtal.errors import InputError

STUDENT = {
    "name": "actionformer",
    "embed_dim": 16,
    "head_dim": 16,
    "heads": 2,
    "window": 5,
    "pyramid_layers": 2,
    "regression_ranges": [[0, 4], [4, 8], [8, 10000]],
    "max_seq_len": 48,
    "warmup_epochs": 0.5,
    "ema": False,
}
TEACHER_METHOD = {
    "sfnet": {"name": "sfnet", "hidden": 16, "expand_step": 3},
    "lacp": {"name": "lacp", "hidden": 32, "num_segments": 32, "search_start": 2, "search_freq": 2},
}


def route_raw(data: Path, teacher: str = "sfnet", **section) -> dict:
    """A route on the tiny preset: `teacher` (6 steps) -> pseudo labels -> a 16-wide ActionFormer (8 steps)."""
    raw = tiny_raw_config(data, "sfnet", steps=8)
    raw["data"].pop("points")
    raw["method"] = dict(STUDENT)
    raw["train"].update(checkpoint_every=1, weight_decay=0.05, grad_clip=1.0)
    teacher_train = {"steps": 6, "batch_size": 4, "lr": 1e-3, "eval_every": 0, "checkpoint_every": 1, "report": False}
    raw["teacher"] = {
        "method": dict(TEACHER_METHOD[teacher]),
        "train": teacher_train,
        "data": {"points": "gaussian"},
        **section,
    }
    return raw


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def interrupt(monkeypatch, run_dir: Path, stop: int) -> None:
    """KeyboardInterrupt when step `stop` of the Trainer writing `run_dir` begins (its checkpoint holds `stop`)."""
    original = trainer_module.Trainer._train_step

    def step(self, index):
        if self.run_dir == run_dir and index == stop:
            raise KeyboardInterrupt
        return original(self, index)

    monkeypatch.setattr(trainer_module.Trainer, "_train_step", step)


def trained_dirs(monkeypatch) -> list[Path]:
    """The run directories the Trainer trains into from now on, in order."""
    seen = []
    original = trainer_module.Trainer.run

    def run(self):
        seen.append(self.run_dir)
        return original(self)

    monkeypatch.setattr(trainer_module.Trainer, "run", run)
    return seen


@pytest.fixture(scope="module")
def whole(tiny_data, tmp_path_factory) -> Path:
    """An uninterrupted route with the SF-Net teacher: the reference of the resume tests."""
    run = tmp_path_factory.mktemp("whole") / "run"
    train_route(build_config(route_raw(tiny_data)), run)
    return run


@pytest.mark.parametrize("teacher", ["sfnet", "lacp"])
def test_route_trains_teacher_then_student_on_its_pseudo_labels(tiny_data, tmp_path, monkeypatch, teacher, capsys):
    """One run directory: RUN/teacher is a finished run of the teacher's method, RUN/pseudo_labels.json is what
    `pointtal predict RUN/teacher --pseudo-labels` writes, and the student loaded exactly that file (never the
    ground truth) as its segments."""
    import pointtal.engine.setup as setup

    sources = []
    original = setup.load_segments
    monkeypatch.setattr(
        setup, "load_segments", lambda source, *a, **k: sources.append(source) or original(source, *a, **k)
    )
    run = tmp_path / "run"
    result = train_route(build_config(route_raw(tiny_data, teacher)), run)
    assert result.step == 8 and (run / "predictions.json").is_file()
    taught = load_checkpoint(run / "teacher" / "checkpoint.pt")
    assert taught["config"]["method"]["name"] == teacher and taught["step"] == 6
    assert (run / "teacher" / "predictions.json").is_file()
    assert sources == [str(run / "pseudo_labels.json")]
    student = load_checkpoint(run / "checkpoint.pt")["config"]
    assert student["method"]["name"] == "actionformer" and student["data"]["segments"] == "teacher"
    assert student["teacher"]["method"]["name"] == teacher and student["teacher"]["run"] is None

    assert (
        main(
            [
                "predict",
                str(run / "teacher"),
                "--pseudo-labels",
                str(tmp_path / "cli.json"),
                "--subset",
                "validation",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (run / "pseudo_labels.json").read_bytes() == (tmp_path / "cli.json").read_bytes()
    kept = json.loads((run / "pseudo_labels.json").read_text())
    assert kept["pseudo_labels"]["run"] == str((run / "teacher").resolve())
    train_ids = [v for v, e in kept["database"].items() if e["subset"] == "validation"]
    assert train_ids and all("score" in i for v in train_ids for i in kept["database"][v]["annotations"])


def test_resume_after_an_interruption_in_the_teacher(tiny_data, tmp_path, monkeypatch, whole):
    """Killed at teacher step 3: `pointtal train --out RUN --resume` (no CONFIG: RUN/config.yaml was written at
    the start) finishes the teacher, then the student; every weight equals the uninterrupted route's."""
    run = tmp_path / "run"
    config_file = tmp_path / "route.yaml"
    config_file.write_text(json.dumps(route_raw(tiny_data)))
    with monkeypatch.context() as patch:
        interrupt(patch, run / "teacher", 3)
        assert main(["train", str(config_file), "--out", str(run), "--no-progress"]) == 130  # interrupted
    assert load_checkpoint(run / "teacher" / "checkpoint.pt")["step"] == 3 and not (run / "checkpoint.pt").exists()
    assert main(["train", str(config_file), "--out", str(run), "--no-progress"]) == 2  # started: --resume needed
    assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 0
    assert_same_weights(run / "teacher" / "checkpoint.pt", whole / "teacher" / "checkpoint.pt")
    assert_same_weights(run / "checkpoint.pt", whole / "checkpoint.pt")


def test_resume_after_an_interruption_in_the_student_keeps_the_teacher(tiny_data, tmp_path, monkeypatch, whole):
    """Killed at student step 5: the resume trains only the student (the finished teacher is not retrained, its
    files untouched) and ends with the uninterrupted route's weights."""
    run = tmp_path / "run"
    config = build_config(route_raw(tiny_data))
    with monkeypatch.context() as patch:
        interrupt(patch, run, 5)
        with pytest.raises(KeyboardInterrupt):
            train_route(config, run)
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 5
    teacher_files = {p.name: p.stat().st_mtime_ns for p in (run / "teacher").iterdir() if p.is_file()}
    pseudo = (run / "pseudo_labels.json").stat().st_mtime_ns
    trained = trained_dirs(monkeypatch)
    train_route(config, run, resume=True)
    assert trained == [run]
    assert {p.name: p.stat().st_mtime_ns for p in (run / "teacher").iterdir() if p.is_file()} == teacher_files
    assert (run / "pseudo_labels.json").stat().st_mtime_ns == pseudo
    assert_same_weights(run / "checkpoint.pt", whole / "checkpoint.pt")


def test_resume_after_an_interruption_while_writing_pseudo_labels(tiny_data, tmp_path, monkeypatch, whole):
    """Killed between the stages (while predicting the pseudo labels): the resume keeps the finished teacher,
    writes the pseudo labels and trains the student to the uninterrupted route's weights."""
    run = tmp_path / "run"
    config = build_config(route_raw(tiny_data))
    with monkeypatch.context() as patch:
        patch.setattr(route_module, "predict_run", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            train_route(config, run)
    assert (run / "teacher" / "predictions.json").is_file() and not (run / "pseudo_labels.json").exists()
    trained = trained_dirs(monkeypatch)
    train_route(config, run, resume=True)
    assert trained == [run]
    assert (run / "pseudo_labels.json").read_text() == (whole / "pseudo_labels.json").read_text().replace(
        str((whole / "teacher").resolve()), str((run / "teacher").resolve())
    )
    assert_same_weights(run / "checkpoint.pt", whole / "checkpoint.pt")


def test_resume_refuses_a_changed_teacher_key_and_a_run_without_resume(tiny_data, tmp_path, whole):
    """A finished route resumed with another teacher width is refused by name (the student's pseudo labels came
    from the trained teacher); the teacher's device may change."""
    raw = route_raw(tiny_data)
    raw["teacher"]["method"]["hidden"] = 32
    with pytest.raises(InputError, match=r"teacher\.method\.hidden \(16 -> 32\)") as err:
        train_route(build_config(raw), whole, resume=True)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="already holds a run; pass --resume"):
        train_route(build_config(route_raw(tiny_data)), whole)


def test_a_teacher_run_is_reused_by_another_student(tiny_data, tmp_path, monkeypatch, whole):
    """teacher.run names a finished teacher: no teacher is trained, the pseudo labels are the same file, and a
    second student with another threshold gets fewer instances from the same teacher."""
    trained = trained_dirs(monkeypatch)
    raw = route_raw(tiny_data, run=str(whole / "teacher"))
    config = build_config(raw)
    assert config.teacher.config is None  # the run is the teacher: the section's keys are not used
    train_route(config, tmp_path / "reuse")
    assert trained == [tmp_path / "reuse"] and not (tmp_path / "reuse" / "teacher").exists()
    assert (tmp_path / "reuse" / "pseudo_labels.json").read_text() == (whole / "pseudo_labels.json").read_text()
    strict = build_config(route_raw(tiny_data, run=str(whole / "teacher"), pseudo_threshold=0.9))
    train_route(strict, tmp_path / "strict")

    def count(path):
        database = json.loads(path.read_text())["database"]
        return sum(len(e["annotations"]) for e in database.values() if e["subset"] == "validation")

    assert count(tmp_path / "strict" / "pseudo_labels.json") < count(whole / "pseudo_labels.json")


@pytest.mark.parametrize(
    "case, key",
    [
        ("missing", "teacher.run"),
        ("unfinished", "teacher.run"),
        ("segment method", "teacher.run"),
        ("other data", "teacher.run"),
        ("no preset", "teacher.config"),
        ("student method", "teacher.method.name"),
    ],
)
def test_bad_teacher_is_one_line_naming_the_key_before_any_work(tiny_data, tmp_path, whole, case, key, capsys):
    """Each bad teacher: exit 2, one stderr line naming the key, and no run directory made."""
    config_file = tmp_path / "route.yaml"
    raw = route_raw(tiny_data)
    if case == "missing":
        raw["teacher"]["run"] = str(tmp_path / "nowhere")
    elif case == "unfinished":
        (tmp_path / "half").mkdir()
        (tmp_path / "half" / "checkpoint.pt").write_bytes((whole / "teacher" / "checkpoint.pt").read_bytes())
        raw["teacher"]["run"] = str(tmp_path / "half")
    elif case == "segment method":
        raw["teacher"]["run"] = str(whole)  # the route's student: ActionFormer trains on segments
    elif case == "other data":
        other = tmp_path / "other.json"
        other.write_text((tiny_data / "annotations.json").read_text())
        raw["data"]["annotations"] = str(other)
        raw["teacher"]["run"] = str(whole / "teacher")
    elif case == "no preset":
        raw["teacher"]["config"] = str(tmp_path / "nope.yaml")
    else:
        raw["teacher"]["method"] = {"name": "actionformer"}
    config_file.write_text(json.dumps(raw))
    code = main(["train", str(config_file), "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and key in err, err
    assert not (tmp_path / "run").exists()


def test_teacher_section_is_checked_when_the_config_is_read(tiny_data):
    """Point students, a segments source beside the section, a ground-truth teacher and a threshold outside [0, 1]
    are refused by key; the section round-trips through a run's saved config."""
    raw = route_raw(tiny_data)
    cases = [
        ({"method": {"name": "sfnet"}}, "method.name=sfnet trains on points"),
        ({"data": {**raw["data"], "segments": "p.json"}}, "data.segments="),
        ({"teacher": {**raw["teacher"], "data": {"points": "full"}}}, "teacher.data.points=full"),
        ({"teacher": {**raw["teacher"], "pseudo_threshold": 1.5}}, r"teacher.pseudo_threshold=1.5 must be in \[0, 1\]"),
        ({"teacher": {**raw["teacher"], "steps": 3}}, "teacher.steps: unknown key"),
        ({"teacher": None, "data": {**raw["data"], "segments": "teacher"}}, "data.segments=teacher"),
    ]
    for change, message in cases:
        bad = {**raw, **change}
        if bad.get("teacher") is None:
            bad.pop("teacher")
        with pytest.raises(InputError, match=message):
            build_config(bad)
    for value, ok in ((-0.01, False), (0.0, True), (1.0, True), (1.01, False)):  # the stated range, both ends
        bad = {**raw, "teacher": {**raw["teacher"], "pseudo_threshold": value}}
        if ok:
            assert build_config(bad).teacher.pseudo_threshold == value
        else:
            with pytest.raises(InputError, match=r"teacher.pseudo_threshold=.* must be in \[0, 1\]"):
                build_config(bad)
    config = build_config(raw)
    assert build_config(config.to_dict()) == config
    assert config.teacher.config.data.annotations == config.data.annotations  # the route's dataset, both stages


@pytest.mark.parametrize("teacher", ["hrpro", "lacp", "sfnet", "soda"])
def test_route_presets_pair_each_point_method_with_actionformer(teacher):
    """configs/thumos14_<teacher>_actionformer.yaml: ActionFormer's preset as the student, the teacher's own
    preset as the teacher, the point methods' evaluation protocol for both."""
    config = load_config(Path("configs") / f"thumos14_{teacher}_actionformer.yaml")
    student = load_config(Path("configs") / "thumos14_actionformer.yaml")
    own = load_config(Path("configs") / f"thumos14_{teacher}.yaml")
    assert config.method_options == student.method_options and config.train == student.train
    assert config.teacher.config.method_options == own.method_options
    assert config.teacher.config.train.steps == own.train.steps
    hrpro = load_config(Path("configs") / "thumos14_hrpro.yaml").data
    assert config.data.exclude_videos == hrpro.exclude_videos and config.data.ambiguous == hrpro.ambiguous
    assert config.teacher.config.data.exclude_videos == config.data.exclude_videos
