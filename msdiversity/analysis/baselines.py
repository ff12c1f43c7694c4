"""Classical baselines with MuJoCo: inverse dynamics, static optimisation, feasible activation ranges.

Per frame, with the reference state (q, q̇, q̈; q̈ by central finite differences of q̇):
- Inverse dynamics: `mj_inverse` gives qfrc_inverse = M q̈ + c − passive − constraint, the
  generalised force the actuators must supply.
- Muscle model (MuJoCo's): actuator force = g(l, v) a + b(l, v) with g = `mju_muscleGain` (force per
  unit activation: F0 × force-length × force-velocity) and b = `mju_muscleBias` (passive
  force-length); generalised force = Rᵀ force, R = `actuator_moment` (moment arms, m).
- Equality: Rᵀ diag(g) a = τ − Rᵀ b on the dofs that muscles span (non-zero moment arm at some
  frame); other dofs (e.g. a free root) are left to residual forces, reported in `base_residual`.
  If muscles cannot produce τ exactly within 0 ≤ a ≤ 1, a first LP finds the smallest reserve
  torques (L1) and the remaining targets are met exactly (reserve reported in `base_residual`).
- Static optimisation: argmin Σ a_i^p subject to the equality and 0 ≤ a ≤ 1 (p = 1: `linprog`
  (HiGHS); p > 1: SLSQP with analytic gradients, warm-started from the previous frame).
- Feasible ranges: for each muscle, min and max of a_i subject to the same constraints (2 LPs).
"""

from __future__ import annotations

import dataclasses
import warnings

import mujoco
import numpy as np
import xarray as xr
from scipy.optimize import linprog, minimize

from msdiversity.errors import InputError

FEAS_TOL = 1e-9


def dof_names(model: mujoco.MjModel) -> list[str]:
    """One name per dof: the joint name; free/ball joints get _tx.._rz / _rx.._rz suffixes."""
    names = []
    for j in range(model.njnt):
        jn = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) or f"joint{j}"
        t = model.jnt_type[j]
        if t == mujoco.mjtJoint.mjJNT_FREE:
            names += [f"{jn}_{s}" for s in ("tx", "ty", "tz", "rx", "ry", "rz")]
        elif t == mujoco.mjtJoint.mjJNT_BALL:
            names += [f"{jn}_{s}" for s in ("rx", "ry", "rz")]
        else:
            names.append(jn)
    return names


def lowpass(x: np.ndarray, dt: float, cutoff_hz: float) -> np.ndarray:
    """Zero-lag 4th-order Butterworth low-pass along axis 0 (as OpenSim's tools filter coordinates)."""
    from scipy.signal import butter, filtfilt

    if cutoff_hz <= 0 or x.shape[0] < 16:
        return x
    nyq = 0.5 / dt
    if cutoff_hz >= nyq:
        return x
    b, a = butter(4, cutoff_hz / nyq)
    return filtfilt(b, a, x, axis=0, padlen=min(3 * max(len(a), len(b)), x.shape[0] - 1))


def reference_state(model: mujoco.MjModel, qpos: np.ndarray, dt: float, qvel: np.ndarray | None = None,
                    cutoff_hz: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(qpos, qvel, qacc) with qvel from `mj_differentiatePos` when not given, qacc = dq̇/dt (central).

    With cutoff_hz > 0, scalar joint coordinates are low-pass filtered before differentiating (free
    joints' quaternions are left as they are).
    """
    qpos = np.array(qpos, float)
    T = qpos.shape[0]
    if cutoff_hz > 0:
        scalar = []
        for j in range(model.njnt):
            if model.jnt_type[j] in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
                scalar.append(model.jnt_qposadr[j])
        if scalar:
            qpos[:, scalar] = lowpass(qpos[:, scalar], dt, cutoff_hz)
        qvel = None  # recompute from the filtered positions
    if qvel is None:
        qvel = np.zeros((T, model.nv))
        for t in range(T):
            a, b = (t - 1, t + 1) if 0 < t < T - 1 else ((t, t + 1) if t == 0 else (t - 1, t))
            v = np.zeros(model.nv)
            mujoco.mj_differentiatePos(model, v, dt * (b - a), qpos[a], qpos[b])
            qvel[t] = v
    qacc = np.gradient(np.asarray(qvel, float), dt, axis=0)
    return qpos, np.asarray(qvel, float), qacc


@dataclasses.dataclass
class FrameProblem:
    """Per-frame linear constraint A a = b on the muscle-spanned dofs."""

    A: np.ndarray  # (frames, dofs_sel, muscles) N m per unit activation
    b: np.ndarray  # (frames, dofs_sel) N m (torque minus passive muscle torque)
    tau: np.ndarray  # (frames, nv) inverse-dynamics generalised forces
    sel: np.ndarray  # (dofs_sel,) indices of constrained dofs


def muscle_problem(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray, qacc: np.ndarray,
                   muscles: np.ndarray) -> FrameProblem:
    """Inverse dynamics and the per-frame muscle equality constraints for actuator ids `muscles`."""
    d = mujoco.MjData(model)
    T, nv, nm = qpos.shape[0], model.nv, len(muscles)
    tau = np.zeros((T, nv))
    R = np.zeros((T, nm, nv))
    gain = np.zeros((T, nm))
    bias = np.zeros((T, nm))
    mom = np.zeros((model.nu, nv))
    for t in range(T):
        d.qpos[:] = qpos[t]
        d.qvel[:] = qvel[t]
        d.qacc[:] = qacc[t]
        mujoco.mj_inverse(model, d)  # also computes actuator_length/velocity/moment
        tau[t] = d.qfrc_inverse
        mujoco.mju_sparse2dense(mom, d.actuator_moment, d.moment_rownnz, d.moment_rowadr, d.moment_colind)
        R[t] = mom[muscles]
        for i, a in enumerate(muscles):
            L, V = d.actuator_length[a], d.actuator_velocity[a]
            gain[t, i] = mujoco.mju_muscleGain(L, V, model.actuator_lengthrange[a], model.actuator_acc0[a],
                                               model.actuator_gainprm[a, :9])
            bias[t, i] = mujoco.mju_muscleBias(L, model.actuator_lengthrange[a], model.actuator_acc0[a],
                                               model.actuator_biasprm[a, :9])
    sel = np.flatnonzero(np.abs(R).max(axis=(0, 1)) > 1e-8)
    A = np.einsum("tmd,tm->tdm", R[:, :, sel], gain)  # (T, dofs_sel, muscles)
    b = tau[:, sel] - np.einsum("tmd,tm->td", R[:, :, sel], bias)
    return FrameProblem(A=A, b=b, tau=tau, sel=sel)


def _lp(c, A, b, nm):
    return linprog(c, A_eq=A, b_eq=b, bounds=[(0.0, 1.0)] * nm, method="highs")


def reserve_targets(A: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest L1 reserve r with A a + r = b, 0 ≤ a ≤ 1 feasible. Returns (b - r, r)."""
    nd, nm = A.shape
    c = np.concatenate([np.full(nm, 1e-6), np.ones(2 * nd)])  # tiny activation cost for a unique a
    Aeq = np.hstack([A, np.eye(nd), -np.eye(nd)])
    res = linprog(c, A_eq=Aeq, b_eq=b, bounds=[(0, 1)] * nm + [(0, None)] * (2 * nd), method="highs")
    if not res.success:
        raise RuntimeError(f"reserve LP failed: {res.message}")
    r = res.x[nm:nm + nd] - res.x[nm + nd:]
    r[np.abs(r) < 1e-9 * max(1.0, np.abs(b).max())] = 0.0
    return b - r, r


def static_opt_frame(A: np.ndarray, b: np.ndarray, p: float, x0: np.ndarray | None = None) -> np.ndarray:
    """argmin Σ a^p s.t. A a = b, 0 ≤ a ≤ 1 (b assumed feasible)."""
    nm = A.shape[1]
    if p == 1:
        res = _lp(np.ones(nm), A, b, nm)
        if not res.success:
            raise RuntimeError(f"static optimisation LP failed: {res.message}")
        return res.x
    # Scale rows so SLSQP's constraint tolerance is comparable across dofs.
    s = np.maximum(np.abs(A).max(axis=1), 1e-9)
    As, bs = A / s[:, None], b / s
    x0 = np.full(nm, 0.05) if x0 is None else np.clip(x0, 1e-4, 1.0)
    if p == 2:
        # Equality-constrained least norm gives a good start.
        x0 = np.clip(np.linalg.lstsq(As, bs, rcond=None)[0], 1e-4, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = minimize(lambda a: np.sum(a ** p), x0, jac=lambda a: p * a ** (p - 1), method="SLSQP",
                       bounds=[(0.0, 1.0)] * nm,
                       constraints=[{"type": "eq", "fun": lambda a: As @ a - bs, "jac": lambda a: As}],
                       options={"maxiter": 500, "ftol": 1e-12})
    return np.clip(res.x, 0.0, 1.0)


def feasible_range_frame(A: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of each a_i s.t. A a = b, 0 ≤ a ≤ 1 (2 LPs per muscle)."""
    nm = A.shape[1]
    lo = np.empty(nm)
    hi = np.empty(nm)
    for i in range(nm):
        c = np.zeros(nm)
        c[i] = 1.0
        r1 = _lp(c, A, b, nm)
        r2 = _lp(-c, A, b, nm)
        lo[i] = r1.x[i] if r1.success else np.nan
        hi[i] = r2.x[i] if r2.success else np.nan
    return lo, hi


def solve_frames(prob: FrameProblem, frames: np.ndarray, exponents=(1.0, 2.0, 3.0), ranges: bool = True,
                 progress=None) -> dict[str, np.ndarray]:
    """Static optimisation and feasible ranges on the given frame indices.

    Returns dict: so (p, F, muscles), lo/hi (F, muscles), residual (F, nv)."""
    F, nm, nv = len(frames), prob.A.shape[2], prob.tau.shape[1]
    so = np.full((len(exponents), F, nm), np.nan)
    lo = np.full((F, nm), np.nan)
    hi = np.full((F, nm), np.nan)
    resid = np.zeros((F, nv))
    prev = [None] * len(exponents)
    for i, t in enumerate(frames):
        A, b = prob.A[t], prob.b[t]
        b_ok, r = reserve_targets(A, b)
        resid[i, prob.sel] = r
        for j, p in enumerate(exponents):
            prev[j] = so[j, i] = static_opt_frame(A, b_ok, float(p), prev[j])
        if ranges:
            lo[i], hi[i] = feasible_range_frame(A, b_ok)
        if progress is not None:
            progress(i + 1, F)
    return {"so": so, "lo": lo, "hi": hi, "residual": resid}


def baselines(rec: xr.Dataset, prep, exponents=(1.0, 2.0, 3.0), tol: float = 0.02, cutoff_hz: float = 0.0,
              progress=None) -> xr.Dataset:
    """The `base_` variables for a recording (model from attrs['model'])."""
    from msdiversity.errors import ModelError
    from msdiversity.models import load_model
    from msdiversity.models.registry import muscle_ids

    if "ref_qpos_full" not in rec:
        raise InputError("recording has no 'ref_qpos_full' (needed for inverse dynamics)", field="ref_qpos_full")
    try:
        model = load_model(rec.attrs.get("model", "")).model
    except ModelError as e:
        raise InputError(f"cannot load the recording's model for baselines: {e}", field="model") from None
    mus = muscle_ids(model)
    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, i) for i in mus]
    rec_mus = [str(m) for m in rec["muscle"].values]
    missing = [m for m in rec_mus if m not in names]
    if missing:
        raise InputError(f"recording muscles not in model {rec.attrs.get('model')}: {missing[:5]}", field="muscle")
    order = np.array([int(mus[names.index(m)]) for m in rec_mus])
    qpos = np.asarray(rec["ref_qpos_full"].values, float)
    if qpos.shape[1] != model.nq:
        raise InputError(f"ref_qpos_full has {qpos.shape[1]} columns, model nq = {model.nq}", field="ref_qpos_full")
    dt = float(np.median(np.diff(prep.time)))
    qvel = np.asarray(rec["ref_qvel_full"].values, float) if "ref_qvel_full" in rec and cutoff_hz <= 0 else None
    qpos, qvel, qacc = reference_state(model, qpos, dt, qvel, cutoff_hz)
    prob = muscle_problem(model, qpos, qvel, qacc, order)
    frames = np.clip(np.rint(np.interp(prep.phase_time, prep.time, np.arange(len(prep.time)))).astype(int),
                     0, len(prep.time) - 1)
    sol = solve_frames(prob, frames, exponents, ranges=True, progress=progress)
    act0 = prep.act[:, 0]  # (M, P, NM)
    lo, hi = sol["lo"][None], sol["hi"][None]
    inside = (act0 >= lo - tol) & (act0 <= hi + tol)
    valid = np.isfinite(act0) & np.isfinite(lo) & np.isfinite(hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.sum(inside & valid, axis=(1, 2)) / np.sum(valid, axis=(1, 2))
        frac_m = np.sum(inside & valid, axis=1) / np.sum(valid, axis=1)
    mean_act = np.nanmean(act0, axis=0)  # (P, NM)
    so_corr = np.full((len(exponents), len(rec_mus)), np.nan)
    for j in range(len(exponents)):
        for i in range(len(rec_mus)):
            x, y = sol["so"][j, :, i], mean_act[:, i]
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() > 2 and np.std(x[ok]) > 0 and np.std(y[ok]) > 0:
                so_corr[j, i] = np.corrcoef(x[ok], y[ok])[0, 1]
    dofs = dof_names(model)
    out = xr.Dataset(coords={"time": prep.time, "dof": dofs, "p": np.asarray(exponents, float),
                             "phase": prep.phase, "muscle": rec["muscle"].values, "member": rec["member"].values})
    out["base_id_torque"] = (("time", "dof"), prob.tau, {"units": "N m (N for slide dofs)",
                                                         "long_name": "inverse dynamics of the reference (mj_inverse)"})
    out["base_so_activation"] = (("p", "phase", "muscle"), sol["so"],
                                 {"units": "1", "long_name": "static optimisation, min sum a^p"})
    out["base_feasible_min"] = (("phase", "muscle"), sol["lo"], {"units": "1", "long_name": "LP minimum activation"})
    out["base_feasible_max"] = (("phase", "muscle"), sol["hi"], {"units": "1", "long_name": "LP maximum activation"})
    out["base_residual"] = (("phase", "dof"), sol["residual"],
                            {"units": "N m", "long_name": "reserve generalised force muscles could not supply"})
    out["base_inside_fraction"] = ("member", frac, {"units": "1", "tolerance": tol})
    out["base_inside_fraction_muscle"] = (("member", "muscle"), frac_m, {"units": "1", "tolerance": tol})
    out["base_so_corr"] = (("p", "muscle"), so_corr, {"units": "1", "long_name": "r(SO, ensemble-mean activation)"})
    out["base_frame"] = ("phase", frames, {"units": "1", "long_name": "recording frame used at each phase"})
    out["base_dof_constrained"] = ("dof", np.isin(np.arange(model.nv), prob.sel),
                                   {"units": "1", "long_name": "dof spanned by muscles (torque matched)"})
    return out
