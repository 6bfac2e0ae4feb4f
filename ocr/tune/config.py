"""The config of ``ocr tune`` (kept apart from the sweep, so the CLI's parser imports no Ray)."""

from __future__ import annotations

from dataclasses import dataclass

from ocr.config import ConfigError, absolute_paths, opt


@dataclass
class SweepConfig:
    """What to sweep and how; the training settings come from the training config."""

    space: str = opt("", "YAML search space (see README, Sweeps)", path="file")
    num_samples: int = opt(8, "random draws per grid combination")
    scheduler: str = opt("asha", "asha stops weak trials early on the validation metric; fifo runs "
                         "every trial to its end", choices=("asha", "fifo"))
    grace_period: int = opt(1, "validations every trial gets before ASHA may stop it")
    reduction_factor: int = opt(2, "ASHA keeps 1 in this many trials at each rung")
    max_concurrent: int = opt(0, "trials at once; 0: as many as the cluster's CPUs (or GPUs) hold")
    storage: str = opt("", "folder (or s3:// URI) that holds the sweep folders (default: ./sweeps); "
                       "--resume needs it named, as it unpickles the sweep's state from there",
                       path="output")
    name: str = opt("", "sweep name, its folder under --storage (empty: sweep-TIMESTAMP); with "
                    "--resume, the sweep to continue")
    resume: bool = opt(False, "continue the sweep --name after an interruption")
    strict: bool = opt(False, "refuse the space if any point cannot train (default: drop the point)")
    seed: int = opt(0, "random seed of the draws")
    train_set: list[str] = opt(factory=list, metavar="KEY=VALUE",
                               help="training settings to change over --config, such as num_workers=1")
    tracking: bool = opt(True, "record the sweep in MLflow: a parent run, a child run per trial; "
                         "--no-tracking: off")
    tracking_uri: str = opt("", metavar="URI", help="MLflow tracking URI; default: the training "
                            "config's, else MLFLOW_TRACKING_URI, else STORAGE/mlflow.db")
    register_model: str = opt("", metavar="NAME", help="register the sweep's best checkpoint (best/) "
                              "as a new version of this model in the MLflow registry")
    verbose: int = opt(1, "Tune's console output: 0 quiet, 1 status tables, 2 also each result")

    def __post_init__(self):
        absolute_paths(self)
        if self.scheduler not in ("asha", "fifo"):
            raise ConfigError(f"scheduler: expected asha or fifo, found {self.scheduler!r}")
        if self.num_samples < 1:
            raise ConfigError(f"num_samples: expected >= 1, found {self.num_samples}")
        if self.resume and not self.name:
            raise ConfigError("resume: expected --name of the sweep to continue")
        if self.resume and not self.storage:
            raise ConfigError("resume: expected --storage, the folder that holds the sweep: resuming "
                              "unpickles the sweep's saved state, so it is read only from a place you "
                              "name, never a default (e.g. --storage sweeps)")
