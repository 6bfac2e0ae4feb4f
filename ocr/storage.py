"""URIs for local paths and ``s3://bucket/prefix``, through ``pyarrow.fs``.

S3 settings come from the usual AWS environment (credentials, region) plus
``AWS_ENDPOINT_URL`` (or ``OCR_S3_ENDPOINT``) for S3-compatible servers. Tasks running on
other processes get the driver's settings explicitly through :class:`S3Settings`, so a
pipeline behaves the same wherever its workers were started.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlparse

import pyarrow.fs as pafs


@dataclass(frozen=True)
class S3Settings:
    endpoint: str | None = None
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None

    @classmethod
    def from_env(cls) -> "S3Settings":
        env = os.environ
        return cls(
            endpoint=env.get("OCR_S3_ENDPOINT") or env.get("AWS_ENDPOINT_URL_S3")
            or env.get("AWS_ENDPOINT_URL"),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            access_key=env.get("AWS_ACCESS_KEY_ID"),
            secret_key=env.get("AWS_SECRET_ACCESS_KEY"),
        )


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


@lru_cache(maxsize=8)
def _s3_filesystem(settings: S3Settings) -> pafs.S3FileSystem:
    kwargs = {"region": settings.region}
    if settings.endpoint:
        parsed = urlparse(settings.endpoint)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "https"
    if settings.access_key:
        kwargs["access_key"] = settings.access_key
        kwargs["secret_key"] = settings.secret_key
    return pafs.S3FileSystem(**kwargs)


def filesystem(uri: str, s3: S3Settings | None = None) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding ``uri`` and the path to use with it."""
    uri = str(uri)
    if is_s3(uri):
        return _s3_filesystem(s3 or S3Settings.from_env()), uri[len("s3://"):].rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(uri))


def join(base: str, *parts: str) -> str:
    if is_s3(base):
        return posixpath.join(str(base).rstrip("/"), *parts)
    return os.path.join(base, *parts)


def basename(uri: str) -> str:
    return posixpath.basename(str(uri).rstrip("/")) if is_s3(uri) else os.path.basename(
        os.path.abspath(uri))


def read_bytes(uri: str, s3: S3Settings | None = None) -> bytes:
    if not is_s3(uri):
        return _read_local(uri)
    fs, path = filesystem(uri, s3)
    with fs.open_input_stream(path) as f:
        return f.read()


def _read_local(path: str) -> bytes:
    """A whole local file, read at the OS level (half the cost of ``open().read()`` for the
    small images ingest reads by the thousand)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = []
        while part := os.read(fd, 1 << 20):
            parts.append(part)
        return b"".join(parts)
    finally:
        os.close(fd)


def read_text(uri: str, s3: S3Settings | None = None) -> str:
    return read_bytes(uri, s3).decode("utf-8-sig")


def write_bytes(uri: str, data: bytes, s3: S3Settings | None = None) -> None:
    fs, path = filesystem(uri, s3)
    parent = posixpath.dirname(path) if is_s3(uri) else os.path.dirname(path)
    if parent:
        fs.create_dir(parent, recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(data)


def write_text(uri: str, text: str, s3: S3Settings | None = None) -> None:
    write_bytes(uri, text.encode("utf-8"), s3)


def exists(uri: str, s3: S3Settings | None = None) -> bool:
    fs, path = filesystem(uri, s3)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_dir(uri: str, s3: S3Settings | None = None) -> bool:
    fs, path = filesystem(uri, s3)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def makedirs(uri: str, s3: S3Settings | None = None) -> None:
    fs, path = filesystem(uri, s3)
    fs.create_dir(path, recursive=True)


def list_files(uri: str, s3: S3Settings | None = None, recursive: bool = True) -> list[str]:
    """Relative POSIX paths of the files under ``uri``, sorted."""
    fs, path = filesystem(uri, s3)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=recursive, allow_not_found=True))
    prefix = path.rstrip("/") + "/"
    rel = [i.path[len(prefix):].replace(os.sep, "/") for i in infos if i.type == pafs.FileType.File]
    return sorted(rel)


def delete_dir(uri: str, s3: S3Settings | None = None) -> None:
    fs, path = filesystem(uri, s3)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)


class SafeJoin:
    """``SafeJoin(root)(relative)``: ``root/relative`` if it stays inside ``root``, else None
    (absolute paths, ``..``, symbolic links that lead out; links inside resolve to their target).

    Keep one instance to join many paths: the root's real path, and each folder's real path
    and the names of its symbolic links, are looked up once (one directory scan per folder,
    not one ``lstat`` per file; :meth:`scan` does it ahead for a list of paths, so that an
    instance shipped to other processes joins there without touching the file system).
    ``s3://`` roots are joined as text.
    """

    def __init__(self, root: str):
        self.root = str(root)
        self.s3 = is_s3(self.root)
        self.base = "" if self.s3 else os.path.realpath(os.path.expanduser(self.root))
        self._folders: dict[str, tuple[str, frozenset[str]]] = {}

    def __call__(self, relative: str) -> str | None:
        rel = relative.replace("\\", "/") if "\\" in relative else relative
        if rel.startswith("/") or rel[1:2] == ":":
            return None
        if rel.startswith(".") or "/." in rel or "//" in rel:  # else normalising changes nothing
            rel = posixpath.normpath(rel)
            if rel == ".." or rel.startswith("../"):
                return None
        if self.s3:
            return join(self.root, rel)
        folder, _, name = rel.rpartition("/")
        real, links = self._folders.get(folder) or self._scan(folder)
        target = real + "/" + name
        if name in links:
            target = os.path.realpath(target)
        return target if target.startswith(self.base + "/") else None

    def scan(self, relatives) -> None:
        """Look up the folders of these relative paths now."""
        if not self.s3:
            for folder in {rel.rpartition("/")[0] for rel in relatives} - self._folders.keys():
                self._scan(folder)

    def _scan(self, folder: str) -> tuple[str, frozenset[str]]:
        real = os.path.realpath(self.base + "/" + folder) if folder else self.base
        try:
            with os.scandir(real) as entries:
                links = frozenset(e.name for e in entries if e.is_symlink())
        except OSError:  # missing or unreadable: its files fail when they are loaded
            links = frozenset()
        self._folders[folder] = real, links
        return real, links
