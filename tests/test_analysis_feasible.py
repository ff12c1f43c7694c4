"""Feasible-set sampler against polytopes with closed-form marginals, and placing members in it."""

import numpy as np
import pytest

from msdiversity.analysis.feasible import place_members, sample_polytope
from msdiversity.errors import InputError


def _max_cdf_gap(x, cdf):
    x = np.sort(x)
    emp = np.arange(1, len(x) + 1) / len(x)
    return float(np.max(np.abs(emp - cdf(x))))


def test_simplex_slice_marginals_are_beta():
    # {a in [0,1]^4 : sum a = 1} is the 3-simplex: uniform on it, each a_i ~ Beta(1, 3), F = 1 - (1 - x)^3
    rng = np.random.default_rng(0)
    s = sample_polytope(rng, np.ones((1, 4)), np.array([1.0]), n_samples=3000)
    assert np.abs(s.sum(1) - 1).max() < 1e-9 and s.min() >= 0 and s.max() <= 1
    for i in range(4):
        assert _max_cdf_gap(s[:, i], lambda x: 1 - (1 - x) ** 3) < 0.04
    np.testing.assert_allclose(s.mean(0), 0.25, atol=0.02)


def test_hypersimplex_slice_of_the_cube():
    # {a in [0,1]^4 : sum a = 2}: density of a_1 is (3/4)(1 + 2x - 2x^2) (area of the cube's slice
    # at sum 2 - x), so F(x) = (3/4)(x + x^2 - 2x^3/3); the box constraints all bind here.
    rng = np.random.default_rng(1)
    s = sample_polytope(rng, np.ones((1, 4)), np.array([2.0]), n_samples=3000)
    F = lambda x: 0.75 * (x + x ** 2 - 2 * x ** 3 / 3)  # noqa: E731
    for i in range(4):
        assert _max_cdf_gap(s[:, i], F) < 0.04
    # a badly scaled version of the same set (rows times 1e3, one muscle 100x weaker with a
    # rescaled bound is not expressible; instead scale A and b together): identical marginals
    s2 = sample_polytope(rng, 1e3 * np.ones((1, 4)), np.array([2e3]), n_samples=3000)
    assert _max_cdf_gap(s2[:, 0], F) < 0.04


def test_elongated_slice_and_fixed_muscle():
    # a1 + 100 a2 = 50 with a3 free and a4 forced to 0 by a second row: a2 in [0.49, 0.5], a1 = 50 - 100 a2
    # uniform on [0, 1]; a3 uniform on [0, 1]; a4 = 0 exactly
    A = np.array([[1.0, 100.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    b = np.array([50.0, 0.0])
    s = sample_polytope(np.random.default_rng(2), A, b, n_samples=2000)
    assert np.abs(A @ s.T - b[:, None]).max() < 1e-8
    assert np.all(s[:, 3] == 0)
    assert _max_cdf_gap(s[:, 0], lambda x: x) < 0.05
    assert _max_cdf_gap(s[:, 2], lambda x: x) < 0.05


def test_empty_set_is_refused():
    with pytest.raises(InputError, match="empty"):
        sample_polytope(np.random.default_rng(0), np.ones((1, 3)), np.array([5.0]))


def test_placement_and_coverage():
    rng = np.random.default_rng(3)
    s = sample_polytope(rng, np.ones((1, 3)), np.array([1.0]), n_samples=2000)
    # members at the feasible minimum, the median and the maximum of muscle 0 (Beta(1, 2): median 1 - 1/sqrt 2)
    med = 1 - 1 / np.sqrt(2)
    members = np.array([[0.0, 0.5, 0.5], [med, (1 - med) / 2, (1 - med) / 2], [1.0, 0.0, 0.0]])
    p = place_members(s, members)
    np.testing.assert_allclose(p["percentile"][:, 0], [0.0, 0.5, 1.0], atol=0.04)
    assert p["coverage"][0] > 0.95  # min to max of muscle 0 spans the whole marginal
    # members drawn from the set itself: coverage near (M - 1) / (M + 1), variance ratio near 1
    idx = rng.choice(len(s), 9, replace=False)
    p2 = place_members(s, s[idx])
    assert 0.5 < np.mean(p2["coverage"]) < 0.95
    p3 = place_members(s, s[rng.choice(len(s), 500, replace=False)])
    assert 0.8 < p3["var_ratio"] < 1.2
