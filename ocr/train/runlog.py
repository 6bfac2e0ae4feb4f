"""What rank 0 writes while it trains: metrics.csv, TensorBoard, the MLflow run's metrics
(:class:`MetricLogger`, off the training thread), and the progress line.

On ``s3://`` run folders the files are written to a local staging folder and uploaded at
every ``flush`` (each validation), so a crash loses at most one interval of scalars.
On resume, rows past the restored step are dropped and TensorBoard purges them too.
"""

from __future__ import annotations

import csv
import math
import queue
import tempfile
import threading
import time
from pathlib import Path

from ocr import storage, tracking

TRAIN_COLUMNS = ["step", "epoch", "samples", "seconds", "lr", "loss", "samples_per_s", "bad_steps",
                 "unalignable"]


def _fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class RunLog:
    def __init__(self, run_dir: str, val_columns: list[str], resume_step: int, total_steps: int,
                 tracked: tracking.RunRef | None = None):
        from tensorboardX import SummaryWriter  # lazy: only the rank-0 worker writes TensorBoard

        self.run_dir = run_dir
        self.remote = storage.is_s3(run_dir)
        self.local = Path(tempfile.mkdtemp(prefix="ocr-run-")) if self.remote else Path(run_dir)
        self.local.mkdir(parents=True, exist_ok=True)
        self.columns = TRAIN_COLUMNS + val_columns
        self.csv_path = self.local / "metrics.csv"
        self._restore_csv(resume_step)
        self.tb = SummaryWriter(str(self.local / "tensorboard"), purge_step=resume_step + 1 or None)
        self.total_steps = total_steps
        self.start_step, self.started = resume_step, time.perf_counter()
        self.window = (time.perf_counter(), 0)
        self.mlflow = MetricLogger(tracked)

    def _restore_csv(self, resume_step: int) -> None:
        rows = []
        if self.remote and storage.exists(storage.join(self.run_dir, "metrics.csv")):
            self.csv_path.write_text(storage.read_text(storage.join(self.run_dir, "metrics.csv")))
        if self.csv_path.exists():
            with self.csv_path.open(newline="", encoding="utf-8") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with self.csv_path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict) -> None:
        with self.csv_path.open("a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)
        for key, value in row.items():
            if key not in ("step", "epoch") and isinstance(value, (int, float)):
                tag = f"val/{key[4:]}" if key.startswith("val_") else f"train/{key}"
                self.tb.add_scalar(tag, value, row["step"])
        self.mlflow.log({k: v for k, v in row.items() if k not in ("step", "epoch")}, row["step"])

    def rate(self, samples: int) -> float:
        """Samples/s since the last call."""
        t0, s0 = self.window
        now = time.perf_counter()
        self.window = (now, samples)
        return (samples - s0) / max(now - t0, 1e-9)

    def progress(self, step: int, epoch: int, loss: float, rate: float,
                 time_left: float | None = None) -> str:
        """The live line; with ``time_left`` (a time budget) the ETA is whichever ends first."""
        done = step - self.start_step
        elapsed = time.perf_counter() - self.started
        eta = (self.total_steps - step) * elapsed / done if done else float("inf")
        by_time = time_left is not None and time_left < eta
        head = f"step {step}" if by_time else f"step {step}/{self.total_steps}"
        eta_text = f"{_fmt_time(max(0.0, time_left))} (time budget)" if by_time else _fmt_time(eta)
        return f"{head}  epoch {epoch}  loss {loss:.4f}  {rate:.0f} samples/s  ETA {eta_text}"

    def flush(self) -> None:
        self.tb.flush()
        if self.remote:
            s3 = storage.S3Settings.from_env()
            for path in self.local.rglob("*"):
                if path.is_file():
                    rel = path.relative_to(self.local).as_posix()
                    storage.write_bytes(storage.join(self.run_dir, rel), path.read_bytes(), s3)

    def close(self) -> None:
        self.flush()
        self.tb.close()
        self.mlflow.close()


class MetricLogger:
    """Rank 0's metrics to the run, from a background thread: training never waits on MLflow.

    A failed batch is retried a few times and then dropped with one warning; ``close`` waits
    (up to ``timeout_s``) for what is queued."""

    def __init__(self, ref: tracking.RunRef | None, timeout_s: float = 30.0):
        self.ref, self.timeout_s = ref, timeout_s
        self.queue: queue.Queue = queue.Queue(maxsize=100_000)
        self.warned = False
        self.thread = threading.Thread(target=self._drain, name="mlflow-metrics", daemon=True)
        if ref is not None:
            self.thread.start()

    def log(self, metrics: dict, step: int) -> None:
        if self.ref is None:
            return
        stamp = int(time.time() * 1000)
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
                try:
                    self.queue.put_nowait((key, float(value), stamp, int(step)))
                except queue.Full:
                    return

    def _drain(self) -> None:
        client, done = None, False
        while not done:
            batch = [self.queue.get()]
            while len(batch) < 500 and not self.queue.empty():
                batch.append(self.queue.get())
            done = batch[-1] is None   # close() puts None last, after every metric
            batch = [m for m in batch if m is not None]
            if batch:
                client = self._send(client, batch)

    def _send(self, client, batch: list[tuple]):
        from mlflow.entities import Metric

        for attempt in range(3):
            try:
                client = client or tracking.mlflow_client(self.ref.uri)
                client.log_batch(self.ref.run_id, metrics=[Metric(*m) for m in batch])
                return client
            except Exception as e:  # noqa: BLE001
                if attempt == 2 and not self.warned:
                    self.warned = True
                    tracking.warn(f"metrics not recorded at {self.ref.uri} ({type(e).__name__}: "
                                  f"{tracking.short(e)}); training goes on")
                time.sleep(0.5 * (attempt + 1))
        return client

    def close(self) -> None:
        if self.ref is None:
            return
        self.queue.put(None)
        self.thread.join(self.timeout_s)
