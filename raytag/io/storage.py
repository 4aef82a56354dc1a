"""Storage URIs -> ``pyarrow.fs`` filesystems: the one place raytag touches local disk or S3.

Accepted URIs:

- a local path, absolute or relative (``cohort/``, ``/data/x.zip``) or ``file:///data/x.zip``;
- ``s3://bucket/key``.

S3 credentials and the endpoint come from the standard AWS environment:
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` /
``AWS_DEFAULT_REGION``, and ``AWS_ENDPOINT_URL_S3`` (preferred) or ``AWS_ENDPOINT_URL``.
pyarrow does not read the endpoint variables itself, so they are passed explicitly as
``endpoint_override`` (with the scheme split out: ``http://127.0.0.1:5000`` -> ``scheme="http"``).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from raytag.failures import Reason

__all__ = [
    "StorageError",
    "StoragePath",
    "resolve",
    "read_bytes",
    "write_bytes",
    "write_table",
    "read_table",
    "list_files",
    "list_file_infos",
    "file_info",
    "exists",
    "FileInfo",
    "retrying",
    "join",
    "basename",
    "is_remote",
]


class StorageError(OSError):
    """A URI that cannot be resolved, read or written; the message names the URI and
    ``reason`` says what kind of problem it is (:data:`Reason.STORAGE_ERROR` is transient)."""

    def __init__(self, message: str, reason: Reason = Reason.STORAGE_ERROR):
        super().__init__(message)
        self.reason = reason


#: Attempts for a storage call that fails transiently, and the first back-off (doubling).
RETRIES = 4
BACKOFF_S = 0.2
# pyarrow reports S3 trouble as OSError text; these mean "try again" (AWS error codes,
# HTTP 5xx, network), anything else (403, no such key, a bad path) does not.
_TRANSIENT_MARKERS = ("SLOW_DOWN", "SlowDown", "Throttl", "RequestTimeout", "Timeout",
                      "timed out", "InternalError", "ServiceUnavailable", "503", "500",
                      "Connection", "connection", "NETWORK", "Network", "Broken pipe",
                      "temporarily unavailable")


def is_transient(exc: BaseException) -> bool:
    """Whether a storage exception is worth retrying."""
    if isinstance(exc, StorageError):
        return exc.reason == Reason.STORAGE_ERROR and _looks_transient(str(exc))
    return isinstance(exc, OSError) and _looks_transient(str(exc))


def _looks_transient(text: str) -> bool:
    return any(m in text for m in _TRANSIENT_MARKERS)


def retrying(call: Callable, *, retries: int = RETRIES, backoff_s: float = BACKOFF_S,
             sleep: Callable[[float], None] = time.sleep):
    """``call()``, retried with exponential back-off (and jitter) while it fails transiently
    (:func:`is_transient`); the last exception propagates."""
    for attempt in range(retries):
        try:
            return call()
        except (OSError, ValueError) as exc:
            if attempt == retries - 1 or not is_transient(exc):
                raise
            sleep(backoff_s * 2**attempt * (1 + 0.25 * random.random()))
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class FileInfo:
    """A listed file: ``uri``, ``size`` (bytes) and ``mtime_ns`` (None where unknown).

    ``problem`` says why the file must not be read (a name that is not UTF-8, a symlink
    leaving the listed folder); ``uri`` is then a printable stand-in for the name."""

    uri: str
    size: int | None
    mtime_ns: int | None
    problem: str | None = None

    @property
    def fingerprint(self) -> str:
        """``<size>-<mtime ns>``: changes when the object is replaced."""
        return f"{self.size}-{self.mtime_ns}"


@dataclass(frozen=True)
class StoragePath:
    """A resolved URI: the filesystem and the path inside it (``bucket/key`` on S3)."""

    filesystem: pafs.FileSystem
    path: str
    uri: str


def is_remote(uri: str) -> bool:
    """True for object-storage URIs (``s3://``)."""
    return str(uri).startswith("s3://")


def _s3_endpoint_from_env() -> tuple[str | None, str | None]:
    """``(endpoint_override, scheme)`` from ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``."""
    url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        return None, None
    parts = urlsplit(url if "://" in url else f"https://{url}")
    return parts.netloc, parts.scheme or "https"


@lru_cache(maxsize=8)
def _s3_filesystem(
    endpoint: str | None,
    scheme: str | None,
    region: str | None,
    access_key: str | None,
    secret_key: str | None,
    session_token: str | None,
) -> pafs.S3FileSystem:
    # Cached per configuration: building an S3FileSystem costs a credentials lookup.
    kwargs: dict = {}
    if endpoint:
        kwargs["endpoint_override"] = endpoint
        kwargs["scheme"] = scheme or "https"
    if region:
        kwargs["region"] = region
    if access_key and secret_key:
        kwargs["access_key"] = access_key
        kwargs["secret_key"] = secret_key
        if session_token:
            kwargs["session_token"] = session_token
    return pafs.S3FileSystem(**kwargs)


def s3_filesystem() -> pafs.S3FileSystem:
    """An ``S3FileSystem`` configured from the AWS environment variables (see module doc)."""
    endpoint, scheme = _s3_endpoint_from_env()
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if endpoint and not region:
        # A custom endpoint (MinIO, moto, Ceph) has no region to discover; without one
        # pyarrow probes AWS for the bucket's region and fails off-line.
        region = "us-east-1"
    return _s3_filesystem(
        endpoint,
        scheme,
        region,
        os.environ.get("AWS_ACCESS_KEY_ID"),
        os.environ.get("AWS_SECRET_ACCESS_KEY"),
        os.environ.get("AWS_SESSION_TOKEN"),
    )


def resolve(uri: str | os.PathLike) -> StoragePath:
    """Turn a URI or local path into ``(filesystem, path)``.

    Local paths are made absolute; ``s3://bucket/key`` becomes ``bucket/key`` on an
    :func:`s3_filesystem`. Any other scheme raises :class:`StorageError`.
    """
    text = os.fspath(uri)
    if text.startswith("s3://"):
        path = text[len("s3://") :].strip("/")
        if not path:
            raise StorageError(f"{text!r}: an S3 URI needs a bucket (s3://bucket/key)")
        return StoragePath(s3_filesystem(), path, text)
    if text.startswith("file://"):
        text = urlsplit(text).path
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise StorageError(f"{text!r}: unsupported storage scheme {scheme!r} (use a path or s3://)")
    return StoragePath(pafs.LocalFileSystem(), os.path.abspath(text), os.fspath(uri))


def read_bytes(uri: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    """Read a whole object; refuse objects larger than ``max_bytes`` before reading them."""
    sp = resolve(uri)

    def read() -> bytes:
        info = sp.filesystem.get_file_info(sp.path)
        if info.type == pafs.FileType.NotFound:
            raise StorageError(f"{sp.uri}: no such file or object", Reason.MISSING_OBJECT)
        if info.type != pafs.FileType.File:
            raise StorageError(f"{sp.uri}: not a file", Reason.MISSING_OBJECT)
        if max_bytes is not None and info.size is not None and info.size > max_bytes:
            raise StorageError(f"{sp.uri}: {info.size} bytes exceeds the limit of {max_bytes}",
                               Reason.OVER_LIMITS)
        with sp.filesystem.open_input_stream(sp.path) as f:
            return f.read()

    try:
        return retrying(read)
    except StorageError:
        raise
    except (OSError, ValueError) as exc:
        raise StorageError(f"{sp.uri}: cannot read: {exc}") from exc


def _resolve_for_writing(uri: str | os.PathLike) -> StoragePath:
    sp = resolve(uri)
    parent = sp.path.rsplit("/", 1)[0]
    if parent and parent != sp.path:
        sp.filesystem.create_dir(parent, recursive=True)
    return sp


def write_bytes(uri: str | os.PathLike, data: bytes) -> None:
    """Write a whole object, creating parent folders (local) as needed."""
    sp = _resolve_for_writing(uri)

    def write() -> None:
        with sp.filesystem.open_output_stream(sp.path) as f:
            f.write(data)

    retrying(write)


def write_table(table: pa.Table, uri: str | os.PathLike) -> None:
    """Write one Parquet file, creating parent folders (local) as needed."""
    sp = _resolve_for_writing(uri)
    pq.write_table(table, sp.path, filesystem=sp.filesystem)


def read_table(uri: str | os.PathLike) -> pa.Table:
    """Read a Parquet file or a (partitioned) folder of them."""
    sp = resolve(uri)
    try:
        return pq.read_table(sp.path, filesystem=sp.filesystem)
    except (OSError, ValueError) as exc:
        raise StorageError(f"{sp.uri}: cannot read Parquet: {exc}") from exc


def join(base: str, *parts: str) -> str:
    """Join URI components with ``/`` (works for local paths and ``s3://``)."""
    out = str(base).rstrip("/")
    for p in parts:
        out = f"{out}/{str(p).strip('/')}"
    return out


def basename(uri: str) -> str:
    """The last path component of a URI or path."""
    return str(uri).rstrip("/").rsplit("/", 1)[-1]


def _stat(uri: str | os.PathLike):
    """``(resolved path, pyarrow FileInfo)`` of ``uri`` (transient errors retried, others
    raised as :class:`StorageError`)."""
    sp = resolve(uri)
    try:
        return sp, retrying(lambda: sp.filesystem.get_file_info(sp.path))
    except (OSError, ValueError) as exc:
        raise StorageError(f"{sp.uri}: cannot stat: {exc}") from exc


def exists(uri: str | os.PathLike) -> bool:
    """Whether ``uri`` is an existing file (transient errors retried, others raised)."""
    return _stat(uri)[1].type == pafs.FileType.File


def file_info(uri: str | os.PathLike) -> FileInfo:
    """One file's :class:`FileInfo`; :class:`StorageError` when it is not a file."""
    sp, info = _stat(uri)
    if info.type != pafs.FileType.File:
        raise StorageError(f"{sp.uri}: no such file or object", Reason.MISSING_OBJECT)
    return FileInfo(str(uri), info.size, info.mtime_ns)


def _list_local(root: str, suffix: str, allow_not_found: bool,
                allow_outside_links: bool) -> list[FileInfo]:
    """Local listing that survives any file name: walked as bytes (pyarrow's listing dies
    on the first name that is not UTF-8), symlinked folders not followed."""
    broot = os.fsencode(root)
    if not os.path.isdir(broot):
        if allow_not_found and not os.path.exists(broot):
            return []
        raise StorageError(f"{root}: not a folder" if os.path.exists(broot)
                           else f"{root}: no such folder", Reason.MISSING_OBJECT)
    real_root = os.path.realpath(broot)
    out = []
    bsuffix = os.fsencode(suffix)
    for dirpath, _, filenames in os.walk(broot, onerror=_raise_listing):
        for bname in filenames:
            if suffix and not bname.lower().endswith(bsuffix.lower()):
                continue
            bpath = os.path.join(dirpath, bname)
            try:
                path = bpath.decode("utf-8")
            except UnicodeDecodeError:
                shown = bpath.decode("utf-8", errors="backslashreplace")
                out.append(FileInfo(shown, None, None, "file name is not valid UTF-8"))
                continue
            if os.path.islink(bpath) and not allow_outside_links:
                target = os.path.realpath(bpath)
                if os.path.commonpath([real_root, target]) != real_root:
                    out.append(FileInfo(path, None, None, "symlink pointing outside the "
                                        "input folder (refused; --allow-outside-links)"))
                    continue
            try:
                st = os.stat(bpath)
            except OSError as exc:
                out.append(FileInfo(path, None, None, f"cannot stat: {exc.strerror}"))
                continue
            out.append(FileInfo(path, st.st_size, st.st_mtime_ns))
    return sorted(out, key=lambda f: f.uri)


def _raise_listing(exc: OSError) -> None:
    raise StorageError(f"{exc.filename!r}: cannot list: {exc.strerror}")


def list_file_infos(uri: str | os.PathLike, suffix: str = "",
                    allow_not_found: bool = False,
                    allow_outside_links: bool = False) -> list[FileInfo]:
    """Files under a folder or prefix (recursive), sorted by URI, filtered by suffix
    (case-insensitive), with size and modification time. Listing errors raise
    :class:`StorageError` (after transient retries), never an empty list;
    ``allow_not_found`` makes a missing folder empty. Local folders: names that are not
    UTF-8 and symlinks leaving the folder come back with ``problem`` set (unless
    ``allow_outside_links``), never as a crash."""
    sp = resolve(uri)
    if isinstance(sp.filesystem, pafs.LocalFileSystem):
        return _list_local(sp.path, suffix, allow_not_found, allow_outside_links)
    selector = pafs.FileSelector(sp.path, recursive=True, allow_not_found=allow_not_found)
    try:
        infos = retrying(lambda: sp.filesystem.get_file_info(selector))
    except (OSError, ValueError) as exc:
        raise StorageError(f"{sp.uri}: cannot list: {exc}") from exc
    prefix = "s3://" if is_remote(sp.uri) else ""
    return sorted(
        (FileInfo(prefix + i.path, i.size, i.mtime_ns)
         for i in infos if i.type == pafs.FileType.File
         and i.path.lower().endswith(suffix.lower())),
        key=lambda f: f.uri)


def list_files(uri: str | os.PathLike, suffix: str = "") -> list[str]:
    """URIs of the files under a folder or prefix (recursive), sorted, filtered by suffix."""
    return [f.uri for f in list_file_infos(uri, suffix)]
