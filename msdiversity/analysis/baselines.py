"""Classical baselines with MuJoCo: inverse dynamics, static optimisation, feasible activation ranges.

Per frame, with the reference state (q, q̇, q̈; q̈ by central finite differences of q̇):
- Inverse dynamics (`inverse_dynamics`): `mj_inverse` with every constraint (contacts, joint
  limits, equalities) switched off gives τ_full = M q̈ + c − passive; the measured ground reaction
  of each foot (force F at the centre of pressure p plus the free moment M_free, MuJoCo world
  frame) acts on the foot body as the wrench (F, M_free + (p − x_body) × F) about the body
  origin, whose generalised force Jᵀ(F, M) is subtracted. Contacts are off so the ground is not
  counted twice; without a measured GRF nothing replaces them (the root then carries the weight).
- Equality constraints (myo-sim knees: translations, rotations and the patella driven by the knee
  angle through polynomials) make some dofs functions of others. With G the (rows, nv) equality
  Jacobian (from MuJoCo's constraint rows) and D the dependent dofs (the driven joints), admissible
  velocities are v = S v_I with S[I] = 1, S[D] = −G_D⁻¹ G_I. The constraint forces Gᵀλ do no work
  on them, so the generalised forces on the independent coordinates are τ_I = Sᵀ τ_full (the
  coupled dofs' inertia and loads are carried onto their driver, by virtual work) and the muscles
  enter as Sᵀ Rᵀ F. Dependent dofs then carry no generalised force of their own.
- Root residuals: the independent free-root generalised forces after the GRF (OpenSim RRA/SO
  convention: the force and moment a residual actuator on the pelvis/root must add), forces in the
  world frame in N and % body weight, moments about the root origin in the world frame in N m.
- Muscle model (MuJoCo's): actuator force = g(l, v) a + b(l, v) with g = `mju_muscleGain` (force per
  unit activation: F0 × force-length × force-velocity) and b = `mju_muscleBias` (passive
  force-length); generalised force = Rᵀ force, R = `actuator_moment` (moment arms, m).
- Equality: Sᵀ Rᵀ diag(g) a = τ_I − Sᵀ Rᵀ b on the dofs that muscles span (non-zero moment arm at some
  frame); other dofs (e.g. a free root) are left to residual forces, reported in `base_residual`.
  If muscles cannot produce τ exactly within 0 ≤ a ≤ 1, a first LP finds the smallest reserve
  torques (L1) and the remaining targets are met exactly (reserve reported in `base_residual`).
- Static optimisation: argmin Σ a_i^p subject to the equality and 0 ≤ a ≤ 1 (p = 1: `linprog`
  (HiGHS); p > 1: SLSQP with analytic gradients, warm-started from the previous frame).
- Feasible ranges: for each muscle, min and max of a_i subject to the same constraints (2 LPs).
- Vector feasibility (`torque_error`): ‖A a − b‖ of a whole activation vector, in N m and relative
  to ‖b‖: a per-muscle band test cannot see that a vector of in-band values misses the torque.
"""

from __future__ import annotations

import copy
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

    With cutoff_hz > 0, scalar joint coordinates and free-joint translations are low-pass filtered
    before differentiating; orientations (quaternions) are differentiated as they are and their
    angular velocities filtered instead (a root left raw would carry the noise of its second
    derivative straight into the root residuals).
    """
    qpos = np.array(qpos, float)
    T = qpos.shape[0]
    rot_dofs = []
    if cutoff_hz > 0:
        lin = []
        for j in range(model.njnt):
            a, v = model.jnt_qposadr[j], model.jnt_dofadr[j]
            if model.jnt_type[j] in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
                lin.append(a)
            elif model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE:
                lin += [a, a + 1, a + 2]
                rot_dofs += [v + 3, v + 4, v + 5]
            elif model.jnt_type[j] == mujoco.mjtJoint.mjJNT_BALL:
                rot_dofs += [v, v + 1, v + 2]
        if lin:
            qpos[:, lin] = lowpass(qpos[:, lin], dt, cutoff_hz)
        qvel = None  # recompute from the filtered positions
    if qvel is None:
        qvel = np.zeros((T, model.nv))
        for t in range(T):
            a, b = (t - 1, t + 1) if 0 < t < T - 1 else ((t, t + 1) if t == 0 else (t - 1, t))
            v = np.zeros(model.nv)
            mujoco.mj_differentiatePos(model, v, dt * (b - a), qpos[a], qpos[b])
            qvel[t] = v
    qvel = np.asarray(qvel, float)
    if rot_dofs:
        qvel[:, rot_dofs] = lowpass(qvel[:, rot_dofs], dt, cutoff_hz)
    qacc = np.gradient(qvel, dt, axis=0)
    return qpos, qvel, qacc


@dataclasses.dataclass(frozen=True)
class FootLoads:
    """Measured ground reaction per foot, in the MuJoCo world frame (Z up), on the ID frames.

    Attributes:
        force: (T, feet, 3) N, force of the ground on the foot.
        cop: (T, feet, 3) m, centre of pressure (NaN while the foot is unloaded: no load applied).
        free_moment: (T, feet, 3) N m, moment about the COP (the plate's free moment), or None (0).
        bodies: (feet,) MuJoCo body ids the loads act on (OpenSim's convention: the calcaneus).
    """

    force: np.ndarray
    cop: np.ndarray
    free_moment: np.ndarray | None
    bodies: tuple[int, ...]


def foot_bodies(model: mujoco.MjModel, feet=("r", "l")) -> tuple[int, ...]:
    """Per foot, the body that receives the GRF: the root-most body carrying that side's foot
    contact geoms (the calcaneus in myo-sim legs, as OpenSim's ExternalLoads apply it to calcn)."""
    from msdiversity.models.registry import foot_geoms

    fg = foot_geoms(model)
    out = []
    for f in feet:
        bodies = {int(model.geom_bodyid[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, g)]) for g in fg.get(f, ())}
        if not bodies:
            raise InputError(f"model has no foot contact geoms for foot '{f}' (needed to apply its GRF)", field="foot")

        def depth(b):
            n = 0
            while b:
                b, n = int(model.body_parentid[b]), n + 1
            return n

        out.append(min(bodies, key=lambda b: (depth(b), b)))
    return tuple(out)


def wrench_about_origin(force: np.ndarray, cop: np.ndarray, free_moment: np.ndarray | None,
                        origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A force (3,) N at `cop` (3,) m plus a free moment (3,) N m as (force, torque about `origin`).

    torque = free_moment + (cop − origin) × force (all world frame). Unloaded (NaN COP): zeros.
    """
    if not np.all(np.isfinite(cop)):
        return np.zeros(3), np.zeros(3)
    m = np.zeros(3) if free_moment is None else np.asarray(free_moment, float)
    return np.asarray(force, float), m + np.cross(np.asarray(cop, float) - origin, force)


def equality_basis(model: mujoco.MjModel, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
    """(S (nv, nI), independent dof indices (nI,)) with v = S v_I satisfying the active equality
    constraints at `data.qpos` to first order (G S = 0).

    G is MuJoCo's equality constraint Jacobian (needs `mj_fwdPosition` on a model with equality
    on and `opt.jacobian` dense). Dependent dofs: the driven joint (`eq_obj1id`) of each joint
    equality; for other equality types the columns a pivoted QR of G picks. Identity without
    active equalities.
    """
    nv = model.nv
    rows = np.flatnonzero(np.asarray(data.efc_type[:data.nefc]) == mujoco.mjtConstraint.mjCNSTR_EQUALITY)
    if len(rows) == 0:
        return np.eye(nv), np.arange(nv)
    G = np.asarray(data.efc_J).reshape(-1)[:data.nefc * nv].reshape(data.nefc, nv)[rows]
    eq_ids = np.asarray(data.efc_id)[rows]
    dep = []
    for e in np.unique(eq_ids):
        if model.eq_type[e] == mujoco.mjtEq.mjEQ_JOINT:
            dep.append(int(model.jnt_dofadr[model.eq_obj1id[e]]))
    other = ~np.isin(eq_ids, [e for e in np.unique(eq_ids) if model.eq_type[e] == mujoco.mjtEq.mjEQ_JOINT])
    if other.any():
        from scipy.linalg import qr

        free_cols = np.setdiff1d(np.arange(nv), dep)
        rank = np.linalg.matrix_rank(G[other])
        piv = qr(G[other][:, free_cols], pivoting=True, mode="economic")[2]
        dep += [int(free_cols[p]) for p in piv[:rank]]
    dep = np.array(sorted(set(dep)))
    ind = np.setdiff1d(np.arange(nv), dep)
    S = np.zeros((nv, len(ind)))
    S[ind, np.arange(len(ind))] = 1.0
    S[dep] = -np.linalg.lstsq(G[:, dep], G[:, ind], rcond=None)[0]
    return S, ind


@dataclasses.dataclass
class InverseDynamics:
    """Inverse dynamics of a reference, per frame.

    tau: (T, nv) generalised force actuators + residuals must supply, projected onto the
        independent coordinates (dependent dofs: 0), N m or N; external loads removed.
    tau_full: (T, nv) the same before the projection (M q̈ + c − passive − J_extᵀ F_ext).
    S: (T, nv, nI) equality basis per frame; ind: (nI,) independent dof indices.
    root_force: (T, 3) N world frame, root_moment: (T, 3) N m world frame about the root origin
        (residuals; NaN without a free root). body_weight: N (m g).
    has_loads: whether measured GRF were applied.
    """

    tau: np.ndarray
    tau_full: np.ndarray
    S: np.ndarray
    ind: np.ndarray
    root_force: np.ndarray
    root_moment: np.ndarray
    body_weight: float
    has_loads: bool


def _id_models(model: mujoco.MjModel) -> tuple[mujoco.MjModel, mujoco.MjModel]:
    """(model without any constraint for mj_inverse, model with equality only and a dense Jacobian)."""
    m_id = copy.copy(model)
    m_id.opt.disableflags = int(model.opt.disableflags) | int(mujoco.mjtDisableBit.mjDSBL_CONSTRAINT)
    m_eq = copy.copy(model)
    m_eq.opt.disableflags = (int(model.opt.disableflags) | int(mujoco.mjtDisableBit.mjDSBL_CONTACT)
                             | int(mujoco.mjtDisableBit.mjDSBL_LIMIT)) & ~int(mujoco.mjtDisableBit.mjDSBL_EQUALITY) \
        & ~int(mujoco.mjtDisableBit.mjDSBL_CONSTRAINT)
    m_eq.opt.jacobian = mujoco.mjtJacobian.mjJAC_DENSE
    return m_id, m_eq


def _free_root(model: mujoco.MjModel) -> int | None:
    free = np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_FREE)
    return int(free[0]) if len(free) else None


def inverse_dynamics(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray, qacc: np.ndarray,
                     loads: FootLoads | None = None, on_frame=None) -> InverseDynamics:
    """Inverse dynamics with measured foot loads and equality constraints (module docstring).

    Args:
        qpos (T, nq), qvel (T, nv), qacc (T, nv): reference state.
        loads: measured GRF per foot on the same frames, or None.
        on_frame: optional callable(t, data) after `mj_inverse` of frame t (the constraint-free
            model's data: actuator lengths, moments), for callers that need more per frame.
    """
    m_id, m_eq = _id_models(model)
    d, de = mujoco.MjData(m_id), mujoco.MjData(m_eq)
    T, nv = qpos.shape[0], model.nv
    root = _free_root(model)
    tau_full = np.zeros((T, nv))
    root_f = np.full((T, 3), np.nan)
    root_m = np.full((T, 3), np.nan)
    S_all, ind = None, None
    qfrc = np.zeros(nv)
    for t in range(T):
        d.qpos[:], d.qvel[:], d.qacc[:] = qpos[t], qvel[t], qacc[t]
        mujoco.mj_inverse(m_id, d)
        tau_full[t] = d.qfrc_inverse
        if loads is not None:
            qfrc[:] = 0.0
            for fi, b in enumerate(loads.bodies):
                fm = None if loads.free_moment is None else loads.free_moment[t, fi]
                f, tq = wrench_about_origin(loads.force[t, fi], loads.cop[t, fi], fm, d.xpos[b])
                if np.any(f) or np.any(tq):
                    mujoco.mj_applyFT(m_id, d, f, tq, d.xpos[b].copy(), int(b), qfrc)
            tau_full[t] -= qfrc
        de.qpos[:] = qpos[t]
        mujoco.mj_fwdPosition(m_eq, de)
        S, ind_t = equality_basis(m_eq, de)
        if S_all is None:
            S_all, ind = np.zeros((T,) + S.shape), ind_t
        elif not np.array_equal(ind_t, ind):
            raise RuntimeError("the set of active equality constraints changed during the motion")
        S_all[t] = S
        if root is not None:
            a = model.jnt_dofadr[root]
            root_f[t] = tau_full[t, a:a + 3]  # free-joint translation dofs are world-aligned
            # rotational dofs are in the root body frame: rotate the moment into the world
            root_m[t] = d.xmat[model.jnt_bodyid[root]].reshape(3, 3) @ tau_full[t, a + 3:a + 6]
        if on_frame is not None:
            on_frame(t, d)
    tau = np.zeros((T, nv))
    tau[:, ind] = np.einsum("tvi,tv->ti", S_all, tau_full)
    g = float(np.linalg.norm(model.opt.gravity))
    return InverseDynamics(tau=tau, tau_full=tau_full, S=S_all, ind=ind, root_force=root_f, root_moment=root_m,
                           body_weight=float(model.body_subtreemass[0]) * g, has_loads=loads is not None)


@dataclasses.dataclass
class FrameProblem:
    """Per-frame linear constraint A a = b on the muscle-spanned (independent) dofs."""

    A: np.ndarray  # (frames, dofs_sel, muscles) N m per unit activation
    b: np.ndarray  # (frames, dofs_sel) N m (torque minus passive muscle torque)
    tau: np.ndarray  # (frames, nv) inverse-dynamics generalised forces (projected, loads removed)
    sel: np.ndarray  # (dofs_sel,) indices of constrained dofs
    id: InverseDynamics | None = None


def muscle_problem(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray, qacc: np.ndarray,
                   muscles: np.ndarray, loads: FootLoads | None = None) -> FrameProblem:
    """Inverse dynamics and the per-frame muscle equality constraints for actuator ids `muscles`."""
    T, nv, nm = qpos.shape[0], model.nv, len(muscles)
    R = np.zeros((T, nm, nv))
    gain = np.zeros((T, nm))
    bias = np.zeros((T, nm))
    mom = np.zeros((model.nu, nv))

    def muscles_at(t, d):  # mj_inverse also computed actuator_length/velocity/moment
        mujoco.mju_sparse2dense(mom, d.actuator_moment, d.moment_rownnz, d.moment_rowadr, d.moment_colind)
        R[t] = mom[muscles]
        for i, a in enumerate(muscles):
            L, V = d.actuator_length[a], d.actuator_velocity[a]
            gain[t, i] = mujoco.mju_muscleGain(L, V, model.actuator_lengthrange[a], model.actuator_acc0[a],
                                               model.actuator_gainprm[a, :9])
            bias[t, i] = mujoco.mju_muscleBias(L, model.actuator_lengthrange[a], model.actuator_acc0[a],
                                               model.actuator_biasprm[a, :9])

    idyn = inverse_dynamics(model, qpos, qvel, qacc, loads, on_frame=muscles_at)
    RS = np.zeros((T, nm, nv))  # moment arms on the independent coordinates (Sᵀ Rᵀ)ᵀ
    RS[:, :, idyn.ind] = np.einsum("tmv,tvi->tmi", R, idyn.S)
    sel = np.flatnonzero(np.abs(RS).max(axis=(0, 1)) > 1e-8)
    A = np.einsum("tmd,tm->tdm", RS[:, :, sel], gain)  # (T, dofs_sel, muscles)
    b = idyn.tau[:, sel] - np.einsum("tmd,tm->td", RS[:, :, sel], bias)
    return FrameProblem(A=A, b=b, tau=idyn.tau, sel=sel, id=idyn)


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

    Returns dict: so (p, F, muscles), lo/hi (F, muscles), residual (F, nv): reserve on the
    muscle-spanned dofs, the whole generalised force on independent dofs no muscle spans."""
    F, nm, nv = len(frames), prob.A.shape[2], prob.tau.shape[1]
    so = np.full((len(exponents), F, nm), np.nan)
    lo = np.full((F, nm), np.nan)
    hi = np.full((F, nm), np.nan)
    resid = np.zeros((F, nv))
    prev = [None] * len(exponents)
    unact = np.setdiff1d(prob.id.ind, prob.sel) if prob.id is not None else np.array([], int)
    for i, t in enumerate(frames):
        A, b = prob.A[t], prob.b[t]
        b_ok, r = reserve_targets(A, b)
        resid[i, prob.sel] = r
        resid[i, unact] = prob.tau[t, unact]  # no muscle spans these (e.g. a free root): all residual
        for j, p in enumerate(exponents):
            prev[j] = so[j, i] = static_opt_frame(A, b_ok, float(p), prev[j])
        if ranges:
            lo[i], hi[i] = feasible_range_frame(A, b_ok)
        if progress is not None:
            progress(i + 1, F)
    return {"so": so, "lo": lo, "hi": hi, "residual": resid}


def recording_loads(rec: xr.Dataset, model: mujoco.MjModel) -> tuple[FootLoads | None, str]:
    """The measured GRF of a recording as `FootLoads` (`grf_ref` at `cop_ref`, free moment
    `grf_moment_ref` when recorded, else 0), or None and why not."""
    if "grf_ref" not in rec:
        from msdiversity.models.registry import foot_geoms

        if any(foot_geoms(model).values()):
            return None, ("no measured GRF in the recording: inverse dynamics has no ground reaction, so the "
                          "root residuals carry it and static optimisation / feasible sets are not valid for gait")
        return None, "no external loads (the model has no feet)"
    if "cop_ref" not in rec:
        return None, ("the recording has the reference GRF but not its centre of pressure (`cop_ref`; older "
                      "recordings lack it): GRF not applied, the root residuals carry the ground reaction and "
                      "static optimisation / feasible sets are not valid for gait")
    feet = [str(f) for f in rec["foot"].values] if "foot" in rec.coords else ["r", "l"]
    force = np.asarray(rec["grf_ref"].transpose("time", "foot", "axis").values, float)
    cop = np.asarray(rec["cop_ref"].transpose("time", "foot", "axis").values, float)
    fm = (np.asarray(rec["grf_moment_ref"].transpose("time", "foot", "axis").values, float)
          if "grf_moment_ref" in rec else None)
    loaded = np.linalg.norm(force, axis=-1) > 10.0
    lost = loaded & ~np.isfinite(cop).all(-1)
    note = "measured GRF applied at the centre of pressure" + (" with the free moment" if fm is not None else
                                                               " (free moment not recorded: taken as 0)")
    if lost.any():
        note += f"; {int(lost.sum())} loaded foot-frames without a COP left out"
    return FootLoads(force=force, cop=cop, free_moment=fm, bodies=foot_bodies(model, feet)), note


def torque_error(A: np.ndarray, b: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vector-level feasibility: how far whole activation vectors are from producing the torques.

    Args:
        A: (P, d, m) N m per unit activation; b: (P, d) N m targets; act: (M, P, m) activations.

    Returns:
        (error (M, P) N m: ‖A a − b‖ per frame, relative (M,): sqrt(Σ_P ‖A a − b‖²) / sqrt(Σ_P ‖b‖²)
        over frames where the member is finite; 1 = no better than all muscles off.)
    """
    e = np.linalg.norm(np.einsum("pdm,Mpm->Mpd", A, act) - b[None], axis=-1)
    ok = np.isfinite(e)
    bn = np.linalg.norm(b, axis=-1)[None] * np.ones_like(e)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.sqrt(np.where(ok, e ** 2, 0).sum(1)) / np.sqrt(np.where(ok, bn ** 2, 0).sum(1))
    rel[ok.sum(1) == 0] = np.nan
    return e, rel


def recording_state(rec, prep, cutoff_hz: float, purpose: str):
    """The recording's model and reference state for a per-frame muscle map: (model, order (muscles,)
    actuator ids in the recording's muscle order, qpos, qvel, qacc (T, nq|nv), frames (phases,) index of
    the recorded frame nearest each analysis phase). `purpose` names the analysis in errors."""
    from msdiversity.errors import ModelError
    from msdiversity.models import load_model
    from msdiversity.models.registry import muscle_ids

    if "ref_qpos_full" not in rec:
        raise InputError(f"recording has no 'ref_qpos_full' (needed for {purpose})", field="ref_qpos_full")
    try:
        model = load_model(rec.attrs.get("model", "")).model
    except ModelError as e:
        raise InputError(f"cannot load the recording's model for {purpose}: {e}", field="model") from None
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
    frames = np.clip(np.rint(np.interp(prep.phase_time, prep.time, np.arange(len(prep.time)))).astype(int),
                     0, len(prep.time) - 1)
    return model, order, qpos, qvel, qacc, frames


def baselines(rec: xr.Dataset, prep, exponents=(1.0, 2.0, 3.0), tol: float = 0.02, cutoff_hz: float = 0.0,
              progress=None, feasible_frames: int = 4, feasible_samples: int = 200, seed: int = 0) -> xr.Dataset:
    """The `base_` variables for a recording (model from attrs['model']).

    feasible_frames phases (evenly spaced inside the cycle; 0 = off) get `feasible_samples` uniform
    samples of the feasible activation set (`msdiversity.analysis.feasible`)."""
    model, order, qpos, qvel, qacc, frames = recording_state(rec, prep, cutoff_hz, "inverse dynamics")
    rec_mus = [str(m) for m in rec["muscle"].values]
    loads, load_note = recording_loads(rec, model)
    prob = muscle_problem(model, qpos, qvel, qacc, order, loads)
    sol = solve_frames(prob, frames, exponents, ranges=True, progress=progress)
    act0 = prep.act[:, 0]  # (M, P, NM)
    lo, hi = sol["lo"][None], sol["hi"][None]
    inside = (act0 >= lo - tol) & (act0 <= hi + tol)
    valid = np.isfinite(act0) & np.isfinite(lo) & np.isfinite(hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.sum(inside & valid, axis=(1, 2)) / np.sum(valid, axis=(1, 2))
        frac_m = np.sum(inside & valid, axis=1) / np.sum(valid, axis=1)
    A_f = prob.A[frames]
    b_ok = prob.b[frames] - sol["residual"][:, prob.sel]  # what the muscles can produce
    err, err_rel = torque_error(A_f, b_ok, act0)
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
    idn = prob.id
    out["base_id_torque"] = (("time", "dof"), prob.tau, {
        "units": "N m (N for slide dofs)",
        "long_name": "inverse dynamics of the reference (mj_inverse, constraints off, measured GRF removed), "
                     "projected onto the independent coordinates (equality-driven dofs: 0)",
        "external_loads": load_note})
    out["base_so_activation"] = (("p", "phase", "muscle"), sol["so"],
                                 {"units": "1", "long_name": "static optimisation, min sum a^p"})
    out["base_feasible_min"] = (("phase", "muscle"), sol["lo"], {"units": "1", "long_name": "LP minimum activation"})
    out["base_feasible_max"] = (("phase", "muscle"), sol["hi"], {"units": "1", "long_name": "LP maximum activation"})
    out["base_residual"] = (("phase", "dof"), sol["residual"], {
        "units": "N m (N for slide dofs)",
        "long_name": "reserve generalised force muscles could not supply (muscle-spanned dofs) and the "
                     "whole generalised force on independent dofs no muscle spans (e.g. the root)"})
    out["base_inside_fraction"] = ("member", frac, {"units": "1", "tolerance": tol})
    out["base_inside_fraction_muscle"] = (("member", "muscle"), frac_m, {"units": "1", "tolerance": tol})
    out["base_torque_error"] = (("member", "phase"), err, {
        "units": "N m", "long_name": "|A a - b| of the trial-0 activation vector: torque it misses at the reference "
                                     "state (b = what muscles can produce)"})
    out["base_torque_error_rel"] = ("member", err_rel, {
        "units": "1", "long_name": "sqrt(sum_phase |A a - b|^2) / sqrt(sum_phase |b|^2): 0 = produces the torques, "
                                   "1 = no better than all muscles off"})
    out["base_so_corr"] = (("p", "muscle"), so_corr, {"units": "1", "long_name": "r(SO, ensemble-mean activation)"})
    out["base_frame"] = ("phase", frames, {"units": "1", "long_name": "recording frame used at each phase"})
    out["base_dof_constrained"] = ("dof", np.isin(np.arange(model.nv), prob.sel),
                                   {"units": "1", "long_name": "dof spanned by muscles (torque matched)"})
    out["base_dof_independent"] = ("dof", np.isin(np.arange(model.nv), idn.ind),
                                   {"units": "1", "long_name": "dof not driven by an equality constraint"})
    if np.isfinite(idn.root_force).all():
        bw = idn.body_weight
        out = out.assign_coords(axis=["x", "y", "z"])
        out["base_root_residual_force"] = (("time", "axis"), idn.root_force, {
            "units": "N", "frame": "mujoco_world_zup", "long_name": "root residual force (OpenSim RRA convention: "
                                                                    "the force a residual actuator on the root must add)"})
        out["base_root_residual_force_pct_bw"] = (("time", "axis"), 100 * idn.root_force / bw,
                                                  {"units": "% body weight", "body_weight_n": bw})
        out["base_root_residual_moment"] = (("time", "axis"), idn.root_moment, {
            "units": "N m", "frame": "mujoco_world_zup", "long_name": "root residual moment about the root origin"})
        fz = np.abs(100 * idn.root_force[:, 2] / bw)
        out["base_root_fz_mean_pct_bw"] = ((), float(fz.mean()), {"units": "% body weight",
                                                                   "long_name": "mean |vertical root residual force|"})
        out["base_root_fz_max_pct_bw"] = ((), float(fz.max()), {"units": "% body weight",
                                                                 "long_name": "max |vertical root residual force|"})
    # 1 when the inverse dynamics has every external load the model meets (measured GRF, or no feet)
    out["base_id_valid"] = ((), int(loads is not None or "no feet" in load_note),
                            {"units": "1", "long_name": load_note})
    if feasible_frames > 0 and feasible_samples > 0:
        out = out.merge(_feasible_part(seed, prob, frames, sol, act0, prep, feasible_frames, feasible_samples,
                                       rec, rec_mus), combine_attrs="override")
    return out


def _feasible_part(seed, prob, frames, sol, act0, prep, n_frames, n_samples, rec, rec_mus) -> xr.Dataset:
    """Uniform samples of the feasible set on `n_frames` phases and the members' place in it."""
    from msdiversity.analysis.feasible import place_members, sample_polytope

    rng = np.random.default_rng(seed)
    P = len(frames)
    pick = np.unique(np.rint(np.linspace(0, P - 1, n_frames + 2)[1:-1]).astype(int))  # inside the cycle
    M, nm = act0.shape[0], act0.shape[2]
    samples = np.full((len(pick), n_samples, nm), np.nan, np.float32)
    pct = np.full((M, len(pick), nm), np.nan)
    cover = np.full((len(pick), nm), np.nan)
    vr = np.full(len(pick), np.nan)
    drift = np.full(len(pick), np.nan)
    ref_pct = np.full((len(pick), nm), np.nan)
    truth = None
    if "activation_ref" in rec:
        t_ref = np.asarray(rec["time"].values, float)
        a_ref = np.asarray(rec["activation_ref"].transpose("time", "muscle").values, float)
        truth = np.stack([np.interp(prep.phase_time, t_ref, a_ref[:, i]) for i in range(nm)], 1)  # (P, nm)
    for j, p in enumerate(pick):
        t = frames[p]
        b_ok = prob.b[t] - sol["residual"][p, prob.sel]
        info = {}
        s = sample_polytope(rng, prob.A[t], b_ok, n_samples, info=info)
        samples[j] = s
        pl = place_members(s, act0[:, p])
        pct[:, j], cover[j], vr[j], drift[j] = pl["percentile"], pl["coverage"], pl["var_ratio"], info["drift"]
        if truth is not None:
            ref_pct[j] = place_members(s, truth[p][None])["percentile"][0]
    ds = xr.Dataset(coords={"fphase": prep.phase[pick], "fsample": np.arange(n_samples), "muscle": rec_mus,
                            "member": rec["member"].values})
    ds["base_feasible_samples"] = (("fphase", "fsample", "muscle"), samples, {
        "units": "1", "long_name": "uniform samples of {a in [0,1]^m : A a = b} (rounded hit-and-run)"})
    ds["base_feasible_percentile"] = (("member", "fphase", "muscle"), pct, {
        "units": "1", "long_name": "member's trial-0 activation as a quantile of the feasible marginal"})
    ds["base_feasible_coverage"] = (("fphase", "muscle"), cover, {
        "units": "1", "long_name": "feasible probability mass between the ensemble's min and max per muscle",
        "uniform_expectation": (M - 1) / (M + 1) if M else np.nan})
    ds["base_feasible_var_ratio"] = ("fphase", vr, {
        "units": "1", "long_name": "trace cov(members) / trace cov(feasible samples)"})
    ds["base_feasible_drift"] = ("fphase", drift, {
        "units": "1", "long_name": "sampler check: relative change of marginal SDs over the second half of the run"})
    if truth is not None:
        ds["base_feasible_percentile_ref"] = (("fphase", "muscle"), ref_pct, {
            "units": "1", "long_name": "true activation (activation_ref) as a quantile of the feasible marginal"})
    ds["fphase"].attrs["units"] = "%"
    return ds
