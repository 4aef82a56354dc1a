"""Exactly-once output for cohort runs (``raytag run``): every results file is committed
by a record that says which participants (and which versions of their inputs) it holds.

Layout under the output URI (a local folder or an ``s3://`` prefix)::

    results/part-<id>.parquet       the results table: flat Parquet files, nothing else
    _raytag/intents/<id>.json       "about to write these files" (removed once committed)
    _raytag/staging/part-<id>.parquet   a file being written (moved into results/ on commit)
    _raytag/commits/<id>.json       a committed file: its participants, fingerprints, counts

``<id>`` is ``<run start, ns>-<sequence>``: ids sort by time, so the newest commit of a
participant is the one that counts. A participant's rows are always in one file.

Writing a file (:meth:`Ledger.write`): intent -> staging file -> commit record -> move
into ``results/`` -> intent removed. Readers of ``results/`` therefore only ever see
committed files. :meth:`Ledger.recover` finishes or undoes whatever a killed run left:
an intent with a commit record has its move completed; one without has its staging file
removed. :meth:`Ledger.compact` drops the rows of participants that a newer commit
replaced (a changed input, a retried failure): files wholly replaced are deleted, partly
replaced ones rewritten. Files are only ever deleted when raytag's own records name them
(intents and commits): foreign files in the output are never touched.

Listing errors propagate (after :func:`raytag.io.storage.retrying`'s transient retries):
a failed listing is never read as "no commits".
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from raytag.io import storage

__all__ = ["Ledger", "Commit", "Entry", "RESULTS_DIR", "META_DIR", "participant_key"]

RESULTS_DIR = "results"
#: Rows per Parquet row group of a results file.
ROW_GROUP_ROWS = 256
META_DIR = "_raytag"

#: A participant visit: ``(eid, instance, array)`` from the zip name, or ``(name, None,
#: None)`` when the name does not parse.
Key = tuple


def participant_key(eid: str, instance: int | None, array: int | None) -> tuple:
    return (str(eid), instance, array)


@dataclass
class Entry:
    """One participant in a commit: its key, input URI and fingerprint, and row outcome
    (``status`` counts, failure ``reasons``)."""

    key: tuple
    uri: str
    fingerprint: str
    rows: int
    status: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"key": list(self.key), "uri": self.uri, "fingerprint": self.fingerprint,
                "rows": self.rows, "status": self.status, "reasons": self.reasons}

    @classmethod
    def from_json(cls, d: dict) -> Entry:
        return cls(tuple(d["key"]), d["uri"], d["fingerprint"], d["rows"],
                   d.get("status", {}), d.get("reasons", []))


@dataclass
class Commit:
    """A committed results file (``file`` relative to the output) and its participants."""

    id: str
    file: str
    rows: int
    entries: list[Entry]


class Ledger:
    """The commit state of one output location."""

    def __init__(self, output_uri: str):
        self.output = str(output_uri).rstrip("/")
        sp = storage.resolve(self.output)
        self.fs, self.root = sp.filesystem, sp.path
        self.run_id = f"{time.time_ns():020d}"
        self._seq = 0

    # -- paths and listing -------------------------------------------------------------

    def uri(self, rel: str) -> str:
        return storage.join(self.output, rel) if rel else self.output

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def _list(self, rel: str, suffix: str = "") -> list[str]:
        """Relative paths of files under ``rel`` (``""``: the whole output; missing folder:
        none). Errors raise."""
        base = self._path(rel)
        infos = storage.list_file_infos(self.uri(rel), suffix, allow_not_found=True)
        prefix = "s3://" if storage.is_remote(self.output) else ""
        names = [i.uri[len(prefix) + len(base):].lstrip("/") for i in infos]
        return [f"{rel}/{n}" if rel else n for n in names]

    def _read_json(self, rel: str) -> dict:
        return json.loads(storage.read_bytes(self.uri(rel)))

    def _delete(self, rel: str) -> None:
        try:
            storage.retrying(lambda: self.fs.delete_file(self._path(rel)))
        except FileNotFoundError:
            pass

    def _exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self._path(rel)).type == pafs.FileType.File

    # -- state -----------------------------------------------------------------------------

    def commits(self) -> list[Commit]:
        """Every commit record, oldest first."""
        out = []
        for rel in self._list(f"{META_DIR}/commits", ".json"):
            d = self._read_json(rel)
            out.append(Commit(d["id"], d["file"], d["rows"],
                              [Entry.from_json(e) for e in d["entries"]]))
        return sorted(out, key=lambda c: c.id)

    def is_raytag_output(self) -> bool:
        """Whether the output already holds raytag records (commits or intents)."""
        return bool(self._list(f"{META_DIR}/commits", ".json")
                    or self._list(f"{META_DIR}/intents", ".json"))

    def latest(self, commits: list[Commit] | None = None) -> dict[tuple, tuple[Commit, Entry]]:
        """Each participant's newest committed entry (and its commit)."""
        out: dict[tuple, tuple[Commit, Entry]] = {}
        for c in commits if commits is not None else self.commits():
            for e in c.entries:
                out[e.key] = (c, e)  # oldest first: later commits overwrite
        return out

    def foreign_files(self) -> list[str]:
        """Files in the output that raytag's records do not name (left alone, not read)."""
        ours = {c.file for c in self.commits()}
        return [rel for rel in self._list(RESULTS_DIR) if rel not in ours] + [
            rel for rel in self._list("") if not rel.startswith((f"{RESULTS_DIR}/",
                                                                  f"{META_DIR}/"))]

    def committed_files(self) -> list[str]:
        """URIs of the committed results files (what a reader should read)."""
        return [self.uri(c.file) for c in self.commits()]

    # -- writing ---------------------------------------------------------------------------

    def _next_id(self) -> str:
        self._seq += 1
        return f"{self.run_id}-{self._seq:06d}"

    def write(self, table: pa.Table, entries: list[Entry]) -> Commit:
        """Commit ``table`` (rows of ``entries``' participants, all of each) as one file."""
        cid = self._next_id()
        name = f"part-{cid}.parquet"
        staging, final = f"{META_DIR}/staging/{name}", f"{RESULTS_DIR}/{name}"
        intent = {"id": cid, "staging": staging, "file": final}
        storage.write_bytes(self.uri(f"{META_DIR}/intents/{cid}.json"),
                            json.dumps(intent).encode())
        sink = pa.BufferOutputStream()
        # small row groups: a reader that wants a few slices' landmarks (the report's QC
        # cases) reads ~14 MB, not the whole file's landmarks column
        pq.write_table(table, sink, row_group_size=ROW_GROUP_ROWS)
        storage.write_bytes(self.uri(staging), sink.getvalue().to_pybytes())
        record = {"id": cid, "file": final, "rows": table.num_rows,
                  "entries": [e.to_json() for e in entries]}
        storage.write_bytes(self.uri(f"{META_DIR}/commits/{cid}.json"),
                            json.dumps(record).encode())
        self._finish(intent)
        return Commit(cid, final, table.num_rows, entries)

    def _finish(self, intent: dict) -> None:
        """Move a committed intent's staging file into place, then drop the intent."""
        if self._exists(intent["staging"]):
            parent = self._path(intent["file"]).rsplit("/", 1)[0]
            self.fs.create_dir(parent, recursive=True)
            storage.retrying(lambda: self.fs.move(self._path(intent["staging"]),
                                                  self._path(intent["file"])))
        self._delete(f"{META_DIR}/intents/{intent['id']}.json")

    # -- recovery and compaction ---------------------------------------------------------

    def recover(self) -> int:
        """Complete or undo what a killed run left (see the module docstring); returns the
        number of files removed. Deletes only files that raytag's intents name."""
        committed = {c.id for c in self.commits()}
        removed = 0
        for rel in self._list(f"{META_DIR}/intents", ".json"):
            intent = self._read_json(rel)
            if intent["id"] in committed:
                self._finish(intent)
                continue
            for name in (intent["staging"], intent["file"]):
                if self._exists(name):
                    self._delete(name)
                    removed += 1
            self._delete(rel)
        return removed

    def compact(self) -> int:
        """Drop rows that newer commits replaced; returns the participants dropped."""
        commits = self.commits()
        latest = self.latest(commits)
        dropped = 0
        for c in commits:
            stale = [e for e in c.entries if latest[e.key][0].id != c.id]
            if not stale:
                continue
            dropped += len(stale)
            keep = [e for e in c.entries if latest[e.key][0].id == c.id]
            if keep:
                table = storage.read_table(self.uri(c.file))
                uris = pa.array([e.uri for e in keep])
                self.write(table.filter(pc.is_in(table["source_uri"], value_set=uris)), keep)
            # the replacement is committed (or nothing is left): now the old file can go
            self._delete(c.file)
            self._delete(f"{META_DIR}/commits/{c.id}.json")
        return dropped
