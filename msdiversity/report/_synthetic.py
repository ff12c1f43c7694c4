"""Synthetic datasets shaped like the recording/metrics contract (docs/CONTRACTS.md).

Used by the report tests and to preview the report layout without training anything. The numbers
are planted (members track a known reference with known noise; activations are known mixtures),
so tests can check that what the report prints matches what was planted. Nothing here is used by
`msdiversity run`.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

ARM_MUSCLES = ("TRIlong", "TRIlat", "TRImed", "BIClong", "BICshort", "BRA")
ARM_JOINTS = ("r_shoulder_elev", "r_elbow_flex")


def synthetic_recording(seed: int = 0, *, seeds=(0, 1, 2, 3), effort_exponents=(2.0, 3.0), trials: int = 2,
                        n_time: int = 100, dt: float = 0.01, feet: bool = False, n_muscles: int | None = None,
                        joint_noise_deg: float = 2.0) -> xr.Dataset:
    """A recording dataset with members = seeds x effort exponents.

    Members track `qpos_ref` with Gaussian noise of `joint_noise_deg` (deg, i.i.d. per sample);
    member activations are member-specific mixtures of two muscle patterns.
    """
    rng = np.random.default_rng(seed)
    grid = [(s, e) for s in seeds for e in effort_exponents]
    n_mem = len(grid)
    muscles = ARM_MUSCLES if n_muscles is None else tuple(f"m{i:02d}" for i in range(n_muscles))
    joints = ARM_JOINTS + (("hip_flexion_r", "knee_angle_r") if feet else ())
    bodies = ("humerus", "ulna", "hand") + (("foot_r", "foot_l") if feet else ())
    n_mus, n_j, n_b = len(muscles), len(joints), len(bodies)
    t = np.arange(n_time) * dt  # (time,) s
    phase = 2 * np.pi * t / t[-1]
    qref = np.stack([0.3 * np.sin(phase + k) + 0.5 for k in range(n_j)], axis=-1)  # (time, joint) rad
    noise = np.deg2rad(joint_noise_deg) * rng.standard_normal((n_mem, trials, n_time, n_j))
    qpos = qref[None, None] + noise  # (member, trial, time, joint)
    base = np.stack([0.5 + 0.4 * np.sin(phase), 0.5 + 0.4 * np.cos(phase)], axis=0)  # (2, time)
    mix = rng.uniform(0.0, 1.0, size=(n_mem, n_mus, 2))  # (member, muscle, 2)
    act = np.einsum("mkp,pt->mtk", mix, base) / 2.0  # (member, time, muscle)
    act = np.clip(act[:, None] + 0.02 * rng.standard_normal((n_mem, trials, n_time, n_mus)), 0, 1)
    exc = np.clip(act + 0.05 * rng.standard_normal(act.shape), 0, 1)
    peak = np.linspace(300.0, 1000.0, n_mus)
    bpos_ref = rng.standard_normal((n_time, n_b, 3)) * 0.05 + np.arange(n_b)[None, :, None] * 0.2
    bpos = bpos_ref[None, None] + 0.005 * rng.standard_normal((n_mem, trials, n_time, n_b, 3))
    alive = np.ones((n_mem, trials, n_time), bool)
    alive[-1, -1, -5:] = False  # one stochastic trial terminated early
    data = {
        "excitation": (("member", "trial", "time", "muscle"), exc),
        "activation": (("member", "trial", "time", "muscle"), act),
        "muscle_force": (("member", "trial", "time", "muscle"), act * peak),
        "qpos": (("member", "trial", "time", "joint"), qpos),
        "qpos_ref": (("time", "joint"), qref),
        "body_pos": (("member", "trial", "time", "body", "axis"), bpos),
        "body_pos_ref": (("time", "body", "axis"), bpos_ref),
        "alive": (("member", "trial", "time"), alive),
    }
    if feet:
        stance = np.clip(np.sin(phase), 0, None)
        gref = np.zeros((n_time, 2, 3))
        gref[:, 0, 2] = 700 * stance
        gref[:, 1, 2] = 700 * np.clip(-np.sin(phase), 0, None)
        gref[:, :, 0] = 0.1 * gref[:, :, 2]
        data["grf_ref"] = (("time", "foot", "axis"), gref)
        data["grf"] = (("member", "trial", "time", "foot", "axis"),
                       gref[None, None] + 20 * rng.standard_normal((n_mem, trials, n_time, 2, 3)))
    config = {"name": "synthetic", "model": {"name": "myoelbow_2dof"}, "motion": {"kind": "synthetic"},
              "ensemble": {"seeds": list(seeds), "effort_exponents": list(effort_exponents)}}
    ds = xr.Dataset(
        data,
        coords={
            "member": np.arange(n_mem), "trial": np.arange(trials), "time": t,
            "muscle": list(muscles), "joint": list(joints), "body": list(bodies),
            "foot": ["r", "l"], "axis": ["x", "y", "z"],
            "seed": ("member", np.array([g[0] for g in grid])),
            "effort_exponent": ("member", np.array([g[1] for g in grid], float)),
            "effort_weight": ("member", np.full(n_mem, 0.1)),
            "smoothness_weight": ("member", np.zeros(n_mem)),
            "synergy_weight": ("member", np.zeros(n_mem)),
            "emg_weight": ("member", np.zeros(n_mem)),
            "tracked_joint": ("joint", np.ones(n_j, bool)),
        },
        attrs={"model": "myoelbow_2dof", "motion": "synthetic ground truth (seed 0)", "experiment": "synthetic",
               "config": json.dumps(config), "dt": dt, "body_mass_kg": 70.0 if feet else 2.5,
               "gravity": 9.81, "msdiversity_version": "0.1.0",
               "units": json.dumps({"qpos": "rad", "activation": "1", "muscle_force": "N", "grf": "N",
                                    "body_pos": "m"})},
    )
    if not feet:
        ds = ds.drop_vars("foot")
    return ds


def synthetic_metrics(recording: xr.Dataset, n_iter: int = 20, seed: int = 0) -> xr.Dataset:
    """Training metrics (dims member, iteration) with rising reward curves."""
    rng = np.random.default_rng(seed)
    n_mem = recording.sizes["member"]
    it = np.arange(n_iter)
    rew = 1 - np.exp(-it / 5.0)[None] + 0.02 * rng.standard_normal((n_mem, n_iter))
    err = 20 * np.exp(-it / 5.0)[None] + 2 + 0.2 * rng.standard_normal((n_mem, n_iter))
    return xr.Dataset({"reward": (("member", "iteration"), rew),
                       "joint_err_deg": (("member", "iteration"), err)},
                      coords={"member": recording.member.values, "iteration": it,
                              "env_steps": ("iteration", (it + 1) * 4096)})


def synthetic_analysis(recording: xr.Dataset, seed: int = 0, *, k_max: int = 5, n_components: int = 3,
                       so_exponents=(1.0, 2.0, 3.0)) -> xr.Dataset:
    """An analysis dataset with the variables documented in `msdiversity.analysis` (docstring), with
    planted values: specificity from the recording itself, everything else random but well-formed."""
    rng = np.random.default_rng(seed)
    rec = recording
    n_mem, n_tr = rec.sizes["member"], rec.sizes["trial"]
    muscles, joints = rec["muscle"].values, rec["joint"].values
    n_mus, n_j = len(muscles), len(joints)
    phase = np.arange(101)
    t = rec["time"].values
    phase_time = np.interp(phase / 100.0, np.linspace(0, 1, t.size), t)
    err = np.rad2deg(rec["qpos"].isel(trial=0) - rec["qpos_ref"])  # (member, time, joint) deg
    rmse_j = np.sqrt((err ** 2).mean("time")).values  # (member, joint)
    rmse = np.sqrt((err ** 2).mean(("time", "joint"))).values  # (member,)
    has_grf = "grf" in rec
    act0 = rec["activation"].isel(trial=0).values  # (member, time, muscle)
    act_ph = np.stack([np.stack([np.interp(phase_time, t, act0[m, :, i]) for i in range(n_mus)], -1)
                       for m in range(n_mem)])  # (member, phase, muscle)
    pair = np.sqrt(((act_ph[:, None] - act_ph[None]) ** 2).mean((2, 3)))  # (member, member_b)
    k = np.arange(1, k_max + 1)
    vaf = 1 - 0.5 * np.exp(-k[None] / 1.2) * rng.uniform(0.8, 1.2, (n_mem, 1))
    kc = 2
    W = rng.uniform(0, 1, (n_mem, kc, n_mus))
    W /= np.linalg.norm(W, axis=-1, keepdims=True)
    H = rng.uniform(0, 1, (n_mem, kc, 101))
    match = np.clip(0.7 + 0.3 * rng.uniform(size=(n_mem, n_mem)), 0, 1)
    match = (match + match.T) / 2
    np.fill_diagonal(match, 1.0)
    so = np.clip(act_ph.mean(0)[None] ** np.asarray(so_exponents)[:, None, None] * 1.2, 0, 1)
    fmin = np.clip(act_ph.min(0) - 0.1, 0, 1)
    fmax = np.clip(act_ph.max(0) + 0.1, 0, 1)
    tests = np.array(["act_vs_external", "act_vs_kinematics", "synergies_shared"])

    def boot(est, lo, hi):
        return (("boot",), np.array([est, lo, hi]))

    def v(dims, data, units="1", long_name=""):
        return xr.Variable(dims, np.asarray(data), {"units": units, "long_name": long_name})

    nan_m = np.full(n_mem, np.nan)
    data = {
        "spec_joint_rmse_deg": v(("member",), rmse, "deg", "joint angle RMSE"),
        "spec_joint_rmse_per_joint_deg": v(("member", "joint"), rmse_j, "deg"),
        "spec_body_err_cm": v(("member",), rng.uniform(0.3, 0.8, n_mem), "cm"),
        "spec_grf_rmse_pct_bw": v(("member",), rng.uniform(2, 5, n_mem) if has_grf else nan_m, "% body weight"),
        "spec_grf_corr": v(("member",), rng.uniform(0.8, 0.95, n_mem) if has_grf else nan_m),
        "spec_kin_spread_deg": v(("phase", "joint"), np.full((101, n_j), 2.0), "deg"),
        "spec_kin_spread_mean_deg": v((), 2.0, "deg"),
        "spec_grf_spread_mean_pct_bw": v((), 3.0 if has_grf else np.nan, "% body weight"),
        "spec_qpos_mean": v(("phase", "joint"), np.zeros((101, n_j)), "rad"),
        "spec_qpos_ref": v(("phase", "joint"), np.zeros((101, n_j)), "rad"),
        "div_act_mean": v(("phase", "muscle"), act_ph.mean(0)),
        "div_act_sd": v(("phase", "muscle"), act_ph.std(0)),
        "div_act_rmse": v(("member", "member_b"), pair),
        "div_act_rmse_norm": v(("member", "member_b"), pair / 0.02),
        "div_kin_rmse_norm": v(("member", "member_b"), np.abs(rng.normal(1, 0.2, (n_mem, n_mem)))),
        "div_within_act_rmse": v(("member",), np.full(n_mem, 0.02)),
        "div_muscle_cv": v(("muscle",), rng.uniform(0.1, 0.6, n_mus)),
        "div_effective_dim_act": v((), 2.3),
        "div_internal": v(("boot",), [8.0, 6.5, 9.7]),
        "div_external": v(("boot",), [1.1, 0.9, 1.3]),
        "div_index": v(("boot",), [0.88, 0.84, 0.91]),
        "div_member_internal": v(("member",), rng.uniform(5, 10, n_mem)),
        "div_member_external": v(("member",), rng.uniform(0.8, 1.4, n_mem)),
        "syn_vaf": v(("member", "k"), vaf),
        "syn_k_chosen": v(("member",), np.full(n_mem, kc)),
        "syn_k_elbow": v(("member",), np.full(n_mem, kc)),
        "syn_k_common": v((), kc),
        "syn_W": xr.Variable(("member", "synergy", "muscle"), W, {"units": "1", "reference_member": 0}),
        "syn_H": v(("member", "synergy", "phase"), H),
        "syn_match_cosine": v(("member", "member_b"), match),
        "syn_matched_cosine": v(("member", "synergy"), rng.uniform(0.6, 1, (n_mem, kc))),
        "syn_cross_vaf": v(("member", "member_b"), match * 0.9),
        "syn_shared": v(("member", "synergy"), rng.uniform(size=(n_mem, kc)) > 0.3),
        "syn_null_cosine_p95": v((), 0.8),
        "emb_pca": v(("member", "trial", "component"), rng.standard_normal((n_mem, n_tr, n_components))),
        "emb_pca_explained": v(("component",), np.array([0.5, 0.3, 0.1])[:n_components]),
        "emb_umap": v(("member", "trial", "umap_component"), np.full((n_mem, n_tr, 2), np.nan)),
        "emb_silhouette": v(("n_clusters",), rng.uniform(0.1, 0.5, 3)),
        "emb_cluster": v(("member",), np.arange(n_mem) % 2),
        "emb_n_families": v((), 2),
        "base_so_activation": v(("p", "phase", "muscle"), so),
        "base_feasible_min": v(("phase", "muscle"), fmin),
        "base_feasible_max": v(("phase", "muscle"), fmax),
        "base_residual": v(("phase", "dof"), np.zeros((101, n_j)), "N m"),
        "base_inside_fraction": v(("member",), rng.uniform(0.8, 1.0, n_mem)),
        "base_so_corr": v(("p", "muscle"), rng.uniform(0.3, 0.9, (len(so_exponents), n_mus))),
        "stat_n": v(("test",), np.full(3, n_mem), "count"),
        "stat_statistic": v(("test",), [2.1, 2.0, 0.9]),
        "stat_p": v(("test",), [0.004, 0.006, 0.02]),
        "stat_effect_size": v(("test",), [1.8, 1.7, 2.5]),
        "stat_ci_low": v(("test",), [1.2, 1.1, 1.6]),
        "stat_ci_high": v(("test",), [2.6, 2.5, 3.3]),
        "stat_statistic_name": v(("test",), np.array(["mean d", "mean d", "mean cosine"])),
        "stat_effect_name": v(("test",), np.array(["Cohen's d_z", "Cohen's d_z", "z vs null"])),
        "stat_description": v(("test",), np.array(["activation vs external distance", "activation vs kinematic distance",
                                                   "synergies shared beyond chance"])),
    }
    coords = {"member": rec["member"].values, "member_b": rec["member"].values, "trial": rec["trial"].values,
              "phase": phase, "phase_time": ("phase", phase_time), "muscle": muscles, "joint": joints,
              "k": k, "synergy": np.arange(kc), "component": np.arange(n_components), "umap_component": [0, 1],
              "n_clusters": [2, 3, 4], "p": np.asarray(so_exponents), "test": tests,
              "boot": ["estimate", "ci_low", "ci_high"], "dof": [str(j) for j in joints]}
    for c in ("seed", "effort_exponent"):
        coords[c] = ("member", rec[c].values)
    return xr.Dataset(data, coords=coords, attrs={
        "experiment": rec.attrs.get("experiment", "synthetic"), "model": rec.attrs.get("model", ""),
        "analysis_config": json.dumps({"vaf_threshold": 0.9, "n_boot": 1000, "n_perm": 1000}),
        "msdiversity_version": "0.1.0", "n_members": n_mem, "n_trials": n_tr, "normalisation": "trial",
        "grf_reference": "reference" if has_grf else "none", "has_grf": int(has_grf), "has_baselines": 1})
