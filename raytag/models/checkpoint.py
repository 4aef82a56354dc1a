"""Checkpoints shared by training, the pipeline and the report.

One file per network: ``torch.save`` of ``{"format", "format_version", "meta_json",
"state_dict"}``, loaded with ``weights_only=True`` (no pickled code runs on load).
``meta_json`` is a JSON object: ``kind`` (``localiser`` | ``tracker``), ``preset``, the
network ``config``, ``normalisation``, input sizes, ``training`` (data description,
command, hardware), ``metrics``, ``code_version`` and ``created``. Files are read and
written through :mod:`raytag.io.storage`, so paths and ``s3://`` URIs both work.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
from dataclasses import dataclass, field

import torch
from torch import nn

from raytag import __version__
from raytag.io import storage
from raytag.models.networks import CentreLocaliser, EDNet, Localiser, Tracker
from raytag.models.normalise import NORMALISATION
from raytag.models.presets import (
    CentreLocaliserConfig,
    EDConfig,
    LocaliserConfig,
    TrackerConfig,
)

__all__ = ["CheckpointError", "Checkpoint", "save_checkpoint", "load_checkpoint",
           "FORMAT", "FORMAT_VERSION"]

FORMAT = "raytag.checkpoint"
FORMAT_VERSION = 1
_KINDS = {"localiser": (Localiser, LocaliserConfig), "tracker": (Tracker, TrackerConfig),
          "ed": (EDNet, EDConfig)}
#: Localiser architectures by the ``arch`` of their stored config (absent = regression).
_LOCALISER_ARCHS = {"regression": (Localiser, LocaliserConfig),
                    "centre": (CentreLocaliser, CentreLocaliserConfig)}
#: Checkpoints are small (paper tracker ~143 MB); refuse anything absurdly larger.
MAX_CHECKPOINT_BYTES = 2 * 1024**3


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or not the network that was asked for."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the network (eval mode) and its metadata."""

    model: nn.Module
    kind: str
    preset: str
    meta: dict = field(default_factory=dict)
    digest: str = ""

    @property
    def normalisation(self) -> dict:
        return self.meta.get("normalisation", NORMALISATION)

    @property
    def version(self) -> str:
        """``<kind>:<preset>:<sha256 of the weights, 12 hex>``: goes into ``model_version``."""
        return f"{self.kind}:{self.preset}:{self.digest[:12]}"


def _kind_of(model: nn.Module) -> str:
    if isinstance(model, CentreLocaliser):
        return "localiser"
    for kind, (cls, _) in _KINDS.items():
        if isinstance(model, cls):
            return kind
    raise TypeError(f"not a raytag network: {type(model).__name__}")


def save_checkpoint(
    model: nn.Module,
    uri: str,
    preset: str,
    normalisation: dict = NORMALISATION,
    training: dict | None = None,
    metrics: dict | None = None,
) -> str:
    """Write ``model`` (weights + config + metadata) to ``uri``; returns its weights digest."""
    kind = _kind_of(model)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "kind": kind,
        "preset": preset,
        "config": model.config.to_dict(),
        "normalisation": dict(normalisation),
        "input_size": model.config.input_size,
        "training": training or {},
        "metrics": metrics or {},
        "code_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION,
                "meta_json": json.dumps(meta, sort_keys=True), "state_dict": state}, buf)
    storage.write_bytes(uri, buf.getvalue())
    return _digest(state)


def _digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].numpy().tobytes())
    return h.hexdigest()


def load_checkpoint(
    uri: str, kind: str | None = None, preset: str | None = None, map_location="cpu"
) -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint`; the network is in eval mode.

    ``kind``/``preset``, when given, must match, else :class:`CheckpointError` says what the
    file holds. Missing, truncated or foreign files raise :class:`CheckpointError` naming
    the URI and the problem.
    """
    try:
        data = storage.read_bytes(uri, max_bytes=MAX_CHECKPOINT_BYTES)
    except storage.StorageError as exc:
        raise CheckpointError(f"checkpoint {uri}: {exc}") from exc
    try:
        blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged file
        raise CheckpointError(
            f"checkpoint {uri}: truncated or not a raytag checkpoint "
            f"({len(data)} bytes; {type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {uri}: not a raytag checkpoint (no {FORMAT!r} tag)")
    if blob.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {uri}: format version {blob.get('format_version')}, this raytag "
            f"reads {FORMAT_VERSION}")
    meta = json.loads(blob["meta_json"])
    if kind is not None and meta["kind"] != kind:
        raise CheckpointError(f"checkpoint {uri}: holds a {meta['kind']}, expected a {kind}")
    if preset is not None and meta["preset"] != preset:
        raise CheckpointError(
            f"checkpoint {uri}: preset {meta['preset']!r}, expected {preset!r}")
    cls, config_cls = _KINDS[meta["kind"]]
    if meta["kind"] == "localiser":
        arch = meta["config"].get("arch", "regression")
        if arch not in _LOCALISER_ARCHS:
            raise CheckpointError(f"checkpoint {uri}: unknown localiser architecture {arch!r}")
        cls, config_cls = _LOCALISER_ARCHS[arch]
    config = config_cls(**{k: tuple(v) if isinstance(v, list) else v
                           for k, v in meta["config"].items()})
    model = cls(config)
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {uri}: weights do not fit its config: {exc}") from exc
    model.eval().to(map_location)
    return Checkpoint(model, meta["kind"], meta["preset"], meta, _digest(blob["state_dict"]))
