"""``raytag run``: a cohort of tagging zips -> results table (partitioned Parquet), on Ray.

Plan: list the inputs (a folder/prefix of zips, or a manifest table from ``raytag index``),
drop the ``(eid, instance)`` already committed in the output (:mod:`ledger`), and process
the rest in chunks. Each chunk is one streaming Ray Data execution:

    from_items(uris) -> decode (CPU tasks) -> predict (actor pool; GPUs when the cluster
    has them) -> strain + QC (CPU tasks) -> write_parquet(staging, partitioned by
    instance and slice_label, rows per file bounded)

and is then committed (files moved into place, marker written). Memory is bounded by the
streaming executor and the chunk size, not by the cohort. Joins ``RAY_ADDRESS`` when set,
otherwise starts a local Ray.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable

import pyarrow as pa

from raytag.io import storage
from raytag.io.tables import PARTITION_COLS, read_results
from raytag.io.ukb_names import parse_zip_name
from raytag.pipeline import telemetry
from raytag.pipeline.cluster import ensure_ray
from raytag.pipeline.ledger import Ledger, chunk_prefix
from raytag.pipeline.stages import DecodeSlices, PredictSlices, StrainQC

__all__ = ["list_inputs", "build_index", "run_cohort", "read_results", "pool_size"]

#: Memory reserved per decode task (bytes).
DECODE_MEMORY_BYTES = 320 * 1024**2


def _key(uri: str) -> tuple[str, int | None]:
    try:
        v = parse_zip_name(uri)
        return v.eid, v.instance
    except Exception:  # noqa: BLE001 - a bad name is processed (and fails) like any other
        return storage.basename(uri).rsplit(".", 1)[0], None


def list_inputs(input_uri: str) -> list[str]:
    """Zip URIs from a folder/prefix (recursive) or a manifest table with a ``uri`` column."""
    if str(input_uri).endswith(".parquet"):
        return [str(u) for u in storage.read_table(input_uri).column("uri").to_pylist()]
    return storage.list_files(input_uri, ".zip")


def build_index(input_uri: str, out_uri: str) -> int:
    """``raytag index``: write a manifest table (uri, eid, instance) of a cohort; row count."""
    uris = list_inputs(input_uri)
    keys = [_key(u) for u in uris]
    table = pa.table({"uri": uris, "eid": [k[0] for k in keys],
                      "instance": pa.array([k[1] for k in keys], pa.int64())})
    storage.write_table(table, out_uri)
    return table.num_rows


def pool_size(resources: dict, requested: int | None = None) -> tuple[int, dict]:
    """Model actors and their resource request from the cluster's resources.

    GPUs: one actor per GPU (``num_gpus=1``). CPUs only: at most half the CPUs and always
    at least one CPU left for decoding, so actors never starve the readers.
    """
    gpus = int(resources.get("GPU", 0))
    cpus = int(resources.get("CPU", 1))
    if gpus:
        n = min(requested or gpus, gpus)
        return max(1, n), {"num_gpus": 1, "num_cpus": 1}
    n = requested or max(1, cpus // 2)
    return max(1, min(n, cpus - 1)), {"num_cpus": 1}


def _decode(batch: pa.Table) -> pa.Table:
    return DecodeSlices()(batch)


def _strain(batch: pa.Table) -> pa.Table:
    return StrainQC()(batch)


def run_cohort(
    input_uri: str,
    output_uri: str,
    weights: str | None = None,
    limit: int | None = None,
    resume: bool = True,
    chunk_participants: int = 256,
    model_actors: int | None = None,
    decode_batch: int = 2,
    predict_batch: int = 8,
    rows_per_file: int = 2000,
    refine_passes: int | None = None,
    echo: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> dict:
    """Process a cohort into ``output_uri``; returns a summary dict (see :func:`summarise`)."""
    import ray
    from ray.data import ActorPoolStrategy
    from ray.data.datasource import FilenameProvider

    class ChunkFilenames(FilenameProvider):
        """Deterministic, chunk-prefixed names: the ledger finds a chunk's files by prefix."""

        def __init__(self, chunk: int):
            super().__init__(file_format="parquet")
            self.prefix = chunk_prefix(chunk)

        def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
            return f"{self.prefix}_{write_uuid}_{task_index:06d}.parquet"

    ensure_ray()
    t0 = time.perf_counter()
    inputs = list_inputs(input_uri)[:limit]
    ledger = Ledger(output_uri)
    if not resume and ledger.commits():
        raise FileExistsError(f"{output_uri} already holds results: rerun with --resume to "
                              "complete them, or choose a new output")
    cleaned = ledger.recover()
    done = ledger.done_keys()
    pending = [u for u in inputs if _key(u) not in done]
    n_actors, actor_resources = pool_size(ray.cluster_resources(), model_actors)
    echo(f"raytag run: {len(inputs)} participants, {len(inputs) - len(pending)} already done"
         f"{f', {cleaned} uncommitted files removed' if cleaned else ''}; {len(pending)} to "
         f"process with {n_actors} model actor(s) {actor_resources}")
    sp = storage.resolve(output_uri)
    processed, stats = 0, []
    telemetry.set_progress(len(inputs), len(inputs) - len(pending))
    for start in range(0, len(pending), chunk_participants):
        chunk_uris = pending[start : start + chunk_participants]
        chunk = ledger.next_chunk()
        ds = (
            ray.data.from_items([{"uri": u} for u in chunk_uris],
                                override_num_blocks=max(1, len(chunk_uris) // decode_batch))
            # The memory reservation (a decoded participant needs ~50-100 MB) also keeps
            # decoding in its own CPU tasks: with equal resource requests Ray Data would fuse
            # it into the model actors, and decoding would then scale with the model pool.
            .map_batches(_decode, batch_size=decode_batch, batch_format="pyarrow", num_cpus=1,
                         memory=DECODE_MEMORY_BYTES)
            .map_batches(PredictSlices, fn_constructor_args=(weights,),
                         fn_constructor_kwargs={"refine_passes": refine_passes},
                         batch_size=predict_batch, batch_format="pyarrow",
                         compute=ActorPoolStrategy(min_size=1, max_size=n_actors),
                         **actor_resources)
            .map_batches(_strain, batch_format="pyarrow", num_cpus=0.25)
        )
        staging = storage.resolve(ledger.staging_uri(chunk)).path
        ds.write_parquet(staging, filesystem=sp.filesystem, partition_cols=PARTITION_COLS,
                         filename_provider=ChunkFilenames(chunk),
                         min_rows_per_file=rows_per_file)
        stats.append(ds.stats())
        staged = read_results(ledger.staging_uri(chunk), columns=["status"])
        counts = dict(Counter(staged.column("status").to_pylist()))
        ledger.commit(chunk, [_key(u) for u in chunk_uris], counts, staged.num_rows)
        processed += len(chunk_uris)
        telemetry.set_progress(len(inputs), len(inputs) - len(pending) + processed)
        echo(f"raytag run: chunk {chunk} committed ({processed}/{len(pending)} participants, "
             f"{staged.num_rows} slice rows {counts})")
    summary = summarise(output_uri)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    summary["processed_participants"] = processed
    summary["model_actors"] = n_actors
    summary["ds_stats"] = "\n".join(str(s) for s in stats)
    return summary


def summarise(output_uri: str) -> dict:
    """Counts by status and by failure reason over everything committed in the output."""
    table = read_results(output_uri, columns=["eid", "instance", "slice_index", "status",
                                              "error", "model_version"])
    rows = table.to_pylist()
    reasons = Counter(telemetry.failure_reason(r["error"]) for r in rows
                      if r["status"] == "failed")
    keys = Counter((r["eid"], r["instance"], r["slice_index"]) for r in rows)
    return {
        "rows": len(rows),
        "participants": len({(r["eid"], r["instance"]) for r in rows}),
        "by_status": dict(Counter(r["status"] for r in rows)),
        "failure_reasons": dict(reasons),
        "duplicate_keys": sum(1 for n in keys.values() if n > 1),
        "model_versions": sorted({r["model_version"] or "" for r in rows}),
    }
