"""Paths work from anywhere and every flag explains itself.

- every local path a user gives (flags, YAML keys, list items, ``SPLIT=PATH`` inputs, paths
  inside a charset or text-source spec) is absolute before a config exists; ``s3://`` stays;
- a missing input is refused naming the path as given and the folder it was taken from;
- inside a ``ray job submit`` job (its supervisor's environment variable, set here from
  outside) a relative output is refused before any work starts;
- ``--help`` of every command gives every flag a sentence from the typed configs, lists
  choices, and hides the test-only flags.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocr import config as C
from ocr.cli import _commands, build_parser, config_class
from ocr.config import config_from_args

REPO = Path(__file__).resolve().parents[1]


def _ocr(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ocr.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def _parse(argv: list[str]):
    args = build_parser().parse_args(argv)
    spec = {name: spec for name, _, spec, *_ in _commands()}[argv[0]]
    return config_from_args(config_class(spec), args)


def test_flags_are_resolved_from_the_working_folder(tmp_path, monkeypatch):
    (tmp_path / "shards").mkdir()
    (tmp_path / "raw").mkdir()
    (tmp_path / "chars.txt").write_text("0123456789\n")
    monkeypatch.chdir(tmp_path)
    train = _parse(["train", "recognition", "--data", "shards", "--storage", "runs",
                    "--val-data", "s3://bucket/val"])
    assert train.data == str(tmp_path / "shards") and train.storage == str(tmp_path / "runs")
    assert train.val_data == "s3://bucket/val"
    ingest = _parse(["ingest", "train=raw", "./raw", "--output", "out", "--charset", "chars.txt"])
    assert ingest.inputs == [f"train={tmp_path / 'raw'}", str(tmp_path / "raw")]
    assert ingest.output == str(tmp_path / "out") and ingest.charset == str(tmp_path / "chars.txt")
    synth = _parse(["synth", "--output", "o", "--text", "words:chars.txt:1-3", "--fonts", "raw"])
    assert synth.text == f"words:{tmp_path / 'chars.txt'}:1-3" and synth.fonts == [str(tmp_path / "raw")]
    ev = _parse(["eval-orientation", "classical", "shards"])
    assert ev.checkpoint == "classical" and ev.data == str(tmp_path / "shards")


def test_yaml_paths_are_relative_to_the_yaml_file(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "data" / "digits").mkdir(parents=True)
    (project / "train.yaml").write_text("data: data/digits\nstorage: runs\nmodel: tiny_crnn\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = _parse(["train", "--config", "../project/train.yaml"])
    assert cfg.data == str(project / "data" / "digits") and cfg.storage == str(project / "runs")
    cfg = _parse(["train", "--config", "../project/train.yaml", "--storage", "mine"])
    assert cfg.storage == str(elsewhere / "mine")  # a flag: from the working folder


def test_a_config_built_in_code_is_absolute_too(tmp_path, monkeypatch):
    from ocr.train.config import TrainConfig

    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(data="d", init_from="runs/x")
    assert cfg.data == str(tmp_path / "d") and cfg.init_from == str(tmp_path / "runs" / "x")
    assert cfg.storage == str(tmp_path / "runs")
    again = C.from_dict(TrainConfig, C.to_dict(cfg))  # what a worker rebuilds: unchanged
    assert again == cfg


def test_a_missing_shard_folder_is_named_with_where_it_was_looked_for(tmp_path):
    out = _ocr(["train", "recognition", "--data", "data/digitz"], cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    msg = out.stderr
    assert "ocr train: error: data:" in msg and "'data/digitz'" in msg
    assert f"a relative path, taken from the working folder {tmp_path}" in msg
    assert str(tmp_path / "data" / "digitz") in msg and "Traceback" not in msg


def test_a_missing_path_in_a_yaml_names_the_yaml_folder(tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "train.yaml").write_text("data: nowhere\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(C.ConfigError, match=r"the folder of the YAML file that names it .*cfg"):
        _parse(["train", "--config", "cfg/train.yaml"])


def test_a_relative_output_inside_a_submitted_job_is_refused_before_any_work(tmp_path):
    job_env = {"RAY_JOB_CONFIG_JSON_ENV_VAR": '{"runtime_env": {"working_dir": "gcs://_ray_pkg_x.zip"}}'}
    out = _ocr(["synth", "--output", "jobdata/d", "--count", "5"], cwd=tmp_path, env=job_env)
    assert out.returncode == 2
    assert "relative path inside a `ray job submit` job" in out.stderr
    assert "absolute path or s3:// URI" in out.stderr and not (tmp_path / "jobdata").exists()
    out = _ocr(["train", "recognition", "--data", "jobdata/d"], cwd=tmp_path, env=job_env)
    assert out.returncode == 2 and "private copy of the working dir" in out.stderr
    # absolute and s3:// paths are what a job should use: not refused for being relative
    out = _ocr(["charset", "digits"], cwd=tmp_path, env=job_env)
    assert out.returncode == 0 and '"num_classes": 11' in out.stdout


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


HIDDEN = {"--fault-at-step", "--nan-at-step"}


@pytest.mark.parametrize("command", [c[0] for c in _commands()])
def test_every_flag_has_a_sentence(command):
    parser = _subparsers()[command]
    shown = [a for a in parser._actions
             if a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]
    for action in shown:
        name = action.option_strings[0] if action.option_strings else action.dest
        text = (action.help or "").split(" (default:")[0]
        assert len(text.split()) >= 3, f"ocr {command} {name}: help {action.help!r} says nothing"
        assert action.dest.replace("_", " ") != text, f"ocr {command} {name}: help is only its name"
    text = parser.format_help()
    for flag in HIDDEN:
        assert flag not in text


def test_choices_and_positionals_are_listed():
    subs = _subparsers()
    train = " ".join(subs["train"].format_help().split())
    assert "{recognition,detection,orientation}" in train
    assert "--optimizer {adamw,adadelta}" in train and "--schedule {cosine,constant,onecycle}" in train
    assert "(default: 0.001)" in train
    ingest = " ".join(subs["ingest"].format_help().split())
    assert "--layout {auto,gt,labels,aihub,filename,lmdb,labelme,coco}" in ingest
    assert "[SPLIT=]PATH" in ingest


def test_a_command_imports_only_its_own_config():
    code = ("import sys; from ocr.cli import build_parser; build_parser(only='synth')"
            ".parse_args(['synth', '--count', '3']); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


def test_hidden_test_flags_are_still_accepted_and_a_bad_choice_is_refused(tmp_path, monkeypatch):
    (tmp_path / "d").mkdir()
    monkeypatch.chdir(tmp_path)
    assert _parse(["train", "--data", "d", "--fault-at-step", "3"]).fault_at_step == 3
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "segmentation", "--data", "d"])
    (tmp_path / "bad.yaml").write_text("data: d\nschedule: linear\n")
    with pytest.raises(C.ConfigError, match="schedule: expected one of cosine, constant, onecycle"):
        _parse(["train", "--config", "bad.yaml"])
