"""Shared fixtures: one local Ray per test session, a real S3 server on 127.0.0.1, tiny data."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

# Serve's HAProxy mode keeps a stopping HTTP ingress replica draining for 30 s (so HAProxy stops
# routing to it before it goes). The suite starts and stops Serve a dozen times, with no request
# in flight while it stops: 0 here (read by Serve's controller, which inherits this environment
# in the session's Ray, the LocalClusters and the subprocesses) saves those waits.
os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")   # the tests read MLflow stores directly


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core box 2 threads are 10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray with 2 CPUs, shared by the whole session."""
    import ray

    from ocr.runtime import ensure_ray, stop_ray

    # Ray workers inherit the environment: let them import test modules (train loops etc.).
    here = str(Path(__file__).parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    # The dashboard runs the State API, which Ray Train's placement-group cleaner needs to
    # free the workers' CPUs of a run that Tune stopped early.
    ensure_ray(num_cpus=2, dashboard=True)
    yield ray
    stop_ray()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3-compatible server in its own process on 127.0.0.1; sets the AWS env vars."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("moto server did not start")
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": endpoint}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield endpoint
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_bucket(s3_server):
    import boto3

    name = f"test-{time.time_ns()}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return name


def mlflow_runs(folder) -> tuple:
    """(client, every run) of the SQLite MLflow store FOLDER/mlflow.db."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder}/mlflow.db")
    return client, client.search_runs([e.experiment_id for e in client.search_experiments()])


def text_image(text: str, size=(100, 32), fmt="PNG") -> bytes:
    """A small grey line image with ``text`` drawn in PIL's default font."""
    img = Image.new("L", size, 255)
    ImageDraw.Draw(img).text((4, 8), text, fill=0)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def noise_png(w: int, h: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def write_gt_set(root: Path, items: list[tuple[str, str]], gt_name="gt.txt") -> Path:
    """Images under root/images and a gt file ``images/NAME<TAB>LABEL``."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for name, label in items:
        (root / "images" / name).write_bytes(text_image(label))
        lines.append(f"images/{name}\t{label}")
    gt = root / gt_name
    gt.write_text("\n".join(lines) + "\n", "utf-8")
    return gt


@pytest.fixture(scope="session")
def digit_shards(ray_local, tmp_path_factory):
    """240 rendered digit lines (1-4 digits) as recognition shards: train/val/test 80/10/10."""
    from ocr.data.config import SynthConfig
    from ocr.data.synth.job import synth

    out = tmp_path_factory.mktemp("data") / "digits"
    synth(SynthConfig(output=str(out), count=240, text="digits:1-4", style="none",
                      splits="train=0.8,val=0.1,test=0.1", seed=3), progress=False)
    return out
