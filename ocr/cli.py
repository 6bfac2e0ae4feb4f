"""The ``ocr`` command. Flags are generated from the typed configs, so every command and
``jobs/*.py`` accept the same options, with the same help: ``--config FILE`` (YAML), then
``--some-field VALUE``. Each field's help sentence is written once, in its ``opt(...)``."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ocr import config as C
from ocr.config import add_config_args, config_from_args, opt


# --- the configs of the small commands (the others live beside the code they drive) ---------
@dataclass
class ExportLmdbConfig:
    shards: str = opt("", "recognition shard folder to export", path="input")
    output: str = opt("", "folder to write the LMDB to", path="output")
    split: str | None = opt(None, "one split only (default: all, in input order)")


@dataclass
class CharsetConfig:
    spec: str = opt("", "a preset (digits, lower, latin, hangul, hangul_full, korean), a union such as "
                    "digits+hangul, or a .txt/.json file", path="charset")
    symbols: bool = opt(False, "list the symbols too")


@dataclass
class RecognizeConfig:
    checkpoint: str = opt("", "recognition checkpoint or run folder (its best/)", path="checkpoint")
    images: list[str] = opt(factory=list, path="input", metavar="IMAGE",
                            help="text-line images to read")
    json: bool = opt(False, "print one JSON object per image")


@dataclass
class ExportConfig:
    checkpoint: str = opt("", "recognition checkpoint or run folder (its best/)", path="checkpoint")
    output: str = opt("", "folder for the exported model files and model.json", path="output")
    formats: list[str] = opt(factory=lambda: ["torchscript", "onnx"], metavar="FORMAT",
                             help="formats to write: torchscript, onnx")


@dataclass
class ClientConfig:
    image: str = opt("", "image file to send", path="input")
    url: str = opt("http://127.0.0.1:8000", "address of the running service")
    endpoint: str = opt("ocr", "route to call: ocr (a page), recognize (one line), detect, deskew",
                        choices=("ocr", "recognize", "detect", "deskew"))
    json: bool = opt(False, "print the whole JSON answer")
    token: str | None = opt(None, "bearer token sent with the request (unset: $OCR_SERVE_TOKEN)")


@dataclass
class ModelsConfig:
    builtin: bool = opt(False, "list the built-in models (builtin:NAME): charset, size, figures")


@dataclass
class ShardsConfig:
    shards: str = opt("", "shard folder (manifest.json), local or s3://", path="input")


def _required(cfg, *names: str):
    for name in names:
        if getattr(cfg, name) in ("", None, []):
            raise C.ConfigError(f"{name}: expected a value, found none (see --help)")
    return cfg



# --- commands ----------------------------------------------------------------------------
# Each handler imports its stage inside the function (lazy on purpose): building the parser,
# `ocr --help` or `ocr synth`, must not pay for torch or Ray (seconds) that it does not use.
def _report(manifest: dict, output: str) -> int:
    """Print the summary; exit 0 when anything was written, 1 when nothing could be."""
    from ocr.data.ingest import summary_table

    print(summary_table(manifest))
    print(f"wrote {manifest['counts']['written']} samples to {output} "
          f"in {manifest['_seconds']:.1f}s (manifest.json, rejects.jsonl)")
    return 0 if manifest["counts"]["written"] > 0 else 1


def cmd_ingest(args) -> int:
    from ocr.data.config import IngestConfig
    from ocr.data.ingest import ingest

    cfg = config_from_args(IngestConfig, args)
    return _report(ingest(cfg), cfg.output)


def cmd_synth(args) -> int:
    from ocr.data.config import SynthConfig
    from ocr.data.synth.job import synth

    cfg = config_from_args(SynthConfig, args)
    return _report(synth(cfg), cfg.output)


def cmd_export_lmdb(args) -> int:
    from ocr.data.lmdb_export import export_lmdb

    cfg = _required(config_from_args(ExportLmdbConfig, args), "shards", "output")
    n = export_lmdb(cfg.shards, cfg.output, split=cfg.split)
    print(f"wrote {n} samples to {cfg.output} (deep-text-recognition-benchmark LMDB)")
    return 0 if n else 1


def cmd_charset(args) -> int:
    from ocr.charset import load_charset

    cfg = _required(config_from_args(CharsetConfig, args), "spec")
    cs = load_charset(cfg.spec)
    out = cs.to_json()
    if not cfg.symbols:
        out.pop("symbols")
        out["size"] = len(cs)
    print(json.dumps(out, ensure_ascii=False, indent=1))
    return 0


def cmd_manifest(args) -> int:
    from ocr.data.ingest import summary_table
    from ocr.data.shards import read_manifest

    print(summary_table(read_manifest(_required(config_from_args(ShardsConfig, args), "shards").shards)))
    return 0


def cmd_train(args) -> int:
    from ocr.train.config import TrainConfig
    from ocr.train.run import train

    summary = train(config_from_args(TrainConfig, args))
    if summary.get("diverged"):
        print(f"ocr train: diverged at step {summary['final'].get('diverged_step')}: "
              f"{summary['diverged']}", file=sys.stderr)
        return 3
    m = summary.get("metrics") or {}
    best = ", ".join(f"{k[4:]} {v:.4f}" for k, v in m.items() if k.startswith("val_") and v is not None)
    print(f"run {summary['run']}: best {best} at step {summary.get('best_step')}\n"
          f"best checkpoint: {summary.get('best')}")
    return 0


def _evaluate(task: str, args) -> int:
    """Evaluate with the family of ``task`` (its config from the flags given) and print the summary."""
    from ocr.families import family

    fam = family(task)
    print(fam.summary_text(fam.evaluate(config_from_args(fam.eval_config, args))))
    return 0


def cmd_eval(args) -> int:
    from ocr import checkpoint
    from ocr.eval.config import EvalConfig

    cfg = config_from_args(EvalConfig, args)
    return _evaluate(checkpoint.read_meta(cfg.checkpoint)["task"], args)   # the flags eval shares


def cmd_eval_detection(args) -> int:
    return _evaluate("detection", args)


def cmd_eval_orientation(args) -> int:
    return _evaluate("orientation", args)


def cmd_deskew(args) -> int:
    from ocr.deskew import DeskewConfig, deskew_files

    cfg, failed = config_from_args(DeskewConfig, args), 0
    for path, target, info in deskew_files(cfg):
        if target is None:
            failed += 1
            print(f"{path}: error: {info}", file=sys.stderr)
        elif cfg.json:
            print(json.dumps({"image": path, "output": target, **info}, ensure_ascii=False))
        else:
            print(f"{path}\tangle {info['angle']:.2f}\tskew {info['skew']:.2f}\torientation "
                  f"{info['orientation']}\tconfidence {info['confidence']:.3f}\t{info['method']}\t"
                  f"-> {target}")
    return 1 if failed else 0


def cmd_recognize(args) -> int:
    from ocr.infer import LineReader

    cfg = _required(config_from_args(RecognizeConfig, args), "checkpoint", "images")
    reader = LineReader.load(cfg.checkpoint)
    results = reader.read([Path(p).read_bytes() for p in cfg.images])
    for path, (text, conf) in zip(cfg.images, results):
        if cfg.json:
            print(json.dumps({"image": path, "text": text, "confidence": round(conf, 5)},
                             ensure_ascii=False))
        else:
            print(f"{path}\t{text}\t{conf:.4f}")
    return 0


def cmd_read(args) -> int:
    from ocr.read import ReadConfig, read_files

    return read_files(_required(config_from_args(ReadConfig, args), "images"))


def cmd_export(args) -> int:
    import torch

    from ocr import checkpoint
    from ocr.export import assert_parity, check_parity, export_recognizer

    cfg = _required(config_from_args(ExportConfig, args), "checkpoint", "output")
    model, meta = checkpoint.load(cfg.checkpoint, "recognition")
    paths = export_recognizer(model, meta, cfg.output, tuple(cfg.formats))
    p = meta["preprocess"]
    images = torch.rand(4, p["channels"], p["height"], p["width"], generator=torch.Generator().manual_seed(0))
    report = check_parity(model, cfg.output, (images - 0.5) / 0.5)
    for fmt, path in paths.items():
        print(f"{fmt}: {path}  max |diff| vs eager {report[fmt]['max_abs_diff']:.2e}  "
              f"same decoding: {report[fmt]['same_decoding']}")
    assert_parity(report)
    return 0


def cmd_tune(args) -> int:
    from ocr.train.config import TrainConfig
    from ocr.tune.config import SweepConfig
    from ocr.tune.sweep import sweep

    sweep_cfg = config_from_args(SweepConfig, argparse.Namespace(**{**vars(args), "config": None}))
    train_cfg = C.load(TrainConfig, args.config, C.parse_overrides(sweep_cfg.train_set))
    summary = sweep(sweep_cfg, train_cfg)
    print(f"sweep {summary['name']}: best {summary['best_metric']} in {summary['seconds']}s; "
          f"results {summary['sweep_dir']}/results.csv; best checkpoint {summary['best']}")
    return 0 if summary["best"] else 1


def cmd_serve(args) -> int:
    from ocr.serve.config import ServeConfig
    from ocr.serve.deploy import APP_NAME, deploy

    url = deploy(config_from_args(ServeConfig, args))
    print(f"serving on {url} (web page {url}/, API docs {url}/docs); Ctrl-C stops", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        # a joined Ray (ray start, RAY_ADDRESS) outlives this process: take the app down with
        # us, so its replicas give their CPUs back (a Ray started here ends with the process)
        from ray import serve

        print("stopping: Serve lets the HTTP ingress drain for up to 30 s first", flush=True)
        serve.delete(APP_NAME)
        print("stopped serving", flush=True)
        return 0


def cmd_client(args) -> int:
    from ocr.serve.client import ClientError, run

    try:
        cfg = _required(config_from_args(ClientConfig, args), "image")
        print(run(cfg.image, cfg.url, cfg.endpoint, cfg.json, cfg.token))
    except ClientError as e:
        print(f"ocr client: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_recipe(args) -> int:
    from ocr.recipe import RecipeConfig, run_recipe

    result = run_recipe(config_from_args(RecipeConfig, args))
    for name, figures in result["figures"].items():
        print(f"{name}: " + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                      for k, v in figures.items()))
    print(f"recipe {result['recipe']} done in {result['minutes']} min: model {result['model']}"
          + (f"; published as {result['published']}" if result.get("published") else ""))
    return 0


def cmd_models(args) -> int:
    if args.builtin:
        from ocr.builtins import builtin_table

        print(builtin_table())
        return 0
    from ocr.models import REGISTRIES

    for task, registry in REGISTRIES.items():
        print(f"{task + ':':12} " + ", ".join(registry.names()))
    return 0


def _commands() -> list[tuple]:
    """(name, help, its config class as "module:Class", positional fields, function, takes
    --config) of every command. Classes are named, not imported: a command imports only its
    own (``ocr.deskew`` pulls torch, 1.5 s that ``ocr synth`` or ``ocr --help`` need not pay)."""
    return [
        ("ingest", "raw image/label sets to Parquet shards", "ocr.data.config:IngestConfig", ("inputs",),
         cmd_ingest, True),
        ("synth", "render synthetic lines or pages into shards", "ocr.data.config:SynthConfig", (),
         cmd_synth, True),
        ("export-lmdb", "shards back to a deep-text-recognition-benchmark LMDB", "ocr.cli:ExportLmdbConfig",
         ("shards", "output"), cmd_export_lmdb, False),
        ("charset", "show a charset: size, hash, num_classes", "ocr.cli:CharsetConfig", ("spec",),
         cmd_charset, False),
        ("train", "train a model on shards with Ray Train (ocr train recognition ...)",
         "ocr.train.config:TrainConfig", ("task",), cmd_train, True),
        ("eval", "evaluate a checkpoint on shards or a raw labelled set (detection and orientation "
         "checkpoints go to eval-detection / eval-orientation)", "ocr.eval.config:EvalConfig",
         ("checkpoint", "data"), cmd_eval, True),
        ("eval-detection", "evaluate a detection checkpoint (mAP; end-to-end reading with "
         "--roi-checkpoint)", "ocr.eval.config:DetectionEvalConfig", ("checkpoint", "data"),
         cmd_eval_detection, True),
        ("eval-orientation", "evaluate an orientation checkpoint, or 'classical' (skew error, "
         "orientation accuracy)", "ocr.eval.config:OrientationEvalConfig", ("checkpoint", "data"),
         cmd_eval_orientation, True),
        ("deskew", "write upright copies of page images and print the angle found (--checkpoint: an "
         "orientation model; none: the classical method)", "ocr.deskew:DeskewConfig", ("inputs",),
         cmd_deskew, True),
        ("read", "read pages (or --lines) in-process with the built-in models, like `tesseract "
         "PAGE stdout`: deskew, find the lines, print them in reading order", "ocr.read:ReadConfig",
         ("images",), cmd_read, False),
        ("recognize", "read text-line images with a checkpoint", "ocr.cli:RecognizeConfig",
         ("checkpoint", "images"), cmd_recognize, False),
        ("export", "export a checkpoint to TorchScript and ONNX, with a parity check", "ocr.cli:ExportConfig",
         ("checkpoint",), cmd_export, False),
        ("tune", "sweep hyperparameters with Ray Tune around the same trainer (--config: the training "
         "config; --train-set KEY=VALUE overrides it)", "ocr.tune.config:SweepConfig", (), cmd_tune, True),
        ("serve", "serve the deskew -> ROI -> recognition graph on Ray Serve (serve_config.yaml does the "
         "same with `serve run`)", "ocr.serve.config:ServeConfig", (), cmd_serve, True),
        ("client", "send an image to a running service and print what it read", "ocr.cli:ClientConfig",
         ("image",), cmd_client, False),
        ("recipe", "make a recogniser in one command: synth -> train -> eval -> publish (the recipe "
         "of a built-in model, or your own YAML)", "ocr.recipe:RecipeConfig", ("recipe",), cmd_recipe, False),
        ("models", "list the model presets (--builtin: the models shipped in the package)",
         "ocr.cli:ModelsConfig", (), cmd_models, False),
        ("manifest", "print the summary of a shard folder", "ocr.cli:ShardsConfig", ("shards",),
         cmd_manifest, False),
    ]


def config_class(spec: str):
    """The class a ``"module:Class"`` spec of :func:`_commands` names."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every command with its flags; with ``only``, the flags of that command alone (the others
    are listed, their config modules not imported)."""
    parser = argparse.ArgumentParser(prog="ocr", description="OCR training and serving on Ray. "
                                     "`ocr COMMAND --help` lists a command's flags.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text, spec, positional, func, with_config in _commands():
        p = sub.add_parser(name, help=text, description=text)
        if spec is not None and only in (None, name):
            add_config_args(p, config_class(spec), positional, with_config)
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    names = {c[0] for c in _commands()}
    # no command (ocr --help) or an unknown one: list the commands, import no config module
    args = build_parser(only=command if command in names else "").parse_args(argv)
    try:
        return args.func(args)
    except (C.ConfigError, FileNotFoundError, ValueError) as e:
        print(f"ocr {args.command}: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        if type(e).__name__ != "TrainingFailed":   # ocr.train.run's: imported only by train commands
            raise
        print(f"ocr {args.command}: training failed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
