"""Physics-settings benchmark (not a test): which integrator / timestep / solver caps keep a replayed
gait equal to myolegs' own setting (Euler, 2 ms, Newton), and how much faster are they?

Replay. The model is driven along a reference motion by mass-scaled PD servos on every DOF, root
included: qfrc_i = M_ii (Kp_i (q_ref - q)_i + Kd_i (v_ref - v)_i), M_ii the diagonal of the mass
matrix at the first reference pose (diagonal, so that joint servos exert internal torques only and
never hold the body up through the mass matrix' root-joint coupling). The damping part goes into
`dof_damping` (+ M_ii Kd_i v_ref in qfrc_applied), which MuJoCo integrates implicitly under Euler
and implicitfast alike, so the servo itself is stable at every candidate timestep. Joints: a
critically damped servo at F_JOINT Hz on every DOF but the root's vertical translation, which gets
2 Hz, so that the feet, not the servo, carry the body weight. Every muscle gets a fixed excitation of 0.1, so muscles produce force (and fight the servo)
as in training. Each setting replays the same continuous reference (cubic spline through the
mapped frames, sampled at the setting's own timestep). Outputs are compared on the env's 50 Hz
control grid: joint angles at the end of each 20 ms step, GRF and muscle forces averaged over its
substeps.

The servo is a stiff element the trained system does not have, and its stiffness sets much of the
discretization error (a 10 Hz joint servo shrinks the differences 2-4x but lets the stance leg
yield by 7-17 deg; 30 Hz makes them ~3x larger): 20 Hz follows the motion to 3-6 deg. A servo-free case
('drop') shows the settings on the model's own dynamics.

Motions (OpenSim example data in ../shared/data/opensim/), mapped with `load_model_reference`:
- walk: gait2354 subject01 walk1 IK + GRF (1.2 s). A treadmill trial: the pelvis stays at
  x ~ 0.6 m while the stance foot slides back. The belt speed is estimated (median backward
  velocity of the material point at the stance foot's lowest point in the mapped reference: 1.05
  m/s) and added to the root's forward coordinate, so that the stance foot stands still on the
  ground instead of skidding.
- run: the Rajagopal subject01 run IK + GRF (4.76 s), also a treadmill trial (4.0 m/s): same.
- drop: no servo at all (a check free of the servo's stiffness): the 'standing' keyframe raised by
  2 cm, under the same constant excitation: it lands on both feet and stands for 0.4 s.
Both are then centred at x = 0. The ground is the model's (`registry.flat_ground`: myo-sim's
1.05 m platform replaced by the ground plane at its top, z = 0.015 m). The root height is set so
that the lowest foot point over the motion is `depth` below the ground, `depth` calibrated per model
and motion at the reference setting so that the mean vertical GRF over the motion equals body
weight (as it must on average over gait cycles).

Metrics per setting, against the reference setting (the criterion) and against a finer solution
(Euler 0.5 ms: how far the reference itself is from converged): joint-angle RMSE over the tracked
hinge joints (deg), per-foot vertical GRF RMSE (% body weight, worst foot), muscle-force RMSE (% of
the reference's RMS muscle force), divergence (MuJoCo instability warning, non-finite or
|q|,|v| > 1e4), and single-thread speed = simulated seconds per wall second spent in `mj_step`
(best of `--repeats` passes, run round robin over the settings so that load from other processes
hits all of them alike; the servo's Python is not counted).

Usage: python benchmarks/bench_physics_settings.py [--models myolegs,myolegs_sagittal]
       [--motions walk,run,drop] [--servo-hz 20] [--repeats 5] [--settings SUBSTR,...] [--markdown FILE]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from scipy.interpolate import CubicSpline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "opensim"
MOTIONS = {
    "walk": (DATA / "gait2354_subject01_walk1_ik.mot", DATA / "gait2354_subject01_walk1_grf.mot"),
    "run": (DATA / "rajagopal_subject01_run_ik.mot", DATA / "rajagopal_subject01_run_grf.mot"),
}
F_JOINT, F_ROOT = 20.0, 2.0  # Hz: joint (and root horizontal/rotational) servo; root vertical servo
ZETA = 1.0  # servo damping ratio
EXCITATION = 0.1
OUT_DT = 0.02  # s, comparison grid (50 Hz control steps)
TOL_JOINT_DEG, TOL_GRF_PCT_BW, TOL_MUSCLE_PCT = 1.0, 5.0, 5.0  # muscle: % of the reference's RMS force
FINE = {"integrator": "euler", "timestep": 0.0005}
HUGE = 1e4
_BAD = [mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADQVEL, mujoco.mjtWarning.mjWARN_BADQPOS]


@dataclasses.dataclass(frozen=True)
class Setting:
    label: str
    options: dict
    perturb: float = 0.0


SETTINGS = [
    Setting("euler 2 ms (ref)", dict(integrator="euler", timestep=0.002)),
    Setting("noise floor: ref, v0 + 1e-4", dict(integrator="euler", timestep=0.002), perturb=1e-4),
    Setting("euler 1 ms (finer)", dict(integrator="euler", timestep=0.001)),
    Setting("implicitfast 1 ms (finer)", dict(integrator="implicitfast", timestep=0.001)),
    Setting("euler 2 ms it 4 / ls 8", dict(integrator="euler", timestep=0.002, iterations=4, ls_iterations=8)),
    Setting("euler 2 ms it 2 / ls 4", dict(integrator="euler", timestep=0.002, iterations=2, ls_iterations=4)),
    Setting("euler 2.5 ms", dict(integrator="euler", timestep=0.0025)),
    Setting("euler 4 ms", dict(integrator="euler", timestep=0.004)),
    Setting("euler 5 ms", dict(integrator="euler", timestep=0.005)),
    Setting("implicitfast 2 ms", dict(integrator="implicitfast", timestep=0.002)),
    Setting("implicitfast 4 ms", dict(integrator="implicitfast", timestep=0.004)),
    Setting("implicitfast 5 ms", dict(integrator="implicitfast", timestep=0.005)),
    Setting("implicitfast 5 ms it 4 / ls 8",
            dict(integrator="implicitfast", timestep=0.005, iterations=4, ls_iterations=8)),
    Setting("implicitfast 10 ms", dict(integrator="implicitfast", timestep=0.010)),
    Setting("euler 10 ms", dict(integrator="euler", timestep=0.010)),
]


# ---- model and reference ---------------------------------------------------------------------------

def bench_model(name: str, options: dict) -> tuple[mujoco.MjModel, np.ndarray, np.ndarray]:
    """`name` with one netforce contact sensor per foot body (exactly as the cpu backend adds them)
    and the simulation `options` (through `registry.apply_options`).

    Returns (model, sensor_adr (k,), side (2, k))."""
    from msdiversity.models import load_model, registry
    from msdiversity.physics import cpu

    spec = registry.load_spec(name)
    base = load_model(name).model
    feet = cpu._foot_bodies(base)  # noqa: SLF001
    names = []
    for k, body in feet:
        n = f"msd_grf_{'rl'[k]}_{body}"
        spec.add_sensor(name=n, type=mujoco.mjtSensor.mjSENS_CONTACT, objtype=mujoco.mjtObj.mjOBJ_BODY,
                        objname=body, reftype=mujoco.mjtObj.mjOBJ_BODY, refname="world",
                        intprm=[cpu._CONTACT_DATA, cpu._NETFORCE, 1])  # noqa: SLF001
        names.append(n)
    model = registry._quiet_compile(spec.compile)  # noqa: SLF001
    registry.apply_options(model, options)
    assert model.nq == base.nq and np.allclose(model.body_mass, base.body_mass)
    adr = np.array([model.sensor_adr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SENSOR, n)] for n in names])
    side = np.zeros((2, len(feet)))
    for j, (k, _) in enumerate(feet):
        side[k, j] = 1.0
    return model, adr, side


def _root_coords(model: mujoco.MjModel) -> tuple[int, int]:
    """qpos addresses of the root's forward (world x) and vertical (world z) coordinates."""
    free = np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_FREE)
    if len(free):
        a = model.jnt_qposadr[free[0]]
        return a, a + 2
    adr = lambda n: model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n)]  # noqa: E731
    return adr("pelvis_tx"), adr("pelvis_ty")


def _foot_geom_ids(model):
    from msdiversity.models.registry import foot_geoms

    return [[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, g) for g in foot_geoms(model)[s]] for s in "rl"]


def ground_top(model: mujoco.MjModel) -> float:
    """Height of the world's collidable surface at the origin (myolegs: 0.015 m)."""
    d = mujoco.MjData(model)
    d.qpos[:] = model.qpos0
    x, z = _root_coords(model)
    d.qpos[x] = 1e3  # move the model out of the way of the ray
    mujoco.mj_kinematics(model, d)
    gid = np.zeros(1, np.int32)
    dist = mujoco.mj_ray(model, d, np.array([0.0, 0.0, 5.0]), np.array([0.0, 0.0, -1.0]), None, 1, -1, gid)
    return 5.0 - dist


@dataclasses.dataclass
class Reference:
    name: str
    t: np.ndarray  # (T,) s from 0
    qpos: np.ndarray  # (T, nq) ground-aligned (depth 0), belt added, centred at x = 0
    vert: int  # qpos address of the vertical root coordinate
    hinge_dofs: np.ndarray  # dof addresses of the tracked hinge joints
    belt: float  # m/s added
    grf_measured: np.ndarray | None  # (T, 2, 3) N
    servo: bool = True  # False: no servo at all (the 'drop' check)


DROP_S, DROP_M = 0.4, 0.02  # the servo-free check: 0.4 s from the keyframe raised by 2 cm


def _lowest_point(m: mujoco.MjModel, d: mujoco.MjData, g: int) -> np.ndarray:
    """World position of the lowest point of geom g (sphere, capsule, ellipsoid; else its centre)."""
    c, R, s = d.geom_xpos[g], d.geom_xmat[g].reshape(3, 3), m.geom_size[g]
    ez = np.array([0.0, 0.0, 1.0])
    t = m.geom_type[g]
    if t == mujoco.mjtGeom.mjGEOM_SPHERE:
        return c - s[0] * ez
    if t == mujoco.mjtGeom.mjGEOM_CAPSULE:
        a = R[:, 2] * s[1]
        return (c - a if (c - a)[2] < (c + a)[2] else c + a) - s[0] * ez
    if t == mujoco.mjtGeom.mjGEOM_ELLIPSOID:
        u = R.T @ ez
        return c + R @ (-(s ** 2) * u / np.sqrt(np.sum((s * u) ** 2)))
    return c.copy()


def belt_speed(m: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray, tol: float = 0.005) -> float:
    """Treadmill belt speed (m/s) of a mapped treadmill trial: the median backward velocity of the
    material point at each foot's lowest point, over the frames where that point is within `tol` of
    the foot's lowest height in the trial (stance; a point in contact moves with the belt)."""
    d = mujoco.MjData(m)
    feet = _foot_geom_ids(m)
    jac = np.zeros((3, m.nv))
    z = np.zeros((len(qpos), 2))
    vx = np.zeros((len(qpos), 2))
    for i in range(len(qpos)):
        d.qpos[:] = qpos[i]
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        for s in range(2):
            p, g = min(((_lowest_point(m, d, g), g) for g in feet[s]), key=lambda x: x[0][2])
            mujoco.mj_jac(m, d, jac, None, p, m.geom_bodyid[g])
            z[i, s], vx[i, s] = p[2], (jac @ qvel[i])[0]
    return float(np.median(np.concatenate([-vx[z[:, s] <= z[:, s].min() + tol, s] for s in range(2)])))


def make_reference(model_name: str, motion: str) -> Reference:
    from msdiversity.models import load_model
    from msdiversity.motions import load_model_reference
    from msdiversity.motions.mapping import _lowest_foot_z

    lm = load_model(model_name)
    m = lm.model
    xa, za = _root_coords(m)
    if motion == "drop":
        key = (m.key_qpos[0] if m.nkey else m.qpos0).copy()
        key[za] += DROP_M
        hinge = np.array([m.jnt_dofadr[j] for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE
                          and not np.any(m.eq_obj1id[m.eq_type == mujoco.mjtEq.mjEQ_JOINT] == j)])
        return Reference(name=f"{model_name}/drop", t=np.array([0.0, DROP_S]), qpos=np.stack([key, key]), vert=za,
                         hinge_dofs=hinge, belt=0.0, grf_measured=None, servo=False)
    ik, grf = MOTIONS[motion]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # out-of-range values are reported by `msdiversity motion inspect`
        ref, rep = load_model_reference(ik, lm, grf=grf)
    qpos = ref.qpos.copy()
    t = np.arange(len(qpos)) * ref.dt
    belt = belt_speed(m, qpos, ref.qvel)
    qpos[:, xa] += belt * t
    qpos[:, xa] -= qpos[:, xa].mean()
    feet = _foot_geom_ids(m)
    qpos[:, za] += ground_top(m) - _lowest_foot_z(m, qpos, feet[0] + feet[1]).min()
    jids = [j for j, tracked in zip(np.flatnonzero(np.isin(m.jnt_type, [2, 3])), ref.joint_mask) if tracked]
    hinge = np.array([m.jnt_dofadr[j] for j in jids if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE])
    print(f"  {model_name} / {motion}: {rep.summary_line()}", file=sys.stderr)
    return Reference(name=f"{model_name}/{motion}", t=t, qpos=qpos, vert=za, hinge_dofs=hinge, belt=belt,
                     grf_measured=ref.grf)


def _quat_slices(model):
    free = np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_FREE)
    return [slice(model.jnt_qposadr[j] + 3, model.jnt_qposadr[j] + 7) for j in free]


def sample_reference(model: mujoco.MjModel, ref: Reference, dt: float, depth: float):
    """(qpos (N, nq), qvel (N, nv)) of the reference at t = k dt, k = 0..N-1, lowered by `depth`."""
    q = ref.qpos.copy()
    q[:, ref.vert] -= depth
    spline = CubicSpline(ref.t, q, axis=0)
    n = int(np.floor(ref.t[-1] / dt + 1e-9)) + 1
    tk = np.arange(n) * dt
    h = 1e-4
    qs = [spline(np.clip(tk + o, ref.t[0], ref.t[-1])) for o in (0.0, -h, h)]
    for arr in qs:
        for sl in _quat_slices(model):
            arr[:, sl] /= np.linalg.norm(arr[:, sl], axis=1, keepdims=True)
    qpos, qm, qp = qs
    qvel = np.zeros((n, model.nv))
    for k in range(n):
        span = (np.clip(tk[k] + h, ref.t[0], ref.t[-1]) - np.clip(tk[k] - h, ref.t[0], ref.t[-1]))
        mujoco.mj_differentiatePos(model, qvel[k], span, qm[k], qp[k])
    return qpos, qvel


# ---- replay ----------------------------------------------------------------------------------------

@dataclasses.dataclass
class Replay:
    qpos: np.ndarray  # (windows + 1, nq) at the window boundaries
    grf: np.ndarray  # (windows, 2, 3) N, force on the feet, mean over each window's substeps
    force: np.ndarray  # (windows, nu) N, muscle force, mean over each window's substeps
    diverged: float | None  # s at which it diverged
    physics_wall: float  # s spent in mj_step
    sim_time: float  # s simulated


def vertical_dof(model: mujoco.MjModel) -> int:
    """DOF address of the root's vertical translation (free joint's z, or the sagittal pelvis_ty)."""
    free = np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_FREE)
    if len(free):
        return int(model.jnt_dofadr[free[0]] + 2)
    return int(model.jnt_dofadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "pelvis_ty")])


def servo_gains(model: mujoco.MjModel) -> tuple[np.ndarray, np.ndarray]:
    """(Kp, Kd) per DOF, 1/s^2 and 1/s: critically damped servos at F_JOINT Hz on every DOF but the
    root's vertical translation, which gets F_ROOT Hz (so that the feet carry the body weight)."""
    w = np.full(model.nv, 2 * np.pi * F_JOINT)
    w[vertical_dof(model)] = 2 * np.pi * F_ROOT
    return w ** 2, 2 * ZETA * w


def replay(model, adr, side, ref: Reference, depth: float, perturb: float = 0.0) -> Replay:
    dt = model.opt.timestep
    kp, kd = servo_gains(model) if ref.servo else (np.zeros(model.nv), np.zeros(model.nv))
    q_ref, v_ref = sample_reference(model, ref, dt, depth)
    every = int(round(OUT_DT / dt))
    if abs(every * dt - OUT_DT) > 1e-9:
        raise ValueError(f"timestep {dt} does not divide the {OUT_DT} s comparison grid")
    n = (len(q_ref) - 1) // every * every  # steps: whole windows only
    d = mujoco.MjData(model)
    d.qpos[:] = q_ref[0]
    mujoco.mj_forward(model, d)
    full = np.zeros((model.nv, model.nv))
    mujoco.mj_fullM(model, d, full)
    c_damp = kd * np.diag(full)  # N s/m or N m s/rad per DOF
    k_stiff = kp * np.diag(full)  # N/m or N m/rad per DOF
    model = copy.copy(model)
    model.dof_damping[:] = model.dof_damping + c_damp  # implicit in Euler and implicitfast
    d = mujoco.MjData(model)
    d.qpos[:] = q_ref[0]
    d.qvel[:] = v_ref[0] + perturb
    d.act[:] = EXCITATION
    d.ctrl[:] = EXCITATION
    mujoco.mj_forward(model, d)
    cols = (adr[:, None] + np.arange(6)[None]).reshape(-1)
    e = np.zeros(model.nv)
    out_q, out_g, out_f = [d.qpos.copy()], [], []
    acc_g, acc_f = np.zeros((2, 3)), np.zeros(model.nu)
    wall = 0.0
    diverged = None
    for k in range(n):
        mujoco.mj_differentiatePos(model, e, 1.0, d.qpos, q_ref[k])
        d.qfrc_applied[:] = k_stiff * e + c_damp * v_ref[k]
        t0 = time.perf_counter()
        mujoco.mj_step(model, d)
        wall += time.perf_counter() - t0
        bad = any(d.warning[w].number for w in _BAD)
        if bad or not np.isfinite(d.qpos).all() or np.abs(d.qvel).max() > HUGE or np.abs(d.qpos).max() > HUGE:
            diverged = (k + 1) * dt
            break
        s = d.sensordata[cols].reshape(-1, 6)  # contact sensors of this step (its start state)
        acc_g += side @ -s[:, :3]
        acc_f += d.actuator_force
        if (k + 1) % every == 0:
            out_q.append(d.qpos.copy())
            out_g.append(acc_g / every)
            out_f.append(acc_f / every)
            acc_g, acc_f = np.zeros((2, 3)), np.zeros(model.nu)
    return Replay(qpos=np.array(out_q), grf=np.array(out_g).reshape(-1, 2, 3),
                  force=np.array(out_f).reshape(-1, model.nu),
                  diverged=diverged, physics_wall=wall, sim_time=len(out_g) * OUT_DT if diverged is None else diverged)


def calibrate_depth(model, adr, side, ref: Reference, bw: float) -> tuple[float, float]:
    """Depth (m) below the ground of the lowest reference foot point that makes the mean
    vertical GRF equal body weight at the reference setting (secant, <= 7 replays; 0 without a servo).
    Returns (depth, mean vGRF / BW)."""
    def ratio(depth):
        r = replay(model, adr, side, ref, depth)
        return r.grf[:, :, 2].sum(1).mean() / bw

    if not ref.servo:
        return 0.0, ratio(0.0)
    d0, d1 = 0.0, 0.005
    r0, r1 = ratio(d0), ratio(d1)
    for _ in range(5):
        if abs(r1 - 1.0) < 0.01 or abs(r1 - r0) < 1e-9:
            break
        d0, d1, r0 = d1, float(np.clip(d1 + (1.0 - r1) * (d1 - d0) / (r1 - r0), -0.05, 0.08)), r1
        r1 = ratio(d1)
    return d1, r1


def _rmse(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2)))


def errors(model, a: Replay, b: Replay, ref: Reference, bw: float) -> dict:
    """RMSE of replay b against replay a over their common windows."""
    n = min(len(a.grf), len(b.grf))
    jq = [model.jnt_qposadr[j] for j in range(model.njnt)
          if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE and model.jnt_dofadr[j] in set(ref.hinge_dofs)]
    joint = np.rad2deg(_rmse(a.qpos[1:n + 1, jq], b.qpos[1:n + 1, jq])) if n else np.nan
    grf = max(_rmse(a.grf[:n, s, 2], b.grf[:n, s, 2]) for s in range(2)) / bw * 100 if n else np.nan
    mus = 100 * _rmse(a.force[:n], b.force[:n]) / float(np.sqrt(np.mean(a.force ** 2))) if n else np.nan
    return dict(joint_deg=joint, grf_pct_bw=grf, muscle_pct=mus)


def passes(c: dict, diverged) -> bool:
    return (diverged is None and c["joint_deg"] < TOL_JOINT_DEG and c["grf_pct_bw"] < TOL_GRF_PCT_BW
            and c["muscle_pct"] < TOL_MUSCLE_PCT)


def accurate(vf: dict, vf_ref: dict, diverged) -> bool:
    """No more than the tolerances of error beyond the reference setting's own, against the fine solution."""
    return (diverged is None and vf["joint_deg"] <= vf_ref["joint_deg"] + TOL_JOINT_DEG
            and vf["grf_pct_bw"] <= vf_ref["grf_pct_bw"] + TOL_GRF_PCT_BW
            and vf["muscle_pct"] <= vf_ref["muscle_pct"] + TOL_MUSCLE_PCT)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="myolegs,myolegs_sagittal")
    p.add_argument("--motions", default="walk,run,drop")
    p.add_argument("--repeats", type=int, default=5, help="timing passes per setting (the fastest is kept)")
    p.add_argument("--settings", default="", help="comma-separated substrings of setting labels (default all; "
                   "the reference is always run)")
    p.add_argument("--servo-hz", default="20", help="joint servo frequencies (Hz) to run the whole study with")
    p.add_argument("--markdown", default=None, help="also write the tables as markdown to this file")
    args = p.parse_args(argv)
    from msdiversity.models import load_model

    settings = [s for s in SETTINGS if s is SETTINGS[0] or not args.settings
                or any(k.strip() in s.label for k in args.settings.split(","))]
    motions = args.motions.split(",")
    cases = [(float(f), m, mo) for f in args.servo_hz.split(",") for m in args.models.split(",")
             for mo in motions if mo != "drop"]
    cases += [(0.0, m, "drop") for m in args.models.split(",") if "drop" in motions]
    md = []
    summary: dict[str, dict[str, list]] = {}
    global F_JOINT
    for F_JOINT, mname, motion in cases:
        lm = load_model(mname)
        bw = float(lm.model.body_subtreemass[0] * np.linalg.norm(lm.model.opt.gravity))
        ref = make_reference(mname, motion)
        model0, adr0, side0 = bench_model(mname, SETTINGS[0].options)
        depth, ratio = calibrate_depth(model0, adr0, side0, ref, bw)
        base = replay(model0, adr0, side0, ref, depth)
        mf, af, sf = bench_model(mname, FINE)
        fine = replay(mf, af, sf, ref, depth)
        mus_rms = np.sqrt(np.mean(base.force ** 2))
        if ref.servo:
            q_ref, _ = sample_reference(model0, ref, OUT_DT, depth)
            jq = [model0.jnt_qposadr[j] for j in range(model0.njnt) if model0.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE
                  and model0.jnt_dofadr[j] in set(ref.hinge_dofs)]
            track = np.rad2deg(_rmse(base.qpos[:, jq], q_ref[:len(base.qpos), jq]))
            head = (f"{mname} / {motion}, joint servo {F_JOINT:g} Hz: {len(base.grf) * OUT_DT:.2f} s, belt "
                    f"{ref.belt:.2f} m/s added, lowest reference foot point {depth * 1000:.1f} mm into the ground -> "
                    f"mean vGRF {ratio:.2f} BW (BW {bw:.0f} N); the reference setting follows the motion to "
                    f"{track:.1f} deg RMSE; muscle force RMS {mus_rms:.0f} N")
        else:
            ty = model0.jnt_qposadr[0] + 2 if model0.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE else ref.vert
            fz = base.grf[:, :, 2].sum(1) / bw
            head = (f"{mname} / drop, no servo: {len(base.grf) * OUT_DT:.2f} s from the 'standing' keyframe raised by "
                    f"{100 * DROP_M:g} cm, excitation {EXCITATION:g}; landing peak vGRF {fz.max():.2f} BW "
                    "(20 ms mean), "
                    f"pelvis {100 * (base.qpos[-1, ty] - base.qpos[0, ty]):+.1f} cm over the drop; muscle force RMS "
                    f"{mus_rms:.0f} N")
        if ref.grf_measured is not None:  # sanity: the replay's vGRF against the force plates
            tt = (np.arange(len(base.grf)) + 0.5) * OUT_DT
            meas = np.stack([np.interp(tt, ref.t, ref.grf_measured[:, s, 2]) for s in range(2)], 1)
            r = np.corrcoef(meas.ravel(), base.grf[:, :, 2].ravel())[0, 1]
            head += (f"; replay vs force plates: vGRF r = {r:.2f}, RMSE "
                     f"{_rmse(meas, base.grf[:, :, 2]) / bw * 100:.0f} % BW")
        print("\n" + head, flush=True)
        rows, built, walls = [], [], []
        for st in settings:
            model, adr, side = bench_model(mname, st.options)
            run = replay(model, adr, side, ref, depth, perturb=st.perturb)
            vr, vf = errors(model, base, run, ref, bw), errors(model, fine, run, ref, bw)
            rows.append([st, vr, vf, run.diverged, run.sim_time])
            built.append((model, adr, side))
            walls.append([run.physics_wall])
        # timing: round robin over the settings, so that load from other processes hits all alike
        for _ in range(max(args.repeats - 1, 0)):
            for i, (st, (model, adr, side)) in enumerate(zip(settings, built)):
                walls[i].append(replay(model, adr, side, ref, depth, st.perturb).physics_wall)
        for row, w in zip(rows, walls):
            row[4] = row[4] / max(min(w), 1e-12)  # simulated s per wall s of mj_step, best pass
        vf_ref = rows[0][2]
        lines = ["| setting | joint RMSE deg vs ref (vs fine) | vGRF RMSE % BW vs ref (vs fine) | "
                 "muscle-force RMSE % vs ref (vs fine) | diverged | sim s / wall s | speed-up | "
                 "passes vs ref / accuracy |",
                 "|---|---|---|---|---|---|---|---|"]
        for st, vr, vf, dv, speed in rows:
            ok, acc = passes(vr, dv), accurate(vf, vf_ref, dv)
            up = speed / rows[0][4]
            if not st.perturb:
                e = summary.setdefault(st.label, {"ok": [], "acc": [], "up": []})
                e["ok"].append(ok)
                e["acc"].append(acc)
                e["up"].append(up)
            dvs = "no" if dv is None else f"at {dv:.2f} s"
            lines.append(f"| {st.label} | {vr['joint_deg']:.2f} ({vf['joint_deg']:.2f}) | {vr['grf_pct_bw']:.1f} "
                         f"({vf['grf_pct_bw']:.1f}) | {vr['muscle_pct']:.1f} ({vf['muscle_pct']:.1f}) | {dvs} | "
                         f"{speed:.1f} | {up:.2f} | {'yes' if ok else 'no'} / {'yes' if acc else 'no'} |")
        print("\n".join(lines), flush=True)
        md += ["", f"{head}.", "", *lines]
    tol = (f"Criterion 'vs ref': RMSE against the reference setting below joint {TOL_JOINT_DEG:g} deg, per-foot vGRF "
           f"{TOL_GRF_PCT_BW:g} % BW, muscle force {TOL_MUSCLE_PCT:g} % of the reference's RMS muscle force, no "
           "divergence. Criterion 'accuracy': against the fine solution (Euler 0.5 ms) no more than those tolerances "
           "above the reference setting's own error.")
    out = ["| setting | cases passing vs ref | cases passing accuracy | median speed-up | min speed-up |",
           "|---|---|---|---|---|"]
    for label, e in summary.items():
        n = len(e["ok"])
        out.append(f"| {label} | {sum(e['ok'])}/{n} | {sum(e['acc'])}/{n} | {np.median(e['up']):.2f} | "
                   f"{min(e['up']):.2f} |")
    strict = [k for k, e in summary.items() if all(e["ok"])]
    accur = [k for k, e in summary.items() if all(e["acc"])]
    fastest = lambda ks: max(ks, key=lambda k: np.median(summary[k]["up"])) if ks else None  # noqa: E731
    verdict = (f"Fastest setting passing in every case: vs ref -> {fastest(strict)}; accuracy -> {fastest(accur)}.")
    print("\n" + tol + "\n\n" + "\n".join(out) + "\n\n" + verdict)
    if args.markdown:
        Path(args.markdown).write_text("\n".join([*md, "", tol, "", *out, "", verdict]).lstrip() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
