"""ocr.checkpoint, the one reader: a wrong task, a damaged charset or an unknown built-in get one
clear CheckpointError (a ConfigError) naming the checkpoint, what was expected and what was found."""

from __future__ import annotations

import json

import pytest

from ocr import checkpoint
from ocr.charset import Charset
from ocr.checkpoint import CheckpointError
from ocr.config import ConfigError
from ocr.models import REGISTRIES

LINE = {"height": 32, "width": 100, "keep_ratio": True, "pad": "right", "channels": 1,
        "mean": [0.5], "std": [0.5]}


def _recognizer(folder, charset: Charset, num_classes: int | None = None) -> str:
    model = REGISTRIES["recognition"].create("tiny_crnn", num_classes=num_classes or charset.num_classes)
    checkpoint.save(folder, model, {"task": "recognition", "arch": model.arch_config(),
                                    "charset": charset.to_json(), "preprocess": LINE})
    return str(folder)


def test_a_run_folder_reads_its_best_and_rebuilds_the_model(tmp_path):
    digits = Charset.from_string("0123456789", spec="digits")
    _recognizer(tmp_path / "run" / "best", digits)
    model, meta = checkpoint.load(str(tmp_path / "run"), task="recognition")
    assert meta["task"] == "recognition" and checkpoint.charset_of(meta) == digits
    assert sum(p.numel() for p in model.parameters()) > 0 and not model.training


def test_another_task_is_refused_naming_both(tmp_path):
    path = _recognizer(tmp_path / "rec", Charset.from_string("0123456789"))
    with pytest.raises(CheckpointError, match=r"rec is a recognition checkpoint: expected detection"):
        checkpoint.read_meta(path, task="detection")
    assert issubclass(CheckpointError, ConfigError)   # the CLI prints it as a user error


def test_a_damaged_charset_or_one_that_does_not_fit_the_model_is_refused(tmp_path):
    path = _recognizer(tmp_path / "rec", Charset.from_string("0123456789"))
    meta_file = tmp_path / "rec" / "model.json"
    meta = json.loads(meta_file.read_text())
    meta["charset"]["symbols"] = meta["charset"]["symbols"][:-1]      # hash no longer matches
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="its charset is damaged"):
        checkpoint.read_meta(path)
    small = _recognizer(tmp_path / "small", Charset.from_string("0123456789"), num_classes=5)
    with pytest.raises(CheckpointError, match=r"10 symbols but the model has 5 classes: expected 11"):
        checkpoint.load(small)


def test_missing_and_unknown_builtin_checkpoints_say_what_was_expected(tmp_path):
    with pytest.raises(CheckpointError, match="expected a checkpoint folder with model.json"):
        checkpoint.read_meta(str(tmp_path))
    with pytest.raises(CheckpointError, match=r"builtin:nope: expected one of the built-in models"):
        checkpoint.read_meta("builtin:nope")
