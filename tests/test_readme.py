"""The README is executable: every fenced ```bash block runs, in README order, in one shared
empty folder, as a new user would type it (relative paths, the venv's ``ocr`` on PATH), with
the sizes shrunk by the SUBSTITUTIONS table below and nothing else changed.

- A block that cannot run here carries an HTML comment right before its fence, for example
  ``<!-- docs-test: skip (needs a cluster) -->``; its test is skipped with that reason (the
  test id is the block's README heading). Nothing else is skipped.
- Blocks build on the blocks above them (the quick tour's models and images are served in
  "Serving"), so running one block first runs every block above it that has not run yet.
- Each block goes through ``bash -e`` (heredocs such as ``cat > space.yaml <<'YAML'`` work).
  ``ocr serve`` blocks forever: it is started in the background, the block's following lines
  (clients, curl) run once it prints ``serving on``, then it gets Ctrl-C (SIGINT) and the
  Serve application is shut down, so its replicas give their CPUs back to the next block.
- One isolated local Ray (``LocalCluster``: its own temp dir and ports, ``RAY_ADDRESS`` in
  the environment) serves the whole module, so each ``ocr`` command joins it in ~0.05 s
  instead of starting its own in 3-5 s. ``s3://bucket/...`` is moto's S3 server.
- The files a user brings (the gt set the ``ocr ingest`` examples name, the ``labels.txt``
  set in ``s3://bucket/raw/``) are made by USER_FILES below; everything else the README's
  commands make themselves.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import text_image, write_gt_set
from local_cluster import LocalCluster, free_port

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
VENV_BIN = Path(sys.executable).parent          # the venv running the tests: its `ocr`, `python`
MARKER = re.compile(r"^<!--\s*docs-test:\s*(.*?)\s*-->\s*$")
QUICK_TOUR = "Quick tour"
BLOCK_TIMEOUT = 900                              # seconds for one block (a busy CI box is slow)
MODULE_TIMEOUT = 3600                            # seconds for a test that runs every block above it
PAGES = 64                                       # pages per `ocr synth --kind page`
EVAL_PAGES = 8                                   # pages of a `--splits test=1` set
LINES = 240                                      # lines per other `ocr synth`


# --- what changes between the README and what runs here ------------------------------------
@dataclasses.dataclass(frozen=True)
class Sub:
    pattern: str          # regex, applied to each line of a block (heredoc lines included)
    replacement: object   # str (re.sub template) or function(match, line) -> str
    why: str


def _append_if_absent(flag: str, value: str):
    def add(m: re.Match, line: str) -> str:
        return m.group(0) if flag in line else m.group(0) + f" {flag} {value}"
    return add


def _before_comment(pattern: str) -> str:
    """``pattern`` anchored at a command line's start, matching up to (not into) its comment."""
    return rf"^{pattern}[^#\n]*?(?=\s*(#.*)?$)"


SUBSTITUTIONS = [
    # data sizes
    Sub(r"--count \d+", lambda m, line: f"--count {EVAL_PAGES if 'test=1' in line else PAGES}"
        if "--kind page" in line else f"--count {LINES}",
        f"ocr synth: {LINES} lines, {PAGES} pages (2 in val, 3 in test) or {EVAL_PAGES} pages of an "
        "evaluation-only set (--splits test=1), not thousands"),
    Sub(_before_comment(r"ocr synth"), _append_if_absent("--count", str(LINES)),
        f"ocr synth without --count (1000): {LINES}"),
    # training budgets: a few steps instead of minutes (the schedule ends with the steps)
    Sub(r"--max-minutes [\d.]+", "--max-steps 3", "training: 3 steps"),
    Sub(r"--num-workers \d+", "--num-workers 1",
        "training: 1 Ray Train worker, ~5 s less start-up a run (the demo and tests/test_train.py use 2)"),
    Sub(_before_comment(r"ocr train"), _append_if_absent("--batch-size", "8"),
        "training: batches of 8 (64 pages a step made each step an epoch of the 64-page set)"),
    Sub(r"max_minutes: [\d.]+", "max_steps: 3", "training (YAML): 3 steps"),
    Sub(r"max_minutes=[\d.]+", "max_steps=3", "training (--train-set): 3 steps"),
    # models: the test sizes of the same families
    Sub(r"--model (fast|crnn|trbc|trba)\b", r"--model tiny_\1", "recognisers: tiny_* presets"),
    Sub(r"grid: \[fast, crnn\]", "grid: [tiny_crnn]",
        "sweep space: one tiny preset, so 1 trial (~25 s each; the quick tour's sweep runs 2)"),
    Sub(_before_comment(r"ocr train recognition(?!.*--init-from)"), _append_if_absent("--model", "tiny_fast"),
        "recognition default (fast) -> tiny_fast (fine-tuning keeps its checkpoint's model)"),
    Sub(_before_comment(r"ocr train detection"), _append_if_absent("--model", "tiny_ssdlite"),
        "detection default (ssdlite_mobilenetv2) -> tiny_ssdlite"),
    Sub(_before_comment(r"ocr train orientation"), _append_if_absent("--model", "tiny_deskew"),
        "orientation default (deskew_fft) -> tiny_deskew"),
    Sub(r"--train-set (?!.*model=)", "--train-set model=tiny_fast ", "sweeps without a model: tiny_fast"),
    # end-to-end detection: an untrained ROI model finds up to 100 "lines" a page, each read by
    # the char model
    Sub(_before_comment(r"ocr eval-detection .*--roi-checkpoint"), _append_if_absent("--max-lines", "4"),
        "end-to-end detection: 4 lines a page"),
    # recipes: the tiny size of the same recipe (a few hundred lines, 4 steps)
    Sub(_before_comment(r"ocr recipe"), _append_if_absent("--size", "tiny"), "recipes: --size tiny"),
    # sweeps: one draw per grid point
    Sub(r"--num-samples \d+", "--num-samples 1", "sweeps: 1 draw per grid point"),
    # serving: a free port, not 8000 (another service on the machine may hold it)
    Sub(r"127\.0\.0\.1:8000", "127.0.0.1:{port}", "serving: a free port"),
    Sub(_before_comment(r"ocr serve"), _append_if_absent("--port", "{port}"), "serving: a free port"),
    Sub(_before_comment(r"ocr client"), _append_if_absent("--url", "http://127.0.0.1:{port}"),
        "client: the free port"),
]


def substitute(text: str, port: int) -> str:
    out = []
    for line in text.splitlines():
        for sub in SUBSTITUTIONS:
            if callable(sub.replacement):
                line = re.sub(sub.pattern, lambda m, f=sub.replacement, ln=line: f(m, ln), line, count=1)
            else:
                line = re.sub(sub.pattern, sub.replacement, line, count=1)
        out.append(line.replace("{port}", str(port)))
    return "\n".join(out) + "\n"


# --- the README's blocks -------------------------------------------------------------------
@dataclasses.dataclass
class Block:
    heading: str
    line: int                 # the fence's line number in README.md
    text: str
    skip: str | None          # the docs-test marker's text, if any

    @property
    def id(self) -> str:
        return self.heading


def readme_blocks() -> list[Block]:
    blocks, heading, fence, body = [], "", None, []
    lines = README.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        if fence is not None:
            if line.strip() == "```":
                if fence[1] == "bash":
                    blocks.append(Block(heading, fence[0], "\n".join(body), fence[2]))
                fence, body = None, []
            else:
                body.append(line)
            continue
        if line.startswith("```"):
            prev = next((p for p in reversed(lines[:n - 1]) if p.strip()), "")
            m = MARKER.match(prev.strip())
            fence = (n, line[3:].strip(), m.group(1) if m else None)
        elif line.startswith("#"):
            heading = line.lstrip("#").strip().replace("`", "")
    seen: dict[str, int] = {}
    for b in blocks:   # unique ids: a second block under one heading gets " (2)"
        seen[b.heading] = seen.get(b.heading, 0) + 1
        if seen[b.heading] > 1:
            b.heading = f"{b.heading} ({seen[b.heading]})"
    return blocks


BLOCKS = readme_blocks()


def split_at_serve(script: str) -> tuple[str, str | None, str]:
    """(lines before the first top-level ``ocr serve`` line, that line, the lines after)."""
    lines, heredoc = script.splitlines(), None
    for i, line in enumerate(lines):
        if heredoc:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        if m := re.search(r"<<-?\s*'?\"?(\w+)", line):
            heredoc = m.group(1)
        elif line.startswith("ocr serve "):
            return "\n".join(lines[:i]) + "\n", line, "\n".join(lines[i + 1:]) + "\n"
    return script, None, ""


# --- the files a user brings ---------------------------------------------------------------
KOREAN = ["있는", "여기가", "가방", "나무", "하늘", "바다", "학교", "사람", "시간", "우리"]


def user_files(folder: Path, s3_endpoint: str) -> None:
    """data/gt_train.txt and data/gt_validation.txt (gt layout, images in data/images/), and
    s3://bucket/raw/labels.txt with raw/images/ beside it (labels layout)."""
    import boto3

    labels = [KOREAN[i % len(KOREAN)] + ("" if i % 3 else str(i % 10)) for i in range(30)]
    write_gt_set(folder / "data", [(f"tr{i:03d}.png", t) for i, t in enumerate(labels[:24])], "gt_train.txt")
    write_gt_set(folder / "data", [(f"va{i:03d}.png", t) for i, t in enumerate(labels[24:])],
                 "gt_validation.txt")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    if "bucket" not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket="bucket")
    index = io.StringIO()
    for i, label in enumerate(labels[:16]):
        s3.put_object(Bucket="bucket", Key=f"raw/images/{i}.png", Body=text_image(label))
        index.write(f"{i}.png {label}\n")
    s3.put_object(Bucket="bucket", Key="raw/labels.txt", Body=index.getvalue().encode("utf-8"))


# --- running blocks ------------------------------------------------------------------------
TRACE = "+[$EPOCHREALTIME] "


def command_times(log: str) -> list[tuple[float, str]]:
    """(seconds, command) for each command bash traced (``-x``: a start time per command);
    the last command of a script ends at its ``--- exit`` line, timed from the next start."""
    out, last = [], None
    for line in log.splitlines():
        m = re.match(r"^\+\[(\d+\.\d+)\] (.*)$", line)
        if m:
            t = float(m.group(1))
            if last:
                out.append((t - last[0], last[1]))
            last = (t, m.group(2))
        elif line.startswith("--- end ") and last:
            out.append((float(line.split()[2]) - last[0], last[1]))
            last = None
    return out

@dataclasses.dataclass
class Result:
    ok: bool
    seconds: float
    log: str
    script: str


class Session:
    """The shared folder, the cluster's environment, and what ran so far."""

    def __init__(self, folder: Path, env: dict):
        self.folder, self.env, self.port = folder, env, free_port()
        self.results: dict[int, Result] = {}

    def bash(self, script: str, name: str, timeout: float) -> subprocess.CompletedProcess:
        path = self.folder.parent / f"{name}.sh"
        # -x with a clock in the prompt (set in the script: bash ignores PS4 from the
        # environment when run as root): each command and when it started, for command_times()
        path.write_text(f"PS4='{TRACE}'\nset -x\n{script}", encoding="utf-8")
        return subprocess.run(["bash", "-e", str(path)], cwd=self.folder, env=self.env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def run(self, index: int) -> Result:
        """Run block ``index``, after every earlier runnable block that has not run."""
        for i in range(index + 1):
            if i not in self.results and not BLOCKS[i].skip:
                self.results[i] = self._run_one(i)
        for i in range(index):
            if i in self.results and not self.results[i].ok:
                pytest.fail(f"README block {BLOCKS[i].id!r} (line {BLOCKS[i].line}) above this one failed")
        return self.results[index]

    def _run_one(self, index: int) -> Result:
        block = BLOCKS[index]
        script = substitute(block.text, self.port)
        before, serve, after = split_at_serve(script)
        name, started, logs = f"block{index:02d}", time.perf_counter(), []
        ok = self._step(before, name, logs)
        if ok and serve:
            ok = self._serve(serve, after, name, logs)
        took = time.perf_counter() - started
        print(f"\nREADME block {block.id!r} (line {block.line}): {'ok' if ok else 'FAILED'} in {took:.0f}s",
              flush=True)
        for seconds, command in command_times("\n".join(logs)):
            print(f"  {seconds:6.1f}s  {command[:120]}")
        return Result(ok, took, "\n".join(logs), script)

    def _step(self, script: str, name: str, logs: list[str]) -> bool:
        if not script.strip():
            return True
        try:
            p = self.bash(script, name, BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            logs.append(f"timed out after {BLOCK_TIMEOUT}s\n{e.stdout or ''}\n{e.stderr or ''}")
            return False
        logs.append(f"$ bash -e <<'SH'\n{script}SH\n--- exit {p.returncode} ---\n{p.stdout}\n--- stderr ---\n"
                    f"{p.stderr}\n--- end {time.time():.6f}")
        return p.returncode == 0

    def _answers(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=10):
                return True
        except OSError:
            return False

    def _serve(self, serve: str, after: str, name: str, logs: list[str]) -> bool:
        proc = subprocess.Popen(["bash", "-c", f"exec {serve}"], cwd=self.folder, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out, up = [], threading.Event()
        logs.append(f"+[{time.time():.6f}] {serve}   (until it prints 'serving on')")

        def read():
            for line in proc.stdout:
                out.append(line)
                if "serving on" in line:
                    up.set()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            deadline = time.time() + BLOCK_TIMEOUT
            while not up.wait(1) and proc.poll() is None and time.time() < deadline:
                pass
            if not up.is_set():
                logs.append(f"$ {serve}\ndid not print 'serving on' (exit {proc.poll()}):\n{''.join(out)}")
                return False
            logs.append(f"--- end {time.time():.6f}")
            ok = self._step(after, name + "-clients", logs)
        finally:
            proc.send_signal(signal.SIGINT)   # Ctrl-C
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            reader.join(timeout=10)
            after_ctrl_c = (f"Ctrl-C after the clients: exit {proc.returncode}; the application "
                            f"{'still answers' if self._answers() else 'is gone'}")
            print(f"  ocr serve: {after_ctrl_c}")
            logs.append(f"$ {serve}   ({after_ctrl_c})\n{''.join(out)[-8000:]}")
            # The application outlives `ocr serve` on a running Ray: shut it down, freeing its CPUs.
            self.bash("python -c 'import ray; from ray import serve; ray.init(); serve.shutdown()'",
                      name + "-shutdown", 300)
        return ok


@pytest.fixture(scope="module")
def session(tmp_path_factory, s3_server):
    """One isolated local Ray (2 CPUs) for the module; the shared folder with the user's files."""
    root = tmp_path_factory.mktemp("readme")
    folder = root / "work"
    folder.mkdir()
    user_files(folder, s3_server)
    cluster = LocalCluster(root)   # started after s3_server: its workers get the S3 settings
    try:
        cluster.start_head(num_cpus=2)
        env = cluster.env(PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONUNBUFFERED="1")
        yield Session(folder, env)
    finally:
        cluster.shutdown()


def _check(block: Block, result: Result) -> None:
    assert result.ok, (f"README block {block.id!r} (README.md line {block.line}) failed; it ran, after "
                       f"substitutions:\n{result.script}\n{result.log[-30000:]}")


# --- the tests -----------------------------------------------------------------------------
TOUR = next(i for i, b in enumerate(BLOCKS) if b.heading == QUICK_TOUR)
FAMILIES = ["synth", "export-lmdb", "ingest", "train recognition", "train detection", "train orientation",
            "eval", "tune", "export", "deskew", "recognize", "serve", "client"]


@pytest.mark.slow
@pytest.mark.timeout(MODULE_TIMEOUT)
def test_quick_tour_runs_one_command_per_family(session):
    block = BLOCKS[TOUR]
    assert not block.skip, "the quick tour must run"
    commands = [ln.split("#")[0].split() for ln in block.text.splitlines() if ln.startswith("ocr ")]
    found = {" ".join(c[1:3]) if c[1] == "train" else c[1] for c in commands}
    assert set(FAMILIES) <= found, f"the quick tour lacks {sorted(set(FAMILIES) - found)}"
    assert not any(ln.startswith("ocr ") and " /" in ln for ln in block.text.splitlines()), \
        "the quick tour's paths are relative"
    result = session.run(TOUR)
    _check(block, result)
    work = session.folder
    for run in ("rec", "roi", "orient"):
        assert (work / "runs" / run / "best" / "model.json").is_file(), run
    assert (work / "data" / "ingested" / "manifest.json").is_file()
    assert (work / "eval" / "rec" / "summary.json").is_file()
    assert (work / "sweeps" / "lr" / "results.csv").is_file()
    assert sorted(os.listdir(work / "upright")) == sorted(os.listdir(work / "scans"))
    assert "line1.png\t" in result.log and "serving on" in result.log


@pytest.mark.slow
@pytest.mark.timeout(MODULE_TIMEOUT)   # a block first runs the blocks above it that have not run
@pytest.mark.parametrize("index", [i for i in range(len(BLOCKS)) if i != TOUR],
                         ids=[b.id for i, b in enumerate(BLOCKS) if i != TOUR])
def test_readme_block(session, index):
    block = BLOCKS[index]
    if block.skip:
        reason = re.sub(r"^skip\s*\((.*)\)$", r"\1", block.skip)
        pytest.skip(f"README {block.id!r} (line {block.line}): {reason}")
    _check(block, session.run(index))


def test_every_block_is_run_or_marked():
    """A new bash block runs unless it is marked; a marker always says why."""
    assert len(BLOCKS) >= 10
    for b in BLOCKS:
        assert b.skip is None or len(b.skip) > 10, f"{b.id}: the marker should say why: {b.skip!r}"
    assert not BLOCKS[TOUR].skip


def test_every_substitution_is_used():
    """The table stays in step with the README: a rule that matches no line it runs is stale."""
    lines = [ln for b in BLOCKS if not b.skip for ln in b.text.splitlines()]
    stale = [s.why for s in SUBSTITUTIONS if not any(re.search(s.pattern, ln) for ln in lines)]
    assert not stale, f"substitutions that match nothing in README.md: {stale}"
