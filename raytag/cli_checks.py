"""Checks of command-line arguments that run before Ray (or torch) starts.

Every check raises :class:`UsageError` with one line that names the option, the value and
what is wrong; the CLI prints it and exits 2. Checks only look (list, stat, open a header):
they never create, change or delete anything.
"""

from __future__ import annotations

import argparse
import os

__all__ = ["UsageError", "positive_int", "nonnegative_int", "fraction", "positive_float",
           "check_input", "check_output", "check_weights", "check_training_data",
           "check_readable_file"]


class UsageError(ValueError):
    """A mistake in the command line: printed as one line, exit status 2."""


def _number(kind, text: str, test, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not test(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(int, text, lambda v: v >= 1, "a whole number >= 1")


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(int, text, lambda v: v >= 0, "a whole number >= 0")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _number(float, text, lambda v: 0 < v < float("inf"), "a number > 0")


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    return _number(float, text, lambda v: 0.0 <= v <= 1.0, "a number between 0 and 1")


def _is_remote(uri: str) -> bool:
    return "://" in str(uri) and not str(uri).startswith("file://")


def _local(uri: str) -> str:
    return str(uri)[len("file://"):] if str(uri).startswith("file://") else str(uri)


def _has_zip(folder: str) -> bool:
    for _root, _dirs, files in os.walk(folder):
        if any(f.lower().endswith(".zip") for f in files):
            return True
    return False


def check_input(option: str, uri: str) -> str:
    """A cohort input: a folder (or prefix) of zips, one zip, or a manifest ``.parquet``.

    Returns ``"remote"``, ``"folder"``, ``"zip"`` or ``"manifest"``. Remote prefixes are
    checked by the run itself (listing them can be slow); their scheme must be known.
    """
    if _is_remote(uri):
        scheme = str(uri).split("://", 1)[0]
        if scheme not in ("s3", "gs", "gcs", "abfs", "hdfs"):
            raise UsageError(f"{option} {uri}: unknown storage scheme {scheme!r} "
                             "(local paths, s3://, gs://, abfs://, hdfs://)")
        return "remote"
    path = _local(uri)
    if not os.path.exists(path):
        raise UsageError(f"{option} {uri}: no such file or folder")
    if os.path.isdir(path):
        if not _has_zip(path):
            raise UsageError(f"{option} {uri}: the folder holds no .zip files")
        return "folder"
    if path.lower().endswith(".zip"):
        return "zip"
    if path.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
        except Exception as exc:  # noqa: BLE001 - any unreadable manifest is a usage error
            raise UsageError(f"{option} {uri}: not a readable Parquet manifest ({exc})") from None
        if "uri" not in names:
            raise UsageError(f"{option} {uri}: a manifest needs a 'uri' column (make one with "
                             "raytag index)")
        return "manifest"
    raise UsageError(f"{option} {uri}: a file that is neither a .zip nor a manifest .parquet")


def check_output(option: str, uri: str) -> None:
    """An output folder: an existing folder, or a path whose nearest existing parent is a
    writable folder. Remote prefixes pass (created on write)."""
    if _is_remote(uri):
        return
    path = os.path.abspath(_local(uri))
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise UsageError(f"{option} {uri}: exists and is not a folder")
        if not os.access(path, os.W_OK):
            raise UsageError(f"{option} {uri}: the folder is not writable")
        return
    parent = os.path.dirname(path)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UsageError(f"{option} {uri}: cannot be created ({parent} is not a folder)")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{option} {uri}: cannot be created ({parent} is not writable)")


def check_readable_file(option: str, uri: str) -> None:
    """A local file that must exist (remote URIs pass)."""
    if _is_remote(uri):
        return
    if not os.path.isfile(_local(uri)):
        raise UsageError(f"{option} {uri}: no such file")


def check_weights(option: str, folder: str | None, refine_passes: int | None = None,
                  localiser_views: int | None = None):
    """Load the weights once (CPU) so that a bad folder fails here, in one line, and not
    in every model actor. Returns the predictor (its ``model_version`` is useful)."""
    if folder is not None and not _is_remote(folder):
        if not os.path.isdir(_local(folder)):
            raise UsageError(f"{option} {folder}: no such folder")
        missing = [f for f in ("localiser.pt", "tracker.pt")
                   if not os.path.isfile(os.path.join(_local(folder), f))]
        if missing:
            raise UsageError(f"{option} {folder}: no {' or '.join(missing)} in the folder")
    from raytag.models.weights import load_predictor

    try:
        return load_predictor(folder, device="cpu", refine_passes=refine_passes,
                              localiser_views=localiser_views)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{option} {folder or '(shipped)'}: cannot load weights: "
                         f"{first}") from None


def check_training_data(option: str, uri: str, limit: int | None) -> int:
    """A labelled cohort large enough to fill train, validation and test (three
    participants at the very least). Returns the participant count used."""
    if str(uri).endswith((".h5", ".hdf5")):
        check_readable_file(option, uri)
        return -1
    if _is_remote(uri):
        return -1
    path = _local(uri)
    if not os.path.isdir(path):
        raise UsageError(f"{option} {uri}: not a folder (a raytag synth cohort or a study "
                         ".h5 file)")
    from raytag.constants import TRUTH_FILE

    if not os.path.isfile(os.path.join(path, TRUTH_FILE)):
        raise UsageError(f"{option} {uri}: no {TRUTH_FILE} (make a labelled cohort with "
                         "raytag synth)")
    zips = sorted(f for f in os.listdir(path) if f.lower().endswith(".zip"))
    eids = {f.split("_", 1)[0] for f in zips[: limit if limit else None]}
    if len(eids) < 3:
        raise UsageError(f"{option} {uri}: {len(eids)} participant(s)"
                         f"{' with --limit ' + str(limit) if limit else ''}; training needs at "
                         "least 3 (one each for train, validation and test; 30+ to learn "
                         "anything)")
    return len(eids)
