"""Layout "lmdb": a deep-text-recognition-benchmark LMDB (``create_lmdb_dataset.py``).

A folder holding ``data.mdb`` whose keys are::

    b"num-samples"      -> b"2"
    b"image-000000001"  -> encoded image bytes      b"label-000000001" -> "여기가".encode()
    b"image-000000002"  -> ...                      b"label-000000002" -> ...

:meth:`LmdbReader.entries` reads ``num-samples`` and every label (never an image) and yields
``Entry(key="000000001", path=None, label=...)``; a missing label is an error entry.
:meth:`LmdbReader.load` reads ``image-<key>``.

Environments are opened read-only without locks or readahead, once per process, and kept
in a module-level cache (the reader itself is pickled to Ray tasks, so it holds none). For an
``s3://`` URI, ``data.mdb`` is first downloaded to
``<tempdir>/ocr-lmdb-cache/<sha1 of the URI>/`` (to a temporary name, then renamed), and
reused while its size and modification time match the object's. ``lock.mdb`` is not needed:
a lock-free read-only environment never opens it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import uuid
from typing import ClassVar

import lmdb
import pyarrow.fs as pafs

from ocr import storage
from ocr.data.formats.base import Entry, Reader
from ocr.storage import S3Settings

_ENVS: dict[tuple[int, str], lmdb.Environment] = {}
_LOCK = threading.Lock()


def cache_dir(uri: str) -> str:
    """The local folder an ``s3://`` LMDB is downloaded to."""
    digest = hashlib.sha1(uri.encode("utf-8")).hexdigest()
    return os.path.join(tempfile.gettempdir(), "ocr-lmdb-cache", digest)


def download(uri: str, s3: S3Settings | None = None) -> str:
    """Copy ``<uri>/data.mdb`` to :func:`cache_dir` unless an identical copy is there."""
    fs, path = storage.filesystem(storage.join(uri, "data.mdb"), s3)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(f"{uri}: expected an LMDB folder with data.mdb, found none")
    folder = cache_dir(uri)
    local = os.path.join(folder, "data.mdb")
    if os.path.exists(local):
        st = os.stat(local)
        if st.st_size == info.size and info.mtime_ns in (None, st.st_mtime_ns):
            return folder
    os.makedirs(folder, exist_ok=True)
    tmp = f"{local}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with fs.open_input_stream(path) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 24)
        if info.mtime_ns is not None:
            os.utime(tmp, ns=(info.mtime_ns, info.mtime_ns))
        os.replace(tmp, local)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return folder


def _normalise(uri: str) -> str:
    uri = str(uri).rstrip("/")
    if storage.basename(uri) == "data.mdb":
        uri = uri[: -len("data.mdb")].rstrip("/\\") or "."
    if not storage.is_s3(uri):
        uri = os.path.abspath(os.path.expanduser(uri))
    return uri


def _open(uri: str, s3: S3Settings | None) -> lmdb.Environment:
    folder = download(uri, s3) if storage.is_s3(uri) else uri
    if not os.path.isfile(os.path.join(folder, "data.mdb")):
        raise FileNotFoundError(f"{uri}: expected an LMDB folder with data.mdb, found none")
    return lmdb.open(folder, readonly=True, lock=False, readahead=False, meminit=False)


def open_env(uri: str, s3: S3Settings | None = None) -> lmdb.Environment:
    """The read-only environment of ``uri``, opened once per process (for reading images)."""
    uri = _normalise(uri)
    key = (os.getpid(), uri)
    with _LOCK:
        env = _ENVS.get(key)
        if env is None:
            env = _ENVS[key] = _open(uri, s3)
    return env


class LmdbReader(Reader):
    """``LmdbReader(lmdb_folder_uri, options, s3)``: ``entries()`` reads labels, ``load()`` images."""

    layout: ClassVar[str] = "lmdb"

    def entries(self) -> list[Entry]:
        """Index on the driver with an environment closed afterwards (tasks open their own)."""
        key = (os.getpid(), _normalise(self.uri))
        cached = _ENVS.get(key)
        env = cached or _open(key[1], self.s3)
        try:
            return self._entries(env)
        finally:
            if cached is None:
                env.close()

    def _entries(self, env: lmdb.Environment) -> list[Entry]:
        with env.begin() as txn:
            raw = txn.get(b"num-samples")
            try:
                count = int(raw)
            except (TypeError, ValueError):
                raise ValueError(f"{self.uri}: expected an integer 'num-samples' key "
                                 f"(deep-text-recognition-benchmark LMDB), found {raw!r}") from None
            entries = []
            for i in range(1, count + 1):
                key = f"{i:09d}"
                label = txn.get(f"label-{key}".encode())
                if label is None:
                    entries.append(Entry(key=key, error=f"no key label-{key}"))
                    continue
                try:
                    entries.append(Entry(key=key, label=label.decode("utf-8")))
                except UnicodeDecodeError as e:
                    entries.append(Entry(key=key, error=f"label-{key} is not UTF-8: {e}"))
        return entries

    def release(self) -> None:
        with _LOCK:
            env = _ENVS.pop((os.getpid(), _normalise(self.uri)), None)
        if env is not None:
            env.close()

    def load(self, entry: Entry) -> bytes:
        with open_env(self.uri, self.s3).begin() as txn:
            data = txn.get(f"image-{entry.key}".encode())
        if data is None:
            raise FileNotFoundError(f"{self.uri}: no key image-{entry.key} in the LMDB")
        return bytes(data)
