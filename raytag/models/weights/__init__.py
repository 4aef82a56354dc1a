"""raytag's shipped default weights and how to load a predictor from any weights folder.

A weights folder (local or ``s3://``) holds ``localiser.pt`` and ``tracker.pt`` in raytag's
checkpoint format. The package ships a trained ``lite`` pair here once training has
produced one (see the model card, ``README.md`` in this folder). Without shipped or given
weights the predictor uses untrained ``lite`` networks and says so in ``model_version``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["shipped_weights", "load_predictor", "UNTRAINED"]

_HERE = Path(__file__).parent
UNTRAINED = "UNTRAINED"


def shipped_weights() -> str | None:
    """The folder of the shipped weights, or None when the package ships none."""
    ok = (_HERE / "localiser.pt").is_file() and (_HERE / "tracker.pt").is_file()
    return str(_HERE) if ok else None


def load_predictor(weights: str | None = None, device=None,
                   refine_passes: int | None = None, tracking: str | None = None,
                   localiser_views: int | None = None):
    """A :class:`~raytag.models.predictor.Predictor` from ``weights`` (default: shipped),
    with ``refine_passes`` box-refinement passes (default :data:`REFINE_PASSES`) and the
    ``tracking`` mode (default :data:`DEFAULT_TRACKER`) and ``localiser_views`` (1 or 8,
    default :data:`LOCALISER_VIEWS`)."""
    import torch

    from raytag import __version__
    from raytag.constants import DEFAULT_TRACKER, LOCALISER_VIEWS, REFINE_PASSES
    from raytag.io import storage
    from raytag.models import build_localiser, build_tracker
    from raytag.models.predictor import Predictor

    passes = REFINE_PASSES if refine_passes is None else refine_passes
    tracking = tracking or DEFAULT_TRACKER
    views = LOCALISER_VIEWS if localiser_views is None else localiser_views
    folder = weights or shipped_weights()
    if folder:
        ed = storage.join(folder, "ed.pt")
        has_ed = storage.exists(ed)
        return Predictor.from_checkpoints(storage.join(folder, "localiser.pt"),
                                          storage.join(folder, "tracker.pt"), device=device,
                                          refine_passes=passes, tracking=tracking,
                                          ed_uri=ed if has_ed else None,
                                          localiser_views=views)
    torch.manual_seed(0)  # reproducible untrained networks
    return Predictor(build_localiser("lite"), build_tracker("lite"), device=device,
                     model_version=f"raytag-{__version__} {UNTRAINED} lite (no weights "
                                   "shipped or given)", refine_passes=passes,
                     tracking=tracking, localiser_views=views)
