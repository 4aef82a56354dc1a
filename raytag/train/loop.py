"""The Ray Train worker loop (DDP): one function for both networks.

Each epoch: augment and train on this worker's shard of ``train``; rank 0 validates on the
whole ``val`` set, saves a checkpoint (raytag format ``model.pt`` + ``train_state.pt`` with
the optimiser, epoch and early-stopping state) and every worker reports the metrics. A
rerun with the same run name and storage path, or a restart after a worker failure,
resumes from the latest reported checkpoint (``ray.train.get_checkpoint()``).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist

from raytag.constants import N_LANDMARKS
from raytag.metrics import summarise
from raytag.models import CentreLocaliser, build_ed, build_localiser, build_tracker, split_xy
from raytag.models.checkpoint import save_checkpoint
from raytag.models.loss import localiser_loss, tracker_loss
from raytag.models.networks import localiser_inputs
from raytag.train.augment import augment_centre, augment_localiser, augment_tracker
from raytag.train.schedules import localiser_lr, tracker_lr
from raytag.train.settings import TrainSettings

__all__ = ["train_loop_per_worker", "validate"]

MODEL_FILE = "model.pt"
# The best epoch so far (by validation score, earliest on ties), carried in every checkpoint
# so that the export never depends on which checkpoints Ray chose to keep.
BEST_FILE = "best_model.pt"
STATE_FILE = "train_state.pt"


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def _batch(batch: dict, keys, device) -> dict:
    out = {}
    for k in keys:
        v = batch[k]
        v = torch.tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v
        out[k] = v.to(device)
    return out


def validate(kind: str, model: torch.nn.Module, batches, device) -> dict:
    """Metrics of ``model`` on an iterable of validation batches (see :mod:`metrics`)."""
    model = _unwrap(model).eval()
    preds, trues, valid, es, boxes_p, boxes_t, scale = [], [], [], [], [], [], []
    with torch.inference_mode():
        for raw in batches:
            if kind == "localiser" and isinstance(model, CentreLocaliser):
                b = _batch(raw, ("loc", "box"), device)
                boxes_p.append(model.decode(model(b["loc"].float()))[0].cpu().numpy())
                boxes_t.append(b["box"].cpu().numpy())
            elif kind == "localiser":
                b = _batch(raw, ("ed", "box"), device)
                boxes_p.append(model(b["ed"].float()[:, None]).float().cpu().numpy())
                boxes_t.append(b["box"].cpu().numpy())
            elif kind == "ed":
                b = _batch(raw, ("crops", "points", "valid", "mm_per_crop_px"), device)
                ed = model.locate(b["crops"].float(), b["valid"]).float()
                s = b["mm_per_crop_px"].float()[:, None, :]
                d = ((ed - b["points"][:, 0].float()) * s).cpu().numpy()
                preds.append(np.sqrt(np.mean(np.sum(d**2, axis=-1), axis=-1)))
            else:
                b = _batch(raw, ("crops", "points", "valid", "mm_per_crop_px", "es_frame"), device)
                flat = model(b["crops"].float())
                preds.append(split_xy(flat.float(), N_LANDMARKS).cpu().numpy())
                trues.append(b["points"].cpu().numpy())
                valid.append(b["valid"].cpu().numpy())
                es.append(b["es_frame"].cpu().numpy())
                scale.append(b["mm_per_crop_px"].cpu().numpy())
    if kind == "localiser":
        from raytag import geometry

        iou = geometry.box_iou(np.concatenate(boxes_p), np.concatenate(boxes_t))
        return {"iou_mean": float(iou.mean()), "iou_min": float(iou.min()),
                "val_score": float(iou.mean())}
    if kind == "ed":
        rmse = np.concatenate(preds)
        return {"rmse_ed_mm_mean": float(rmse.mean()), "rmse_ed_mm_median":
                float(np.median(rmse)), "val_score": -float(rmse.mean())}
    s = np.concatenate(scale)[:, None, None, :]
    metrics = summarise(np.concatenate(preds) * s, np.concatenate(trues) * s,
                        np.concatenate(valid), np.concatenate(es))
    metrics["val_score"] = -metrics["rmse_es_mm_mean"]
    return metrics


def _param_spread(model: torch.nn.Module) -> float:
    """Largest difference between workers of the sum of all parameters (0 when DDP keeps
    every rank's replica identical, as it must after each step)."""
    total = torch.tensor([sum(float(p.detach().double().sum()) for p in model.parameters())],
                         dtype=torch.float64)
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return 0.0
    every = [torch.zeros(1, dtype=torch.float64) for _ in range(dist.get_world_size())]
    dist.all_gather(every, total)
    values = torch.cat(every)
    return float(values.max() - values.min())


def _maybe_inject_failure(spec: dict | None, epoch: int, rank: int) -> None:
    """Chaos drill / test hook: ``{"epoch": e, "rank": r, "marker": path}`` makes worker
    ``r`` raise once, after epoch ``e`` is reported on every worker; the marker file (on
    storage every worker sees) records that it happened so the restarted worker carries on."""
    if not spec or epoch != spec["epoch"] or rank != spec["rank"]:
        return
    if os.path.exists(spec["marker"]):
        return
    with open(spec["marker"], "w") as f:
        f.write(f"failed after epoch {epoch} on rank {rank}\n")
    raise RuntimeError(f"injected worker failure after epoch {epoch} on rank {rank}")


def train_loop_per_worker(config: dict) -> None:
    """Ray Train entry point. ``config``: ``{"settings": TrainSettings}``
    (:class:`raytag.train.settings.TrainSettings`)."""
    s: TrainSettings = config["settings"]
    kind = s.kind
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    device = ray.train.torch.get_device()
    torch.manual_seed(s.seed + rank)
    gen = torch.Generator().manual_seed(s.seed * 1000 + rank)
    model = {"localiser": build_localiser, "tracker": build_tracker,
             "ed": build_ed}[kind](s.preset)
    schedule = tracker_lr if kind == "tracker" else localiser_lr
    base_lr = s.base_lr
    optimiser = torch.optim.Adam(model.parameters(), lr=schedule(1, base_lr))
    start, best, stale, history = 1, -float("inf"), 0, []
    best_model = b""  # bytes of the best epoch's checkpoint file (rank 0)

    checkpoint = ray.train.get_checkpoint()
    if not checkpoint and s.init_from:
        # fine-tuning: start from another run's weights (same architecture), fresh optimiser
        from raytag.models.checkpoint import load_checkpoint

        model.load_state_dict(load_checkpoint(s.init_from, kind=kind).model.state_dict())
    if checkpoint:
        with checkpoint.as_directory() as d:
            state = torch.load(os.path.join(d, STATE_FILE), map_location="cpu",
                               weights_only=True)
            best_path = os.path.join(d, BEST_FILE)
            if os.path.exists(best_path):
                with open(best_path, "rb") as f:
                    best_model = f.read()
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        start, best, stale = state["epoch"] + 1, state["best"], state["stale"]
        history = list(state.get("history", []))

    model = ray.train.torch.prepare_model(model)
    train_shard = ray.train.get_dataset_shard("train")
    val_data = ray.train.get_dataset_shard("val")
    batch_size, patience = s.batch_size, s.patience

    for epoch in range(start, s.epochs + 1):
        for group in optimiser.param_groups:
            group["lr"] = schedule(epoch, base_lr)
        model.train()
        losses = []
        for raw in train_shard.iter_batches(batch_size=batch_size, batch_format="numpy",
                                            local_shuffle_buffer_size=4 * batch_size,
                                            local_shuffle_seed=s.seed + epoch):
            augment = s.augment
            if kind == "localiser" and isinstance(_unwrap(model), CentreLocaliser):
                b = _batch(raw, ("loc", "ed_points", "box"), "cpu")
                x, box = b["loc"].float(), b["box"].float()
                if augment is not False:
                    x, box = augment_centre(x, b["ed_points"].float(), gen, augment)
                loss = _unwrap(model).loss(model(x.to(device)), box.to(device))
            elif kind == "ed":
                b = _batch(raw, ("crops", "points", "valid"), "cpu")
                crops, pts, valid = b["crops"].float(), b["points"].float(), b["valid"]
                if augment is not False:
                    crops, pts, valid = augment_tracker(crops, pts, valid, gen, augment)
                x = localiser_inputs(crops, valid, crops.shape[-1])
                pred = split_xy(model(x.to(device)), N_LANDMARKS)
                loss = ((pred - pts[:, 0].to(device)) ** 2).sum(dim=-1).mean()
            elif kind == "localiser":
                b = _batch(raw, ("ed", "box"), "cpu")
                ed, box = b["ed"].float()[:, None], b["box"].float()
                if augment is not False:
                    ed, box = augment_localiser(ed, box, gen, augment)
                loss = localiser_loss(model(ed.to(device)), box.to(device))
            else:
                b = _batch(raw, ("crops", "points", "valid", "mm_per_crop_px"), "cpu")
                crops, pts, valid = b["crops"].float(), b["points"].float(), b["valid"]
                if augment is not False:
                    crops, pts, valid = augment_tracker(crops, pts, valid, gen, augment)
                pred = split_xy(model(crops.to(device)), N_LANDMARKS)
                loss = tracker_loss(pred, pts.to(device), valid.to(device),
                                    b["mm_per_crop_px"].to(device),
                                    weight=s.strain_weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))

        metrics = {"epoch": epoch, "lr": schedule(epoch, base_lr), "resumed_from": start - 1,
                   "train_loss": float(np.mean(losses)) if losses else float("nan"),
                   "param_spread": _param_spread(model)}
        stop = torch.zeros(1)
        if rank == 0:
            metrics |= validate(kind, model, val_data.iter_batches(
                batch_size=batch_size, batch_format="numpy"), device)
            improved = metrics["val_score"] > best
            best, stale = (metrics["val_score"], 0) if improved else (best, stale + 1)
            metrics["best_val_score"] = best
            stop[0] = float(patience is not None and stale >= patience)
            history.append({k: float(v) for k, v in metrics.items()
                            if isinstance(v, (int, float))})
            with tempfile.TemporaryDirectory() as d:
                save_checkpoint(_unwrap(model), os.path.join(d, MODEL_FILE), s.preset,
                                training=s.training,
                                metrics={k: v for k, v in metrics.items()
                                         if isinstance(v, (int, float))})
                if improved or not best_model:
                    with open(os.path.join(d, MODEL_FILE), "rb") as f:
                        best_model = f.read()
                with open(os.path.join(d, BEST_FILE), "wb") as f:
                    f.write(best_model)
                torch.save({"model": _unwrap(model).state_dict(),
                            "optimiser": optimiser.state_dict(), "epoch": epoch,
                            "best": best, "stale": stale, "history": history},
                           os.path.join(d, STATE_FILE))
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))
        else:
            ray.train.report(metrics)
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(stop, src=0)  # every worker leaves together (DDP needs it)
        _maybe_inject_failure(s.inject_failure, epoch, rank)
        if stop.item():
            break
