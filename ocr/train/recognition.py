"""The recognition task: shards of text lines -> a CTC or attention recogniser."""

from __future__ import annotations

import numpy as np
import torch

from ocr.charset import Charset
from ocr.config import ConfigError
from ocr.data.images import Preprocess
from ocr.data.loader import RecognitionCollate, numpy_collate
from ocr.data.shards import ids_to_ints
from ocr.eval.metrics import TextMetrics
from ocr.models.recognition import RECOGNIZERS, hangul_jamo
from ocr.train.augment import augment_batch
from ocr.train.config import TrainConfig
from ocr.train.data import load_manifests, split_rows, val_batches
from ocr.train.task import TaskBase


class TrainCollate(RecognitionCollate):
    """The loader's collate, minus samples already trained this epoch, plus their ids."""

    def __init__(self, charset, preprocess, skip: frozenset[int] = frozenset()):
        super().__init__(charset, preprocess)
        self.skip = skip

    def __call__(self, batch: dict):
        ids = ids_to_ints(batch["id"])
        if self.skip:
            keep = np.array([i not in self.skip for i in ids.tolist()], dtype=bool)
            batch = {k: v[keep] for k, v in batch.items()}
            ids = ids[keep]
        if len(ids) == 0:
            return {"ids": torch.from_numpy(ids)}
        out = {k: torch.from_numpy(v) for k, v in self.arrays(batch).items()}
        out["ids"] = torch.from_numpy(ids)
        return out


JAMO_FROM = 100   # Hangul syllables in a charset from which heads score them by jamo by default


def _repeats(targets: torch.Tensor) -> torch.Tensor:
    return ((targets[:, 1:] == targets[:, :-1]) & (targets[:, 1:] != 0)).sum(1)


class RecognitionTask(TaskBase):
    name = "recognition"
    columns = ["id", "image", "label"]
    metric, mode = "val_cer", "min"
    val_columns = ["val_loss", "val_cer", "val_ned", "val_char_accuracy", "val_word_accuracy",
                   "val_samples"]
    extra_names = ["unalignable"]

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        manifest, val_manifest = load_manifests(cfg, "recognition")
        if not manifest.get("charset"):
            raise ConfigError(f"data {cfg.data}: its manifest has no charset")
        data_charset = Charset.from_json(manifest["charset"])
        self.train_rows = split_rows(manifest, cfg.train_split)
        self.preprocess = Preprocess(height=cfg.height or 32, width=cfg.width or 100,
                                     keep_ratio=cfg.keep_ratio, channels=cfg.channels or 1,
                                     trim=cfg.trim)
        if cfg.init_from:
            self.charset, self.arch = self._from_checkpoint(data_charset)
        else:
            self.charset = data_charset
            self.arch = self._arch(cfg.model or "fast", cfg.model_overrides())
        self._check_feasible(manifest.get("label_length") or {})
        if cfg.val_data:
            self._check_val_charset(Charset.from_json(val_manifest["charset"]))

    def _check_val_charset(self, val_charset: Charset) -> None:
        extra = [s for s in val_charset.symbols if s not in self.charset]
        if extra:
            raise ConfigError(f"val_data {self.cfg.val_data} has symbols the model cannot read: "
                              f"{''.join(extra[:40])!r}")

    def _jamo(self, name: str, overrides: dict) -> dict:
        """``jamo`` filled in with this charset's symbols: when asked (``--model-set jamo=true``),
        or by default for a charset of ``JAMO_FROM`` Hangul syllables or more (Korean text) and
        a preset that has the option. ``--model-set jamo=false`` keeps one row per class."""
        jamo = overrides.get("jamo")
        if jamo is None and "jamo" in RECOGNIZERS.defaults(name):
            jamo = sum(hangul_jamo(s) is not None for s in self.charset.symbols) >= JAMO_FROM
        if jamo is True:
            return {**overrides, "jamo": "".join(self.charset.symbols)}
        return overrides

    def _arch(self, name: str, overrides: dict) -> dict:
        p = self.preprocess
        try:
            overrides = self._jamo(name, overrides)
            model = RECOGNIZERS.create(name, num_classes=self.charset.num_classes, height=p.height,
                                      width=p.width, channels=p.channels, **overrides)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model: {e}") from None
        self.time_steps = model.time_steps(p.width) if model.prediction == "ctc" else None
        self.max_length = getattr(model.head, "max_length", None)
        return model.arch_config()

    def _from_checkpoint(self, data_charset: Charset) -> tuple[Charset, dict]:
        meta = self.init_meta()
        old = Charset.from_json(meta["charset"])
        new_symbols = [s for s in data_charset.symbols if s not in old]
        charset = old
        if new_symbols and not self.cfg.extend_charset:
            raise ConfigError(
                f"init_from {self.cfg.init_from}: its charset ({old.hash}) lacks {len(new_symbols)} "
                f"symbol(s) of the data's ({data_charset.hash}): {''.join(new_symbols[:40])!r}. "
                f"Difference: {old.describe_difference(data_charset)}. "
                "Pass --extend-charset to add them as new classes.")
        if new_symbols:
            charset = old.union(data_charset)
        self.preprocess = Preprocess.from_json(meta["preprocess"])
        arch = dict(meta["arch"])
        name = arch.pop("name")
        if self.cfg.model and self.cfg.model != name:
            raise ConfigError(f"model: init_from {self.cfg.init_from} is a {name!r} model, found "
                              f"--model {self.cfg.model}: fine-tuning keeps the checkpoint's model "
                              "(leave --model out, or train a new model without --init-from)")
        for key in ("num_classes", "height", "width", "channels"):
            arch.pop(key)
        if "jamo" in RECOGNIZERS.defaults(name):     # the checkpoint's head, never the default's;
            arch["jamo"] = bool(arch.get("jamo"))    # jamo refilled with the (extended) charset
        self.charset = charset
        return charset, self._arch(name, arch)

    def _check_feasible(self, label_length: dict) -> None:
        longest, steps = label_length.get("max", 0), label_length.get("max_ctc_steps", 0)
        if self.time_steps is not None and steps > self.time_steps:
            raise ConfigError(
                f"labels need up to {steps} CTC steps (length plus adjacent repeats) but "
                f"{self.arch['name']} at width {self.preprocess.width} gives {self.time_steps}: "
                "raise --width or ingest with --max-label-length")
        if self.max_length is not None and longest > self.max_length:
            raise ConfigError(f"labels have up to {longest} symbols but {self.arch['name']} decodes "
                              f"at most max_length={self.max_length}: set --model-set max_length=N")

    # --- on the driver ----------------------------------------------------------------
    def model_meta(self) -> dict:
        return {"task": "recognition", "arch": self.arch, "charset": self.charset.to_json(),
                "preprocess": self.preprocess.to_json()}

    # --- in the workers ---------------------------------------------------------------
    def init_weights(self, model: torch.nn.Module, old: dict) -> dict:
        """Old weights; with a grown charset, old classifier rows kept and new ones fresh."""
        new = model.state_dict()
        for key, value in old.items():
            if new[key].shape == value.shape:
                new[key] = value
            else:  # a class-indexed tensor: copy the old classes' rows, keep the new ones fresh
                grown = new[key].clone()
                if model.prediction == "attn":  # rows [GO], symbols..., [EOS] (last)
                    grown[: value.shape[0] - 1] = value[:-1]
                    grown[-1] = value[-1]
                else:  # rows blank, symbols...
                    grown[: value.shape[0]] = value
                new[key] = grown
        return new

    def collate(self, seed: int, skip_ids: frozenset[int]):
        return numpy_collate(TrainCollate, self.charset, self.preprocess, skip_ids)

    def loss(self, model, batch: dict, device, gen: torch.Generator) -> tuple[torch.Tensor, list[float]]:
        """Mean loss of a batch (moved to ``device``, augmented with ``gen``), and the count of
        unalignable samples (labels that need more CTC steps than the model has frames)."""
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        batch["images"] = augment_batch(batch["images"], self.cfg.augment, gen)
        targets = batch["targets"]
        out = model(batch["images"], targets if model.prediction == "attn" else None)
        unalignable = 0.0
        if model.prediction == "ctc":
            need = batch["target_lengths"] + _repeats(targets)
            unalignable = float((need > out.shape[1]).sum())
            out = out.float()
        return model.loss(out, targets), [unalignable]

    @torch.no_grad()
    def validate(self, model, device) -> list[float]:
        metrics, loss_sum = TextMetrics(), 0.0
        collate = TrainCollate(self.charset, self.preprocess)
        for batch in map(collate, val_batches(self.cfg, self.columns)):
            images, targets = batch["images"].to(device), batch["targets"].to(device)
            out = model(images)
            if model.prediction == "ctc":
                loss_sum += float(model.loss(out.float(), targets)) * len(images)
            lengths = batch["target_lengths"].tolist()
            for (pred, _), row, n in zip(model.decode(out), targets.tolist(), lengths):
                metrics.add(self.charset.decode(row[:n]), self.charset.decode(pred))
        return [loss_sum, *metrics.to_sums()]

    def val_metrics(self, parts: list[list[float]]) -> dict:
        """Metrics from every worker's ``validate`` sums."""
        sums = [sum(col) for col in zip(*parts)]
        summary = TextMetrics.from_sums(sums[1:]).summary()
        n = max(1, summary["samples"])
        return {"val_loss": sums[0] / n, "val_cer": summary["cer"], "val_ned": summary["ned"],
                "val_char_accuracy": summary["char_accuracy"],
                "val_word_accuracy": summary["word_accuracy"], "val_samples": summary["samples"]}
