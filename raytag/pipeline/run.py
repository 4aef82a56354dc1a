"""``raytag run``: a cohort of tagging zips -> a results table, in one streaming Ray pass.

Plan: list the inputs (a folder/prefix of zips, or a manifest table from ``raytag index``)
with their fingerprints (size and modification time); compare with the output's ledger
(:mod:`raytag.io.ledger`): participants already committed with the same fingerprint
are skipped, changed inputs and retried failures are processed again (their old rows are
replaced, never duplicated). Then one Ray Data execution streams everything:

    from_items(uris) -> decode (CPU tasks) -> networks (actor pool, GPUs when the cluster
    has or can get them) -> tracker + strain + tag QC (CPU tasks) -> the driver

and the driver commits whole participants as files fill up (``rows_per_file``) or every
``flush_seconds``: a killed run loses only what was in flight, and a rerun resumes exactly
once. Memory is bounded by Ray Data's streaming executor, not by the cohort. Joins
``RAY_ADDRESS`` when set, otherwise starts a local Ray; a small job on a machine without a
cluster runs the same three stage callables in this process instead (``engine``, see
:func:`choose_engine`), where Ray's start-up would cost more than its parallelism brings.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raytag import logs
from raytag.constants import STATUS_FAILED
from raytag.failures import TRANSIENT
from raytag.io import storage
from raytag.io.ledger import Entry, Ledger, participant_key
from raytag.io.tables import read_results
from raytag.io.ukb_names import parse_zip_name
from raytag.pipeline import telemetry
from raytag.pipeline.cluster import ensure_ray
from raytag.pipeline.settings import LOCAL_MAX_PARTICIPANTS, RETRY_POLICIES, RunSettings
from raytag.pipeline.stages import PredictNetworks, decode_participants, measure_batch
from raytag.results import RESULTS_SCHEMA, measured_model_versions

__all__ = ["list_inputs", "build_index", "run_cohort", "pool_size", "task_cpus", "gpu_capacity",
           "plan_work", "RETRY_POLICIES", "summarise", "choose_engine", "LOCAL_MAX_PARTICIPANTS"]

#: Memory reserved per decode task (bytes): a decoded participant needs ~50-100 MB.
DECODE_MEMORY_BYTES = 320 * 1024**2
#: Share of a core that each stage asks for on a cluster without GPUs. There the networks
#: are the heaviest stage (~0.21 CPU-s per slice on one thread, against ~0.08 for tracking
#: and ~0.01 for decoding), so whole-core requests left one of two cores to a model actor
#: that could use only it while tracking queued for the other (0.58x a plain loop). Half
#: shares let one model actor per core and the CPU tasks all run, the OS dividing the
#: cores among whichever have work; the actors' logical reservation stays at half the CPUs,
#: so the pipeline cannot deadlock, even on one core.
CPU_ONLY_SHARE = 0.5


def _key(uri: str) -> tuple:
    try:
        v = parse_zip_name(uri)
        return participant_key(v.eid, v.instance, v.array)
    except Exception:  # noqa: BLE001 - a bad name is processed (and fails) like any other
        return participant_key(storage.basename(uri).rsplit(".", 1)[0], None, None)


def list_inputs(input_uri: str, allow_outside_links: bool = False) -> list[storage.FileInfo]:
    """Zips (with fingerprints) from a folder/prefix (recursive), one zip, or a manifest
    table from ``raytag index`` (columns ``uri`` and, when indexed, ``size``/``mtime_ns``).

    Files that must not be read (names that are not UTF-8; symlinks leaving a local input
    folder unless ``allow_outside_links``) are listed with ``problem`` set: they become
    failed rows, never a crash of the listing."""
    if str(input_uri).endswith(".parquet"):
        t = storage.read_table(input_uri)
        cols = set(t.column_names)
        uris = [str(u) for u in t.column("uri").to_pylist()]
        sizes = t.column("size").to_pylist() if "size" in cols else [None] * len(uris)
        mtimes = t.column("mtime_ns").to_pylist() if "mtime_ns" in cols else [None] * len(uris)
        return [storage.FileInfo(u, s, m) for u, s, m in zip(uris, sizes, mtimes, strict=True)]
    if str(input_uri).endswith(".zip"):
        return [storage.file_info(input_uri)]
    return storage.list_file_infos(input_uri, ".zip", allow_outside_links=allow_outside_links)


def build_index(input_uri: str, out_uri: str) -> int:
    """``raytag index``: write a manifest table (uri, eid, instance, array, size, mtime_ns)
    of a cohort; returns the row count."""
    infos = list_inputs(input_uri)
    keys = [_key(i.uri) for i in infos]
    table = pa.table({"uri": [i.uri for i in infos], "eid": [k[0] for k in keys],
                      "instance": pa.array([k[1] for k in keys], pa.int64()),
                      "array": pa.array([k[2] for k in keys], pa.int64()),
                      "size": pa.array([i.size for i in infos], pa.int64()),
                      "mtime_ns": pa.array([i.mtime_ns for i in infos], pa.int64())})
    storage.write_table(table, out_uri)
    return table.num_rows


#: Where ``ray up`` puts the cluster's autoscaling config on the head node.
RAY_UP_BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"
#: An autoscaling config file to read GPU capacity from (any cluster).
AUTOSCALING_CONFIG_ENV = "RAYTAG_AUTOSCALING_CONFIG"


def _config_gpus(node_types: dict) -> int:
    """GPUs over an autoscaling config's ``available_node_types`` (worker types times their
    ``max_workers``; an unlimited type counts as 8 nodes)."""
    total = 0
    for spec in (node_types or {}).values():
        gpus = int((spec.get("resources") or {}).get("GPU", 0))
        count = spec.get("max_workers", 0)
        total += gpus * (8 if count in (-1, None) else max(int(count), 0))
    return total


def gpu_capacity() -> int:
    """GPUs the cluster has now or its autoscaler can launch (node types x max workers).

    Sources, the first that knows wins: the cluster config the autoscaler reports to the GCS
    (autoscaler v2 platforms: what Ray Data's own autoscaling reads); else an autoscaling
    config file, ``$RAYTAG_AUTOSCALING_CONFIG`` or ``ray up``'s
    ``~/ray_bootstrap_config.yaml`` on the head (where ``ray job submit`` runs the driver).
    0 on a plain local Ray. ``raytag run --gpus N`` overrides all of it.
    """

    import ray

    now = int(ray.cluster_resources().get("GPU", 0))
    try:
        import ray._private.state

        config = ray._private.state.state.get_cluster_config()
    except Exception:  # noqa: BLE001 - no autoscaler state: look for a config file
        config = None
    possible = 0
    for group in getattr(config, "node_group_configs", None) or []:
        gpus = int(dict(group.resources).get("GPU", 0))
        count = 8 if group.max_count == -1 else group.max_count
        possible += gpus * max(count, 0)
    if not possible:
        path = os.environ.get(AUTOSCALING_CONFIG_ENV) or os.path.expanduser(
            RAY_UP_BOOTSTRAP_CONFIG)
        if os.path.isfile(path):
            import yaml

            try:
                with open(path) as f:
                    possible = _config_gpus((yaml.safe_load(f) or {}).get(
                        "available_node_types"))
            except (OSError, yaml.YAMLError, AttributeError, TypeError, ValueError):
                possible = 0
    return max(now, possible)


def pool_size(resources: dict, requested: int | None = None, gpus: int | None = None,
              capacity: int = 0) -> tuple[int, dict]:
    """Model actors and each one's resource request.

    ``gpus``: an explicit GPU count (``raytag run --gpus N``): N actors of one GPU each,
    requested even when no GPU node is running yet (the autoscaler starts them). Otherwise
    ``capacity`` (:func:`gpu_capacity`) decides: one actor per GPU the cluster has or can
    get. With no GPU anywhere: one CPU actor per core (``requested`` caps it), each asking
    for :data:`CPU_ONLY_SHARE` of a core, so the actors reserve at most half the CPUs and
    decoding and tracking (:func:`task_cpus`) always find room.
    """
    if gpus is not None and gpus > 0:
        return min(requested or gpus, gpus), {"num_gpus": 1, "num_cpus": 1}
    if capacity > 0:
        return max(1, min(requested or capacity, capacity)), {"num_gpus": 1, "num_cpus": 1}
    cpus = max(1, int(resources.get("CPU", 1)))
    return max(1, min(requested or cpus, cpus)), {"num_cpus": CPU_ONLY_SHARE}


def task_cpus(actor_resources: dict) -> float:
    """CPUs each decode and tracking task requests: a whole core beside GPU actors (the
    cores are theirs alone), :data:`CPU_ONLY_SHARE` beside CPU model actors."""
    return 1.0 if actor_resources.get("num_gpus") else CPU_ONLY_SHARE


@dataclass
class Plan:
    """What a run will do: ``pending`` inputs, and why (counts)."""

    pending: list[storage.FileInfo]
    done: int
    changed: int
    retried: int
    vanished: int


def plan_work(inputs: list[storage.FileInfo], ledger: Ledger, retry: str) -> Plan:
    """Compare inputs with the ledger: skip committed and unchanged participants; redo
    changed inputs and the failures ``retry`` names (``none``, ``transient``, ``all``)."""
    if retry not in RETRY_POLICIES:
        raise ValueError(f"retry must be one of {RETRY_POLICIES}, got {retry!r}")
    latest = ledger.latest()
    pending, done, changed, retried = [], 0, 0, 0
    seen = set()
    for info in inputs:
        key = _key(info.uri)
        seen.add(key)
        hit = latest.get(key)
        if hit is None:
            pending.append(info)
            continue
        entry = hit[1]
        failed = entry.status.get(STATUS_FAILED, 0) > 0
        if entry.fingerprint != info.fingerprint:
            changed += 1
            pending.append(info)
        elif failed and (retry == "all" or (retry == "transient"
                                            and set(entry.reasons) & {str(r) for r in TRANSIENT})):
            retried += 1
            pending.append(info)
        else:
            done += 1
    return Plan(pending, done, changed, retried, len(set(latest) - seen))


class ResultWriter:
    """Driver side: collects results rows, commits whole participants in files."""

    def __init__(self, ledger: Ledger, rows_per_file: int, flush_seconds: float,
                 on_commit: Callable[[int, int], None] = lambda participants, rows: None,
                 on_participant: Callable[[], None] = lambda: None):
        self.ledger, self.rows_per_file, self.flush_seconds = ledger, rows_per_file, flush_seconds
        self.on_commit, self.on_participant = on_commit, on_participant
        self.partial: dict[str, list[pa.Table]] = {}
        self.ready: list[pa.Table] = []
        self.entries: list[Entry] = []
        self.ready_rows = 0
        self.last_flush = time.monotonic()
        self.committed_participants = 0
        self.committed_rows = 0

    def add(self, table: pa.Table) -> None:
        uris = table.column("source_uri").to_pylist()
        for uri in dict.fromkeys(uris):
            rows = table.filter(pc.equal(table["source_uri"], uri))
            parts = self.partial.setdefault(uri, [])
            parts.append(rows)
            have = sum(p.num_rows for p in parts)
            if have >= int(rows.column("participant_rows")[0].as_py()):
                self._complete(uri, pa.concat_tables(self.partial.pop(uri)))
                # checked per participant: a batch holding many participants still
                # commits every rows_per_file rows, so a kill loses little
                if self.ready_rows >= self.rows_per_file:
                    self.flush()
        if self.ready and time.monotonic() - self.last_flush > self.flush_seconds:
            self.flush()

    def _complete(self, uri: str, rows: pa.Table) -> None:
        first = rows.slice(0, 1).to_pylist()[0]
        status = dict(Counter(rows.column("status").to_pylist()))
        reasons = sorted({r for r in rows.column("reason").to_pylist() if r})
        self.entries.append(Entry(participant_key(first["eid"], first["instance"],
                                                  first["array"]) if first["eid"] else
                                  participant_key(storage.basename(uri), None, None),
                                  uri, first["fingerprint"], rows.num_rows, status, reasons))
        self.ready.append(rows.select(RESULTS_SCHEMA.names))
        self.ready_rows += rows.num_rows
        self.on_participant()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.ready:
            return
        table = pa.concat_tables(self.ready)
        self.ledger.write(table, self.entries)
        self.committed_participants += len(self.entries)
        self.committed_rows += table.num_rows
        self.on_commit(len(self.entries), table.num_rows)
        self.ready, self.entries, self.ready_rows = [], [], 0

    def close(self) -> int:
        """Commit everything left; returns participants whose rows were incomplete (0
        unless a stage lost rows, which would be a bug: they are committed anyway)."""
        incomplete = len(self.partial)
        for uri in list(self.partial):
            self._complete(uri, pa.concat_tables(self.partial.pop(uri)))
        self.flush()
        return incomplete


def choose_engine(settings: RunSettings, pending: int, dashboard: bool = False) -> str:
    """``ray`` or ``local`` for a run of ``pending`` participants.

    ``settings.engine`` other than ``auto`` is obeyed. ``auto`` uses Ray whenever there is
    one to use or the user asked for its features: ``RAY_ADDRESS`` set (a cluster, ``ray
    job submit``), Ray already initialised in this process, ``--dashboard``, ``--gpus`` or
    ``--model-actors``; otherwise ``local`` for at most :data:`LOCAL_MAX_PARTICIPANTS`
    pending participants (0 included: a rerun with nothing to do starts no Ray at all).
    """
    if settings.engine != "auto":
        return settings.engine
    ray_module = sys.modules.get("ray")  # not imported: cannot be initialised
    if (os.environ.get("RAY_ADDRESS") or dashboard or settings.gpus is not None
            or settings.model_actors is not None
            or (ray_module is not None and ray_module.is_initialized())):
        return "ray"
    return "local" if pending <= LOCAL_MAX_PARTICIPANTS else "ray"


def _stage_input(info: storage.FileInfo) -> dict:
    """One input row of the decode stage (both engines)."""
    return {"uri": info.uri, "fingerprint": info.fingerprint, "problem": info.problem or ""}


def _ray_dataset(pending: list[storage.FileInfo], s: RunSettings, n_actors: int,
                 actor_resources: dict):
    """The streaming Ray Data plan: decode tasks -> model actor pool -> measure tasks."""
    import ray
    from ray.data import ActorPoolStrategy

    cpus_per_task = task_cpus(actor_resources)
    return (
        ray.data.from_items([_stage_input(i) for i in pending],
                            override_num_blocks=max(1, len(pending) // s.decode_batch))
        # The memory reservation also keeps decoding in its own CPU tasks: with equal
        # requests Ray Data would fuse it into the model actors.
        .map_batches(decode_participants, batch_size=s.decode_batch, batch_format="numpy",
                     num_cpus=cpus_per_task, memory=DECODE_MEMORY_BYTES)
        .map_batches(PredictNetworks, fn_constructor_args=(s.weights,),
                     fn_constructor_kwargs={"refine_passes": s.refine_passes,
                                            "localiser_views": s.localiser_views},
                     batch_size=s.predict_batch, batch_format="numpy",
                     compute=ActorPoolStrategy(min_size=1, max_size=n_actors),
                     **actor_resources)
        .map_batches(measure_batch, fn_kwargs={"tracker": s.tracker,
                                               "register_frames": s.register_frames},
                     batch_format="numpy",
                     num_cpus=cpus_per_task)
    )


def _local_tables(pending: list[storage.FileInfo], s: RunSettings):
    """The same three stages, called in this process on the same numpy batches
    (``decode_batch`` participants at a time); yields results tables as Ray's would."""
    model = PredictNetworks(s.weights, refine_passes=s.refine_passes,
                            localiser_views=s.localiser_views)
    for first in range(0, len(pending), s.decode_batch):
        rows = [_stage_input(i) for i in pending[first:first + s.decode_batch]]
        batch = decode_participants({k: np.array([r[k] for r in rows], dtype=object)
                                     for k in rows[0]})
        yield measure_batch(model(batch), tracker=s.tracker,
                            register_frames=s.register_frames)


def run_cohort(
    input_uri: str,
    output_uri: str,
    settings: RunSettings | None = None,
    *,
    echo: Callable[[str], None] = logs.echo,
    dashboard: bool = False,
    **overrides,
) -> dict:
    """Process a cohort into ``output_uri``; returns a summary dict (see :func:`summarise`).

    ``settings`` (:class:`~raytag.pipeline.settings.RunSettings`, default: its defaults),
    with any of its fields overridden by keyword (``run_cohort(src, out, limit=3)``);
    invalid values raise ``ValueError`` before anything starts.

    Progress: a bar of participants processed (a line every few seconds off a terminal);
    each commit is logged at debug level (``-v``). ``dashboard``: a local Ray starts its
    dashboard (URL printed).
    """
    if overrides.get("tracker", "") is None:  # "the default", as the CLI's None means
        overrides.pop("tracker")
    s = dataclasses.replace(settings or RunSettings(), **overrides)
    tracker = s.tracker
    t0 = time.perf_counter()
    inputs = list_inputs(input_uri, s.allow_outside_links)[:s.limit]
    ledger = Ledger(output_uri)
    foreign = ledger.foreign_files()
    if foreign:
        echo(f"raytag run: note: {len(foreign)} file(s) in {output_uri} were not written by "
             f"raytag (e.g. {foreign[0]}); they are left alone and never read as results")
    if not s.resume and ledger.commits():
        raise FileExistsError(f"{output_uri} already holds results: rerun with --resume to "
                              "complete them, or choose a new output")
    cleaned = ledger.recover()
    ledger.compact()
    plan = plan_work(inputs, ledger, s.retry_failed)
    engine = choose_engine(s, len(plan.pending), dashboard=dashboard)
    if engine == "ray":
        import ray

        ensure_ray(dashboard=dashboard)
        capacity = gpu_capacity() if s.gpus is None else 0
        n_actors, actor_resources = pool_size(ray.cluster_resources(), s.model_actors, s.gpus,
                                              capacity)
        how = f"with {n_actors} model actor(s) {actor_resources}"
    else:
        n_actors, actor_resources = 0, {}
        how = "in this process (engine local)"
    notes = [f"{plan.done} already done"]
    if plan.changed:
        notes.append(f"{plan.changed} changed since committed (redone, old rows replaced)")
    if plan.retried:
        notes.append(f"{plan.retried} failed before (retried: --retry-failed {s.retry_failed})")
    if plan.vanished:
        notes.append(f"{plan.vanished} committed participant(s) no longer in the input "
                     "(their rows are kept)")
    if cleaned:
        notes.append(f"{cleaned} uncommitted file(s) of an interrupted run removed")
    echo(f"raytag run: {len(inputs)} participants, {', '.join(notes)}; {len(plan.pending)} "
         f"to process {how}, tracker {tracker}")
    total = len(inputs)
    telemetry.set_progress(total, plan.done)
    start = time.perf_counter()

    def committed(participants: int, rows: int) -> None:
        done = writer.committed_participants
        telemetry.set_progress(total, plan.done + done)
        logs.log.debug(f"raytag run: committed {participants} participants ({rows} rows); "
                       f"{done}/{len(plan.pending)} in {time.perf_counter() - start:.0f} s")

    bar = logs.Progress(len(plan.pending), "raytag run") if plan.pending else None
    writer = ResultWriter(ledger, s.rows_per_file, s.flush_seconds, committed,
                          on_participant=(bar.update if bar else lambda: None))
    stats = ""
    if plan.pending:
        if engine == "ray":
            ds = _ray_dataset(plan.pending, s, n_actors, actor_resources)
            tables = ds.iter_batches(batch_size=None, batch_format="pyarrow")
        else:
            tables = _local_tables(plan.pending, s)
        with bar:
            for batch in tables:
                writer.add(batch)
            incomplete = writer.close()
        if incomplete:
            echo(f"raytag run: warning: {incomplete} participant(s) arrived incomplete")
        stats = str(ds.stats()) if engine == "ray" else "engine local: no Ray Data stats"
    ledger.compact()
    summary = summarise(output_uri)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    summary["processed_participants"] = writer.committed_participants
    summary["changed_inputs"] = plan.changed
    summary["retried_failures"] = plan.retried
    summary["vanished_inputs"] = plan.vanished
    summary["model_actors"] = n_actors
    summary["model_resources"] = actor_resources
    summary["tracker"] = tracker
    summary["engine"] = engine
    summary["ds_stats"] = stats
    return summary


def summarise(output_uri: str) -> dict:
    """Counts by status and by failure reason over everything committed in the output."""
    table = read_results(output_uri, columns=["eid", "instance", "array", "slice_index",
                                              "status", "reason", "model_version"])
    eid, inst, arr, idx = (table.column(c).to_pylist() for c in
                           ("eid", "instance", "array", "slice_index"))
    status = table.column("status").to_pylist()
    reasons = Counter(r or "unknown" for r, s in zip(table.column("reason").to_pylist(),
                                                      status, strict=True) if s == STATUS_FAILED)
    keys = Counter(zip(eid, inst, arr, idx, strict=True))
    return {
        "rows": table.num_rows,
        "participants": len(set(zip(eid, inst, arr, strict=True))),
        "by_status": dict(Counter(status)),
        "failure_reasons": dict(reasons),
        "duplicate_keys": sum(1 for n in keys.values() if n > 1),
        "model_versions": measured_model_versions(table.column("model_version").to_pylist(),
                                                  status),
    }
