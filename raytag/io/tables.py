"""Reading the tables a report needs: results (partitioned or single file), references, groups.

Pure pyarrow: no Ray, so that ``raytag report`` runs anywhere the results can be read.

- Results as written by ``raytag run``: a folder of hive partitions
  ``instance=<int>/slice_label=<str>/*.parquet``; files and folders starting with ``_`` or
  ``.`` (the run's staging area and markers) are ignored, so a run in progress or an
  interrupted one shows only committed chunks.
- A single Parquet file (the generator's ``truth.parquet``, a manual-analysis table, the
  demo's results copied elsewhere) is read as it is.
- Groups: a CSV with an ``eid`` column and one 0/1 (or true/false, yes/no) column per flag.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from raytag.io import storage

__all__ = ["PARTITION_COLS", "read_results", "read_groups"]

#: Hive partition columns of the pipeline's results folder, outermost first.
PARTITION_COLS = ["instance", "slice_label"]
_PARTITIONING = pads.partitioning(
    pa.schema([("instance", pa.int64()), ("slice_label", pa.string())]), flavor="hive")

_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}


def read_results(uri: str, columns: list[str] | None = None) -> pa.Table:
    """A results (or reference) table from a partitioned folder or a single Parquet file.

    Raises ``FileNotFoundError`` naming ``uri`` when nothing is there.
    """
    sp = storage.resolve(uri)
    info = sp.filesystem.get_file_info(sp.path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no results at {uri}")
    if info.type == pafs.FileType.File:
        table = storage.read_table(uri)
        return table.select(columns) if columns else table
    dataset = pads.dataset(sp.path, filesystem=sp.filesystem, format="parquet",
                           partitioning=_PARTITIONING,
                           exclude_invalid_files=True, ignore_prefixes=["_", "."])
    return dataset.to_table(columns=columns)


def _flag(value: str, column: str, line: int) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"groups CSV column {column!r} line {line}: {value!r} is not a 0/1 flag")


def read_groups(uri: str) -> dict[str, dict[str, bool]]:
    """Groups CSV -> ``{eid: {flag: bool}}`` (flags in file order; eids as strings).

    Raises ``ValueError`` for a missing ``eid`` column, no flag columns, a repeated eid or a
    value that is not a flag, naming the column and line.
    """
    table = pacsv.read_csv(io.BytesIO(storage.read_bytes(uri)),
                           convert_options=pacsv.ConvertOptions(
                               column_types={}, strings_can_be_null=False,
                               auto_dict_encode=False),
                           read_options=pacsv.ReadOptions(autogenerate_column_names=False))
    table = table.cast(pa.schema([(n, pa.string()) for n in table.column_names]))
    if "eid" not in table.column_names:
        raise ValueError(f"groups CSV {uri} has no 'eid' column (columns: {table.column_names})")
    flags = [c for c in table.column_names if c != "eid"]
    if not flags:
        raise ValueError(f"groups CSV {uri} has no flag columns besides 'eid'")
    out: dict[str, dict[str, bool]] = {}
    for line, row in enumerate(table.to_pylist(), start=2):
        eid = (row["eid"] or "").strip()
        if eid in out:
            raise ValueError(f"groups CSV line {line}: eid {eid} appears more than once")
        out[eid] = {f: _flag(row[f] or "", f, line) for f in flags}
    return out
