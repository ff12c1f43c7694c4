"""Probe: can a classical tracking controller (CMC-style) follow the walk on myolegs at 50 Hz?

Measures the lever "warm start from a classical solution" of issue 9 before anything is distilled
into a policy. Single environment, C MuJoCo, the reference exactly as `experiments/walk.toml`
prepares it for the emulator (periodic cycle, treadmill converted, stance grounded).

Controller (per 20 ms control step, held for the env's 10 substeps): desired accelerations
qacc* = qacc_ref + kp (q_ref - q) + 2 sqrt(kp) (qd_ref - qd); one bounded least-squares problem over

    x = [qacc of the independent dofs, contact forces (4-sided friction pyramid per contact),
         muscle activations a in [0, 1], root residuals r in [-1, 1] (x the env's residual scale)]

with the equations of motion projected on the independent coordinates (G^T (M qacc + h - J_c^T f
- R^T (gain a + f_passive) - S r) = 0, weight `wd`), coupled knee dofs from their polynomial
(qacc = G qacc_ind + gamma), stance contact points held (J_c qacc = -20 J_c qd, weight `wc`), and
small penalties on a (`mu`) and r (`wr`). Activations reach a* by inverting MuJoCo's first-order
muscle activation dynamics over half a control step; with `--ideal` activation is set to a*
directly (no activation dynamics: the best a 50 Hz muscle controller could do).

Modes: `float` removes the ground (contacts off) and gives the root a hand-of-god residual 20x the
env's (the muscle problem alone); `contact` keeps the ground and the env's residual limits
(200 N, 100 N m).

Also prints the stance clearance: how far the loaded foot of the reference is above the ground, and
how deep the model's soft contacts must penetrate to carry the measured vertical GRF.

    python benchmarks/probe_id_controller.py                 # both modes, kp 100 and 400
    python benchmarks/probe_id_controller.py --mode float --kp 400 --ideal
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import mujoco
import numpy as np
from scipy.optimize import lsq_linear

ROOT = Path(__file__).resolve().parents[1]
_DSBL_EQ = int(mujoco.mjtDisableBit.mjDSBL_EQUALITY)
_DSBL_CON = int(mujoco.mjtDisableBit.mjDSBL_CONTACT)


def build(experiment: Path):
    from msdiversity.config import load_experiment
    from msdiversity.ensemble.build import build_env

    return build_env(load_experiment(experiment), backend="cpu").env


class Coupling:
    """Joint-equality couplings q_dep = q0_dep + poly(q_ind - q0_ind): qacc = G qacc_indep + gamma."""

    def __init__(self, m: mujoco.MjModel):
        eqs = [e for e in range(m.neq) if m.eq_type[e] == mujoco.mjtEq.mjEQ_JOINT]
        self.dep = np.array([m.jnt_dofadr[m.eq_obj1id[e]] for e in eqs], int)
        self.ind = np.array([m.jnt_dofadr[m.eq_obj2id[e]] for e in eqs], int)
        self.xq = np.array([m.jnt_qposadr[m.eq_obj2id[e]] for e in eqs], int)
        self.coef = np.array([m.eq_data[e][:5] for e in eqs]).reshape(-1, 5)
        self.x0 = m.qpos0[self.xq]
        self.indep = np.setdiff1d(np.arange(m.nv), self.dep)
        self.col = np.searchsorted(self.indep, self.ind)
        self.nv = m.nv

    def G(self, q: np.ndarray, qd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(nv, n_indep) map and (nv,) velocity-product term at state (q, qd)."""
        G = np.zeros((self.nv, len(self.indep)))
        G[self.indep, np.arange(len(self.indep))] = 1.0
        x, c = q[self.xq] - self.x0, self.coef
        d1 = c[:, 1] + 2 * c[:, 2] * x + 3 * c[:, 3] * x**2 + 4 * c[:, 4] * x**3
        d2 = 2 * c[:, 2] + 6 * c[:, 3] * x + 12 * c[:, 4] * x**2
        G[self.dep, self.col] = d1
        gam = np.zeros(self.nv)
        gam[self.dep] = d2 * qd[self.ind] ** 2
        return G, gam


def stance_clearance(env) -> list[tuple[int, float, float, float]]:
    """Per loaded frame (every 6th): (frame, clearance mm, measured Fz N, penetration mm to carry it)."""
    m = env.model
    floor = [g for g in range(m.ngeom) if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE][0]
    name = lambda b: mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b) or ""  # noqa: E731
    feet = {s: [g for g in range(m.ngeom) if (m.geom_contype[g] or m.geom_conaffinity[g])
                and name(m.geom_bodyid[g]).startswith(("calcn", "toes")) and name(m.geom_bodyid[g]).endswith(s)]
            for s in ("_r", "_l")}
    mi = copy.deepcopy(m)
    mi.opt.disableflags |= _DSBL_EQ
    d, di = mujoco.MjData(m), mujoco.MjData(mi)
    cp = Coupling(m)
    qacc_ref = np.gradient(env.ref_qvel_full, env.dt, axis=0)
    out = []
    for k in range(0, env.n_frames, 6):
        fz = env.ref_grf[k, :, 2]
        if fz.sum() < 0.5 * env.body_weight:
            continue
        d.qpos[:] = env.ref_qpos_full[k]
        mujoco.mj_forward(m, d)
        side = "_r" if fz[0] >= fz[1] else "_l"
        clear = min(mujoco.mj_geomDistance(m, d, floor, g, 1.0, None) for g in feet[side])
        need = np.nan
        for dz in np.arange(0.0, 0.0205, 0.0005):  # lower the root until the contacts carry the load
            q = env.ref_qpos_full[k].copy()
            q[2] -= clear + dz
            G, gam = cp.G(q, env.ref_qvel_full[k])
            qa = qacc_ref[k].copy()
            qa[cp.dep] = (G @ qa[cp.indep] + gam)[cp.dep]
            di.qpos[:], di.qvel[:], di.qacc[:] = q, env.ref_qvel_full[k], qa
            mujoco.mj_inverse(mi, di)
            if di.qfrc_constraint[2] >= fz.sum():
                need = dz
                break
        out.append((k, 1000 * clear, float(fz.sum()), 1000 * need))
    return out


def track(env, mode: str, kp: float, ideal: bool, steps: int, mu: float = 1e-3, wr: float = 1e-4,
          wd: float = 100.0, wc: float = 10.0) -> dict:
    """Run the controller for `steps` control steps from frame 0; tracking numbers as in the env."""
    m0 = env.model
    m = copy.deepcopy(m0)
    if mode == "float":
        m.opt.disableflags |= _DSBL_CON
    mi = copy.deepcopy(m0)
    mi.opt.disableflags |= _DSBL_EQ | _DSBL_CON  # what the controller's dynamics rows are built from
    d, di = mujoco.MjData(m), mujoco.MjData(mi)
    nv, nu, N, dt = m.nv, m.nu, env.n_frames, env.dt
    cp = Coupling(m)
    ni = len(cp.indep)
    scale = np.asarray(env._residual_scale(), float) * (20.0 if mode == "float" else 1.0)  # (6,) N | N m
    qacc_ref = np.gradient(env.ref_qvel_full, dt, axis=0)

    def ref(k):
        c, i = divmod(k, N)
        return env.ref_qpos_full[i] + c * env._qshift, env.ref_qvel_full[i], qacc_ref[i]

    q0, v0, _ = ref(0)
    d.qpos[:], d.qvel[:], d.act[:] = q0, v0, 0.05
    mujoco.mj_forward(m, d)
    Mfull, mom = np.zeros((nv, nv)), np.zeros((nu, nv))
    S = np.zeros((nv, 6))
    S[np.arange(6), np.arange(6)] = scale
    hinge = env._jq[env._hinge]
    errs, grf_err, r_use, t0 = [], [], [], time.perf_counter()
    fell = None
    for k in range(steps):
        qr, vr, ar = ref(k)
        e = np.zeros(nv)
        mujoco.mj_differentiatePos(m, e, 1.0, d.qpos, qr)
        qdes = ar + kp * e + 2 * np.sqrt(kp) * (vr - d.qvel)
        G, gam = cp.G(d.qpos, d.qvel)
        di.qpos[:], di.qvel[:], di.act[:], di.qacc[:] = d.qpos, d.qvel, d.act, gam
        mujoco.mj_inverse(mi, di)
        h = di.qfrc_inverse.copy()  # M gamma + bias - passive
        mujoco.mj_fullM(mi, di, Mfull)
        mujoco.mju_sparse2dense(mom, di.actuator_moment, di.moment_rownnz, di.moment_rowadr, di.moment_colind)
        di.act[:] = 0.0
        mujoco.mj_fwdActuation(mi, di)
        f0 = di.actuator_force.copy()
        di.act[:] = 1.0
        mujoco.mj_fwdActuation(mi, di)
        gain = di.actuator_force - f0  # (nu,) N at activation 1 minus passive
        Jc, Dc = [], []
        if mode == "contact":
            mujoco.mj_forward(m, d)
            for ci in range(d.ncon):
                c = d.contact[ci]
                if c.dist > 0.002:
                    continue
                foot_is_2 = m.geom_bodyid[c.geom1] == 0
                b = m.geom_bodyid[c.geom2] if foot_is_2 else m.geom_bodyid[c.geom1]
                jp = np.zeros((3, nv))
                mujoco.mj_jac(m, d, jp, None, c.pos, b)
                fr = c.frame.reshape(3, 3)
                n = fr[0] if foot_is_2 else -fr[0]  # force on the foot pushes it out of the floor
                Jc.append(jp)
                Dc.append(np.stack([n + 0.9 * fr[1], n - 0.9 * fr[1], n + 0.9 * fr[2], n - 0.9 * fr[2]], 1))
        nc = len(Jc)
        ia, ir = ni + 4 * nc, ni + 4 * nc + nu
        nx = ir + 6
        A_dyn = np.zeros((ni, nx))
        A_dyn[:, :ni] = G.T @ Mfull @ G
        for j in range(nc):
            A_dyn[:, ni + 4 * j:ni + 4 * j + 4] = -G.T @ Jc[j].T @ Dc[j]
        A_dyn[:, ia:ir] = -G.T @ (mom.T * gain)
        A_dyn[:, ir:] = -G.T @ S
        b_dyn = -G.T @ (h - mom.T @ f0)
        rows, rhs = [wd * A_dyn, np.hstack([np.eye(ni), np.zeros((ni, nx - ni))])], [wd * b_dyn, qdes[cp.indep]]
        for j in range(nc):
            A_c = np.zeros((3, nx))
            A_c[:, :ni] = Jc[j] @ G
            rows.append(wc * A_c)
            rhs.append(wc * (-Jc[j] @ gam - 20.0 * (Jc[j] @ d.qvel)))
        reg = np.zeros((nx - ni, nx))
        reg[:, ni:] = np.diag(np.r_[np.full(4 * nc, 1e-3), np.full(nu, np.sqrt(mu)), np.full(6, np.sqrt(wr))])
        rows.append(reg)
        rhs.append(np.zeros(nx - ni))
        lo = np.r_[np.full(ni, -np.inf), np.zeros(4 * nc + nu), -np.ones(6)]
        hi = np.r_[np.full(ni + 4 * nc, np.inf), np.ones(nu + 6)]
        x = lsq_linear(np.vstack(rows), np.concatenate(rhs), bounds=(lo, hi), method="bvls").x
        a_star, r = x[ia:ir], x[ir:]
        a0 = d.act.copy()
        tau = np.where(a_star > a0, m.actuator_dynprm[:, 0] * (0.5 + 1.5 * a0),
                       m.actuator_dynprm[:, 1] / (0.5 + 1.5 * a0))
        d.ctrl[:] = np.clip(a0 + (a_star - a0) / (1 - np.exp(-0.5 * dt / tau)), 0.0, 1.0)
        d.qfrc_applied[:] = 0.0
        d.qfrc_applied[:6] = r * scale
        for _ in range(env.nsub):
            if ideal:
                d.act[:], d.ctrl[:] = a_star, a_star
            mujoco.mj_step(m, d)
        qn, _, _ = ref(k + 1)
        errs.append(float(np.degrees(np.abs(d.qpos[hinge] - qn[hinge])).mean()))
        r_use.append(float(np.abs(r).mean()))
        fz = np.zeros(2)
        for ci in range(d.ncon):
            c, f6 = d.contact[ci], np.zeros(6)
            mujoco.mj_contactForce(m, d, ci, f6)
            b = m.geom_bodyid[c.geom2] if m.geom_bodyid[c.geom1] == 0 else m.geom_bodyid[c.geom1]
            nm = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b) or ""
            fz[0 if nm.endswith("_r") else 1] += abs((c.frame.reshape(3, 3).T @ f6[:3])[2])
        grf_err.append((fz - env.ref_grf[(k + 1) % N, :, 2]) / env.body_weight * 100.0)
        if fell is None and d.qpos[2] < qn[2] - 0.15:
            fell = k + 1
    errs = np.array(errs)
    over = np.flatnonzero(errs > 5.0)
    return {"mode": mode, "kp": kp, "ideal": ideal, "mean": errs.mean(), "max": errs.max(),
            "first_over_5": int(over[0]) + 1 if len(over) else None, "fell": fell,
            "vgrf": float(np.sqrt(np.mean(np.square(grf_err)))) if mode == "contact" else np.nan,
            "resid": float(np.mean(r_use)), "s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--experiment", default=str(ROOT / "experiments" / "walk.toml"))
    ap.add_argument("--mode", default="float,contact")
    ap.add_argument("--kp", default="100,400")
    ap.add_argument("--ideal", action="store_true", help="only ideal activations (default: both)")
    ap.add_argument("--steps", type=int, default=150)
    args = ap.parse_args()
    env = build(Path(args.experiment))
    print("stance clearance of the reference (loaded foot, every 6th loaded frame):")
    print("  frame  clearance mm  measured Fz N  penetration needed mm")
    for k, c, f, p in stance_clearance(env):
        print(f"  {k:5d}  {c:12.1f}  {f:13.0f}  {p:21.1f}")
    rows = []
    for mode in args.mode.split(","):
        for kp in (float(x) for x in args.kp.split(",")):
            for ideal in ((True,) if args.ideal else (True, False)):
                res = track(env, mode, kp, ideal, args.steps)
                rows.append(res)
                print(f"  {mode:8s} kp {kp:5.0f} {'ideal act' if ideal else 'act dyn  '}: joint err mean "
                      f"{res['mean']:5.1f} max {res['max']:5.1f} deg, first > 5 deg at step {res['first_over_5']}, "
                      f"fell at {res['fell']}, vGRF RMSE {res['vgrf']:.0f} % BW, |r| {res['resid']:.2f} "
                      f"({res['s']:.0f} s)", flush=True)
    print("\nmode      kp    activation  mean deg  max deg  >5 deg at  fell at  vGRF %BW  |residual|")
    for r in rows:
        print(f"{r['mode']:8s} {r['kp']:5.0f}  {'ideal' if r['ideal'] else 'dynamics':10s}  {r['mean']:8.1f}  "
              f"{r['max']:7.1f}  {str(r['first_over_5']):>9s}  {str(r['fell']):>7s}  {r['vgrf']:8.0f}  {r['resid']:10.2f}")


if __name__ == "__main__":
    main()
