"""Statistics of the study's tables (numpy + scipy), each on plain 1-D float arrays.

Conventions (those of Ferdian et al. 2020, Table 2 and 3):

- SDs are sample SDs (``ddof=1``); a single value has SD NaN.
- *bias* = mean of (predicted - reference); *precision* = SD of that difference;
- Bland-Altman limits of agreement = bias +- 1.96 x precision;
- paired t-test of the difference (H0: mean difference 0), two-sided;
- Bonferroni: significant when ``p < alpha / n_tests`` (the paper: 0.05 / 15);
- group differences: Welch's unequal-variance t-test, two-sided, and the confidence interval
  of (mean_a - mean_b) from the Welch-Satterthwaite degrees of freedom.

Non-finite values are dropped pairwise before anything is computed; ``n`` counts what is
left. Results are plain dicts of floats (NaN where undefined) so they go straight to JSON.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

__all__ = ["mean_sd", "paired_agreement", "bonferroni_significant", "welch_difference",
           "robust_z", "LOA_Z"]

#: Bland-Altman: 95% limits of agreement are bias +- 1.96 SD.
LOA_Z = 1.96


def _finite(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def mean_sd(x) -> tuple[float, float]:
    """(mean, sample SD) of the finite values; NaN where undefined."""
    a = _finite(x)
    mean = float(a.mean()) if a.size else math.nan
    sd = float(a.std(ddof=1)) if a.size > 1 else math.nan
    return mean, sd


def paired_agreement(pred, ref) -> dict[str, float]:
    """Agreement of paired measurements ``pred`` and ``ref`` (same length, 1-D).

    Returns ``n``, ``ref_mean``/``ref_sd``, ``pred_mean``/``pred_sd``, ``bias``/``precision``
    (mean/SD of pred - ref), ``abs_mean``/``abs_sd`` (of |pred - ref|), ``loa_low``/
    ``loa_high`` (Bland-Altman 95% limits), ``t`` and ``p`` (paired t-test).
    """
    p = np.asarray(pred, dtype=np.float64).ravel()
    r = np.asarray(ref, dtype=np.float64).ravel()
    if p.shape != r.shape:
        raise ValueError(f"pred and ref differ in length: {p.size} vs {r.size}")
    keep = np.isfinite(p) & np.isfinite(r)
    p, r = p[keep], r[keep]
    d = p - r
    out = {"n": int(d.size)}
    out["ref_mean"], out["ref_sd"] = mean_sd(r)
    out["pred_mean"], out["pred_sd"] = mean_sd(p)
    out["bias"], out["precision"] = mean_sd(d)
    out["abs_mean"], out["abs_sd"] = mean_sd(np.abs(d))
    out["loa_low"] = out["bias"] - LOA_Z * out["precision"]
    out["loa_high"] = out["bias"] + LOA_Z * out["precision"]
    if d.size > 1 and np.any(d != d[0]):
        res = sps.ttest_1samp(d, 0.0)
        out["t"], out["p"] = float(res.statistic), float(res.pvalue)
    else:  # no spread: the t statistic is undefined (identical differences)
        out["t"], out["p"] = math.nan, math.nan
    return out


def bonferroni_significant(p: float, n_tests: int, alpha: float = 0.05) -> bool:
    """True when ``p < alpha / n_tests`` (NaN is never significant)."""
    if n_tests < 1:
        raise ValueError("n_tests must be >= 1")
    return bool(np.isfinite(p) and p < alpha / n_tests)


def welch_difference(a, b, confidence: float = 0.95) -> dict[str, float]:
    """Difference of means ``mean(a) - mean(b)`` with Welch's t-test and its CI.

    Returns ``n_a``, ``n_b``, ``mean_a``/``sd_a``, ``mean_b``/``sd_b``, ``diff``, ``ci_low``/
    ``ci_high``, ``t``, ``df`` (Welch-Satterthwaite) and ``p`` (two-sided); NaN where a
    group has fewer than two values or both have no spread.
    """
    x, y = _finite(a), _finite(b)
    out = {"n_a": int(x.size), "n_b": int(y.size)}
    out["mean_a"], out["sd_a"] = mean_sd(x)
    out["mean_b"], out["sd_b"] = mean_sd(y)
    out["diff"] = out["mean_a"] - out["mean_b"]
    nan = dict.fromkeys(("ci_low", "ci_high", "t", "df", "p"), math.nan)
    if x.size < 2 or y.size < 2:
        return out | nan
    va, vb = out["sd_a"] ** 2 / x.size, out["sd_b"] ** 2 / y.size
    se2 = va + vb
    if se2 == 0:
        return out | nan
    df = se2**2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
    t = out["diff"] / math.sqrt(se2)
    half = float(sps.t.ppf(0.5 + confidence / 2, df)) * math.sqrt(se2)
    return out | {"ci_low": out["diff"] - half, "ci_high": out["diff"] + half, "t": t,
                  "df": df, "p": float(2 * sps.t.sf(abs(t), df))}


def robust_z(x) -> np.ndarray:
    """(x - median) / (1.4826 MAD), same shape as ``x``; NaN stays NaN, 0 when MAD is 0.

    Used to pick outliers when there is no reference (|z| > 3.5 is the usual cut).
    """
    a = np.asarray(x, dtype=np.float64)
    fin = a[np.isfinite(a)]
    if fin.size == 0:
        return np.full_like(a, np.nan)
    med = np.median(fin)
    mad = 1.4826 * np.median(np.abs(fin - med))
    if mad == 0:
        return np.where(np.isfinite(a), 0.0, np.nan)
    return (a - med) / mad
