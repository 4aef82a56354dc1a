"""Logging and progress for people at a terminal (and for log files).

- :func:`configure` sets the ``raytag`` logger's level from ``-v``/``-q`` (messages go to
  stderr; stdout is kept for machine-readable output such as ``--json``).
- :func:`echo` is the one way library code talks to the user (``logging`` at INFO).
- :class:`Progress`: a tqdm bar with rate and ETA on a terminal; elsewhere (CI, a job's
  log file) a plain line at most every ``PLAIN_EVERY_S`` seconds and one at the end, so a
  log never fills with carriage returns.
- :func:`ray_init_kwargs`: how quiet Ray itself is (worker log lines reach the terminal
  only with ``-v``; Ray Data's progress bars follow the terminal).
"""

from __future__ import annotations

import logging
import sys
import time

__all__ = ["log", "configure", "echo", "verbosity", "Progress", "ray_init_kwargs",
           "quiet_ray_data"]

log = logging.getLogger("raytag")
#: Seconds between plain progress lines when stderr is not a terminal.
PLAIN_EVERY_S = 10.0
_state = {"verbosity": 0}


def configure(verbosity: int = 0) -> None:
    """``verbosity``: -1 (``-q``: warnings only), 0 (progress and notes), 1+ (``-v``: also
    debug lines and Ray's own logs)."""
    _state["verbosity"] = verbosity
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    log.setLevel(level)
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.propagate = False


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test capture, redirection)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the property wins
        pass


def verbosity() -> int:
    return _state["verbosity"]


def echo(message: str) -> None:
    """One line for the user (INFO): shown by default, hidden by ``-q``."""
    if not log.handlers:  # library use without the CLI: behave like a print to stderr
        configure(_state["verbosity"])
    log.info(message)


def _is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """Counts done units of ``total`` (``None``: unknown) under a description.

    ``update(n)`` adds ``n``; ``close()`` prints the final line. Also a context manager.
    """

    def __init__(self, total: int | None, desc: str, unit: str = "participant"):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = 0
        self._t0 = self._last = time.perf_counter()
        self._bar = None
        if _state["verbosity"] >= 0 and _is_terminal():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=f" {unit}", dynamic_ncols=True,
                             leave=True, file=sys.stderr)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        if now - self._last >= PLAIN_EVERY_S:
            self._last = now
            echo(self.line())

    def set_total(self, total: int | None) -> None:
        """The total once it is known (or revised)."""
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        rate = self.n / elapsed
        of = f"/{self.total}" if self.total is not None else ""
        eta = ""
        if self.total is not None and rate > 0 and self.n < self.total:
            eta = f", eta {(self.total - self.n) / rate:.0f} s"
        return f"{self.desc}: {self.n}{of} {self.unit}s ({rate:.2f}/s{eta})"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        else:
            echo(self.line() + f" in {time.perf_counter() - self._t0:.1f} s")

    def abandon(self) -> None:
        """Close without the final line (the work failed: its error says enough)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()


def quiet_ray_data() -> None:
    """Ray Data's progress bars on a terminal only, and its execution banners only with -v."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = _is_terminal() and _state["verbosity"] >= 0
    if _state["verbosity"] <= 0:
        logging.getLogger("ray.data").setLevel(logging.ERROR)


def ray_init_kwargs() -> dict:
    """Keyword arguments for ``ray.init`` at the current verbosity."""
    loud = _state["verbosity"] > 0
    # Not silenced here: one error-level line from the driver's C++ core worker about actor
    # constructor arguments in the object store (Ray Data's own actors; Ray issue 57733).
    # Setting RAY_BACKEND_LOG_LEVEL would only trade it for an info line of its own.
    return {"log_to_driver": loud, "logging_level": logging.INFO if loud else logging.ERROR,
            "configure_logging": True}
