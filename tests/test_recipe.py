"""`ocr recipe` (synth -> train -> eval -> publish at tiny size), the built-in models and
fine-tuning from them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import mlflow_runs
from rapidfuzz.distance import Levenshtein

from ocr import checkpoint, recipe
from ocr.charset import load_charset
from ocr.cli import main
from ocr.config import ConfigError
from ocr.data.config import SynthConfig
from ocr.data.synth.augment import LineStyle
from ocr.data.synth.fonts import find_fonts, fonts_covering
from ocr.data.synth.job import synth
from ocr.data.synth.line import render_line
from ocr.data.synth.text import parse_text_source
from ocr.infer import LineReader
from ocr.recipe import RecipeConfig, load_recipe, recipe_names, run_recipe

# what each built-in reads, for the "reads a freshly rendered line of its kind" check
KIND_OF_BUILTIN = {"digits": "mix:digits", "korean": "mix:korean", "latin": "mix:latin"}


def test_bundled_recipes_parse_with_a_tiny_size():
    assert {"digits", "korean", "latin"} <= set(recipe_names())
    for name in recipe_names():
        recipe = load_recipe(name, "tiny")
        assert recipe["synth"]["count"] <= 200 and recipe["train"]["max_steps"] <= 10
        SynthConfig(output="/tmp/unused", **recipe["synth"])      # every key is a SynthConfig field
        assert load_recipe(name)["synth"]["count"] >= 10_000


def test_bad_recipes_are_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(ConfigError, match="size 'huge' not defined"):
        load_recipe("digits", "huge")
    bad = tmp_path / "bad.yaml"
    bad.write_text("synth: {count: 3}\nfinetune: {}\n")
    with pytest.raises(ConfigError, match=r"unknown keys \['finetune'\]"):
        load_recipe(str(bad))
    bad.write_text("synth: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(str(bad))
    with pytest.raises(ConfigError, match="expected SECTION.KEY"):
        run_recipe(RecipeConfig(recipe="digits", set=["count=3"], out=str(tmp_path / "o")))
    assert main(["recipe", "nope", "--out", str(tmp_path / "o")]) == 2
    assert "expected a recipe file or one of ['digits'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_recipe_starts_ray_with_the_state_api_after_checking_its_train_section(tmp_path, monkeypatch):
    started = []

    class Started(Exception):
        pass

    def ensure_ray(num_cpus=None, dashboard=False):
        started.append(dashboard)
        raise Started

    monkeypatch.setattr(recipe, "ensure_ray", ensure_ray)
    bad = tmp_path / "bad.yaml"
    bad.write_text("synth: {count: 3}\ntrain: {epochz: 3}\n")
    with pytest.raises(ConfigError, match="recipe train section.*epochz"):
        run_recipe(RecipeConfig(recipe=str(bad), out=str(tmp_path / "o")))
    assert started == [] and not (tmp_path / "o").exists()
    with pytest.raises(Started):   # Ray Train's placement-group cleaner polls the State API
        run_recipe(RecipeConfig(recipe="digits", size="tiny", out=str(tmp_path / "o")))
    assert started == [True]


def test_tiny_recipe_makes_a_model_that_loads_and_reads(ray_local, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)           # a relative --out, as a user types it
    monkeypatch.setattr(recipe, "PACKAGE_WEIGHTS", tmp_path / "package-weights")  # not the real package
    assert main(["recipe", "digits", "--size", "tiny", "--out", "made", "--set", "synth.count=120",
                 "--set", "train.max_steps=3", "--set", "train.register_model=tiny-digits", "--publish"]) == 0
    said = capsys.readouterr().out
    assert "test split: samples" in said and "recipe digits done" in said
    model = tmp_path / "made" / "model"
    meta = json.loads((model / "model.json").read_text())
    assert meta["charset"]["hash"] == load_charset("numeric").hash
    assert meta["builtin"]["recipe"] == "digits.yaml" and "test split" in meta["builtin"]["figures"]
    assert (meta["config"]["data"], meta["config"]["storage"]) == ("data", "runs")   # no machine's paths
    weights = torch.load(model / "model.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in weights.values() if v.is_floating_point())
    reader = LineReader.load(str(model))
    (text, conf), = reader.read([_png(_render("mix:digits", 0))])
    assert set(text) <= set(load_charset("numeric").symbols) and 0 <= conf <= 1
    summary = json.loads((tmp_path / "made" / "recipe-summary.json").read_text())
    assert summary["model"] == str(model) and summary["published"].startswith("builtin:digits")
    published = tmp_path / "package-weights" / "digits"
    assert (published / "model.pt").read_bytes() == (model / "model.pt").read_bytes()
    _check_tracked(tmp_path / "made" / "runs", said)


def _check_tracked(runs, said: str):
    """The recipe's run in MLflow beside its runs (from a relative --out), with the evaluation
    report as artifacts and the best checkpoint registered."""
    client, (run,) = mlflow_runs(runs)
    assert run.info.status == "FINISHED" and run.data.tags["task"] == "recognition"
    assert [a.path for a in client.list_artifacts(run.info.run_id, "eval")] == \
        ["eval/report.html", "eval/summary.json"]
    (version,) = client.search_model_versions("name='tiny-digits'")
    assert version.run_id == run.info.run_id and "registered models:/tiny-digits/1" in said
    assert f"mlflow ui --backend-store-uri sqlite:///{runs}/mlflow.db" in said


def _render(spec: str, seed: int):
    source, rng = parse_text_source(spec), np.random.default_rng(seed)
    fonts = [f for f in find_fonts() if "DSEG" not in f.name]
    for _ in range(100):
        text = source.sample(rng)
        usable = fonts_covering(fonts, text)
        if usable:
            return text, render_line(text, usable[0], 32, LineStyle.clean(), rng)
    raise AssertionError(f"no font draws texts of {spec}")


def _png(pair) -> bytes:
    import io

    buf = io.BytesIO()
    pair[1].save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("name", checkpoint.builtin_names())
def test_builtin_loads_and_reads_a_fresh_line_of_its_kind(name):
    meta = checkpoint.read_meta(f"builtin:{name}", task="recognition")   # checks the charset hash
    assert meta["builtin"]["name"] == name
    reader = LineReader.load(f"builtin:{name}")
    lines = [_render(KIND_OF_BUILTIN[name], seed) for seed in range(12)]
    read = reader.read([_png(pair) for pair in lines])
    edits = sum(Levenshtein.distance(text, got) for (text, _), (got, _) in zip(lines, read))
    # a sanity bound (weights that do not fit the charset read nothing alike), not an accuracy target
    assert edits / sum(len(text) for text, _ in lines) < 0.5


def test_models_builtin_lists_the_shipped_models(capsys):
    assert main(["models", "--builtin"]) == 0
    out = capsys.readouterr().out
    names = checkpoint.builtin_names()
    for name in names:
        assert f"builtin:{name}:" in out and "MB" in out
    if not names:
        assert "no built-in models" in out


@pytest.mark.skipif("digits" not in checkpoint.builtin_names(), reason="builtin:digits not shipped")
def test_fine_tuning_from_a_builtin_refuses_new_symbols_unless_extended(ray_local, tmp_path, capsys):
    data = tmp_path / "mine"
    synth(SynthConfig(output=str(data), text="file:" + str(_words(tmp_path)), count=40, shard_size=40))
    args = ["train", "recognition", "--init-from", "builtin:digits", "--data", str(data),
            "--storage", str(tmp_path / "runs"), "--max-steps", "1", "--batch-size", "8", "--val-every", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "lacks 2 symbol(s)" in err and "'#A'" in err and "--extend-charset" in err
    assert main([*args, "--extend-charset", "--name", "extended"]) == 0
    meta = checkpoint.read_meta(str(tmp_path / "runs" / "extended"))
    assert {"#", "A"} <= set(meta["charset"]["symbols"])
    assert set(load_charset("numeric").symbols) <= set(meta["charset"]["symbols"])


def _words(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("A-12\n#3,400\n12:30\n99.5%\n")
    return path
