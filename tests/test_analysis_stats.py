"""Permutation tests: reject planted effects, hold the nominal level on repeated nulls."""

import numpy as np
from scipy.stats import binom

from msdiversity.analysis.stats import results_to_dataset, sign_flip_test, two_sample_test


def test_sign_flip_rejects_planted_difference():
    rng = np.random.default_rng(0)
    r = sign_flip_test(1, rng.normal(1.0, 1.0, 20), n_perm=5000)
    assert r.p < 0.01 and r.n == 20
    assert 0.5 < r.effect_size < 2.0 and r.ci_low < r.effect_size < r.ci_high


def test_sign_flip_exact_small_n():
    # All 5 differences positive: only the identity (of 32 sign patterns) reaches the observed mean.
    r = sign_flip_test(0, np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert r.p == 1 / 32


def _rate_in_binomial_interval(pvals, alpha=0.05):
    n = len(pvals)
    lo, hi = binom.ppf(0.0005, n, alpha), binom.ppf(0.9995, n, alpha)  # 99.9 % interval
    k = int(np.sum(np.asarray(pvals) <= alpha))
    return lo <= k <= hi, k, (lo, hi)


def test_sign_flip_nominal_rate_on_nulls():
    rng = np.random.default_rng(1)
    pvals = [sign_flip_test(rng, rng.standard_normal(20), n_perm=999, n_boot=10).p for _ in range(200)]
    ok, k, iv = _rate_in_binomial_interval(pvals)
    print(f"sign-flip nulls: {k}/200 rejections at alpha=0.05, 99.9% binomial interval {iv}")
    assert ok


def test_two_sample_planted_and_nulls():
    rng = np.random.default_rng(2)
    assert two_sample_test(0, rng.normal(1, 1, 15), rng.normal(0, 1, 15), n_perm=4000).p < 0.01
    pvals = [two_sample_test(rng, rng.standard_normal(10), rng.standard_normal(12), n_perm=999, n_boot=10).p
             for _ in range(200)]
    ok, k, iv = _rate_in_binomial_interval(pvals)
    print(f"two-sample nulls: {k}/200 rejections, interval {iv}")
    assert ok


def test_results_table_layout():
    ds = results_to_dataset([sign_flip_test(0, np.ones(4), name="a"), sign_flip_test(0, -np.ones(4), name="b")])
    assert list(ds["test"].values) == ["a", "b"]
    for v in ("stat_n", "stat_statistic", "stat_p", "stat_effect_size", "stat_ci_low", "stat_ci_high"):
        assert ds[v].dims == ("test",) and "units" in ds[v].attrs
