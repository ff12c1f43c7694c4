"""A planted myolegs recording on the real Rajagopal running trial (no physics, no training).

The reference is the trial's inverse kinematics and GRF mapped onto `myolegs` (a window holding one
complete right gait cycle, 0.80-1.60 s: right heel strikes at 0.862 and 1.546 s). Member m's
activation of muscle i is the trial's OpenSim CMC activation (which covers 0.87-1.13 s; held at its
end values outside) times a smooth member-specific gain exp(sd * z) with z ~ N(0, 1), plus
trial noise; its kinematics and GRF are the reference plus small noise. So, by construction,
members agree with CMC in shape (r near 1 over the CMC span) and differ from each other in
amplitude. Used by the tests and to check the EMG / classical panels of the report end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "opensim"
RUN_IK = "rajagopal_subject01_run_ik.mot"
RUN_GRF = "rajagopal_subject01_run_grf.mot"
RUN_CMC = "rajagopal_subject01_run_cmc_states.sto"
WINDOW_S = (0.80, 1.60)


def planted_myolegs_recording(data_dir: str | Path = DATA, n_members: int = 4, n_trials: int = 2, seed: int = 0,
                              gain_sd: float = 0.3, trial_sd: float = 0.01, joint_sd_deg: float = 0.5,
                              window_s: tuple[float, float] = WINDOW_S) -> xr.Dataset:
    """Recording-layout Dataset (docs/CONTRACTS.md) for `myolegs`; attrs `ref_t0` = window start (s)."""
    import mujoco

    from msdiversity.analysis.external import read_classical
    from msdiversity.emg import model_muscle_names
    from msdiversity.models import load_model
    from msdiversity.models.registry import scalar_joint_ids
    from msdiversity.motions.loading import load_motion
    from msdiversity.motions.mapping import map_to_model

    d = Path(data_dir)
    lm = load_model("myolegs")
    m = lm.model
    motion = load_motion(d / RUN_IK, grf=d / RUN_GRF)
    ref, _ = map_to_model(motion, lm)
    t_src = float(ref.meta.get("t0", motion.time[0])) + np.arange(ref.qpos.shape[0]) * ref.dt
    sel = np.flatnonzero((t_src >= window_s[0] - 1e-9) & (t_src <= window_s[1] + 1e-9))
    t0 = float(t_src[sel[0]])
    time = t_src[sel] - t0
    T = len(time)
    jids = scalar_joint_ids(m)
    joints = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in jids]
    qref = ref.qpos[sel][:, m.jnt_qposadr[jids]]
    muscles = model_muscle_names(lm)
    cmc = read_classical(d / RUN_CMC, muscles)
    base = np.stack([np.interp(t_src[sel], cmc.time, cmc.activation[:, i]) for i in range(len(muscles))], 1)
    rng = np.random.default_rng(seed)
    M, K1, NM, J = n_members, n_trials, len(muscles), len(joints)
    # smooth member gain: a random combination of 3 slow cosines over the window
    basis = np.stack([np.cos(np.pi * k * time / time[-1]) for k in range(3)], 1)  # (T, 3)
    gain = np.exp(gain_sd * np.einsum("tk,mkn->mtn", basis, rng.standard_normal((M, 3, NM)) / np.sqrt(3)))
    act = np.clip(gain[:, None] * base[None, None] + trial_sd * rng.standard_normal((M, K1, T, NM)), 0, 1)
    qpos = qref[None, None] + np.deg2rad(joint_sd_deg) * rng.standard_normal((M, K1, T, J))
    mass = float(m.body_subtreemass[0])
    g_ref = np.asarray(ref.grf[sel], float)
    grf = g_ref[None, None] + 0.01 * mass * 9.81 * rng.standard_normal((M, K1, T, 2, 3))
    is_rot = m.jnt_type[jids] == mujoco.mjtJoint.mjJNT_HINGE
    ds = xr.Dataset(
        {"activation": (("member", "trial", "time", "muscle"), act),
         "qpos": (("member", "trial", "time", "joint"), qpos), "qpos_ref": (("time", "joint"), qref),
         "grf": (("member", "trial", "time", "foot", "axis"), grf), "grf_ref": (("time", "foot", "axis"), g_ref),
         "ref_qpos_full": (("time", "qpos_index"), ref.qpos[sel]),
         **({} if ref.cop is None else {"cop_ref": (("time", "foot", "axis"), np.asarray(ref.cop[sel], float))}),
         "alive": (("member", "trial", "time"), np.ones((M, K1, T), bool))},
        coords={"member": np.arange(M), "trial": np.arange(K1), "time": time, "muscle": muscles, "joint": joints,
                "foot": ["r", "l"], "axis": ["x", "y", "z"], "seed": ("member", np.arange(M) + seed),
                "effort_exponent": ("member", np.full(M, 2.0)), "effort_weight": ("member", np.full(M, 0.1)),
                "smoothness_weight": ("member", np.zeros(M)), "synergy_weight": ("member", np.zeros(M)),
                "emg_weight": ("member", np.zeros(M)), "tracked_joint": ("joint", np.asarray(ref.joint_mask, bool)),
                "joint_is_rotation": ("joint", is_rot)},
    )
    for v, u in (("activation", "1"), ("qpos", "rad or m"), ("qpos_ref", "rad or m"), ("grf", "N"), ("grf_ref", "N"),
                 ("cop_ref", "m")):
        if v in ds:
            ds[v].attrs["units"] = u
    ds.attrs.update(model="myolegs", motion=str(d / RUN_IK), experiment="planted_myolegs_run",
                    config=json.dumps({"planted": "CMC x member gain", "seed": seed}), dt=float(ref.dt),
                    body_mass_kg=mass, gravity=9.81, msdiversity_version="planted", ref_t0=t0,
                    planted=f"activation = CMC ({RUN_CMC}) x exp({gain_sd} z) member gain + N(0, {trial_sd}) trial noise")
    return ds
