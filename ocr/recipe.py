"""``ocr recipe NAME``: synth -> train -> eval -> publish, the one command that makes a
built-in recogniser (``builtin:NAME``) or a team's own model from the same recipe.

A recipe is a YAML file (bundled in ``ocr/recipes/``, or any path) with sections:

* ``synth``: :class:`~ocr.data.config.SynthConfig` fields (text mix, charset, fonts, style, count);
* ``train``: :class:`~ocr.train.config.TrainConfig` fields (model, width, budget);
* ``heldout``: ``synth`` overrides for a set in fonts training never sees (``font_include``),
  evaluated when those fonts are installed;
* ``sizes``: named overrides of the sections (``tiny`` runs in the tests in seconds);
* ``description``: one line for ``ocr models --builtin``.

Everything goes under ``--out`` (default ``recipes/NAME``): ``data/`` (the shards),
``runs/NAME`` (the training run), ``eval/``, ``model/`` (the published checkpoint: fp16
weights, ``model.json`` with the recipe and its figures). Run it again and finished steps are
kept: the shards when the synth section is unchanged, the run continued by name.
``--publish`` also copies ``model/`` into the package (``ocr/weights/NAME``): for maintainers.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from ocr import checkpoint, storage, tracking
from ocr.config import ConfigError, absolute_paths, opt, parse_overrides, resolve_paths
from ocr.data.config import SynthConfig
from ocr.data.synth.fonts import find_fonts
from ocr.data.synth.job import synth
from ocr.eval.config import EvalConfig
from ocr.eval.recognition import evaluate
from ocr.runtime import ensure_ray
from ocr.train.config import TrainConfig
from ocr.train.run import train

RECIPE_DIR = Path(__file__).parent / "recipes"
SECTIONS = ("synth", "train", "heldout")
PACKAGE_WEIGHTS = Path(__file__).parent / checkpoint.BUILTIN_DIR


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


@dataclass
class RecipeConfig:
    """``ocr recipe``: make a recogniser from a recipe in one command."""

    recipe: str = opt("", "a bundled recipe (digits, korean, latin) or a recipe YAML file")
    size: str = opt("default", "a size the recipe defines (tiny: seconds, for tests; default: the "
                    "published model's)")
    out: str = opt("", "folder for the data, run, report and model (default: recipes/NAME)", path="output")
    minutes: float = opt(0.0, "training budget in minutes, replacing the recipe's (0: the recipe's)")
    text: str = opt("", "text source replacing the recipe's (e.g. mix:my-words.yaml, "
                    "lexicon:my-words.txt:1-4): a model for your own domain", path="text")
    fonts: list[str] = opt(factory=list, path="input", metavar="PATH",
                           help="font files or folders replacing the system's (your own typefaces)")
    set: list[str] = opt(factory=list, metavar="SECTION.KEY=VALUE",
                         help="change a recipe value, e.g. synth.count=50000 or train.lr=0.002")
    publish: bool = opt(False, "also copy the model into the package as builtin:NAME (maintainers)")
    num_cpus: int | None = opt(None, "CPUs of the local Ray started for this command (default: all)")

    def __post_init__(self):
        absolute_paths(self)


def load_recipe(name_or_path: str, size: str = "default") -> dict:
    """The recipe's sections with ``size``'s overrides applied."""
    path = Path(name_or_path)
    if not path.is_file():
        path = RECIPE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(f"recipe {name_or_path!r}: expected a recipe file or one of {recipe_names()}")
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"recipe {path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path}: expected a mapping at the top level, found {type(data).__name__}")
    unknown = sorted(set(data) - {*SECTIONS, "sizes", "description", "name"})
    if unknown:
        raise ConfigError(f"recipe {path}: unknown keys {unknown}, expected {SECTIONS}, sizes, description")
    sizes = data.get("sizes") or {}
    if size != "default" and size not in sizes:
        raise ConfigError(f"recipe {path.stem}: size {size!r} not defined, expected default or "
                          f"one of {sorted(sizes)}")
    recipe = {"name": data.get("name") or path.stem, "description": data.get("description", ""),
              "file": str(path)}
    for section in SECTIONS:
        recipe[section] = {**(data.get(section) or {}), **(sizes.get(size, {}).get(section) or {})}
    # the recipe file's relative paths (fonts, word lists, mixes) start from its folder
    base = str(path.resolve().parent)
    for section, cls in (("synth", SynthConfig), ("heldout", SynthConfig), ("train", TrainConfig)):
        recipe[section] = resolve_paths(cls, recipe[section], base, check=False)
    return recipe


def _apply(recipe: dict, cfg: RecipeConfig) -> dict:
    for key, value in parse_overrides(cfg.set).items():
        section, _, field = key.partition(".")
        if section not in SECTIONS or not field:
            raise ConfigError(f"set {key}: expected SECTION.KEY with SECTION one of {SECTIONS}")
        recipe[section][field] = yaml.safe_load(value)
    if cfg.text:
        recipe["synth"]["text"] = cfg.text
    if cfg.fonts:
        recipe["synth"]["fonts"] = list(cfg.fonts)
    if cfg.minutes:
        recipe["train"]["max_minutes"] = cfg.minutes
    return recipe


def _synth_once(section: dict, output: str, num_cpus) -> dict:
    """Render the shards unless ``output`` holds shards of the same section already."""
    stamp = Path(output) / "recipe-synth.json"
    wanted = json.dumps(section, sort_keys=True, ensure_ascii=False)
    if stamp.is_file() and stamp.read_text("utf-8") == wanted:
        print(f"shards in {output} are up to date (same synth section): kept", flush=True)
        return json.loads((Path(output) / "manifest.json").read_text("utf-8"))
    try:
        cfg = SynthConfig(output=output, overwrite=True, num_cpus=num_cpus, **section)
    except TypeError as e:
        raise ConfigError(f"recipe synth section: {e}") from None
    manifest = synth(cfg, progress=False)
    stamp.write_text(wanted, "utf-8")
    counts = manifest["counts"]
    print(f"rendered {counts['written']} lines ({counts.get('rejected', 0)} rejected) into {output} "
          f"in {manifest['_seconds']:.0f}s", flush=True)
    return manifest


def _heldout_section(recipe: dict) -> dict | None:
    """The held-out set's synth section, or None when none of its fonts is installed."""
    if not recipe["heldout"]:
        return None
    section = {**recipe["synth"], **recipe["heldout"]}
    section.pop("font_exclude", None)
    section["splits"] = "test=1"
    wanted = section.get("font_include", [])
    if not any(f.matches(*wanted) for f in find_fonts(section.get("fonts") or None)):
        print(f"held-out fonts {section.get('font_include')} are not installed: no held-out figures "
              "(the benchmarks' set-up installs them)", flush=True)
        return None
    return section


def _figures(summary: dict) -> dict:
    keys = ("samples", "cer", "ned", "char_accuracy", "word_accuracy", "lines_per_second")
    return {k: summary[k] for k in keys if k in summary}


def publish_model(best: str, folder: Path, recipe: dict, figures: dict) -> Path:
    """The checkpoint ``best`` written to ``folder`` with fp16 weights and the recipe's record;
    the training config's paths are made relative to the recipe's folder (no machine's paths
    travel with a published model)."""
    model, meta = checkpoint.load(best, "recognition")
    meta = {k: v for k, v in meta.items() if k not in ("format", "versions")}
    config = dict(meta.get("config") or {})
    for key in ("data", "val_data", "storage", "init_from"):
        if config.get(key) and Path(config[key]).is_relative_to(folder.parent):
            config[key] = str(Path(config[key]).relative_to(folder.parent))
    meta["config"] = config
    meta["builtin"] = {"name": recipe["name"], "description": recipe["description"],
                       "recipe": Path(recipe["file"]).name, "weights": "float16", "figures": figures}
    shutil.rmtree(folder, ignore_errors=True)
    checkpoint.save(folder, model.half(), meta)
    return folder


def _track_reports(summary: dict, out: Path) -> None:
    """The evaluation reports, as artifacts of the training run's MLflow run (if tracked)."""
    ref = tracking.read_ref(summary["run_dir"]) if summary.get("mlflow") else None
    tracking.log_artifacts(ref, {f"{folder}/{name}": str(out / folder / name)
                                 for folder in ("eval", "eval-heldout")
                                 for name in ("summary.json", "report.html")})


def run_recipe(cfg: RecipeConfig) -> dict:
    """Synth, train, evaluate and publish; returns a summary (also OUT/recipe-summary.json)."""
    if not cfg.recipe:
        raise ConfigError(f"recipe: expected a name ({', '.join(recipe_names())}) or a YAML file")
    recipe = _apply(load_recipe(cfg.recipe, cfg.size), cfg)
    name = recipe["name"]
    out = Path(cfg.out or Path("recipes") / name).resolve()
    if storage.is_s3(str(out)):
        raise ConfigError("out: expected a local folder (the model is published from it)")
    started = time.perf_counter()
    heldout = _heldout_section(recipe)
    try:   # refused before any work starts
        train_cfg = TrainConfig(task="recognition", data=str(out / "data"), storage=str(out / "runs"),
                                name=name, num_cpus=cfg.num_cpus, **recipe["train"])
    except TypeError as e:
        raise ConfigError(f"recipe train section: {e}") from None
    print(f"recipe {name} ({cfg.size}): {out}", flush=True)
    # The Ray the synth starts also trains: with the dashboard, whose State API Ray Train's
    # placement-group cleaner polls (without it: a warning a second, and a run killed when
    # another local Ray's dashboard answers on the default port for an actor it never had).
    ensure_ray(cfg.num_cpus, dashboard=True)
    _synth_once(recipe["synth"], str(out / "data"), cfg.num_cpus)
    if heldout:
        _synth_once(heldout, str(out / "heldout"), cfg.num_cpus)
    summary = train(train_cfg)
    if not summary.get("best"):
        raise ConfigError(f"recipe {name}: training left no checkpoint ({summary.get('diverged')})")
    figures = {"test split": _figures(evaluate(EvalConfig(
        checkpoint=summary["best"], data=str(out / "data"), split="test", output=str(out / "eval"))))}
    if heldout:
        figures["held-out fonts"] = _figures(evaluate(EvalConfig(
            checkpoint=summary["best"], data=str(out / "heldout"), split="test",
            output=str(out / "eval-heldout"))))
    _track_reports(summary, out)
    model_dir = publish_model(summary["best"], out / "model", recipe, figures)
    result = {"recipe": name, "size": cfg.size, "out": str(out), "model": str(model_dir),
              "figures": figures, "train_seconds": summary.get("seconds"),
              "minutes": round((time.perf_counter() - started) / 60, 1)}
    if cfg.publish:
        target = PACKAGE_WEIGHTS / name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(model_dir, target)
        result["published"] = f"builtin:{name} ({target})"
    (out / "recipe-summary.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    return result
