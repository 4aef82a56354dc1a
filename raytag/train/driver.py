"""``raytag train``: Ray Data preprocessing + Ray Train (``TorchTrainer``, DDP) per network.

Data: a ``raytag synth`` cohort (zips + truth.parquet; local or ``s3://``) or the original
study's HDF5 layout. Slices are read and preprocessed once by Ray Data tasks
(:func:`raytag.train.samples.make_sample`), split by participant (10% test, then 80/20
train/validation, seeded), materialised, and handed to the trainer: ``train`` is sharded
across workers, ``val`` is read whole by rank 0.

Runs live under ``<storage>/<name>-<kind>``: rerunning the same command resumes from the
latest checkpoint, and ``FailureConfig(max_failures)`` restarts workers that die. At the end
the best checkpoint (by validation score) is exported as ``<out>/<kind>.pt`` in raytag's
checkpoint format.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable

import numpy as np

from raytag import logs
from raytag.io import storage
from raytag.io.labelled import LabelledSlice, read_study_hdf5
from raytag.train.samples import make_sample
from raytag.train.settings import KINDS, TrainSettings
from raytag.train.split import split_participants

__all__ = ["prepare_datasets", "train_network", "KINDS"]


class _PrepareSynthetic:
    """Ray Data callable: zip URIs -> preprocessed samples (truth looked up by key)."""

    def __init__(self, truth_uri: str):
        rows = storage.read_table(truth_uri).to_pylist()
        self.truth = {(r["eid"], r["instance"], r["slice_index"]): r for r in rows}

    def __call__(self, batch: dict) -> dict:
        from raytag.constants import N_FRAMES, N_LANDMARKS
        from raytag.io import read_participant

        out: dict[str, list] = {}
        for uri, split in zip(batch["uri"], batch["split"], strict=True):
            for rec in read_participant(str(uri)):
                row = self.truth.get((rec.eid, rec.instance, rec.slice_index))
                if not rec.ok or row is None:
                    continue
                pts = np.array(row["landmarks_px"], dtype=np.float64).reshape(
                    N_FRAMES, N_LANDMARKS, 2)
                item = LabelledSlice(rec, pts, np.array(row["bbox_px"]), int(row["es_frame"]),
                                     row.get("group"))
                for k, v in (make_sample(item) | {"split": str(split)}).items():
                    out.setdefault(k, []).append(v)
        return {k: np.stack(v) if isinstance(v[0], np.ndarray) else np.array(v)
                for k, v in out.items()} if out else {}


def prepare_datasets(data_uri: str, seed: int = 0, limit: int | None = None) -> dict:
    """``{"train", "val", "test"}`` materialised Ray Datasets of samples (see samples.py)."""
    import ray

    from raytag.constants import TRUTH_FILE

    if str(data_uri).endswith((".h5", ".hdf5")):
        items = list(read_study_hdf5(data_uri, limit=limit))
        split = split_participants([it.record.eid for it in items], seed)
        rows = [make_sample(it) | {"split": split[it.record.eid]} for it in items]
        ds = ray.data.from_items(rows)
    else:
        zips = storage.list_files(data_uri, ".zip")[:limit]
        if not zips:
            raise FileNotFoundError(f"no participant zips under {data_uri}")
        eids = [storage.basename(z).split("_", 1)[0] for z in zips]
        split = split_participants(eids, seed)
        source = ray.data.from_items([{"uri": z, "split": split[e]}
                                      for z, e in zip(zips, eids, strict=True)])
        # Preprocessing finishes (materialize) before training starts, so it may use
        # every CPU but one (kept for the driver and Ray Data's own bookkeeping).
        readers = max(1, int(ray.cluster_resources().get("CPU", 2)) - 1)
        ds = source.map_batches(_PrepareSynthetic, fn_constructor_args=(
            storage.join(data_uri, TRUTH_FILE),), batch_size=4,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=readers))
    ds = ds.materialize()
    return {s: ds.filter(lambda r, s=s: r["split"] == s).materialize()
            for s in ("train", "val", "test")}


def train_network(
    kind: str,
    datasets: dict,
    storage_path: str,
    name: str,
    preset: str = "lite",
    workers: int = 2,
    epochs: int = 30,
    batch_size: int = 8,
    lr: float | None = None,
    seed: int = 0,
    use_gpu: bool = False,
    patience: int | None = None,
    max_failures: int = 2,
    training: dict | None = None,
    out_dir: str | None = None,
    augment: dict | bool | None = None,
    inject_failure: dict | None = None,
    init_from: str | None = None,
    echo: Callable[[str], None] = logs.echo,
) -> dict:
    """Train one network with ``TorchTrainer``; returns the best metrics and exported path.

    Progress: a bar of epochs (validation score in its postfix line at ``-v``), fed by a
    Ray Train callback on the controller through a small queue actor.

    ``inject_failure`` (tests and chaos drills only): ``{"epoch", "rank", "marker"}`` makes
    that worker raise once after that epoch, so ``FailureConfig`` must restart the group
    from the latest checkpoint. ``init_from``: a checkpoint file whose weights start a new
    run (fine-tuning); ignored when the run resumes from its own checkpoint.
    """
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from raytag.train.loop import MODEL_FILE, train_loop_per_worker

    settings = TrainSettings(kind=kind, preset=preset, epochs=epochs, batch_size=batch_size,
                             lr=lr, seed=seed, patience=patience,
                             augment={} if augment is None else augment,
                             training=training or {}, init_from=init_from,
                             inject_failure=inject_failure)
    storage_path = os.path.abspath(storage_path) if "://" not in storage_path else storage_path
    progress = _EpochProgress(epochs, f"train {kind}")
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"settings": settings},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": 1}),
        run_config=RunConfig(
            name=f"{name}-{kind}", storage_path=storage_path,
            failure_config=FailureConfig(max_failures=max_failures),
            # the latest two (for resuming); each carries the best epoch's model (BEST_FILE)
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=[progress.callback],
        ),
        datasets={"train": datasets["train"], "val": datasets["val"]},
        dataset_config=DataConfig(datasets_to_split=["train"]),
    )
    t0 = time.perf_counter()
    with progress:
        result = trainer.fit()
    seconds = time.perf_counter() - t0
    if result.checkpoint is None:
        raise RuntimeError(f"training {kind} produced no checkpoint (see {storage_path})")
    import torch

    from raytag.models.checkpoint import load_checkpoint
    from raytag.train.loop import BEST_FILE, STATE_FILE

    # The latest checkpoint holds every epoch's metrics and the best epoch's model file (the
    # loop's own choice: highest validation score, earliest on ties).
    with result.checkpoint.as_directory() as d:
        history = torch.load(os.path.join(d, STATE_FILE), map_location="cpu",
                             weights_only=True).get("history", [])
        best_file = os.path.join(d, BEST_FILE)
        if not os.path.exists(best_file):  # a run checkpointed before BEST_FILE existed
            best_file = os.path.join(d, MODEL_FILE)
        with open(best_file, "rb") as f:
            best_bytes = f.read()
        metrics = load_checkpoint(best_file).meta["metrics"]
    exported = None
    if out_dir:
        exported = storage.join(out_dir, f"{kind}.pt")
        storage.write_bytes(exported, best_bytes)
    echo(f"train {kind}: best epoch {metrics.get('epoch')} val_score "
         f"{metrics.get('val_score'):.4f} ({seconds:.0f} s this run)")
    return {"kind": kind, "metrics": metrics, "last": result.metrics, "seconds": seconds,
            "exported": exported, "history": history,
            "run_path": os.path.join(storage_path, f"{name}-{kind}")}


class _EpochProgress:
    """Epoch bar on the driver, fed by a :class:`ray.train.UserCallback` that runs in the
    Train controller and puts each epoch's report on a queue actor (0 CPUs: it must never
    take a core a training worker needs)."""

    def __init__(self, epochs: int, desc: str):
        from ray.util.queue import Queue

        self.queue = Queue(actor_options={"num_cpus": 0})
        self.callback = _ReportToQueue(self.queue)
        self.bar = logs.Progress(epochs, desc, unit="epoch")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)

    def _drain(self) -> None:
        from ray.util.queue import Empty

        while not self._stop.is_set():
            try:
                m = self.queue.get(timeout=0.5)
            except Empty:
                continue
            except Exception:  # noqa: BLE001 - the queue actor went away: no more progress
                return
            epoch = int(m.get("epoch") or 0)
            if epoch > self.bar.n:
                self.bar.update(epoch - self.bar.n)
            logs.log.debug(f"{self.bar.desc}: epoch {epoch} val_score {m.get('val_score')} "
                           f"train_loss {m.get('train_loss')}")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.bar.close()
        try:
            self.queue.shutdown()
        except Exception:  # noqa: BLE001 - best effort
            pass


def _report_to_queue_class():
    from ray.train import UserCallback

    class ReportToQueue(UserCallback):
        def __init__(self, queue):
            self.queue = queue

        def after_report(self, run_context, metrics, checkpoint):
            m = metrics[0] if metrics else {}
            try:
                self.queue.put_nowait({k: m.get(k) for k in ("epoch", "val_score",
                                                             "train_loss")})
            except Exception:  # noqa: BLE001 - progress must never fail a training run
                pass

    return ReportToQueue


def _ReportToQueue(queue):  # noqa: N802 - builds the callback (Ray imported lazily)
    return _report_to_queue_class()(queue)


def clean_run(storage_path: str, name: str, kind: str) -> None:
    """Delete a run's folder (start over instead of resuming)."""
    shutil.rmtree(os.path.join(storage_path, f"{name}-{kind}"), ignore_errors=True)
