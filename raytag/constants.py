"""Numbers that the method, the data layout and the results table agree on.

Every module takes these from here, never from a literal of its own.
"""

from __future__ import annotations

# --- Landmarks (docs/conventions.md "Landmarks") ------------------------------------------------
#: Landmarks around the circumference (k), starting at the mid-septum, clockwise as displayed.
N_CIRCUMFERENTIAL = 24
#: Landmarks across the wall (r): 0 = endocardium ... 6 = epicardium.
N_TRANSMURAL = 7
#: Landmarks per frame; index ``i = N_TRANSMURAL * k + r``.
N_LANDMARKS = N_CIRCUMFERENTIAL * N_TRANSMURAL  # 168

#: Rings whose circumferential strain is reported separately (paper Fig. 3).
RING_SUBENDO = 1
RING_MIDWALL = 3
RING_SUBEPI = 5

# --- Cines and preprocessing (docs/conventions.md "Preprocessing") -------------------------------
#: Every cine is fixed to this many frames (pad with invalid frames, or truncate).
N_FRAMES = 20
#: Frames are zero-padded to this square size before localisation.
PAD_SIZE = 256
#: The ROI crop is resampled to this square size before tracking.
CROP_SIZE = 128
#: The ROI box is the ED landmark extent enlarged by this fraction of its size on each side.
ROI_MARGIN = 0.30

#: Beyond the paper: tracker passes re-run on the box recomputed from the tracked ED
#: landmarks (raytag.models.predictor.Predictor). Off by default since the centre
#: localiser: its own box beats the one re-fitted to the ED network's landmarks on every
#: tuning cohort (ROI IoU 0.957/0.949 vs 0.895/0.905 on disc seeds 7101/7111, 0.933/0.941
#: vs 0.888/0.867 on thorax 7102/7112), and so do the ED network's landmarks (RMSE at ED
#: 2.17/2.08/3.32/3.29 vs 2.50/2.61/3.43/3.97 mm); the default tracker's strain is
#: unchanged. The pass was built for the corner localiser, whose boxes were worse.
REFINE_PASSES = 0
#: Beyond the paper: the centre localiser's box as the consensus of 1 or 8 views of the
#: input (every rotation by 90 degrees, with and without a mirror;
#: raytag.models.networks.CentreLocaliser.locate_views). 8 views raised ROI IoU on every
#: tuning cohort (disc 7101/7111, thorax 7102/7112) and on a fresh draw of the held-out
#: family (0.770 -> 0.804, RMSE at ED 17.9 -> 12.7 mm), but not the strain: the default
#: tracker's ES circ error SD was unchanged on the tuning cohorts (0.022/0.019/0.034/0.051
#: -> 0.022/0.022/0.034/0.045) and worse on that held-out draw (0.096 -> 0.267), so the
#: default stays 1 (docs/networks.md; ``raytag run --localiser-views 8``).
LOCALISER_VIEWS = 1
#: The view counts the centre localiser implements (one place for every check).
LOCALISER_VIEW_CHOICES = (1, 8)

#: Training: Adam base learning rate per network (Ferdian et al. 2020: 1e-3 for the ROI
#: network, 1e-4 for the RNN-CNN; the ED-geometry network, a single-frame regressor, like
#: the ROI network: ``raytag train --localiser-lr`` sets both).
DEFAULT_LR = {"localiser": 1e-3, "tracker": 1e-4, "ed": 1e-3}
#: Training: weight of each strain error against the landmark MSE in the tracker's loss
#: (the paper's w = 5).
STRAIN_WEIGHT = 5.0

#: What moves the landmarks through the cine after the networks (``raytag run|evaluate
#: --tracker``): ``network`` (the paper's RNN-CNN), ``harp``, ``hybrid`` or ``tags`` (tag
#: phase, :mod:`raytag.tracking`). Chosen by ``benchmarks/transfer.py`` as the smallest ES
#: circumferential error SD end to end on the held-out family: ``tags`` (ED geometry from
#: tag persistence, moved by HARP) 0.460 against ``harp``'s 0.517 there when chosen; at
#: today's defaults 0.111 against 1.896 (``harp``) and 1.059 (``network``), still no
#: skill (r -0.07), and smaller on both trained families too; recorded in model_version.
DEFAULT_TRACKER = "tags"
#: Every tracker (:func:`raytag.tracking.measure.measure_slice`; here, beside the default,
#: so that the CLI and the run settings validate without importing numerical code).
TRACKERS = ("network", "harp", "hybrid", "tags")

# --- UK Biobank ------------------------------------------------------------------------
#: UK Biobank data field of the CMR tagging zips.
UKB_FIELD_TAGGING = 20211
#: Slice index (the ``b<N>`` in the series description) -> anatomical label.
SLICE_LABELS = {1: "basal", 2: "mid", 3: "apical"}
#: Synthetic cohorts use EIDs from here upwards; real UK Biobank EIDs never appear.
SYNTHETIC_EID_START = 9_000_000

#: File name of a synthetic cohort's truth table, beside its zips.
TRUTH_FILE = "truth.parquet"

# --- Results table ---------------------------------------------------------------------
STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_SKIPPED = "skipped"

# --- Safety limits for untrusted input (no memory bombs, no zip bombs) -----------------
#: Largest Rows or Columns accepted in a DICOM header.
MAX_MATRIX_SIZE = 1024
#: Most frames accepted in one series before truncation (real ones have ~20, a few ~40).
MAX_FRAMES_PER_SERIES = 256
#: Largest single zip member, uncompressed.
MAX_MEMBER_BYTES = 64 * 1024 * 1024
#: Largest sum of uncompressed member sizes in one participant zip (declared, and also
#: what is really inflated across members).
MAX_ZIP_UNCOMPRESSED_BYTES = 256 * 1024 * 1024
#: Most members in one participant zip.
MAX_ZIP_MEMBERS = 20_000
#: Largest participant zip read into memory (real tagging zips: 2-6 MB). With the member
#: and inflation budgets this bounds a decode task's memory (benchmarks/hostile_inputs.py
#: measures the worst case the budgets allow; the pipeline reserves for it).
MAX_ZIP_BYTES = 64 * 1024 * 1024
