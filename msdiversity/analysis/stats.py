"""Permutation tests with effect sizes and bootstrap confidence intervals.

Every test returns a `TestResult` (n, statistic, p, effect size with a 95 % percentile-bootstrap
CI); `results_to_dataset` turns a list of them into the `stat_*` variables of analysis.nc (dim
`test`). p-values of Monte-Carlo permutation tests are (1 + #{T* >= T}) / (1 + N) (Phipson & Smyth
2010), so they are never 0 and the test is exact at level alpha; small samples are enumerated
exactly.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import xarray as xr

EXACT_MAX_N = 14  # enumerate all 2^n sign flips up to this n (16384 patterns)


@dataclasses.dataclass(frozen=True)
class TestResult:
    name: str
    n: int
    statistic: float
    p: float
    effect_size: float
    ci_low: float
    ci_high: float
    statistic_name: str
    effect_name: str
    description: str
    min_p: float = float("nan")  # smallest p-value the test can return with this n (exact enumeration)
    note: str = ""  # caveat to print with the result ("" when none)


def small_n_note(min_p: float, n: int, alpha: float = 0.05) -> str:
    """A caveat when the test cannot reach `alpha` at all with n units (e.g. 2 members: p >= 0.25)."""
    if np.isfinite(min_p) and min_p > alpha:
        return (f"with n = {n} the smallest attainable p is {min_p:.3g} > {alpha:g}: this test cannot detect "
                "an effect; use more members")
    return ""


def not_computed(name: str, reason: str, statistic_name: str = "mean difference",
                 effect_name: str = "Cohen's d_z") -> TestResult:
    """A table row for a test that was refused (NaN numbers, the reason in `note`)."""
    nan = float("nan")
    return TestResult(name, 0, nan, nan, nan, nan, nan, statistic_name, effect_name, "not computed", nan,
                      "not computed: " + reason)


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def cohen_dz(d: np.ndarray) -> float:
    """Paired effect size: mean / SD (ddof=1) of the differences; 0 when all differences are 0."""
    d = np.asarray(d, float)
    sd = d.std(ddof=1) if d.size > 1 else 0.0
    if sd == 0:
        return 0.0 if np.all(d == 0) else float(np.sign(d.mean()) * np.inf)
    return float(d.mean() / sd)


def bootstrap_ci(seed, x: np.ndarray, fn, n_boot: int = 2000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of `fn(x[idx])` resampling the first axis of x."""
    rng = _rng(seed)
    x = np.asarray(x)
    n = x.shape[0]
    if n < 2:
        return (float("nan"), float("nan"))
    idx = rng.integers(0, n, size=(n_boot, n))
    vals = np.array([fn(x[i]) for i in idx], float)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return (float("nan"), float("nan"))
    a = (1 - level) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def sign_flip_test(seed, d: np.ndarray, n_perm: int = 10000, alternative: str = "greater",
                   name: str = "sign_flip", description: str = "", n_boot: int = 2000) -> TestResult:
    """One-sample / paired permutation test of mean(d) = 0 by random sign flips of independent units.

    Args:
        seed: numpy seed or Generator.
        d: (n,) paired differences, one per independent unit (e.g. per member).
        n_perm: Monte-Carlo sign patterns (ignored when n <= EXACT_MAX_N: exact enumeration).
        alternative: "greater" (H1: mean > 0), "less" or "two-sided".

    Returns:
        TestResult with statistic = mean(d), effect size Cohen's d_z and its bootstrap CI.
    """
    rng = _rng(seed)
    d = np.asarray(d, float)
    d = d[np.isfinite(d)]
    n = d.size
    if n == 0:
        nan = float("nan")
        return TestResult(name, 0, nan, nan, nan, nan, nan, "mean difference", "Cohen's d_z", description)
    obs = d.mean()
    if n <= EXACT_MAX_N:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))  # (2^n, n), includes identity
        null = signs @ d / n
        exact = True
    else:
        signs = rng.choice(np.array([-1.0, 1.0]), size=(n_perm, n))
        null = signs @ d / n
        exact = False
    eps = 1e-12 * max(1.0, abs(obs))
    if alternative == "greater":
        hits = np.sum(null >= obs - eps)
    elif alternative == "less":
        hits = np.sum(null <= obs + eps)
    elif alternative == "two-sided":
        hits = np.sum(np.abs(null) >= abs(obs) - eps)
    else:
        raise ValueError(f"alternative must be greater/less/two-sided, got {alternative!r}")
    p = hits / null.size if exact else (1 + hits) / (1 + null.size)
    lo, hi = bootstrap_ci(rng, d, cohen_dz, n_boot=n_boot)
    # one-sided: only the identity pattern (and any ties) can reach the largest mean; two-sided doubles it
    min_p = (2.0 if alternative == "two-sided" else 1.0) / 2 ** n if exact else 1.0 / (1 + null.size)
    note = small_n_note(min_p, n)
    if note:
        import warnings

        warnings.warn(f"{name}: {note}", stacklevel=2)
    return TestResult(name, n, float(obs), float(p), cohen_dz(d), lo, hi, "mean difference", "Cohen's d_z",
                      description, float(min(min_p, 1.0)), note)


def two_sample_test(seed, x: np.ndarray, y: np.ndarray, n_perm: int = 10000, alternative: str = "greater",
                    name: str = "two_sample", description: str = "", n_boot: int = 2000) -> TestResult:
    """Two-sample permutation test of mean(x) - mean(y) by shuffling group labels.

    Effect size: Hedges' g (pooled SD, small-sample corrected) with a bootstrap CI resampling
    within each group.
    """
    rng = _rng(seed)
    x = np.asarray(x, float)[np.isfinite(x)]
    y = np.asarray(y, float)[np.isfinite(y)]
    nx, ny = x.size, y.size
    z = np.concatenate([x, y])
    obs = x.mean() - y.mean()
    perms = np.argsort(rng.random((n_perm, nx + ny)), axis=1)  # (perm, n) random permutations
    zp = z[perms]
    null = zp[:, :nx].mean(1) - zp[:, nx:].mean(1)
    eps = 1e-12 * max(1.0, abs(obs))
    hits = {"greater": np.sum(null >= obs - eps), "less": np.sum(null <= obs + eps),
            "two-sided": np.sum(np.abs(null) >= abs(obs) - eps)}[alternative]
    p = (1 + hits) / (1 + n_perm)

    def g(a, b):
        sp = np.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / max(a.size + b.size - 2, 1))
        corr = 1 - 3 / (4 * (a.size + b.size) - 9) if a.size + b.size > 3 else 1.0
        return (a.mean() - b.mean()) / sp * corr if sp > 0 else np.nan

    boots = [g(x[rng.integers(0, nx, nx)], y[rng.integers(0, ny, ny)]) for _ in range(n_boot)]
    boots = np.asarray(boots)[np.isfinite(boots)]
    lo, hi = (np.quantile(boots, 0.025), np.quantile(boots, 0.975)) if boots.size else (np.nan, np.nan)
    return TestResult(name, nx + ny, float(obs), float(p), float(g(x, y)), float(lo), float(hi),
                      "difference of means", "Hedges' g", description)


def results_to_dataset(results: list[TestResult]) -> xr.Dataset:
    """The statistics table: variables `stat_*` on dim `test` (string coordinate)."""
    names = [r.name for r in results]
    ds = xr.Dataset(coords={"test": names})
    num = {"n": ("count (independent units)", "stat_n"), "statistic": ("see stat_statistic_name", "stat_statistic"),
           "p": ("1", "stat_p"), "effect_size": ("1", "stat_effect_size"), "ci_low": ("1", "stat_ci_low"),
           "ci_high": ("1", "stat_ci_high"), "min_p": ("1", "stat_min_p")}
    for field, (units, var) in num.items():
        dtype = int if field == "n" else float
        ds[var] = ("test", np.array([getattr(r, field) for r in results], dtype=dtype))
        ds[var].attrs["units"] = units
    for field in ("statistic_name", "effect_name", "description", "note"):
        ds[f"stat_{field}"] = ("test", np.array([getattr(r, field) for r in results], dtype=object).astype(str))
        ds[f"stat_{field}"].attrs["units"] = ""
    ds["stat_p"].attrs["long_name"] = "one-sided permutation p-value"
    ds["stat_min_p"].attrs["long_name"] = "smallest p-value attainable with this n"
    ds["stat_ci_low"].attrs["long_name"] = "95% bootstrap CI of the effect size, lower"
    ds["stat_ci_high"].attrs["long_name"] = "95% bootstrap CI of the effect size, upper"
    return ds
