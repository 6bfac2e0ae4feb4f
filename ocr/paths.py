"""Local paths a user gives, made absolute once, on the driver.

Ray tasks, actors, Train workers, Tune trials and Serve replicas do not run in the folder the
command was started from, so a relative path must never reach them. Every path field of a
typed config says what kind of path it is (``opt(path=...)`` in :mod:`ocr.config`):

- ``input``: read by the job (a shard folder, a raw set, image files, a font folder): must exist;
- ``output``: written by the job (created when missing);
- ``file``: read by the command's own process only (a YAML config, a search space);
- ``checkpoint``: an input that may also be a model shipped in the package (``builtin:NAME``),
  a registered model (``models:/NAME/VERSION``) or one of the field's special values
  (``classical``).

A relative path is taken relative to the folder it was given from: the working folder for a
flag, the YAML file's folder for a YAML key. ``s3://`` URIs are left as they are. Inside a
``ray job submit`` job the working folder is the job's private copy of ``--working-dir``, so
an output (or a missing input) given there as a relative path is refused before any work
starts: nothing written there outlives the job, and other jobs never see it.
"""

from __future__ import annotations

import os

KINDS = ("input", "output", "file", "checkpoint")
BUILTIN = "builtin:"   # a checkpoint shipped in the package (ocr.checkpoint resolves it)
REGISTERED = "models:/"  # a version in the MLflow model registry (ocr.tracking downloads it)
_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"   # set by Ray's job supervisor in a job's entrypoint


class PathError(ValueError):
    """A path that cannot be used; the message says what was expected and found."""


def is_remote(path: str) -> bool:
    return "://" in path


def submitted_job_dir() -> str | None:
    """The working folder of the ``ray job submit`` job this process is the entrypoint of, or
    None outside a submitted job."""
    if not os.environ.get(_JOB_ENV):
        return None
    return os.getcwd()


def _given(value: str, base: str, cwd: bool) -> str:
    where = "the working folder" if cwd else "the folder of the YAML file that names it"
    return f"{value!r} (a relative path, taken from {where} {base})"


def resolve(value: str, kind: str, base: str | None = None, name: str = "path",
            check: bool = True) -> str:
    """``value`` as an absolute local path (or unchanged when remote or empty).

    ``base`` is the folder relative paths start from (default: the working folder). With
    ``check``, a missing input is refused naming the path as given and where it was looked
    for, and a relative path inside a submitted job is refused as explained above.
    """
    if kind not in KINDS:
        raise ValueError(f"path kind {kind!r}: expected one of {KINDS}")
    if not value or is_remote(value) or (kind == "checkpoint" and value.startswith((BUILTIN, REGISTERED))):
        return value
    expanded = os.path.expanduser(value)
    relative = not os.path.isabs(expanded)
    from_cwd = base is None
    base = os.getcwd() if base is None else base
    absolute = os.path.normpath(os.path.join(base, expanded))
    if not check:
        return absolute
    job = submitted_job_dir()
    exists = os.path.exists(absolute)
    if relative and job is not None and kind == "output":
        raise PathError(
            f"{name}: {value!r} is a relative path inside a `ray job submit` job: it would be "
            f"written into this job's private copy of the working dir ({job}), which no other "
            "job or node sees and which is deleted with it. Give an absolute path or s3:// URI")
    if kind in ("input", "checkpoint") and not exists:
        if relative and job is not None:
            raise PathError(
                f"{name}: {value!r} is a relative path inside a `ray job submit` job, and this "
                f"job's private copy of the working dir ({job}) has nothing there: an earlier "
                "job's relative output stayed in that job's own copy. Give an absolute path or "
                "s3:// URI, for the job that writes it and for this one")
        given = _given(value, base, from_cwd) if relative else repr(value)
        raise PathError(f"{name}: expected an existing file or folder, found nothing at {given}"
                        + (f", i.e. {absolute}" if relative else ""))
    return absolute


def resolve_input_spec(value: str, base: str | None = None, name: str = "inputs", check: bool = True) -> str:
    """An ingest input, ``PATH`` or ``SPLIT=PATH`` (the split kept)."""
    split, sep, path = value.partition("=")
    if sep and "/" not in split and not is_remote(value):
        return f"{split}={resolve(path, 'input', base, name, check)}"
    return resolve(value, "input", base, name, check)
