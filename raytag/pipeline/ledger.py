"""Exactly-once output for cohort runs: chunks written to staging, moved, then committed.

Layout under the output URI::

    instance=2/slice_label=mid/c000003_<task>.parquet   results (hive-partitioned)
    _raytag/staging/c000003/...                          a chunk being written
    _raytag/commits/c000003.json                         the chunk's commit marker

A chunk's rows become visible only when its files are moved out of staging, and count as
done only once its marker (listing its ``(eid, instance)`` keys and files) is written.
On start, :meth:`Ledger.recover` deletes every staging folder and every results file of a
chunk without a marker (a run killed mid-chunk), so a rerun redoes exactly the missing
participants: one row per slice, no duplicates, no gaps. File names are deterministic per
chunk (``c<chunk>_...``), which is what makes the clean-up exact.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pyarrow.fs as pafs

from raytag.io import storage

__all__ = ["Ledger", "ChunkCommit", "chunk_prefix"]

_META = "_raytag"
_CHUNK_RE = re.compile(r"^c(\d{6})_")


def chunk_prefix(chunk: int) -> str:
    return f"c{chunk:06d}"


@dataclass
class ChunkCommit:
    chunk: int
    keys: list[tuple[str, int | None]]
    files: list[str]
    rows: int
    status_counts: dict[str, int] = field(default_factory=dict)


class Ledger:
    """The commit state of one output location (local folder or ``s3://`` prefix)."""

    def __init__(self, output_uri: str):
        self.output = str(output_uri).rstrip("/")
        sp = storage.resolve(self.output)
        self.fs, self.root = sp.filesystem, sp.path

    # -- paths ----------------------------------------------------------------------------

    def staging_uri(self, chunk: int) -> str:
        return storage.join(self.output, _META, "staging", chunk_prefix(chunk))

    def _commit_uri(self, chunk: int) -> str:
        return storage.join(self.output, _META, "commits", f"{chunk_prefix(chunk)}.json")

    def _rel(self, path: str) -> str:
        return path[len(self.root):].lstrip("/")

    def _files(self, under: str) -> list[str]:
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(under, recursive=True,
                                                            allow_not_found=True))
        except (OSError, ValueError):
            return []
        return [i.path for i in infos if i.type == pafs.FileType.File]

    # -- state ----------------------------------------------------------------------------

    def commits(self) -> list[ChunkCommit]:
        out = []
        for path in self._files(f"{self.root}/{_META}/commits"):
            with self.fs.open_input_stream(path) as f:
                d = json.loads(f.read())
            out.append(ChunkCommit(d["chunk"], [tuple(k) for k in d["keys"]], d["files"],
                                   d["rows"], d.get("status_counts", {})))
        return sorted(out, key=lambda c: c.chunk)

    def done_keys(self) -> set[tuple[str, int | None]]:
        return {k for c in self.commits() for k in c.keys}

    def next_chunk(self) -> int:
        seen = [c.chunk for c in self.commits()]
        for path in self._files(self.root):
            m = _CHUNK_RE.match(path.rsplit("/", 1)[-1])
            if m:
                seen.append(int(m.group(1)))
        return max(seen, default=-1) + 1

    def recover(self) -> int:
        """Delete staging folders and results files of uncommitted chunks; returns the count."""
        committed = {c.chunk for c in self.commits()}
        removed = 0
        staging = f"{self.root}/{_META}/staging"
        for path in self._files(staging):
            self.fs.delete_file(path)
            removed += 1
        for path in self._files(self.root):
            if f"/{_META}/" in path:
                continue
            m = _CHUNK_RE.match(path.rsplit("/", 1)[-1])
            if m and int(m.group(1)) not in committed:
                self.fs.delete_file(path)
                removed += 1
        return removed

    # -- committing -------------------------------------------------------------------------

    def commit(self, chunk: int, keys, status_counts: dict[str, int], rows: int) -> list[str]:
        """Move a chunk's staged files into place, then write its marker; returns the files."""
        staged = storage.resolve(self.staging_uri(chunk)).path
        moved = []
        for path in sorted(self._files(staged)):
            rel = path[len(staged):].lstrip("/")
            dest = f"{self.root}/{rel}"
            parent = dest.rsplit("/", 1)[0]
            self.fs.create_dir(parent, recursive=True)
            self.fs.move(path, dest)  # a rename locally; copy + delete on S3
            moved.append(rel)
        try:  # empty partition folders left behind by the moves (local filesystems)
            self.fs.delete_dir(staged)
        except (OSError, FileNotFoundError):
            pass
        marker = {"chunk": chunk, "keys": [list(k) for k in sorted(keys, key=str)],
                  "files": moved, "rows": rows, "status_counts": status_counts}
        storage.write_bytes(self._commit_uri(chunk), json.dumps(marker).encode())
        return moved
