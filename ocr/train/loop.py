"""The one Ray Train worker loop, for every task (see :mod:`ocr.train.task`).

Per step: forward and loss (autocast on CUDA), backward, one all-reduce (``dist``),
gradient clipping, then the optimiser step, unless the step is bad (NaN/inf loss or
gradient): bad steps are skipped and counted, and ``max_bad_steps`` in a row stop the run
with :class:`TrainingDiverged`. Every ``val_every`` steps (and at the end) the workers
validate (the weight average, :mod:`ocr.train.average`, unless ``ema`` is 0), rank 0 writes
a checkpoint and every worker reports it to Ray Train.

Resuming (a worker failure retried by ``FailureConfig``, or the same run started again)
restores model, optimiser, scheduler, counters, and the ids of the samples already
trained in the current epoch, which the rest of that epoch skips.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field

import ray.train
import ray.train.torch
import torch
from ray.train.v2._internal.execution import context as train_context

from ocr import checkpoint
from ocr.train import dist
from ocr.train.average import WeightAverage
from ocr.train.config import TrainConfig
from ocr.train.ranking import ranks_before
from ocr.train.runlog import RunLog
from ocr.train.task import TrainTask


class TrainingDiverged(RuntimeError):
    """Too many NaN/inf steps in a row."""


@dataclass
class State:
    step: int = 0
    epoch: int = 0
    samples: int = 0
    bad_steps: int = 0
    bad_in_row: int = 0
    unalignable: int = 0
    epoch_seen: list[int] = field(default_factory=list)  # ids trained in the current epoch
    best: float | None = None
    best_step: int = 0
    restarts: int = 0  # times this run continued from a checkpoint
    seconds: float = 0.0  # training wall time, over all attempts, up to the last checkpoint


def step_is_good(st: State, loss: float, grad_norm: float, cfg: TrainConfig) -> bool:
    """The CTC guard: a NaN/inf loss or gradient norm is a bad step, skipped and counted;
    ``cfg.max_bad_steps`` bad steps in a row raise :class:`TrainingDiverged`."""
    if math.isfinite(loss) and math.isfinite(grad_norm):
        st.bad_in_row = 0
        return True
    st.bad_steps += 1
    st.bad_in_row += 1
    if st.bad_in_row >= cfg.max_bad_steps:
        raise TrainingDiverged(
            f"{st.bad_in_row} bad steps in a row (NaN/inf loss or gradient) at step {st.step}: "
            f"training stopped. Lower --lr (now {cfg.lr}), raise --warmup-steps, or check the data "
            "for labels the model cannot align (see 'unalignable' in metrics.csv).")
    return False


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=cfg.lr, rho=0.95, eps=1e-8, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


WARMUP_SHARE = 0.1   # the warm-up never takes more than this share of the run


def lr_factor(step: int, cfg: TrainConfig, total: int, time_share: float = 0.0) -> float:
    """A linear warm-up times the decay: constant, cosine to 5%, or one-cycle (cosine to 0).

    The run's progress is the larger of its share of ``total`` steps and ``time_share`` (the
    share of ``max_minutes`` used): a time-limited run's schedule ends with its time, however
    many steps fit in it, and a run that reaches ``total`` first ends with its steps. The
    warm-up lasts ``warmup_steps`` steps or a tenth of the run, whichever ends first."""
    ahead = max((step + 1) / max(1, total), time_share)
    warm = min(1.0, max((step + 1) / cfg.warmup_steps, ahead / WARMUP_SHARE)) if cfg.warmup_steps else 1.0
    if cfg.schedule == "constant":
        return warm
    progress = min(1.0, max(step / max(1, total), time_share))
    floor = 0.05 if cfg.schedule == "cosine" else 0.0
    return warm * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def autocast(cfg: TrainConfig, device: torch.device):
    bf16 = device.type == "cuda" and cfg.precision in ("auto", "bf16") and torch.cuda.is_bf16_supported()
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


class Loop:
    def __init__(self, config: dict):
        # Ray Train logs every report with its metrics at INFO (its logger is named by file).
        for name in ("ray.train", train_context.__file__):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.cfg: TrainConfig = config["cfg"]
        self.task: TrainTask = config["task"]
        self.total_steps: int = config["total_steps"]
        self.run_dir: str = config["run_dir"]
        torch.set_num_threads(config["threads"])
        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        self.device = ray.train.torch.get_device()
        torch.manual_seed(self.cfg.seed)
        self.model = checkpoint.preferred_layout(self.task.build_model().to(self.device))
        self.opt = make_optimizer(self.model, self.cfg)
        self.limit_s = self.cfg.max_minutes * 60  # the time budget; 0: none
        self.time_share = 0.0  # of the budget used, the same on every worker (see _step)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: lr_factor(s, self.cfg, self.total_steps, self.time_share))
        self.state = State()
        averaged = self._restore(ray.train.get_checkpoint())
        dist.broadcast_model(self.model)
        self.average = WeightAverage(self.model, self.cfg.ema, averaged) if self.cfg.ema else None
        self.started, self.base_seconds = time.perf_counter(), self.state.seconds
        seed = self.cfg.seed * 7919 + self.rank + self.state.step
        self.gen = torch.Generator(self.device).manual_seed(seed)
        self.log = RunLog(self.run_dir, self.task.val_columns, self.state.step, self.total_steps,
                          config.get("tracked")) if self.rank == 0 else None

    def _restore(self, ckpt) -> dict | None:
        """Load a checkpoint to continue from; returns its averaged weights (``cfg.ema``), if any."""
        if ckpt is None:
            return None
        with ckpt.as_directory() as folder:
            weights = torch.load(os.path.join(folder, checkpoint.MODEL_FILE), map_location=self.device,
                                 weights_only=True)
            saved = torch.load(os.path.join(folder, checkpoint.STATE_FILE), map_location=self.device,
                               weights_only=True)
        raw = saved.get("weights")  # saved when model.pt holds their average
        self.model.load_state_dict(weights if raw is None else raw)
        self.opt.load_state_dict(saved["optimizer"])
        self.sched.load_state_dict(saved["scheduler"])
        self.state = State(**saved["state"])
        self.state.restarts += 1
        if self.rank == 0:
            print(f"resumed at step {self.state.step}, epoch {self.state.epoch} "
                  f"({len(self.state.epoch_seen)} samples of this epoch already trained)", flush=True)
        return None if raw is None else weights

    def elapsed(self) -> float:
        return self.base_seconds + time.perf_counter() - self.started

    # --- the loop -----------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except TrainingDiverged as e:  # every worker agrees (bad steps are synchronised)
            self._report_divergence(str(e))
        if self.log:
            self.log.close()

    def _report_divergence(self, reason: str) -> None:
        """End the run cleanly with the reason in its metrics: no retry can fix a divergence."""
        if self.rank == 0:
            print(f"diverged: {reason}", flush=True)
            self.log.write({"step": self.state.step, "epoch": self.state.epoch, "loss": float("nan"),
                            "bad_steps": self.state.bad_steps})
        ray.train.report({"diverged": reason, "diverged_step": self.state.step, "step": self.state.step,
                          "bad_steps": self.state.bad_steps, self.task.metric: None})

    def _run(self) -> None:
        st = self.state
        while st.step < self.total_steps:
            seen = frozenset(st.epoch_seen)
            mine = list(st.epoch_seen) if self.rank == 0 else []
            batches = iter(self.task.train_batches(st.epoch, seen))
            while st.step < self.total_steps:
                batch = _next_to_train(batches)
                ids = self._step(batch)
                if ids is None:
                    break  # every worker has finished the epoch
                mine += ids
                if st.step % self.cfg.val_every == 0 or st.step == self.total_steps:
                    st.epoch_seen = dist.gather_ints(mine)
                    mine = list(st.epoch_seen) if self.rank == 0 else []
                    self._validate_and_report()
            else:
                break
            st.epoch += 1
            st.epoch_seen = []

    def _step(self, batch: dict | None) -> list[int] | None:
        """One synchronised step; returns this worker's sample ids, None when the epoch is over."""
        cfg, st = self.cfg, self.state
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        n, loss_sum, extra, ids = 0, 0.0, [0.0] * len(self.task.extra_names), []
        if batch is not None and len(batch["ids"]):
            ids = batch.pop("ids").tolist()
            with autocast(cfg, self.device):
                loss, extra = self.task.loss(self.model, batch, self.device, self.gen)
            loss.backward()
            if cfg.nan_at_step and st.step + 1 >= cfg.nan_at_step:
                loss = loss * float("nan")  # fault injection for tests
            n, loss_sum = len(ids), float(loss.detach()) * len(ids)
        limit, elapsed = self.limit_s, self.elapsed()
        time_up = float(bool(limit) and elapsed >= limit)
        totals = dist.sync_step(self.model, n, [loss_sum, *extra, time_up, elapsed])
        if totals[0] == 0:
            return None
        if totals[-2] > 0:  # any worker out of time: this is everyone's last step
            self.total_steps = st.step + 1
        if limit:  # the workers' mean elapsed time: every worker schedules the same learning rate
            self.time_share = min(1.0, float(totals[-1]) / self.world / limit)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip or float("inf"))
        loss = float(totals[1] / totals[0])
        if step_is_good(st, loss, float(norm), cfg):
            self.opt.step()
            if self.average:
                self.average.update(self.model, st.step)
        self.sched.step()
        st.step += 1
        st.samples += int(totals[0])
        if self.task.extra_names:  # the first extra sum counts unalignable samples
            st.unalignable += int(totals[2])
        self._maybe_fault()
        if self.log and (st.step % cfg.log_every == 0 or st.step == 1):
            self._log_train(loss)
        return ids

    def _maybe_fault(self) -> None:
        """Fault injection for tests: the last worker dies once at ``fault_at_step``."""
        step = self.cfg.fault_at_step
        if step and self.state.step == step and self.rank == self.world - 1:
            tag = hashlib.sha1(self.run_dir.encode()).hexdigest()[:12]
            marker = os.path.join(tempfile.gettempdir(), f"ocr-fault-{tag}")
            if not os.path.exists(marker):
                open(marker, "w").close()
                # Ray Train's controller collects reports every 2 s: give it the last one first.
                time.sleep(5)
                print(f"fault injection: worker {self.rank} exits at step {step}", flush=True)
                os._exit(1)

    def _log_train(self, loss: float) -> None:
        st = self.state
        rate = self.log.rate(st.samples)
        time_left = self.limit_s - self.elapsed() if self.limit_s else None
        print(self.log.progress(st.step, st.epoch, loss, rate, time_left), flush=True)
        self.log.write({"step": st.step, "epoch": st.epoch, "samples": st.samples,
                        "seconds": round(self.elapsed(), 2), "lr": self.sched.get_last_lr()[0],
                        "loss": loss, "samples_per_s": rate, "bad_steps": st.bad_steps,
                        "unalignable": st.unalignable})

    # --- validation and checkpoints -------------------------------------------------------
    def _validate_and_report(self) -> None:
        dist.average_buffers(self.model)
        model = self.average.synced(self.model) if self.average else self.model
        model.eval()
        parts = dist.gather_objects(self.task.validate(model, self.device))
        metrics = self.task.val_metrics(parts)
        st = self.state
        score = metrics[self.task.metric]
        if st.best is None or not ranks_before(score, st.best, self.task.mode):
            st.best, st.best_step = score, st.step
        st.seconds = round(self.elapsed(), 2)
        metrics.update(step=st.step, epoch=st.epoch, samples=st.samples, seconds=st.seconds,
                       bad_steps=st.bad_steps,
                       unalignable=st.unalignable, restarts=st.restarts)
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if self.rank == 0:
                self._write_checkpoint(tmp, model, metrics)
                ckpt = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=ckpt, checkpoint_dir_name=f"checkpoint-{st.step:07d}")

    def _write_checkpoint(self, folder: str, model: torch.nn.Module, metrics: dict) -> None:
        """``model`` (the validated one: the average with ``cfg.ema``) as model.pt, and what
        resuming needs (with the raw weights when they are not model.pt) as train_state.pt."""
        st = self.state
        meta = {**self.task.model_meta(), "metrics": metrics, "step": st.step, "epoch": st.epoch,
                "config": asdict(self.cfg)}
        state = {"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                 "state": asdict(st)}
        if model is not self.model:
            state["weights"] = self.model.state_dict()
        checkpoint.save(folder, model, meta, state)
        print(f"step {st.step}: " + "  ".join(
            f"{k[4:]} {v:.4f}" for k, v in metrics.items() if k.startswith("val_") and v is not None
        ) + f"  (best {self.task.metric[4:]} {st.best:.4f} at step {st.best_step})", flush=True)
        self.log.write({**metrics, "loss": None})
        self.log.flush()


def _next_to_train(batches) -> dict | None:
    """This worker's next batch with samples still to train this epoch; None when its data is done.
    After a resume the batches of samples trained before the checkpoint come back empty
    from the collate: skipping them here matters, since a step where every worker has an
    empty batch ends the epoch (and would lose the samples still to come in it).
    """
    for batch in batches:
        if len(batch["ids"]):
            return batch
    return None


def train_loop_per_worker(config: dict) -> None:
    Loop(config).run()
