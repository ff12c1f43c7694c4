"""Synthetic recording datasets with planted structure, for tests and benchmarks.

`synthetic_recording` builds an `xarray.Dataset` in the recording layout of docs/CONTRACTS.md
(`results/<experiment>/recording.nc`) without any physics. What is planted (and returned in attrs
and in `planted_*` variables so tests can check recovery):

- activations: each member's activation is `H_m(t) @ W_f` (NMF form, k_true synergies) where W_f is
  the synergy matrix of the member's *solution family* f (n_families families; families differ
  by a random permutation-and-perturbation of the base synergies), plus a member-specific
  perturbation of the synergy weights (`act_member_sd`) and per-trial noise (`trial_noise`);
- kinematics: reference joint angles (smooth sinusoids) + member offset (`kin_member_sd_deg`) +
  trial noise (`kin_trial_sd_deg`);
- GRF: a plausible vertical/fore-aft pattern per foot (% body weight), member offset
  (`grf_member_sd_pct_bw`), trial noise (`grf_trial_sd_pct_bw`).

All values are finite; `alive` is all True unless `die_after` is given.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

FEET = ("r", "l")
AXES = ("x", "y", "z")


def _smooth_bumps(rng: np.random.Generator, n_time: int, k: int) -> np.ndarray:
    """(n_time, k) non-negative smooth activation coefficients: one or two Gaussian bumps each."""
    t = np.linspace(0.0, 1.0, n_time)[:, None]  # (time, 1)
    centers = (np.arange(k) + rng.uniform(0.2, 0.8, k)) / k  # spread over the cycle
    widths = rng.uniform(0.05, 0.12, k)
    h = np.exp(-0.5 * ((t - centers) / widths) ** 2)
    h += 0.4 * np.exp(-0.5 * ((t - (centers + 0.5) % 1.0) / widths) ** 2)
    return h  # (time, k)


def planted_synergies(seed: int, n_muscles: int, k: int, sparsity: float = 2.0) -> np.ndarray:
    """(k, muscles) unit-norm non-negative synergy vectors with distinct supports."""
    rng = np.random.default_rng(seed)
    w = rng.random((k, n_muscles)) ** (1.0 + sparsity * 2)
    # Make each synergy dominated by its own block of muscles so they are well separated.
    block = np.arange(n_muscles) % k
    w[block[None, :] == np.arange(k)[:, None]] += 0.8
    return w / np.linalg.norm(w, axis=1, keepdims=True)


def synthetic_recording(
    seed: int = 0,
    n_members: int = 8,
    n_trials: int = 3,
    n_time: int = 200,
    n_muscles: int = 12,
    n_joints: int = 3,
    n_bodies: int = 4,
    k_true: int = 4,
    n_families: int = 2,
    family_mix: float = 0.5,
    act_member_sd: float = 0.05,
    trial_noise: float = 0.02,
    kin_member_sd_deg: float = 0.5,
    kin_trial_sd_deg: float = 0.5,
    grf_member_sd_pct_bw: float = 1.0,
    grf_trial_sd_pct_bw: float = 1.0,
    with_grf: bool = True,
    with_forces: bool = True,
    identical_members: bool = False,
    continuum: bool = False,
    tonic: float = 0.0,
    dt: float = 0.01,
    body_mass_kg: float = 70.0,
    dtype=np.float64,
) -> xr.Dataset:
    """A recording-layout Dataset with planted synergies, solution families and noise levels.

    Args:
        seed: numpy seed (everything is deterministic given it).
        n_members, n_trials: ensemble size; trials = 1 deterministic + (n_trials - 1) stochastic.
        n_time, dt: frames and frame spacing (s).
        k_true: synergies per member; n_families: distinct synergy sets (solution families).
        family_mix: how far family synergies move from the base set (0 = all families equal).
        act_member_sd: member-specific multiplicative perturbation of synergy weights (0 = none).
        trial_noise: SD of additive activation noise per trial (trial 0 gets half of it).
        identical_members: every member is a copy of member 0 (trials still differ).
        continuum: no families; member m's synergies are the normalised mix (1 - u) base + u other
            with u evenly spaced in [0, family_mix] over members (a continuum of solutions).
        tonic: constant activation added to every muscle (before the final scaling).

    Returns:
        Dataset with the variables and coords of the recording contract, plus `planted_W`
        (family, synergy, muscle), `planted_family` (member) and attrs `planted_k`.
    """
    rng = np.random.default_rng(seed)
    M, K1, T, NM, J = n_members, n_trials, n_time, n_muscles, n_joints
    time = np.arange(T) * dt
    muscles = [f"m{i:03d}" for i in range(NM)]
    joints = [f"joint{j}" for j in range(J)]
    bodies = [f"body{b}" for b in range(n_bodies)]

    base = planted_synergies(seed + 1, NM, k_true)
    fam_w = []
    for f in range(n_families):
        if f == 0:
            fam_w.append(base)
            continue
        other = planted_synergies(seed + 100 + f, NM, k_true)
        w = (1 - family_mix) * base + family_mix * other
        fam_w.append(w / np.linalg.norm(w, axis=1, keepdims=True))
    fam_w = np.stack(fam_w)  # (families, k, muscles)
    family = np.arange(M) % n_families
    if continuum:
        other = planted_synergies(seed + 101, NM, k_true)
        u = np.linspace(0.0, family_mix, M)
        cont_w = [(1 - x) * base + x * other for x in u]
        cont_w = [w / np.linalg.norm(w, axis=1, keepdims=True) for w in cont_w]
        family = np.zeros(M, int)
    h_common = _smooth_bumps(rng, T, k_true)  # (time, k): the motion needs the same timing

    act = np.empty((M, K1, T, NM), dtype)
    for m in range(M):
        src = 0 if identical_members else m
        mrng = np.random.default_rng([seed, src])
        w0 = cont_w[src] if continuum else fam_w[family[src]]
        w = w0 * np.exp(act_member_sd * mrng.standard_normal((k_true, NM)))
        h = h_common * np.exp(0.1 * act_member_sd * mrng.standard_normal(k_true))  # (time, k)
        pattern = h @ w + tonic  # (time, muscles)
        for tr in range(K1):
            noise = trial_noise * (0.5 if tr == 0 else 1.0)
            act[m, tr] = pattern + noise * rng.standard_normal((T, NM))
    act = np.clip(act / max(act.max(), 1e-9) * 0.9, 0.0, 1.0)  # activations in [0, 1]

    # Kinematics: tracked scalar joints (radians), smooth reference.
    ph = 2 * np.pi * time / (T * dt)
    qref = np.stack([np.deg2rad(20 + 30 * j) * np.sin(ph + j) for j in range(J)], axis=1)  # (time, joint)
    kin_off = np.deg2rad(kin_member_sd_deg) * rng.standard_normal((M, 1, 1, J))
    if identical_members:
        kin_off[:] = kin_off[0]
    qpos = qref[None, None] + kin_off + np.deg2rad(kin_trial_sd_deg) * rng.standard_normal((M, K1, T, J))

    body_ref = np.stack([np.stack([0.1 * b + 0.05 * np.sin(ph + b), 0.02 * np.cos(ph), 1.0 - 0.1 * b
                                   + 0.01 * np.sin(2 * ph)], axis=1) for b in range(n_bodies)], axis=1)
    body_pos = body_ref[None, None] + 0.002 * rng.standard_normal((M, K1, T, n_bodies, 3))

    ds = xr.Dataset(
        {
            "activation": (("member", "trial", "time", "muscle"), act.astype(dtype)),
            "qpos": (("member", "trial", "time", "joint"), qpos.astype(dtype)),
            "qpos_ref": (("time", "joint"), qref),
            "body_pos": (("member", "trial", "time", "body", "axis"), body_pos.astype(dtype)),
            "body_pos_ref": (("time", "body", "axis"), body_ref),
            "alive": (("member", "trial", "time"), np.ones((M, K1, T), bool)),
        },
        coords={
            "member": np.arange(M), "trial": np.arange(K1), "time": time, "muscle": muscles,
            "joint": joints, "body": bodies, "axis": list(AXES),
            "seed": ("member", np.arange(M) + 1000 * seed),
            "effort_exponent": ("member", np.where(np.arange(M) % 2 == 0, 2.0, 3.0)),
            "effort_weight": ("member", np.full(M, 0.01)),
            "smoothness_weight": ("member", np.zeros(M)),
            "synergy_weight": ("member", np.zeros(M)),
            "emg_weight": ("member", np.zeros(M)),
            "tracked_joint": ("joint", np.ones(J, bool)),
            "joint_is_rotation": ("joint", np.ones(J, bool)),  # all hinges (no model to look them up in)
            "joint_is_root": ("joint", np.zeros(J, bool)),
        },
    )
    if with_forces:
        f0 = np.linspace(200, 1500, NM)
        ds["excitation"] = (("member", "trial", "time", "muscle"),
                            np.clip(np.roll(act, -2, axis=2) * 1.05, 0, 1).astype(dtype))
        ds["muscle_force"] = (("member", "trial", "time", "muscle"), (act * f0).astype(dtype))
    if with_grf:
        bw = body_mass_kg * 9.81
        stance = np.clip(np.sin(ph), 0, None)  # right foot stance half cycle
        g_ref = np.zeros((T, 2, 3))
        g_ref[:, 0, 2] = bw * 1.1 * stance
        g_ref[:, 1, 2] = bw * 1.1 * np.clip(-np.sin(ph), 0, None)
        g_ref[:, 0, 0] = 0.2 * bw * np.sin(2 * ph) * stance
        g_ref[:, 1, 0] = 0.2 * bw * np.sin(2 * ph) * np.clip(-np.sin(ph), 0, None)
        g_off = grf_member_sd_pct_bw / 100 * bw * rng.standard_normal((M, 1, 1, 2, 3))
        if identical_members:
            g_off[:] = g_off[0]
        grf = g_ref[None, None] + g_off + grf_trial_sd_pct_bw / 100 * bw * rng.standard_normal((M, K1, T, 2, 3))
        ds["grf"] = (("member", "trial", "time", "foot", "axis"), grf.astype(dtype))
        ds["grf_ref"] = (("time", "foot", "axis"), g_ref)
        ds = ds.assign_coords(foot=list(FEET))
    ds["planted_W"] = (("family", "synergy_true", "muscle"), fam_w)
    ds["planted_family"] = (("member",), family if not identical_members else np.zeros(M, int))
    units = {"activation": "1", "excitation": "1", "muscle_force": "N", "qpos": "rad", "qpos_ref": "rad",
             "body_pos": "m", "body_pos_ref": "m", "grf": "N", "grf_ref": "N", "time": "s"}
    for name, u in units.items():
        if name in ds:
            ds[name].attrs["units"] = u
    ds.attrs.update(model="synthetic", motion="synthetic planted structure", experiment=f"synthetic_{seed}",
                    config=json.dumps({"seed": seed}), dt=dt, body_mass_kg=body_mass_kg, gravity=9.81,
                    msdiversity_version="synthetic", units=json.dumps(units), planted_k=k_true,
                    planted_n_families=n_families)
    return ds


def linear_system_recording(seed: int = 0, n_members: int = 10, n_trials: int = 5, n_time: int = 200,
                            n_muscles: int = 6, member_sd: float = 0.05, trial_noise: float = 0.02,
                            lowpass_alpha: float = 0.0, dt: float = 0.01) -> xr.Dataset:
    """Planted system in which activations fully determine movement: joint angles (rad) are a fixed
    orthogonal mix B of the activations, optionally first-order low-pass filtered (y_t = α y_{t-1} +
    (1 - α) x_t, as a body filters muscle excitation). Members differ by smooth activation offsets
    (`member_sd`, three low-frequency modes); trials add white activation noise (`trial_noise`).

    Truth: the muscles are exactly as diverse as the movement, so a noise-normalised index should
    read 0.5 whatever `lowpass_alpha` is (with alpha > 0 the kinematic noise is much smoother than
    the activation noise). No GRF; `n_muscles` joints, all hinges.
    """
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    M, K1, T, C = n_members, n_trials, n_time, n_muscles
    t = np.linspace(0.0, 1.0, T)
    base = 0.3 + 0.2 * np.sin(2 * np.pi * t[:, None] + np.arange(C)[None])  # (T, C)
    modes = np.stack([np.sin(np.pi * (f + 1) * t) for f in range(3)], 1)  # (T, 3)
    offs = member_sd * np.einsum("tf,mfc->mtc", modes, rng.standard_normal((M, 3, C)))
    act = base[None, None] + offs[:, None] + trial_noise * rng.standard_normal((M, K1, T, C))
    B = np.linalg.qr(rng.standard_normal((C, C)))[0]
    x = act @ B
    q = lfilter([1 - lowpass_alpha], [1, -lowpass_alpha], x - x[..., :1, :], axis=2) + x[..., :1, :]
    qref = base @ B
    ds = synthetic_recording(seed, n_members=M, n_trials=K1, n_time=T, n_muscles=C, n_joints=C, k_true=2,
                             n_families=1, with_grf=False, with_forces=False, dt=dt)
    ds["activation"] = (("member", "trial", "time", "muscle"), act)
    ds["qpos"] = (("member", "trial", "time", "joint"), q)
    ds["qpos_ref"] = (("time", "joint"), qref)
    ds.attrs.update(motion="planted linear system: movement = low-pass(B activation)", lowpass_alpha=lowpass_alpha)
    return ds
