"""analyze_recording end to end: layout (dims, units), netCDF round trip, CLI, baselines on a real model."""

import dataclasses
import json
import warnings

import numpy as np
import pytest
import xarray as xr

from msdiversity.analysis import AnalysisConfig, analyze_recording, synthetic_recording


def _check_layout(ds: xr.Dataset, rec: xr.Dataset):
    for v in ds.data_vars:
        assert "units" in ds[v].attrs, v
        assert v.split("_")[0] in ("spec", "div", "syn", "emb", "base", "stat"), v
    assert list(ds["muscle"].values) == list(rec["muscle"].values)
    assert ds.sizes["phase"] == 101 and ds["phase"].values[-1] == 100.0
    assert ds["div_act_rmse"].dims == ("member", "member_b")
    assert ds["syn_W"].dims == ("member", "synergy", "muscle")
    assert ds["emb_pca"].dims == ("member", "trial", "component")
    for v in ("spec_joint_rmse_deg", "div_index", "syn_vaf", "emb_pca", "stat_p", "syn_cross_vaf"):
        assert np.all(np.isfinite(ds[v].values)), v


def test_analyze_synthetic_roundtrip_and_cli(tmp_path):
    rec = synthetic_recording(0, n_members=8, n_trials=3, n_time=150, n_muscles=12, k_true=3, n_families=2,
                              family_mix=0.8)
    ds = analyze_recording(rec, AnalysisConfig(baselines=False, umap=True, n_null=50, n_perm=2000, n_boot=200))
    _check_layout(ds, rec)
    assert ds.attrs["has_baselines"] == 0 and ds.attrs["normalisation"] == "trial"
    # Two planted solution families are found (labels agree with the plant up to renaming).
    assert int(ds["emb_n_families"]) == 2
    lab, plant = ds["emb_cluster"].values, rec["planted_family"].values
    assert len({(a, b) for a, b in zip(lab, plant)}) == 2
    assert np.all(np.isfinite(ds["emb_umap"].values))

    from msdiversity.analysis.cli import run_analysis
    from msdiversity.util.io import save_dataset_atomic

    d = tmp_path / "results" / "exp"
    save_dataset_atomic(rec, d / "recording.nc")
    cfg = AnalysisConfig(baselines=False, umap=False, n_null=20, n_perm=500, n_boot=50)
    out = run_analysis(d / "recording.nc", d / "analysis.nc", cfg, show_progress=False)
    back = xr.load_dataset(out, engine="h5netcdf")
    _check_layout(back, rec)
    assert json.loads(back.attrs["analysis_config"])["n_null"] == 20
    assert [p.name for p in d.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_cli_bad_input_is_one_clear_error(tmp_path):
    from msdiversity.cli import main

    (tmp_path / "exp").mkdir()
    assert main(["analyze", str(tmp_path / "exp")]) == 2


def test_analyze_with_baselines_on_myoelbow_2dof():
    """A recording shaped like myoelbow_2dof: baselines run on the real model, activations in bands."""
    from msdiversity.analysis.baselines import muscle_problem, reference_state, solve_frames
    from msdiversity.models import load_model, summarize
    from msdiversity.models.registry import muscle_ids

    lm = load_model("myoelbow_2dof")
    s = summarize(lm)
    T = 60
    rec = synthetic_recording(1, n_members=4, n_trials=2, n_time=T, n_muscles=6, n_joints=2, k_true=2,
                              n_families=1, with_grf=False, dt=0.02)
    rec = rec.assign_coords(muscle=list(s.muscle_names), joint=list(s.joint_names))
    t = rec["time"].values
    qref = np.stack([0.1 * np.sin(2 * np.pi * t / t[-1]), 0.3 + 1.2 * (1 - np.cos(np.pi * t / t[-1])) / 2], 1)
    rec["qpos_ref"] = (("time", "joint"), qref)
    rec["ref_qpos_full"] = (("time", "qpos_index"), qref)
    rec.attrs["model"] = "myoelbow_2dof"
    # members track the new reference (0.5 deg noise), so they are compared
    rng = np.random.default_rng(1)
    rec["qpos"][:] = qref[None, None] + np.deg2rad(0.5) * rng.standard_normal(rec["qpos"].shape)
    # Put the members' activations at the static-optimisation solution (plus small noise): inside the band.
    qpos, qvel, qacc = reference_state(lm.model, qref, 0.02)
    prob = muscle_problem(lm.model, qpos, qvel, qacc, muscle_ids(lm.model))
    so = solve_frames(prob, np.arange(T), exponents=(2.0,), ranges=False)["so"][0]  # (T, 6)
    rng = np.random.default_rng(0)
    rec["activation"][:] = np.clip(so[None, None] + 0.003 * rng.standard_normal((4, 2, T, 6)), 0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = analyze_recording(rec, AnalysisConfig(umap=False, n_null=20, n_perm=500, n_boot=50,
                                                   so_exponents=(1.0, 2.0)))
    assert ds.attrs["has_baselines"] == 1, ds.attrs["baselines_skipped"]
    assert ds["base_so_activation"].dims == ("p", "phase", "muscle")
    assert ds["base_id_torque"].dims == ("time", "dof") and list(ds["dof"].values) == list(s.joint_names)
    assert np.all(ds["base_feasible_min"].values <= ds["base_feasible_max"].values + 1e-9)
    assert np.all(ds["base_inside_fraction"].values > 0.95)
    active = so.std(0) > 0.02  # muscles the SO solution actually modulates (others: noise only)
    assert active.sum() >= 2
    assert np.all(ds["base_so_corr"].sel(p=2.0).values[active] > 0.9)


def test_members_that_do_not_reproduce_the_motion_are_left_out_of_diversity(tmp_path):
    """A member whose joint angles are 20 deg off is reported (specificity) but not compared: its
    diversity / synergy / embedding entries are empty, and the others' results are what they are
    without it."""
    rec = synthetic_recording(3, n_members=6, n_trials=3, n_time=120, n_muscles=8, k_true=2, n_families=1)
    bad = rec.copy(deep=True)
    q = bad["qpos"].values
    q[2] += np.deg2rad(20.0)  # member 2 tracks badly
    bad["qpos"] = (bad["qpos"].dims, q)
    cfg = AnalysisConfig(baselines=False, umap=False, n_null=20, n_perm=500, n_boot=100)
    ds = analyze_recording(bad, cfg)
    assert ds["spec_matched"].values.tolist() == [True, True, False, True, True, True]
    assert ds.attrs["n_members"] == 6 and ds.attrs["n_members_matched"] == 5 and "1 of 6" in ds.attrs["match_note"]
    assert ds["spec_joint_rmse_deg"].sel(member=2) > 15  # still reported
    assert np.all(np.isnan(ds["div_act_rmse"].sel(member=2).values))
    assert ds["emb_cluster"].sel(member=2) == -1 and ds["syn_k_chosen"].sel(member=2) == -1
    others = [0, 1, 3, 4, 5]
    ref = analyze_recording(rec.isel(member=others), cfg)
    np.testing.assert_allclose(ds["div_act_rmse"].sel(member=others, member_b=others).values,
                               ref["div_act_rmse"].values, rtol=1e-6)
    np.testing.assert_allclose(ds["div_index"].values, ref["div_index"].values, rtol=1e-6)
    from msdiversity.util.io import save_dataset_atomic

    save_dataset_atomic(ds, tmp_path / "analysis.nc")  # bool / int / NaN fills survive netCDF
    back = xr.load_dataset(tmp_path / "analysis.nc", engine="h5netcdf")
    assert back["spec_matched"].dtype == bool and back["emb_cluster"].sel(member=2) == -1
    # with `inf` thresholds everyone is compared
    all_in = analyze_recording(bad, dataclasses.replace(cfg, match_joint_rmse_deg=float("inf")))
    assert all_in.attrs["n_members_matched"] == 6 and all_in.attrs["match_note"] == ""


def test_a_member_that_falls_early_is_not_a_match():
    """Errors are computed over alive frames only: a member that tracks perfectly until it falls at
    10 % of the recording has a small RMSE, but it does not reproduce the motion and is left out."""
    rec = synthetic_recording(4, n_members=4, n_trials=2, n_time=100, n_muscles=6, k_true=2, n_families=1)
    alive = rec["alive"].values.copy()
    alive[1, :, 10:] = False  # member 1 falls after 10 frames in every trial
    rec["alive"] = (rec["alive"].dims, alive)
    ds = analyze_recording(rec, AnalysisConfig(baselines=False, umap=False, n_null=10, n_perm=200, n_boot=50))
    np.testing.assert_allclose(ds["spec_alive_fraction"].values, [1.0, 0.1, 1.0, 1.0])
    assert ds["spec_joint_rmse_deg"].sel(member=1) < 5  # its short start tracks well ...
    assert ds["spec_matched"].values.tolist() == [True, False, True, True]  # ... but it is no match
    assert "alive" in ds["spec_matched"].attrs["long_name"]
