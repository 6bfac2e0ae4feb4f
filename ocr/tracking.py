"""Experiment tracking in MLflow, beside TensorBoard and metrics.csv.

Every ``ocr train`` is one MLflow run; an ``ocr tune`` sweep is a parent run with a child run
per trial. The driver opens the run (params, tags) and closes it (artifacts, status); rank 0
alone logs the metrics while it trains, from a background thread, so a slow or absent
tracking server never slows or fails training: a warning, and the run goes on.

Where runs go (:func:`tracking_uri`): ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else a
SQLite store beside the runs, ``STORAGE/mlflow.db`` (artifacts in ``STORAGE/mlartifacts``).
Local paths are made absolute on the driver: the workers do not run in its folder.
A run folder remembers its MLflow run in ``mlflow.json``: continuing the run (same
``--name``) continues the same MLflow run.

Published models (``--register-model NAME``) become versions in the model registry;
``models:/NAME/VERSION`` (or ``models:/NAME@ALIAS``) then names a checkpoint wherever one is
accepted (:func:`download_registered`), and serving reports that version.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from ocr import storage
from ocr.paths import REGISTERED

DEFAULT_DB = "mlflow.db"
SQLITE = "sqlite:///"
ARTIFACTS = "mlartifacts"
RUN_FILE = "mlflow.json"        # in a run (or sweep) folder: which MLflow run it is
REGISTRY_FILE = "registry.json"  # in a downloaded registered model: its name and version


class TrackingWarning(UserWarning):
    """Tracking failed; training goes on without it."""


def warn(message: str) -> None:
    print(f"warning: MLflow: {message}", flush=True)
    warnings.warn(message, TrackingWarning, stacklevel=2)


def tracking_uri(given: str, storage_root: str) -> str | None:
    """The tracking URI a run uses: ``given``, else MLFLOW_TRACKING_URI, else
    ``sqlite:///STORAGE/mlflow.db``; None (no tracking) for an ``s3://`` storage root with no
    URI named, since a SQLite file cannot live on S3."""
    uri = given or os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri:
        return absolute_uri(uri)
    if storage.is_s3(storage_root):
        return None
    return sqlite_uri(storage_root)


def sqlite_uri(folder: str) -> str:
    """The URI of the SQLite store ``folder/mlflow.db`` (absolute)."""
    return SQLITE + os.path.join(os.path.abspath(folder), DEFAULT_DB)


def _sqlite_path(uri: str) -> str | None:
    """The file of a ``sqlite:///`` URI, else None."""
    return uri[len(SQLITE):] if uri.startswith(SQLITE) else None


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "ocr"


def absolute_uri(uri: str) -> str:
    """``uri`` with a relative local path made absolute (``sqlite:///runs/mlflow.db``,
    ``file:mlruns``, ``./mlruns``); servers' URIs unchanged."""
    path = _sqlite_path(uri)
    if path is not None:
        return uri if path.startswith("/") or path == ":memory:" else SQLITE + os.path.abspath(path)
    if uri.startswith("file://"):
        return uri
    if uri.startswith("file:"):
        return "file://" + os.path.abspath(uri[len("file:"):])
    if "://" not in uri and ":" not in uri.split("/")[0]:
        return os.path.abspath(uri)  # a folder: MLflow's file store
    return uri


def ui_command(uri: str) -> str:
    """The command that shows the runs at ``uri`` in a browser."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    return f"mlflow ui --backend-store-uri {uri}"


def mlflow_client(uri: str):
    path = _sqlite_path(uri)
    if path is not None:
        _new_store(path)
    return _client_only(uri)


def _client_only(uri: str):
    # A tracking server that is down costs seconds, not minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")   # nothing leaves this machine unasked
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from mlflow.tracking import MlflowClient  # lazy: a second to import

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _new_store(path: str) -> None:
    """Create a missing SQLite store ``path`` from a migrated empty one (made once per MLflow
    version in the cache): MLflow's migrations take seconds for every new file. Its Default
    experiment's artifacts go beside the file too, not into whatever folder made it."""
    if os.path.exists(path) or path == ":memory:":
        return
    import sqlite3

    import mlflow

    cache = _cache_dir()
    template = cache / f"mlflow-{mlflow.__version__}-empty.db"
    if not template.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f".{template.name}.{os.getpid()}"
        _client_only(f"{SQLITE}{tmp}").search_experiments()   # runs the migrations
        os.replace(tmp, template)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    shutil.copyfile(template, tmp)
    with contextlib.closing(sqlite3.connect(tmp)) as db, db:
        db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                   ("file://" + os.path.join(os.path.dirname(path), ARTIFACTS, "0"),))
    try:
        os.link(tmp, path)   # never over a store another process made meanwhile
    except FileExistsError:
        pass
    except OSError:          # a file system without hard links
        if not os.path.exists(path):
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _experiment_id(client, uri: str, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    path, location = _sqlite_path(uri), None
    if path is not None:   # next to the database, never the worker's folder
        location = "file://" + os.path.join(os.path.dirname(path), ARTIFACTS)
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # noqa: BLE001 - another trial created it first
        return client.get_experiment_by_name(name).experiment_id


@dataclass(frozen=True)
class RunRef:
    """An MLflow run, as the driver hands it to the rank-0 worker (plain and picklable)."""

    uri: str
    run_id: str
    experiment_id: str


def read_ref(folder: str) -> RunRef | None:
    """The MLflow run a run (or sweep) folder recorded, if any."""
    s3 = storage.S3Settings.from_env()
    path = storage.join(folder, RUN_FILE)
    if not storage.exists(path, s3):
        return None
    try:
        return RunRef(**json.loads(storage.read_text(path, s3)))
    except (TypeError, ValueError):
        return None


def start_run(uri: str | None, experiment: str, name: str, folder: str, tags: dict,
              params: dict, parent: RunRef | None = None) -> RunRef | None:
    """Open (or, when ``folder`` recorded one at the same URI, reopen) the MLflow run of the
    run folder ``folder``; None, with a warning, when the tracking store cannot be reached."""
    if not uri:
        return None
    try:
        client = mlflow_client(uri)
        ref = read_ref(folder)
        if ref is not None and ref.uri == uri and _reopened(client, ref):
            return ref
        exp = _experiment_id(client, uri, experiment)
        tags = {**{k: str(v) for k, v in tags.items() if v not in (None, "")},
                **({"mlflow.parentRunId": parent.run_id} if parent else {})}
        run = client.create_run(exp, run_name=name, tags=tags)
        ref = RunRef(uri, run.info.run_id, exp)
        _log_params(client, ref.run_id, params)
        storage.write_text(storage.join(folder, RUN_FILE), json.dumps(asdict(ref)) + "\n",
                           storage.S3Settings.from_env())
        return ref
    except Exception as e:  # noqa: BLE001 - tracking never fails a run
        warn(f"cannot record this run at {uri} ({type(e).__name__}: {short(e)}); training goes on "
             "without tracking (--no-tracking turns it off, --tracking-uri names another store)")
        return None


def _reopened(client, ref: RunRef) -> bool:
    """Mark the run recorded in a run folder running again; False when the store lost it."""
    from mlflow.exceptions import MlflowException

    try:
        client.update_run(ref.run_id, status="RUNNING")
        return True
    except MlflowException:
        return False


def _log_params(client, run_id: str, params: dict) -> None:
    from mlflow.entities import Param

    items = [Param(k, _param_value(v)) for k, v in sorted(params.items())]
    for i in range(0, len(items), 100):   # MLflow takes at most 100 params a batch
        client.log_batch(run_id, params=items[i:i + 100])


def _param_value(value) -> str:
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else str(value)
    return text[:6000]


def short(error: Exception) -> str:
    return " ".join(str(error).split())[:200]


def _call(ref: RunRef | None, what: str, fn) -> object:
    """``fn(client)``, or a warning naming ``what`` when it fails (tracking never fails a run)."""
    if ref is None:
        return None
    try:
        return fn(mlflow_client(ref.uri))
    except Exception as e:  # noqa: BLE001
        warn(f"{what} at {ref.uri} failed ({type(e).__name__}: {short(e)})")
        return None


def set_tags(ref: RunRef | None, tags: dict) -> None:
    _call(ref, "setting tags", lambda c: [c.set_tag(ref.run_id, k, str(v)) for k, v in tags.items()])


def log_artifacts(ref: RunRef | None, files: dict[str, str]) -> None:
    """Log local or ``s3://`` files: ``{artifact path: file}``; missing files are skipped."""
    def log(client):
        s3 = storage.S3Settings.from_env()
        with tempfile.TemporaryDirectory() as tmp:
            for name, src in files.items():
                if not src or not storage.exists(src, s3):
                    continue
                local = Path(tmp) / name
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(storage.read_bytes(src, s3))
                client.log_artifact(ref.run_id, str(local), os.path.dirname(name) or None)
    _call(ref, "logging artifacts", log)


def end_run(ref: RunRef | None, status: str = "FINISHED") -> None:
    _call(ref, "ending the run", lambda c: c.set_terminated(ref.run_id, status=status))


def register(ref: RunRef | None, checkpoint_dir: str, name: str) -> str | None:
    """Log the checkpoint folder as the run's ``model`` artifacts and register it as a new
    version of the registered model ``name``; returns ``models:/NAME/VERSION``."""
    if ref is None:
        warn(f"--register-model {name}: no tracking store, nothing registered")
        return None
    log_artifacts(ref, {f"model/{f}": storage.join(checkpoint_dir, f) for f in ("model.pt", "model.json")})

    def create(client):
        from mlflow.exceptions import MlflowException

        try:
            client.create_registered_model(name)
        except MlflowException:
            pass  # it exists: a new version of it
        source = f"{client.get_run(ref.run_id).info.artifact_uri}/model"
        version = client.create_model_version(name, source, run_id=ref.run_id)
        return f"{REGISTERED}{name}/{version.version}"
    return _call(ref, f"registering {name}", create)


def download_registered(uri: str) -> str:
    """A local folder holding the registered model ``models:/NAME/VERSION`` (or ``@ALIAS``,
    or ``/latest``), with ``registry.json`` naming it. The tracking store is
    MLFLOW_TRACKING_URI's (a registry is a team's server, or ``sqlite:///…/mlflow.db``)."""
    target = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not target:
        raise ValueError(f"{uri}: expected MLFLOW_TRACKING_URI to name the model registry "
                         "(e.g. sqlite:///runs/mlflow.db or a server's http:// address), found none set")
    client = mlflow_client(absolute_uri(target))
    name, version = _parse_models_uri(client, uri)
    src = client.get_model_version_download_uri(name, version)
    # keyed by where the version's files are: another store's version 1 is another model
    key = hashlib.sha256(src.encode()).hexdigest()[:12]
    root = _cache_dir() / "registry" / name / f"{version}-{key}"
    if not (root / REGISTRY_FILE).is_file():
        import mlflow.artifacts

        tmp = root.with_name(f".{version}-{os.getpid()}-{time.time_ns()}")
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=src, dst_path=str(tmp),
                                                         tracking_uri=absolute_uri(target)))
        (local / REGISTRY_FILE).write_text(json.dumps({"name": name, "version": version,
                                                       "uri": f"{REGISTERED}{name}/{version}"}) + "\n")
        try:
            os.replace(local, root)
        except OSError:   # another process got it first
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    return str(root)


def _parse_models_uri(client, uri: str) -> tuple[str, str]:
    rest = uri[len(REGISTERED):].strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, str(client.get_model_version_by_alias(name, alias).version)
    name, _, version = rest.rpartition("/")
    if not name or not version:
        raise ValueError(f"{uri}: expected models:/NAME/VERSION, models:/NAME/latest or models:/NAME@ALIAS")
    if version == "latest":
        versions = client.search_model_versions(f"name='{name}'")
        if not versions:
            raise ValueError(f"{uri}: the registry has no version of {name!r}")
        version = str(max(int(v.version) for v in versions))
    return name, version


def registered_as(folder: str) -> dict | None:
    """``{name, version, uri}`` when ``folder`` is a downloaded registered model."""
    path = Path(folder) / REGISTRY_FILE
    return json.loads(path.read_text()) if path.is_file() else None
