"""The cluster configs are real: cluster.yaml passes Ray's own launcher validation (offline,
no AWS call), the KubeRay manifests run our jobs and serve our application, and the
commands the README gives for a cluster parse with the flags the jobs really have."""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
JOBS = {"ingest.py": "ingest", "synth.py": "synth", "train.py": "train", "tune.py": "tune",
        "eval.py": "eval", "export.py": "export", "export_lmdb.py": "export-lmdb"}


def _load(path: str) -> dict:
    return yaml.safe_load((REPO / path).read_text())


@pytest.fixture(scope="module")
def launcher() -> dict:
    """cluster.yaml as `ray up` sees it: merged with the AWS defaults, then validated."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(copy.deepcopy(_load("cluster.yaml")))
    validate_config(config)  # Ray's JSON schema and its node-type checks
    return config


def test_cluster_yaml_is_a_cpu_head_and_gpu_workers_on_aws(launcher):
    assert launcher["provider"]["type"] == "aws"
    types = launcher["available_node_types"]
    head = types[launcher["head_node_type"]]
    workers = {name: t for name, t in types.items() if name != launcher["head_node_type"]}
    assert head["node_config"]["InstanceType"].startswith(("m", "c", "r"))  # a CPU instance
    assert len(workers) == 1
    (gpu,) = workers.values()
    assert gpu["node_config"]["InstanceType"].startswith(("g", "p"))  # a GPU instance
    assert 0 <= gpu["min_workers"] <= gpu["max_workers"] <= launcher["max_workers"]
    assert "IamInstanceProfile" in gpu["node_config"]  # workers reach S3 too


def test_cluster_yaml_installs_this_project(launcher):
    mounts = launcher["file_mounts"]
    assert list(mounts.values()) == ["."]
    remote = next(iter(mounts))
    assert ".venv" in launcher["rsync_exclude"] and ".git" in launcher["rsync_exclude"]
    head, workers = launcher["head_setup_commands"], launcher["worker_setup_commands"]
    for commands in (head, workers):
        assert any("scripts/setup.sh" in c for c in commands)  # pip install -e the project
        assert any(Path(remote).name in c for c in commands)
        for command in commands:  # each one is valid shell
            subprocess.run(["bash", "-n", "-c", command], check=True)
    torch_cpu = [c for c in head if "torch==" in c]
    torch_gpu = [c for c in workers if "torch==" in c]
    assert torch_cpu and all("whl/cpu" in c for c in torch_cpu)  # CPU head: the CPU wheel
    assert torch_gpu and not any("whl/cpu" in c for c in torch_gpu)  # GPU workers: CUDA build
    assert any("AWS_REGION=" + launcher["provider"]["region"] in c for c in head)


def _job_args(entrypoint: str) -> tuple[str, list[str]]:
    """(ocr subcommand, its arguments) of ``python .../jobs/X.py ARGS``."""
    words = shlex.split(entrypoint)
    at = next(i for i, w in enumerate(words) if re.search(r"(^|/)jobs/\w+\.py$", w))
    script = Path(words[at]).name
    assert (REPO / "jobs" / script).exists(), f"{words[at]}: no such job script"
    return JOBS[script], words[at + 1:]


def _parses(sub: str, args: list[str]) -> None:
    from ocr.cli import build_parser

    try:
        build_parser().parse_args([sub, *args])
    except SystemExit:
        pytest.fail(f"`ocr {sub} {shlex.join(args)}`: the job does not take these arguments")


def test_rayjob_runs_the_training_job():
    from ocr.cli import build_parser, config_from_args
    from ocr.train.config import TrainConfig

    job = _load("deploy/kuberay/rayjob.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    sub, args = _job_args(spec["entrypoint"])
    assert sub == "train"
    cfg = config_from_args(TrainConfig, build_parser().parse_args([sub, *args]))
    assert cfg.use_gpu and cfg.storage.startswith("s3://") and cfg.data.startswith("s3://")
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == "2.60.0"
    (gpu,) = cluster["workerGroupSpecs"]
    limits = gpu["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) == 1 and gpu["maxReplicas"] >= cfg.num_workers
    assert gpu["minReplicas"] <= gpu["replicas"] <= gpu["maxReplicas"]


def test_rayservice_serves_the_application_of_serve_config():
    service = _load("deploy/kuberay/rayservice.yaml")
    assert service["apiVersion"] == "ray.io/v1" and service["kind"] == "RayService"
    ours = yaml.safe_load(service["spec"]["serveConfigV2"])
    local = _load("serve_config.yaml")
    assert ours["http_options"]["host"] == "0.0.0.0"  # reachable through the k8s Service
    assert service["spec"]["rayClusterConfig"]["rayVersion"] == "2.60.0"
    if not local.get("applications"):
        pytest.skip("serve_config.yaml has no application yet")
    apps = {a["name"]: a for a in local["applications"]}
    assert {a["name"] for a in ours["applications"]} == set(apps)
    for app in ours["applications"]:
        twin = apps[app["name"]]
        assert app["import_path"] == twin["import_path"]
        assert app.get("route_prefix", "/") == twin.get("route_prefix", "/")
        unknown = set(app.get("args", {})) - set(twin.get("args", {}))
        assert not unknown, f"serveConfigV2 args unknown to serve_config.yaml: {sorted(unknown)}"
        names = {d["name"] for d in twin.get("deployments", [])}
        assert {d["name"] for d in app.get("deployments", [])} <= names


def test_rayservice_args_are_a_valid_serve_config():
    from ocr.serve.config import ServeConfig

    ours = yaml.safe_load(_load("deploy/kuberay/rayservice.yaml")["spec"]["serveConfigV2"])
    for app in ours["applications"]:
        cfg = ServeConfig(**app["args"])  # refuses unknown or bad values; reads no checkpoint
        assert cfg.recognizer.startswith("s3://")


def _readme_cluster_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.partition("## Running on a cluster")[2].partition("\n## ")[0]
    assert section, "README.md has no 'Running on a cluster' section"
    lines = section.replace("\\\n", " ").splitlines()
    return [line.strip() for line in lines if line.strip().startswith("ray job submit")]


def test_readme_cluster_commands_use_real_jobs_and_flags():
    commands = _readme_cluster_commands()
    seen = set()
    for command in commands:
        sub, args = _job_args(command.partition(" -- ")[2].split("#")[0])
        _parses(sub, args)
        seen.add(sub)
    assert {"ingest", "synth", "train", "tune", "eval", "export"} <= seen, seen


def _containers(cluster: dict) -> list[dict]:
    groups = [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_exposed_manifests_fail_closed():
    """What can be checked without a cluster (the listening sockets themselves are checked
    on a running service in tests/test_serve.py): the RayService, which listens on the pod
    network, cannot start without the API token, nor its cluster without Ray's token auth;
    cluster.yaml keeps the dashboard on loopback (reached with `ray dashboard`); every node
    runs Serve's HAProxy through ocr-haproxy (stats and metrics on loopback)."""
    service = _load("deploy/kuberay/rayservice.yaml")
    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["authOptions"] == {"mode": "token"}
    assert _load("deploy/kuberay/rayjob.yaml")["spec"]["rayClusterSpec"]["authOptions"] == {"mode": "token"}
    for container in _containers(cluster):
        env = {e["name"]: e for e in container["env"]}
        assert env["OCR_SERVE_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is False
        assert env["RAY_SERVE_HAPROXY_BINARY_PATH"]["value"].endswith("/ocr-haproxy")
    head, worker = (" ".join(_load("cluster.yaml")[k]) for k in ("head_start_ray_commands",
                                                                  "worker_start_ray_commands"))
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head
    assert all("RAY_SERVE_HAPROXY_BINARY_PATH=$HOME/venv/bin/ocr-haproxy" in c for c in (head, worker))
