"""Layout "lmdb": a deep-text-recognition-benchmark LMDB (``create_lmdb_dataset.py``).

A folder holding ``data.mdb`` whose keys are::

    b"num-samples"      -> b"2"
    b"image-000000001"  -> encoded image bytes      b"label-000000001" -> "여기가".encode()
    b"image-000000002"  -> ...                      b"label-000000002" -> ...

:meth:`LmdbReader.entries` lists the ``label-`` and ``image-`` keys (labels read, images never)
and yields ``Entry(key="000000001", path=None, label=...)`` for each index found; a missing
label is an error entry. ``num-samples`` is checked against the keys, not trusted: an index
beyond it is an error entry, and claimed samples with no key at all are reported by one error
entry keyed ``num-samples`` (and a logged warning) that gives the numbers, so a corrupt count
neither loops nor loses samples unseen. :meth:`LmdbReader.load` reads ``image-<key>``, refused
(``FileTooLarge``) when longer than ``options.max_file_bytes``.

Environments are opened read-only without locks or readahead, once per process, and kept
in a module-level cache (the reader itself is pickled to Ray tasks, so it holds none). For an
``s3://`` URI, ``data.mdb`` is first downloaded to
``<tempdir>/ocr-lmdb-cache-<uid>/<sha1 of the URI>/`` (to a temporary name, then renamed),
and reused while its size and modification time match the object's. The cache folder is
this user's alone (mode 0700, checked on every use: one owned by another user, or open to
others, is refused), so no one else can plant a ``data.mdb`` there. ``lock.mdb`` is not needed:
a lock-free read-only environment never opens it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import tempfile
import threading
import uuid
from typing import ClassVar

import lmdb
import pyarrow.fs as pafs

from ocr import storage
from ocr.data.formats.base import Entry, Reader
from ocr.data.formats.capped import check_file_size
from ocr.storage import S3Settings

log = logging.getLogger(__name__)

KEY_DIGITS = 9  # image-000000001, label-000000001
_ENVS: dict[tuple[int, str], lmdb.Environment] = {}
_LOCK = threading.Lock()


def private_dir(path: str) -> str:
    """``path`` as a folder of this user alone: made with mode 0700 when missing; refused
    (PermissionError) when it is there but not a real folder (a link, a file), owned by another
    user, or open to others (mode beyond 0700), as one planted in a shared /tmp would be."""
    try:
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)          # whatever the umask
    except FileExistsError:
        pass
    info, uid = os.lstat(path), os.getuid()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & 0o077:
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a link or file"
        raise PermissionError(f"LMDB cache {path}: expected a folder owned by uid {uid} with mode "
                              f"0700, found {kind} owned by uid {info.st_uid} with mode "
                              f"{stat.S_IMODE(info.st_mode):04o}; remove it or use another TMPDIR")
    return path


def cache_dir(uri: str) -> str:
    """The local folder an ``s3://`` LMDB is downloaded to: ``<tempdir>/ocr-lmdb-cache-<uid>/
    <sha1 of the URI>``, inside a folder only this user can reach (:func:`private_dir`)."""
    root = private_dir(os.path.join(tempfile.gettempdir(), f"ocr-lmdb-cache-{os.getuid()}"))
    return os.path.join(root, hashlib.sha1(uri.encode("utf-8")).hexdigest())


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
    os.makedirs(folder, mode=0o700, exist_ok=True)
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


def indexed_keys(txn, prefix: bytes, values: bool = True):
    """(index, value or None) of every key ``<prefix><9 digits>``, in index order (LMDB keeps
    keys sorted, and 9 zero-padded digits sort as numbers); other keys are skipped."""
    cursor = txn.cursor()
    if not cursor.set_range(prefix):
        return
    for item in cursor.iternext(keys=True, values=values):
        key, value = item if values else (item, None)
        if not key.startswith(prefix):
            return
        index = key[len(prefix):]
        if len(index) == KEY_DIGITS and index.isdigit():
            yield index.decode(), value


def label_entry(key: str, label: bytes) -> Entry:
    try:
        return Entry(key=key, label=label.decode("utf-8"))
    except UnicodeDecodeError as e:
        return Entry(key=key, error=f"label-{key} is not UTF-8: {e}")


def beyond(key: str, claimed: int) -> Entry:
    return Entry(key=key, error=f"sample {key} is beyond num-samples: expected keys 000000001 to "
                                f"{claimed:09d}, found {key}")


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
        """One entry per index that has a label or an image key, in index order, checked
        against ``num-samples`` (which is read, not trusted: the keys are listed)."""
        with env.begin() as txn:
            claimed = self._num_samples(txn)
            found = {key: label_entry(key, label) for key, label in indexed_keys(txn, b"label-")}
            for key, _ in indexed_keys(txn, b"image-", values=False):
                found.setdefault(key, Entry(key=key, error=f"no key label-{key}"))
        entries = [found[key] if int(key) <= claimed else beyond(key, claimed) for key in sorted(found)]
        absent = claimed - sum(int(key) <= claimed for key in found)
        if absent:
            entries.append(self._absent_samples(claimed, absent, found))
        return entries

    def _num_samples(self, txn) -> int:
        raw = txn.get(b"num-samples")
        try:
            count = int(raw)
        except (TypeError, ValueError):
            count = -1
        if count < 0:
            raise ValueError(f"{self.uri}: expected a non-negative integer 'num-samples' key "
                             f"(deep-text-recognition-benchmark LMDB), found {raw!r}")
        return count

    def _absent_samples(self, claimed: int, absent: int, found: dict) -> Entry:
        """The reject (keyed ``num-samples``) that reports claimed samples with no key at all."""
        first = next(i for i in range(1, claimed + 1) if f"{i:09d}" not in found)
        why = (f"num-samples is {claimed:,} but the LMDB holds label or image keys for only "
               f"{claimed - absent:,} of samples 1 to {claimed:,}: {absent:,} are absent "
               f"(the first {first:09d})")
        log.warning("%s: %s", self.uri, why)
        return Entry(key="num-samples", error=why)

    def release(self) -> None:
        with _LOCK:
            env = _ENVS.pop((os.getpid(), _normalise(self.uri)), None)
        if env is not None:
            env.close()

    def load(self, entry: Entry) -> bytes:
        """The image's bytes; its length (a view of the map, nothing copied yet) is checked
        against ``options.max_file_bytes`` first."""
        key = f"image-{entry.key}"
        with open_env(self.uri, self.s3).begin(buffers=True) as txn:
            data = txn.get(key.encode())
            if data is None:
                raise FileNotFoundError(f"{self.uri}: no key {key} in the LMDB")
            check_file_size(f"{self.uri} {key}", len(data), self.options.max_file_bytes)
            return bytes(data)
