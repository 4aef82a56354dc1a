"""The paper's split by participant: 10% test; of the rest, 80% train and 20% validation."""

from __future__ import annotations

import numpy as np

__all__ = ["split_participants", "SPLITS"]

SPLITS = ("train", "val", "test")


def split_participants(eids, seed: int = 0, test: float = 0.1, val: float = 0.2) -> dict[str, str]:
    """``eid -> "train" | "val" | "test"``, seeded, by participant (never by slice).

    Deterministic for a given set of EIDs and seed (sorted first, then shuffled), so every
    worker and every rerun agrees. At least one participant goes to each split when there
    are three or more.
    """
    unique = sorted({str(e) for e in eids})
    order = np.random.default_rng(seed).permutation(len(unique))
    n = len(unique)
    n_test = max(1, round(n * test)) if n >= 3 else 0
    n_val = max(1, round((n - n_test) * val)) if n >= 3 else 0
    out = {}
    for rank, i in enumerate(order):
        out[unique[i]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return out
