"""Diversity measures and the internal-vs-external index on planted cases; specificity by hand."""

import numpy as np
import pytest

from msdiversity.analysis.core import AnalysisConfig, _stat_tests
from msdiversity.analysis.diversity import diversity, pairwise_distances, participation_ratio, muscle_cv
from msdiversity.analysis.prep import prepare, to_phase
from msdiversity.analysis.specificity import specificity
from msdiversity.analysis.synthetic import synthetic_recording


def test_pairwise_distances_brute_force_with_nans():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 40))
    X[1, :7] = np.nan
    X[3, 30:] = np.nan
    rmse, cd = pairwise_distances(X)
    for a in range(5):
        for b in range(5):
            ok = np.isfinite(X[a]) & np.isfinite(X[b])
            assert rmse[a, b] == pytest.approx(np.sqrt(np.mean((X[a, ok] - X[b, ok]) ** 2)), abs=1e-10)
            assert cd[a, b] == pytest.approx(1 - np.corrcoef(X[a, ok], X[b, ok])[0, 1], abs=1e-10)


def test_participation_ratio_and_cv_by_hand():
    rng = np.random.default_rng(1)
    line = np.outer(rng.standard_normal(10), rng.standard_normal(50))  # members on one line
    assert participation_ratio(line) == pytest.approx(1.0)
    iso = np.eye(4) * 3.0  # 4 points on orthogonal axes: centred covariance has 3 equal eigenvalues
    assert participation_ratio(iso) == pytest.approx(3.0)
    a = np.stack([np.full((5, 2), 1.0), np.full((5, 2), 3.0)])  # (members, phase, muscles)
    np.testing.assert_allclose(muscle_cv(a), np.std([1.0, 3.0], ddof=1) / 2.0)


def test_time_normalisation_exact_on_linear_signal():
    t = np.linspace(0, 2.0, 37)
    y = to_phase((3 * t + 1)[None, :, None], t, axis=1)
    np.testing.assert_allclose(y[0, :, 0], 3 * np.linspace(0, 2, 101) + 1, atol=1e-12)


def _div(rec, seed=0):
    prep = prepare(rec)
    div, mods = diversity(seed, rec, prep, n_boot=200)
    return div, mods


def test_identical_members_have_zero_internal_diversity():
    rec = synthetic_recording(0, n_members=6, identical_members=True, kin_member_sd_deg=0.0,
                              grf_member_sd_pct_bw=0.0, trial_noise=0.02)
    # Make trial 0 identical across members too (trials 1.. keep their noise floors).
    for v in ("activation", "qpos", "grf"):
        rec[v][:, 0] = rec[v][0, 0]
    div, _ = _div(rec)
    assert div["div_internal"].values[0] == pytest.approx(0.0, abs=1e-12)
    assert div["div_external"].values[0] == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(div["div_index"].values[0])  # 0/0: undefined, not silently 0.5
    assert np.allclose(np.nan_to_num(div["div_act_rmse"].values), 0.0)


def test_index_high_when_only_muscles_differ_and_low_when_only_movement_differs():
    muscles = synthetic_recording(1, n_members=10, act_member_sd=0.3, kin_member_sd_deg=0.0,
                                  grf_member_sd_pct_bw=0.0)
    d1, m1 = _div(muscles)
    est, lo, hi = d1["div_index"].values
    print("muscle-diverse index", est, lo, hi, "int", d1["div_internal"].values, "ext", d1["div_external"].values)
    assert est > 0.6 and lo > 0.5
    tests = {t.name: t for t in _stat_tests(0, d1, m1, 5000, 200)}
    assert tests["act_vs_external"].p < 0.01 and tests["act_vs_external"].effect_size > 1

    movement = synthetic_recording(2, n_members=10, identical_members=True, kin_member_sd_deg=5.0,
                                   grf_member_sd_pct_bw=8.0)
    d2, m2 = _div(movement)
    print("movement-diverse index", d2["div_index"].values)
    assert d2["div_index"].values[0] < 0.4 and d2["div_index"].values[2] < 0.5
    assert {t.name: t for t in _stat_tests(0, d2, m2, 5000, 200)}["act_vs_external"].p > 0.5


def test_normalised_distance_scales_with_trial_noise():
    # Same between-member differences, twice the trial-to-trial noise -> about half the normalised distance.
    a = synthetic_recording(3, n_members=6, trial_noise=0.01, act_member_sd=0.2)
    b = synthetic_recording(3, n_members=6, trial_noise=0.02, act_member_sd=0.2)
    ra = np.nanmean(_div(a)[0]["div_act_rmse_norm"].values[np.triu_indices(6, 1)])
    rb = np.nanmean(_div(b)[0]["div_act_rmse_norm"].values[np.triu_indices(6, 1)])
    assert rb < ra


def test_specificity_planted_offsets():
    rec = synthetic_recording(4, n_members=3, kin_trial_sd_deg=0.0, kin_member_sd_deg=0.0,
                              grf_member_sd_pct_bw=0.0, grf_trial_sd_pct_bw=0.0)
    rec["qpos"][:] = rec["qpos_ref"].values
    rec["qpos"][1, 0] = rec["qpos_ref"].values + np.deg2rad(2.0)
    rec["body_pos"][:] = rec["body_pos_ref"].values
    rec["body_pos"][2, 0, :, :, 2] += 0.03  # 3 cm up
    bw = 70.0 * 9.81
    rec["grf"][:] = rec["grf_ref"].values
    rec["grf"][2, 0, :, 0, 2] += 0.05 * bw  # +5 % BW on the right foot's vertical force
    spec = specificity(rec, prepare(rec))
    np.testing.assert_allclose(spec["spec_joint_rmse_deg"].values, [0, 2, 0], atol=1e-9)
    np.testing.assert_allclose(spec["spec_body_err_cm"].values, [0, 0, 3], atol=1e-9)
    # per component, pooled over the two feet: the vertical error is 5 / sqrt(2) % BW, not diluted by
    # the four error-free horizontal channels (5 / sqrt(6) when all 6 channels were pooled)
    np.testing.assert_allclose(spec["spec_grf_vertical_rmse_pct_bw"].values, [0, 0, 5 / np.sqrt(2)], atol=1e-9)
    np.testing.assert_allclose(spec["spec_grf_rmse_pct_bw"].values, [0, 0, 5 / np.sqrt(2)], atol=1e-9)
    np.testing.assert_allclose(spec["spec_grf_rmse_axis_pct_bw"].sel(member=2).values, [0, 0, 5 / np.sqrt(2)],
                               atol=1e-9)
    assert spec["spec_grf_corr"].values[0] == pytest.approx(1.0)
    assert spec.attrs["grf_reference"] == "reference"
