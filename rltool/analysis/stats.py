"""Robust aggregate statistics with stratified-bootstrap confidence intervals.

Plain numpy. Scores are a matrix of shape ``(n_runs, n_tasks)``: one final score per
run (seed) and task (env/config). Following Agarwal et al. (2021), "Deep RL at the
Edge of the Statistical Precipice", the uncertainty of an aggregate is estimated by a
*stratified* percentile bootstrap: each replicate resamples runs with replacement
independently within every task, so each task keeps its number of runs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Statistic = Callable[[np.ndarray], float]

# Bootstrap replicates are drawn in blocks so that memory stays bounded for large
# score matrices (a block holds block * n_runs * n_tasks indices).
_BLOCK = 4096


def _as_matrix(scores: np.ndarray | list) -> np.ndarray:
    """Return ``scores`` as a finite float matrix ``(n_runs, n_tasks)``; 1-D means one task."""
    arr = np.asarray(scores, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty (n_runs, n_tasks) matrix, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("scores contain NaN or infinite values")
    return arr


def iqm(x: np.ndarray | list) -> float:
    """Interquartile mean: the mean of the middle 50% of all values.

    Same semantics as ``scipy.stats.trim_mean(x, 0.25, axis=None)``: the input is
    flattened, sorted, and ``int(0.25 * n)`` values are cut from each end.

    :param x: scores of any shape (flattened).
    :return: the interquartile mean.
    """
    flat = np.sort(np.asarray(x, dtype=float).ravel())
    n = flat.size
    if n == 0:
        raise ValueError("iqm of an empty array")
    cut = int(0.25 * n)
    return float(flat[cut : n - cut].mean())


def mean(x: np.ndarray | list) -> float:
    """Mean of all values (over runs and tasks).

    :param x: scores of any shape (flattened).
    :return: the mean.
    """
    return float(np.mean(np.asarray(x, dtype=float)))


def _batched_mean(samples: np.ndarray) -> np.ndarray:
    return samples.reshape(len(samples), -1).mean(axis=1)


def _batched_iqm(samples: np.ndarray) -> np.ndarray:
    flat = np.sort(samples.reshape(len(samples), -1), axis=1)
    n = flat.shape[1]
    cut = int(0.25 * n)
    return flat[:, cut : n - cut].mean(axis=1)


# Vectorised versions of the built-in statistics, applied to a whole block of replicates
# at once (same values as calling the statistic on each replicate, much faster).
_BATCHED: dict[Callable, Callable[[np.ndarray], np.ndarray]] = {mean: _batched_mean, iqm: _batched_iqm}


def bootstrap_distribution(
    scores: np.ndarray | list,
    statistics: dict[str, Statistic],
    reps: int = 2000,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Values of several statistics on the same stratified bootstrap replicates.

    :param scores: ``(n_runs, n_tasks)`` matrix (a 1-D array is one task).
    :param statistics: name -> function of an ``(n_runs, n_tasks)`` matrix returning a float.
    :param reps: number of bootstrap replicates.
    :param seed: seed of the numpy random generator (same seed, same replicates).
    :return: name -> array of ``reps`` replicate values.
    """
    arr = _as_matrix(scores)
    if reps < 1:
        raise ValueError("reps must be at least 1")
    n_runs, n_tasks = arr.shape
    rng = np.random.default_rng(seed)
    out = {name: np.empty(reps) for name in statistics}
    cols = np.arange(n_tasks)
    done = 0
    while done < reps:
        block = min(_BLOCK, reps - done)
        # One run index per (replicate, run slot, task): resampling within each task column.
        idx = rng.integers(0, n_runs, size=(block, n_runs, n_tasks))
        samples = arr[idx, cols]
        for name, fn in statistics.items():
            batched = _BATCHED.get(fn)
            if batched is not None:
                out[name][done : done + block] = batched(samples)
            else:
                out[name][done : done + block] = [fn(s) for s in samples]
        done += block
    return out


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def stratified_bootstrap_ci(
    scores: np.ndarray | list,
    statistic: Statistic,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile confidence interval of ``statistic`` by stratified bootstrap.

    Each replicate resamples the runs of every task with replacement, independently per
    task; with a single task this is the ordinary bootstrap over runs. With one run the
    interval collapses to the point estimate.

    :param scores: ``(n_runs, n_tasks)`` matrix (a 1-D array is one task).
    :param statistic: function of an ``(n_runs, n_tasks)`` matrix returning a float, e.g. :func:`iqm`.
    :param reps: number of bootstrap replicates.
    :param confidence: coverage of the interval, e.g. 0.95.
    :param seed: seed of the random generator.
    :return: ``(lo, hi)``, the ``(1-confidence)/2`` and ``(1+confidence)/2`` quantiles of the replicates.
    """
    values = bootstrap_distribution(scores, {"s": statistic}, reps=reps, seed=seed)["s"]
    return _percentile_interval(values, confidence)


def aggregate(
    scores: np.ndarray | list,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float | int]:
    """Mean and IQM of a score matrix with stratified-bootstrap percentile CIs.

    Both intervals come from the same replicates.

    :param scores: ``(n_runs, n_tasks)`` matrix (a 1-D array is one task).
    :param reps: number of bootstrap replicates.
    :param confidence: coverage of the intervals.
    :param seed: seed of the random generator.
    :return: dict with keys ``mean, mean_lo, mean_hi, iqm, iqm_lo, iqm_hi`` (floats) and
        ``n_runs, n_tasks, reps`` (ints) and ``confidence`` (float).
    """
    arr = _as_matrix(scores)
    dist = bootstrap_distribution(arr, {"mean": mean, "iqm": iqm}, reps=reps, seed=seed)
    mean_lo, mean_hi = _percentile_interval(dist["mean"], confidence)
    iqm_lo, iqm_hi = _percentile_interval(dist["iqm"], confidence)
    return {
        "mean": mean(arr),
        "mean_lo": mean_lo,
        "mean_hi": mean_hi,
        "iqm": iqm(arr),
        "iqm_lo": iqm_lo,
        "iqm_hi": iqm_hi,
        "n_runs": int(arr.shape[0]),
        "n_tasks": int(arr.shape[1]),
        "reps": int(reps),
        "confidence": float(confidence),
    }
