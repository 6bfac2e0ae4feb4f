"""Recognition training on a real local Ray: 2 workers, a worker killed mid-run, resume,
the CTC guard, fine-tuning charsets, evaluation, recognition and export of the result."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import mlflow_runs, write_gt_set

from ocr import checkpoint
from ocr.charset import Charset
from ocr.config import ConfigError
from ocr.models.recognition import RECOGNIZERS
from ocr.train import ranking
from ocr.train.config import TrainConfig
from ocr.train.loop import State, TrainingDiverged, lr_factor, step_is_good
from ocr.train.recognition import RecognitionTask


@pytest.fixture(scope="module")
def digits(digit_shards):
    return digit_shards


def _cfg(data, runs, **kw) -> TrainConfig:
    base = dict(data=str(data), model="tiny_crnn", batch_size=16, max_steps=24, val_every=8, log_every=4,
                warmup_steps=4, lr=3e-3, storage=str(runs), num_workers=2, augment=0.3)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """2 workers, 24 steps, validated every 8 (a worker killed from outside and the driver
    killed and rerun: test_a_worker_killed_from_outside_and_then_the_driver_resume_...)."""
    from ocr.train.run import train

    runs = tmp_path_factory.mktemp("runs")
    cfg = _cfg(digits, runs, name="two-workers", max_failures=2)
    return cfg, train(cfg)


def _rows(run_dir):
    with open(f"{run_dir}/metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_two_workers_train_count_and_checkpoint_every_step_once(trained, digits):
    cfg, summary = trained
    final = summary["final"]
    assert final["step"] == 24 and final["restarts"] == 0
    rows = _rows(summary["run_dir"])
    train_steps = [int(r["step"]) for r in rows if r["loss"]]
    assert train_steps == sorted(set(train_steps)) and train_steps[-1] == 24  # no step twice
    losses = [float(r["loss"]) for r in rows if r["loss"]]
    assert losses[-1] < losses[0] / 2  # the CTC loss falls
    latest = summary["latest_checkpoint"]
    state = torch.load(f"{latest}/train_state.pt", weights_only=True)
    assert state["state"]["step"] == 24 and state["optimizer"]["state"]  # AdamW moments saved
    assert state["scheduler"]["last_epoch"] == 24
    seen = state["state"]["epoch_seen"]
    assert len(seen) == len(set(seen))  # no sample trained twice within the epoch
    meta = json.loads(open(f"{summary['best']}/model.json").read())
    manifest = json.loads((digits / "manifest.json").read_text())
    assert meta["task"] == "recognition" and meta["arch"]["name"] == "tiny_crnn"
    assert meta["charset"]["hash"] == manifest["charset"]["hash"]
    assert meta["preprocess"]["height"] == 32 and meta["versions"]["torch"] == torch.__version__
    assert meta["metrics"]["val_cer"] is not None and meta["config"]["num_workers"] == 2
    assert list((summary_dir := __import__("pathlib").Path(summary["run_dir"])).glob("tensorboard/events.*"))
    assert (summary_dir / "config.yaml").exists() and (summary_dir / "summary.json").exists()


def test_the_run_is_one_mlflow_run_with_params_metrics_and_artifacts(trained):
    """The 2-worker run above is one MLflow run in the default
    local store, STORAGE/mlflow.db, logged by rank 0 only."""
    cfg, summary = trained
    client, runs = mlflow_runs(cfg.storage)
    assert len(runs) == 1, [r.info.run_name for r in runs]
    run = runs[0]
    assert summary["mlflow"]["run_id"] == run.info.run_id and run.info.status == "FINISHED"
    assert run.info.run_name == cfg.name
    params = run.data.params
    assert params["lr"] == str(cfg.lr) and params["num_workers"] == "2" and params["model"] == "tiny_crnn"
    tags = run.data.tags
    manifest = json.loads((Path(cfg.data) / "manifest.json").read_text())
    assert tags["task"] == "recognition" and tags["model_preset"] == "tiny_crnn"
    assert tags["charset_hash"] == manifest["charset"]["hash"] and len(tags["data_manifest_hash"]) == 16
    val = client.get_metric_history(run.info.run_id, "val_cer")
    csv_vals = [(int(r["step"]), float(r["val_cer"])) for r in _rows(summary["run_dir"]) if r.get("val_cer")]
    # every validation reached MLflow once: rank 0 alone logs (a second logger would double them)
    assert sorted((m.step, m.value) for m in val) == sorted(set(csv_vals)), (val, csv_vals)
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert len(losses) >= 5 and {m.step for m in losses} >= {4, 24}
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.csv", "summary.json", "learning_curves.png", "best"} <= names, names
    assert [a.path for a in client.list_artifacts(run.info.run_id, "best")] == ["best/model.json"]


def test_an_unreachable_tracking_server_warns_and_trains(digits, tmp_path, capsys):
    import socket

    from ocr.train.run import train

    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _cfg(digits, tmp_path, name="untracked", num_workers=1, max_steps=4, val_every=4,
               tracking_uri=f"http://127.0.0.1:{port}")
    summary = train(cfg)
    assert summary["final"]["step"] == 4 and summary["best"] and "mlflow" not in summary
    out = capsys.readouterr().out
    assert f"cannot record this run at http://127.0.0.1:{port}" in out and "training goes on" in out
    assert not (tmp_path / "mlflow.db").exists()


def test_exhausted_max_failures_end_with_the_last_error_named(digits, tmp_path):
    from ocr.train.run import TrainingFailed, train

    cfg = _cfg(digits, tmp_path, name="no-restarts", fault_at_step=4, max_failures=0, max_steps=8)
    with pytest.raises(TrainingFailed) as failed:
        train(cfg)
    message = str(failed.value)
    assert "--max-failures 0" in message and "the last error: worker" in message, message
    assert cfg.name in message and "same --name" in message


def test_the_best_is_the_later_of_equal_validations(trained):
    """Ties go to the later validation, as Ray Train's checkpoint ranking keeps the later of two
    equal scores: the training log, the summary and RUN/best name the same step."""
    assert ranking.ranks_before(0.6, 0.5, "min") and not ranking.ranks_before(0.5, 0.5, "min")
    assert ranking.ranks_before(0.4, 0.5, "max") and not ranking.ranks_before(0.5, 0.5, "max")
    results = [("a", {"val_cer": 0.2, "step": 8}), ("c", {"val_cer": 0.1, "step": 24}),
               ("b", {"val_cer": 0.1, "step": 16})]
    assert ranking.best_of(results, "val_cer", "min")[0] == "c"
    assert ranking.best_of(results, "val_cer", "max")[0] == "a"
    _, summary = trained
    vals = [(float(r["val_cer"]), int(r["step"])) for r in _rows(summary["run_dir"]) if r.get("val_cer")]
    best = min(v for v, _ in vals)
    assert summary["best_step"] == max(step for v, step in vals if v == best)
    assert json.loads(open(f"{summary['best']}/model.json").read())["step"] == summary["best_step"]


def test_same_name_continues_the_run(trained):
    from ocr.train.run import train

    cfg, first = trained
    again = train(_cfg(cfg.data, cfg.storage, name=cfg.name, max_steps=28, max_failures=2))
    assert again["resumed"] and again["final"]["step"] == 28
    assert again["final"]["restarts"] == 1
    steps = [int(r["step"]) for r in _rows(first["run_dir"]) if r["loss"]]
    assert steps[-1] == 28 and steps == sorted(set(steps))


def test_a_changed_model_is_refused_for_an_existing_run(trained):
    from ocr.train.run import train

    cfg, _ = trained
    with pytest.raises(ConfigError, match="model: 'tiny_crnn' -> 'tiny_fast'"):
        train(_cfg(cfg.data, cfg.storage, name=cfg.name, model="tiny_fast"))


def test_a_run_from_before_a_new_setting_continues_with_it(tmp_path):
    """A config.yaml written before a key existed (e.g. ema) does not refuse the run."""
    import yaml

    from ocr.train.run import check_or_write_config

    cfg = _cfg(tmp_path, tmp_path)
    assert check_or_write_config(cfg, str(tmp_path)) is False  # new run: config written
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    del saved["ema"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    assert check_or_write_config(cfg, str(tmp_path)) is True
    with pytest.raises(ConfigError, match="lr: 0.003 -> 0.01"):
        check_or_write_config(_cfg(tmp_path, tmp_path, lr=0.01), str(tmp_path))


def test_eval_recognize_and_export(trained, digits, tmp_path, capsys):
    from ocr.cli import main
    from ocr.eval.config import EvalConfig
    from ocr.eval.recognition import evaluate

    _, summary = trained
    s = evaluate(EvalConfig(checkpoint=summary["run_dir"], data=str(digits), split="test",
                            output=str(tmp_path / "eval")))
    manifest = json.loads((digits / "manifest.json").read_text())
    assert s["samples"] == manifest["counts"]["per_split"]["test"]["written"]
    with open(tmp_path / "eval/predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == s["samples"] and all(0 <= float(r["confidence"]) <= 1 for r in rows)
    assert "data:image/png;base64," in (tmp_path / "eval/report.html").read_text()

    gt = write_gt_set(tmp_path / "raw", [("a.png", "12"), ("b.png", "345")])  # a raw gt layout
    raw = evaluate(EvalConfig(checkpoint=summary["best"], data=str(gt), output=str(tmp_path / "e2")))
    assert raw["samples"] == 2

    assert main(["recognize", summary["best"], str(tmp_path / "raw/images/a.png"), "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert set(line) == {"image", "text", "confidence"} and set(line["text"]) <= set("0123456789")
    assert main(["export", summary["best"], "--output", str(tmp_path / "export")]) == 0
    assert "same decoding: True" in capsys.readouterr().out


# --- refused before any worker starts (no Ray needed) -------------------------------------

def test_bad_configs_are_refused(digits, tmp_path):
    with pytest.raises(ConfigError, match="CTC steps"):
        RecognitionTask(_cfg(digits, tmp_path, width=12))  # 3 time steps for 4-digit labels
    with pytest.raises(ConfigError, match="no 'dev' samples"):
        RecognitionTask(_cfg(digits, tmp_path, val_split="dev"))
    with pytest.raises(ConfigError, match="manifest.json"):
        RecognitionTask(_cfg(tmp_path / "nowhere", tmp_path))
    with pytest.raises(ConfigError, match="unknown recognizer"):
        RecognitionTask(_cfg(digits, tmp_path, model="nope"))
    with pytest.raises(ConfigError, match="expected one of"):
        _cfg(digits, tmp_path, optimizer="sgd")
    with pytest.raises(ConfigError, match=r"trim: expected a fraction .* found 1.5"):
        _cfg(digits, tmp_path, trim=1.5)
    assert RecognitionTask(_cfg(digits, tmp_path, trim=0.2)).preprocess.trim == 0.2


def _old_checkpoint(folder, name: str, symbols: str, **arch):
    charset = Charset.from_string(symbols, spec="old")
    model = RECOGNIZERS.create(name, num_classes=charset.num_classes, **arch)
    meta = {"task": "recognition", "arch": model.arch_config(), "charset": charset.to_json(),
            "preprocess": {"height": 32, "width": 100, "keep_ratio": True, "pad": "replicate",
                           "channels": 1, "mean": 0.5, "std": 0.5}}
    checkpoint.save(folder, model, meta)
    return model


@pytest.mark.parametrize("preset", ["tiny_crnn", "tiny_trba"])
def test_fine_tuning_refuses_or_extends_another_charset(digits, tmp_path, preset):
    old = _old_checkpoint(tmp_path / "old", preset, "0123")
    with pytest.raises(ConfigError, match="lacks 6 symbol.*'456789'.*--extend-charset"):
        RecognitionTask(_cfg(digits, tmp_path, init_from=str(tmp_path / "old"), model=""))
    task = RecognitionTask(_cfg(digits, tmp_path, init_from=str(tmp_path / "old"), extend_charset=True,
                                model=""))
    assert task.charset.symbols[:4] == tuple("0123") and len(task.charset) == 10
    new = task.build_model()
    key = "head.fc.weight" if preset == "tiny_crnn" else "head.generator.weight"
    w_old, w_new = old.state_dict()[key], new.state_dict()[key]
    assert w_new.shape[0] == w_old.shape[0] + 6
    if preset == "tiny_crnn":
        assert torch.equal(w_new[:5], w_old)  # blank and the 4 old symbols keep their rows
    else:
        assert torch.equal(w_new[:5], w_old[:5]) and torch.equal(w_new[-1], w_old[-1])  # [EOS] moved
    backbone = next(k for k in old.state_dict() if k.startswith("features"))
    assert torch.equal(new.state_dict()[backbone], old.state_dict()[backbone])


def test_jamo_takes_the_charset_and_follows_its_extension(digits, tmp_path):
    task = RecognitionTask(_cfg(digits, tmp_path, model_set=["jamo=true"]))
    assert task.arch["jamo"] == "0123456789"
    old = _old_checkpoint(tmp_path / "old", "tiny_fast", "01가23", jamo="01가23")
    task = RecognitionTask(_cfg(digits, tmp_path, init_from=str(tmp_path / "old"), extend_charset=True,
                                model=""))
    assert task.arch["jamo"] == "01가23456789"          # the extended charset's, in class order
    new = task.build_model()
    w_old, w_new = old.state_dict()["head.kind.weight"], new.state_dict()["head.kind.weight"]
    assert w_old.shape[0] == 1 + 5 and w_new.shape[0] == 1 + 11   # syllable, blank, other symbols
    assert torch.equal(w_new[:6], w_old)
    assert torch.equal(new.state_dict()["head.jamo.weight"], old.state_dict()["head.jamo.weight"])
    x = torch.rand(1, 1, 32, 100)
    with torch.no_grad():   # 가 (class 3) is still scored by the same weights
        assert torch.allclose(new.eval()(x)[..., 3] - new(x)[..., 0], old.eval()(x)[..., 3] - old(x)[..., 0],
                              atol=1e-4)


def test_korean_charsets_score_syllables_by_jamo_by_default(digits, tmp_path):
    import shutil

    korean = tmp_path / "korean"
    shutil.copytree(digits, korean)
    manifest = json.loads((korean / "manifest.json").read_text())
    syllables = "".join(chr(0xAC00 + 28 * i) for i in range(120))   # 가, 개, 갸, ...
    manifest["charset"] = Charset.from_string("0123456789" + syllables, spec="ko").to_json()
    (korean / "manifest.json").write_text(json.dumps(manifest))
    task = RecognitionTask(_cfg(korean, tmp_path))
    assert task.arch["jamo"] == "0123456789" + syllables
    assert type(task.build_model().head).__name__ == "JamoCTCHead"
    assert RecognitionTask(_cfg(korean, tmp_path, model_set=["jamo=false"])).arch["jamo"] is False
    assert "jamo" not in RecognitionTask(_cfg(korean, tmp_path, model="tiny_trba")).arch
    assert RecognitionTask(_cfg(digits, tmp_path)).arch["jamo"] == ""        # few syllables: one row each
    # fine-tuning keeps the checkpoint's head, even one saved before the option existed
    old = _old_checkpoint(tmp_path / "old", "tiny_crnn", "0123456789")
    meta = checkpoint.read_meta(str(tmp_path / "old"))
    meta["arch"].pop("jamo")
    checkpoint.save(tmp_path / "old", old, meta)
    task = RecognitionTask(_cfg(korean, tmp_path, init_from=str(tmp_path / "old"), extend_charset=True,
                                model=""))
    assert task.arch["jamo"] is False and "head.fc.weight" in task.build_model().state_dict()


def test_same_charset_fine_tunes_without_extension(digits, tmp_path):
    _old_checkpoint(tmp_path / "old", "tiny_crnn", "0123456789")
    task = RecognitionTask(_cfg(digits, tmp_path, init_from=str(tmp_path / "old")))
    assert "".join(task.charset.symbols) == "0123456789" and task.arch["num_classes"] == 11
    with pytest.raises(ConfigError, match="is a 'tiny_crnn' model, found --model tiny_fast"):
        RecognitionTask(_cfg(digits, tmp_path, init_from=str(tmp_path / "old"), model="tiny_fast"))


def test_the_schedule_spans_the_steps_or_the_time_whichever_ends_first(tmp_path):
    cfg = _cfg(tmp_path, tmp_path, warmup_steps=10)

    def cosine(progress):
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    by_steps = [lr_factor(s, cfg, 100) for s in range(100)]
    assert by_steps[0] == pytest.approx(0.1) and by_steps[9] == pytest.approx(cosine(0.09))  # warm-up
    assert all(a >= b for a, b in zip(by_steps[9:], by_steps[10:]))                    # then down
    assert by_steps[55] == pytest.approx(cosine(0.55)) and by_steps[99] < 0.06
    # a warm-up longer than a tenth of the run is cut to a tenth: 30 steps warm up for 3
    assert [lr_factor(s, cfg, 30) / cosine(s / 30) for s in range(4)] == pytest.approx([1 / 3, 2 / 3, 1, 1])
    # max_minutes: when the time share is ahead of the steps, it drives warm-up and decay
    assert lr_factor(2, cfg, 10_000, time_share=0.05) == pytest.approx(0.5 * cosine(0.05))
    assert lr_factor(50, cfg, 10_000, time_share=0.55) == pytest.approx(cosine(0.55))
    assert lr_factor(80, cfg, 10_000, time_share=1.0) == pytest.approx(0.05)
    assert lr_factor(80, cfg, 100, time_share=0.1) == lr_factor(80, cfg, 100)  # steps ahead: steps rule
    const = _cfg(tmp_path, tmp_path, warmup_steps=10, schedule="constant")
    assert lr_factor(5, const, 100) == pytest.approx(0.6) and lr_factor(90, const, 100, 0.9) == 1.0


def test_a_time_limited_run_decays_its_learning_rate_over_its_minutes(digits, tmp_path):
    """No step count given: the run stops at max_minutes with the schedule at its end."""
    from ocr.train.run import train

    cfg = _cfg(digits, tmp_path, name="timed", num_workers=1, max_steps=0, epochs=1000, max_minutes=0.25,
               log_every=1, val_every=10_000, ema=0)
    summary = train(cfg)
    state = torch.load(f"{summary['latest_checkpoint']}/train_state.pt", weights_only=True)
    assert "weights" not in state  # no average (ema=0): model.pt holds the trained weights
    rows = [r for r in _rows(summary["run_dir"]) if r["lr"]]
    lrs = [float(r["lr"]) for r in rows]
    # The time ended it, long before its 12,000 steps. How many steps fit depends on the box
    # (on a loaded CI machine Ray Data's start alone can take the whole budget: one step), so
    # the test asserts the schedule's shape, not a step count.
    assert 1 <= summary["final"]["step"] < 1000 and len(lrs) == summary["final"]["step"]
    peak = lrs.index(max(lrs))  # (the warm-up may be over before the first step: Ray Data's start counts)
    assert lrs[peak:] == sorted(lrs[peak:], reverse=True) and lrs[-1] < 0.1 * cfg.lr  # down to the floor


def test_the_progress_line_counts_down_the_time_budget(tmp_path):
    import time

    from ocr.train.runlog import RunLog

    log = RunLog(str(tmp_path), [], 0, 100_000)
    log.started = time.perf_counter() - 60  # 10 steps a minute: 100,000 steps would take days
    line = log.progress(10, 0, 1.0, 50.0, time_left=90.0)
    assert line.startswith("step 10  ") and line.endswith("ETA 1m30s (time budget)")
    assert log.progress(10, 0, 1.0, 50.0).startswith("step 10/100000")  # no budget: the steps'
    log.close()


# --- the CTC guard ----------------------------------------------------------------------

def test_guard_skips_bad_steps_and_stops_after_k_in_a_row(tmp_path):
    cfg = _cfg(tmp_path, tmp_path, max_bad_steps=3)
    st = State()
    assert step_is_good(st, 1.0, 2.0, cfg)
    assert not step_is_good(st, math.nan, 2.0, cfg) and not step_is_good(st, 1.0, math.inf, cfg)
    assert (st.bad_steps, st.bad_in_row) == (2, 2)
    assert step_is_good(st, 0.5, 1.0, cfg) and st.bad_in_row == 0  # a good step resets the run
    step_is_good(st, math.inf, 1.0, cfg)
    step_is_good(st, math.nan, 1.0, cfg)
    with pytest.raises(TrainingDiverged, match="3 bad steps in a row.*Lower --lr"):
        step_is_good(st, math.nan, math.nan, cfg)
    assert st.bad_steps == 5


def test_guard_counts_unalignable_labels(digits, tmp_path):
    task = RecognitionTask(_cfg(digits, tmp_path, width=32))  # tiny_crnn: T = 9 at width 32
    model = task.build_model()
    t = model.time_steps(32)
    labels = ["1" * t, "12" * ((t + 1) // 2), "", "7"]  # T repeats: 2T-1 steps; T+ symbols; empty
    targets = torch.zeros(4, 2 * t, dtype=torch.long)
    for i, label in enumerate(labels):
        enc = task.charset.encode(label)
        targets[i, : len(enc)] = torch.tensor(enc)
    batch = {"images": torch.randn(4, 1, 32, 32), "targets": targets,
             "target_lengths": (targets != 0).sum(1)}
    loss, (unalignable,) = task.loss(model, batch, "cpu", torch.Generator())
    assert unalignable == 2 and torch.isfinite(loss)  # zeroed by zero_infinity, counted here


def test_augmentation_keeps_shapes_and_is_identity_at_zero():
    from ocr.train.augment import augment_batch, random_stroke

    x = torch.rand(4, 1, 32, 100) * 2 - 1
    g = torch.Generator().manual_seed(0)
    assert torch.equal(augment_batch(x, 0.0, g), x)
    y = augment_batch(x, 1.0, g)
    assert y.shape == x.shape and torch.isfinite(y).all() and not torch.allclose(y, x)
    line = -torch.ones(1, 1, 32, 100)
    line[..., 12:20, 10:90] = 1.0  # a bright 8-pixel stroke
    ink = [float(random_stroke(line, 1.0, torch.Generator().manual_seed(s)).sum()) for s in range(8)]
    assert min(ink) < float(line.sum()) < max(ink)  # some draws thin the stroke, some thicken it


# --- the weight average -------------------------------------------------------------------

def test_weight_average_follows_the_weights_and_copies_buffers():
    from ocr.train.average import WeightAverage

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    avg = WeightAverage(model, decay=0.9)
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(3.0)
    avg.update(model, step=0)  # early on the decay is capped at 1/10: 90% of the way
    assert torch.allclose(avg.model[0].weight, start + 0.9)
    avg.update(model, step=1000)  # then 0.9: 10% of what is left
    assert torch.allclose(avg.model[0].weight, start + 0.91)
    assert not avg.model[0].weight.requires_grad
    assert torch.equal(avg.synced(model)[1].running_mean, torch.full((2,), 3.0))


def test_an_averaged_run_checkpoints_the_average_and_resumes_both(digits, tmp_path):
    from ocr.train.run import train

    cfg = _cfg(digits, tmp_path, name="averaged", num_workers=1, max_steps=8, val_every=4, ema=0.9)
    first = train(cfg)
    folder = first["latest_checkpoint"]
    averaged = torch.load(f"{folder}/model.pt", weights_only=True)
    raw = torch.load(f"{folder}/train_state.pt", weights_only=True)["weights"]
    assert averaged.keys() == raw.keys()
    assert any(not torch.equal(averaged[k], raw[k]) for k in raw if raw[k].is_floating_point())
    model, meta = checkpoint.load(folder)  # what eval and serving load: the average
    assert meta["config"]["ema"] == 0.9 and torch.equal(model.state_dict()[next(iter(raw))],
                                                         averaged[next(iter(raw))])
    again = train(_cfg(digits, tmp_path, name="averaged", num_workers=1, max_steps=12, val_every=4, ema=0.9))
    assert again["resumed"] and again["final"]["step"] == 12 and again["final"]["restarts"] == 1


def test_a_worker_with_no_validation_rows_gets_an_empty_slice(digits, monkeypatch):
    """More workers than validation rows (a tiny val split on 2 workers): the last worker's
    slice is empty, not an Arrow error that fails the run at its first validation."""
    from ocr.data.shards import read_manifest
    from ocr.train import dist
    from ocr.train.data import _VAL_CACHE, val_batches

    n_val = read_manifest(str(digits))["counts"]["per_split"]["val"]["written"]
    monkeypatch.setattr(dist, "rank_and_world", lambda: (n_val, n_val + 1))
    _VAL_CACHE.clear()
    assert list(val_batches(TrainConfig(data=str(digits)), ["label"])) == []
    monkeypatch.setattr(dist, "rank_and_world", lambda: (0, n_val + 1))
    (batch,) = val_batches(TrainConfig(data=str(digits)), ["label"])
    assert len(batch["label"]) == 1
    _VAL_CACHE.clear()


def test_a_worker_killed_from_outside_and_then_the_driver_resume_from_the_last_checkpoint(digits, tmp_path):
    """Faults from outside the code under test. `ocr train` runs in its own process group with
    its own Ray. The test lays a trap where the step-16 checkpoint will be written (named pipes
    for its files: a writer blocks in open() until a reader comes, which none does), so the
    rank-0 worker is certainly in the middle of that write when the test SIGKILLs it. Ray
    Train restarts the group from the step-8 checkpoint, the last complete one. Once the
    step-16 checkpoint is written whole, the test SIGKILLs the driver and its Ray, and leaves a
    newer, half-written checkpoint folder beside them. The same command, the same --name, then
    finishes the run from the last whole checkpoint: steps and samples go on, none twice."""
    import os
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    import psutil

    runs, name = tmp_path / "runs", "killed"
    args = [sys.executable, "-m", "ocr.cli", "train", "recognition", "--data", str(digits), "--storage",
            str(runs), "--name", name, "--model", "tiny_crnn", "--batch-size", "16", "--max-steps", "24",
            "--val-every", "8", "--log-every", "4", "--warmup-steps", "4", "--num-workers", "2",
            "--max-failures", "3", "--num-cpus", "2"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env["RAY_TMPDIR"] = ray_tmp = tempfile.mkdtemp(prefix="rt")   # short: Ray's socket paths
    run_dir = runs / name
    trap = run_dir / "checkpoint-0000016"
    trap.mkdir(parents=True)
    for file in ("model.pt", "model.json", "train_state.pt"):
        os.mkfifo(trap / file)

    def wait_for(condition, what: str, seconds: float = 300):
        deadline = time.time() + seconds
        while time.time() < deadline:
            found = condition()
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{what}: {(tmp_path / 'train.log').read_text()[-2000:]}")

    def writer_in_the_trap():
        """The training worker whose thread waits in open() of a trap pipe."""
        for p in psutil.process_iter(["cmdline"]):
            if "RayTrainWorker" not in " ".join(p.info["cmdline"] or []):
                continue
            try:
                if any((Path(f"/proc/{p.pid}/task/{t.id}/wchan").read_text() == "wait_for_partner")
                       for t in p.threads()):
                    return p
            except (OSError, psutil.Error):
                continue
        return None

    log = open(tmp_path / "train.log", "w")
    driver = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        writer = wait_for(writer_in_the_trap, "the rank-0 worker writing the step-16 checkpoint")
        assert any(ray_tmp in " ".join(a.cmdline()) for a in writer.parents())   # this run's Ray
        writer.send_signal(signal.SIGKILL)   # in the middle of writing the step-16 checkpoint
        writer.wait(30)
        for file in trap.iterdir():          # disarm the trap: the rerun of step 16 may write
            file.unlink()
        wait_for(lambda: (trap / "train_state.pt").is_file() and (trap / "model.json").is_file(),
                 "the step-16 checkpoint written after the restart")
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    finally:
        log.close()
        subprocess.run(["pkill", "-9", "-f", ray_tmp])
    assert "resumed at step 8" in (tmp_path / "train.log").read_text()   # the last complete one
    # what a kill in the middle of a write leaves (Ray issue #41700): a newer folder, half written
    partial = run_dir / "checkpoint-0009999"
    partial.mkdir()
    (partial / "model.json").write_text("{}")
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "continuing" in again.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final"]["step"] == 24 and summary["final"]["restarts"] >= 1, summary["final"]
    with open(run_dir / "metrics.csv", newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r["loss"]]
    assert steps == sorted(set(steps)) and steps[-1] == 24, steps   # no step twice
    latest = Path(summary["latest_checkpoint"])   # never a partial one taken as the latest
    assert latest != partial
    assert {"model.json", "model.pt", "train_state.pt"} <= {p.name for p in latest.iterdir()}, latest
    state = torch.load(latest / "train_state.pt", weights_only=True)
    assert state["state"]["step"] == 24
    seen = state["state"]["epoch_seen"]
    assert len(seen) == len(set(seen))   # no sample trained twice within the epoch
    _, tracked = mlflow_runs(runs)   # the driver's rerun continued its run
    assert len(tracked) == 1 and tracked[0].info.status == "FINISHED", tracked
