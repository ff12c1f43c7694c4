"""Recorder: a tiny trained ensemble is recorded into the recording.nc contract; trial 0 is deterministic."""

import numpy as np
import pytest
import xarray as xr

TINY = """
name = "rec_tiny"
[model]
name = "myoelbow_2dof"
[motion]
source = "synthetic"
seed = 1
duration = 0.5
[env]
episode_length = 25
backend = "cpu"
[train]
iterations = 2
num_envs = 4
unroll_length = 8
num_minibatches = 2
eval_every = 2
eval_envs = 2
eval_steps = 5
[ensemble]
seeds = [0, 1]
effort_exponent = [2.0, 3.0]
[record]
trials = 2
"""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    from msdiversity.config import load_experiment
    from msdiversity.ensemble import train_experiment
    from msdiversity.recording.cli import run_recording

    d = tmp_path_factory.mktemp("rec")
    (d / "rec_tiny.toml").write_text(TINY)
    exp = load_experiment(d / "rec_tiny.toml")
    train_experiment(exp, results_dir=d / "results", show_progress=False)
    path = run_recording(exp, d / "results", show_progress=False)
    return xr.load_dataset(path, engine="h5netcdf"), d


def test_recording_contract(recorded):
    ds, d = recorded
    M, K1 = 4, 3
    T = ds.sizes["time"]
    assert T == 26  # 0.5 s at 50 Hz, frames 0..25
    for v, dims in {"excitation": ("member", "trial", "time", "muscle"), "activation": ("member", "trial", "time", "muscle"),
                    "muscle_force": ("member", "trial", "time", "muscle"), "qpos": ("member", "trial", "time", "joint"),
                    "qpos_ref": ("time", "joint"), "body_pos": ("member", "trial", "time", "body", "axis"),
                    "body_pos_ref": ("time", "body", "axis"), "ref_qpos_full": ("time", "qpos_index"),
                    "ref_qvel_full": ("time", "dof_index"), "alive": ("member", "trial", "time")}.items():
        assert ds[v].dims == dims, v
        assert "units" in ds[v].attrs, v
    assert ds.sizes["member"] == M and ds.sizes["trial"] == K1
    assert list(ds["muscle"].values) == ["TRIlong", "TRIlat", "TRImed", "BIClong", "BICshort", "BRA"]
    assert list(ds["joint"].values) == ["r_shoulder_elev", "r_elbow_flex"]
    np.testing.assert_allclose(np.diff(ds["time"].values), 0.02, atol=1e-9)
    assert list(ds["effort_exponent"].values) == [2.0, 3.0, 2.0, 3.0] and list(ds["seed"].values) == [0, 0, 1, 1]
    for a in ("model", "motion", "experiment", "config", "dt", "body_mass_kg", "gravity", "msdiversity_version", "units"):
        assert a in ds.attrs, a
    assert ds.attrs["model"] == "myoelbow_2dof" and ds.attrs["dt"] == pytest.approx(0.02)
    alive = ds["alive"].values
    assert alive[:, :, 0].all()
    assert np.all(np.diff(alive.astype(int), axis=2) <= 0)  # once dead, stays dead
    for v in ("excitation", "activation", "muscle_force", "qpos", "body_pos"):
        x = ds[v].values
        live = np.broadcast_to(alive.reshape(alive.shape + (1,) * (x.ndim - 3)), x.shape)
        assert np.all(np.isfinite(x[live])), v
    a = ds["activation"].values
    assert a.min() >= 0 and a.max() <= 1
    # reference frame 0 at the start
    np.testing.assert_allclose(ds["qpos"].values[:, :, 0], np.broadcast_to(ds["qpos_ref"].values[0], (M, K1, 2)),
                               atol=1e-5)
    # stochastic trials differ from the deterministic one
    assert np.abs(ds["excitation"].values[:, 1:, 1:] - ds["excitation"].values[:, :1, 1:]).max() > 1e-3


def test_deterministic_trial_is_reproducible_and_analysable(recorded):
    ds, d = recorded
    from msdiversity.config import load_experiment
    from msdiversity.recording.recorder import RecordConfig, record_experiment

    p = record_experiment(d / "results", RecordConfig(trials=1, seed=7), out=d / "again.nc", show_progress=False)
    again = xr.load_dataset(p, engine="h5netcdf")
    np.testing.assert_allclose(again["excitation"].values[:, 0], ds["excitation"].values[:, 0], atol=1e-6)

    from msdiversity.analysis import AnalysisConfig, analyze_recording

    out = analyze_recording(ds, AnalysisConfig(umap=False, n_null=10, n_perm=200, n_boot=50, k_max=4,
                                               so_exponents=(2.0,)))
    assert out.attrs["has_baselines"] == 1, out.attrs["baselines_skipped"]
    assert np.all(np.isfinite(out["spec_joint_rmse_deg"].values))
    assert out["base_id_torque"].dims == ("time", "dof")
