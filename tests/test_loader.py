"""Shards to per-worker torch batches: in-process collate and under a real 2-worker TorchTrainer."""

import json

import numpy as np
from conftest import write_gt_set

from ocr.charset import load_charset
from ocr.data.config import IngestConfig
from ocr.data.images import Preprocess
from ocr.data.ingest import ingest
from ocr.data.loader import RecognitionCollate, read_split


def _shards(tmp_path, n=40):
    gt = write_gt_set(tmp_path / "raw", [(f"{i}.png", str(i * 7)) for i in range(n)])
    out = tmp_path / "shards"
    ingest(IngestConfig(inputs=[str(gt)], output=str(out), charset="digits",
                        splits="train=1", shard_size=16))
    return out


def test_collate_shapes_and_encoding(ray_local, tmp_path):
    out = _shards(tmp_path, 12)
    ds = read_split(str(out), "train", columns=["image", "label"])
    batch = next(iter(ds.iter_batches(batch_size=12, batch_format="numpy")))
    charset = load_charset("digits")
    collate = RecognitionCollate(charset, Preprocess(height=32, width=128))
    t = collate(batch)
    assert tuple(t["images"].shape) == (12, 1, 32, 128)
    for i, label in enumerate(batch["label"]):
        n = int(t["target_lengths"][i])
        assert n == len(label)
        assert charset.decode(t["targets"][i, :n].tolist()) == label
        assert t["targets"][i, n:].eq(0).all()
    bucketed = RecognitionCollate(charset, Preprocess(height=32, width=256), bucket=True)(batch)
    assert bucketed["images"].shape[-1] == 112  # widest line is 100 px at height 32: 112 = 7*16


def _loop(config):
    import ray.train

    from ocr.charset import load_charset
    from ocr.data.images import Preprocess
    from ocr.data.loader import iter_recognition_batches

    charset = load_charset("digits")
    seen = []
    for batch in iter_recognition_batches(charset, Preprocess(height=32, width=100), batch_size=8):
        assert batch["images"].dtype.is_floating_point
        n = batch["target_lengths"].tolist()
        seen += [charset.decode(row[:k]) for row, k in zip(batch["targets"].tolist(), n)]
        shape = list(batch["images"].shape[1:])
    rank = ray.train.get_context().get_world_rank()
    with open(f"{config['out']}/rank{rank}.json", "w") as f:
        json.dump({"labels": seen, "shape": shape}, f)
    ray.train.report({"n": len(seen)})


def test_two_train_workers_split_the_epoch(ray_local, tmp_path):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    out = _shards(tmp_path)
    trainer = TorchTrainer(
        _loop, train_loop_config={"out": str(tmp_path)},
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        datasets={"train": read_split(str(out), "train", columns=["image", "label"])},
        run_config=RunConfig(storage_path=str(tmp_path / "runs"), name="loader"),
    )
    trainer.fit()
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    labels = ranks[0]["labels"] + ranks[1]["labels"]
    assert sorted(labels) == sorted(str(i * 7) for i in range(40))  # each sample exactly once
    assert all(r["labels"] for r in ranks) and ranks[0]["shape"] == [1, 32, 100]
    assert np.isclose(len(ranks[0]["labels"]), 20, atol=12)
