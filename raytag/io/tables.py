"""Reading the tables a report needs: results (partitioned or single file), references, groups.

Pure pyarrow: no Ray, so that ``raytag report`` runs anywhere the results can be read.

- Results as written by ``raytag run``: an output folder with the table in ``results/``
  and raytag's ledger in ``_raytag/`` (:mod:`raytag.io.ledger`): exactly the committed
  files are read, so a run in progress, an interrupted one, or files someone else put
  there never show. ``<output>/results`` itself reads as a plain folder of Parquet files.
- Any other folder of Parquet files (also the earlier hive-partitioned layout
  ``instance=<int>/slice_label=<str>/``); names starting with ``_`` or ``.`` are ignored.
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

__all__ = ["read_results", "iter_results", "results_dataset", "read_groups"]

#: The earlier layout's hive partitions (still read).
_PARTITIONING = pads.partitioning(
    pa.schema([("instance", pa.int64()), ("slice_label", pa.string())]), flavor="hive")

_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}


def read_results(uri: str, columns: list[str] | None = None) -> pa.Table:
    """A results (or reference) table from a partitioned folder or a single Parquet file.

    Raises ``FileNotFoundError`` naming ``uri`` when nothing is there.
    """
    dataset = results_dataset(uri)
    if dataset is None:
        return _empty(columns)
    return _conform(dataset.to_table(columns=_present(dataset.schema, columns)), columns)


def iter_results(uri: str, columns: list[str], batch_rows: int = 1024):
    """The table of :func:`read_results` as record batches of at most ``batch_rows`` rows
    (``columns`` only): memory bounded by a batch, whatever the table's size."""
    dataset = results_dataset(uri)
    if dataset is None:
        return
    # File by file, row group by row group, one thread: the dataset scanner's read-ahead
    # and pre-buffering hold more than a GB of landmarks at once.
    import pyarrow.parquet as pq

    for fragment in dataset.get_fragments():
        fixed = pads.get_partition_keys(fragment.partition_expression) or {}
        pf = pq.ParquetFile(fragment.path, filesystem=dataset.filesystem, pre_buffer=False)
        names = set(pf.schema_arrow.names)
        wanted = [c for c in columns if c in names]
        for batch in pf.iter_batches(batch_size=batch_rows, columns=wanted, use_threads=False):
            table = pa.Table.from_batches([batch])
            for c, v in fixed.items():
                if c in columns and c not in names:
                    table = table.append_column(c, pa.array([v] * table.num_rows))
            yield _conform(table, columns)


def results_dataset(uri: str) -> pads.Dataset | None:
    """A pyarrow dataset over what ``uri`` holds (None for an output with no commits)."""
    from raytag.io.ledger import Ledger

    sp = storage.resolve(uri)
    info = sp.filesystem.get_file_info(sp.path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no results at {uri}")
    if info.type == pafs.FileType.File:
        return pads.dataset(sp.path, filesystem=sp.filesystem, format="parquet")
    ledger = Ledger(uri)
    if ledger.is_raytag_output():
        files = [storage.resolve(f).path for f in ledger.committed_files()]
        if not files:
            return None
        return pads.dataset(files, filesystem=sp.filesystem, format="parquet")
    return pads.dataset(sp.path, filesystem=sp.filesystem, format="parquet",
                        partitioning=_PARTITIONING,
                        exclude_invalid_files=True, ignore_prefixes=["_", "."])


def _present(schema: pa.Schema, columns: list[str] | None) -> list[str] | None:
    return None if columns is None else [c for c in columns if c in schema.names]


def _conform(table: pa.Table, columns: list[str] | None) -> pa.Table:
    """Columns asked for but absent from older tables come back as nulls (a column added
    to the contract later, e.g. ``reason``), in the order asked."""
    if columns is None:
        return table
    from raytag.results import RESULTS_SCHEMA

    for c in columns:
        if c not in table.column_names:
            kind = RESULTS_SCHEMA.field(c).type if c in RESULTS_SCHEMA.names else pa.null()
            table = table.append_column(c, pa.nulls(table.num_rows, kind))
    return table.select(columns)


def _empty(columns: list[str] | None) -> pa.Table:
    from raytag.results import RESULTS_SCHEMA

    schema = RESULTS_SCHEMA if columns is None else pa.schema(
        [RESULTS_SCHEMA.field(c) for c in columns])
    return schema.empty_table()


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
