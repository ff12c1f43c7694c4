"""Synthetic ground-truth motions: forward-simulate a model (MuJoCo C) under known, seeded, smooth
muscle excitations and record the joint trajectory, the true excitations and activations, and the
GRF for models with feet.

Excitation patterns (all seeded through one `np.random.Generator`):
- each pattern is a baseline (0.02-0.06) plus a sum of Gaussian bumps (widths 0.08-0.35 s, random
  centres and heights), clipped to [0, `max_excitation`] and to the actuator control range;
- with `n_components=k` the excitations are built from k planted synergies, E = W H
  (W: (muscles, k) non-negative weights with unit-max columns, H: (k, time) bump patterns), and W,
  H are stored in `meta` as the ground truth for synergy analysis; otherwise each muscle gets its
  own pattern.
Excitations are held constant over each control step (zero-order hold, like a policy's action).

Plausibility: gravity acts on the limbs, so a random pattern can leave a joint resting on a
limit. Each seed draws patterns until the independent joints (not equality-driven) are off their
limits (further than min(2 deg or 2 mm, 5 % of the range)) for at least `min_free_fraction` of
all (frame, joint) pairs, up to
`max_attempts` draws (all from the same generator, so the result is still a pure function of
the seed); the number of draws is in `meta['attempts']` and a warning is given if none passed.

Free-root models (myolegs, myofullbody): an unactuated free body just falls, which is no useful
reference, and a standing body without a balance controller falls within a fraction of a second.
Their synthesis therefore welds the root body to the world at the base posture (keyframe 0, e.g.
myolegs 'standing') raised by `root_lift` (default 5 cm): the legs swing under a fixed pelvis with
the feet just clear of the ground, and the recorded GRF is whatever contact occurs (mostly zero).
With `root_lift=0` the feet start on the ground and push on it (large GRF, little leg motion).
`meta['root'] = 'welded'` says so. The recorded coordinates are the model's hinge/slide joints;
mapped back onto the free-root model the root stays at its keyframe pose, so the emulator must
weld the root too (or ignore root tracking) to reproduce such a motion.
"""

from __future__ import annotations

import dataclasses
import warnings

import mujoco
import numpy as np

from msdiversity.errors import InputError
from msdiversity.models.registry import LoadedModel, foot_geoms, load_spec, muscle_ids, scalar_joint_ids
from msdiversity.motions.opensim import MotionWarning
from msdiversity.motions.reference import FEET, GRF, ReferenceMotion


@dataclasses.dataclass(frozen=True)
class ExcitationPattern:
    """Seeded smooth excitation patterns on a time grid.

    Attributes:
        excitation: (T, M) in [0, 1].
        weights: (M, k) planted synergy weights, or None.
        patterns: (k, T) planted synergy activation patterns, or None.
    """

    excitation: np.ndarray
    weights: np.ndarray | None = None
    patterns: np.ndarray | None = None


def smooth_bumps(rng: np.random.Generator, t: np.ndarray, n: int, rate_per_s: float = 2.0,
                 width_s: tuple[float, float] = (0.08, 0.35), height: tuple[float, float] = (0.2, 1.0),
                 baseline: tuple[float, float] = (0.02, 0.06)) -> np.ndarray:
    """(n, T) non-negative smooth signals: baseline + sum of Gaussian bumps, max 1.

    Args:
        rng: numpy generator (all randomness).
        t: (T,) s.
        n: number of signals.
        rate_per_s: expected bumps per second per signal (at least one bump each).
    """
    dur = float(t[-1] - t[0]) if len(t) > 1 else 1.0
    out = np.empty((n, len(t)))
    for i in range(n):
        k = max(1, rng.poisson(rate_per_s * dur))
        c = rng.uniform(t[0] - 0.1 * dur, t[-1] + 0.1 * dur, k)
        w = rng.uniform(*width_s, k)
        h = rng.uniform(*height, k)
        s = (h[:, None] * np.exp(-0.5 * ((t[None] - c[:, None]) / w[:, None]) ** 2)).sum(0)
        out[i] = rng.uniform(*baseline) + s
    return np.clip(out / max(out.max(), 1e-9), 0.0, 1.0)


def make_excitation(rng: np.random.Generator, t: np.ndarray, n_muscles: int, n_components: int | None = None,
                    max_excitation: float = 0.6) -> ExcitationPattern:
    """Draw excitations (T, M) in [0, max_excitation], optionally from k planted synergies."""
    if n_components is None:
        e = smooth_bumps(rng, t, n_muscles) * max_excitation
        # Scale each muscle independently so some are weak and some strong.
        e *= rng.uniform(0.3, 1.0, n_muscles)[:, None]
        return ExcitationPattern(excitation=e.T.copy())
    if not 1 <= n_components <= n_muscles:
        raise InputError(f"n_components must be in 1..{n_muscles}, got {n_components}", field="n_components")
    w = rng.uniform(0.0, 1.0, (n_muscles, n_components)) ** 2  # sparse-ish weights
    w /= w.max(0, keepdims=True)
    h = smooth_bumps(rng, t, n_components)
    e = w @ h
    e = e / max(e.max(), 1e-9) * max_excitation
    scale = max_excitation / max((w @ h).max(), 1e-9)
    return ExcitationPattern(excitation=e.T.copy(), weights=w, patterns=h * scale)


def _weld_root(loaded: LoadedModel, base: np.ndarray) -> mujoco.MjModel:
    """Compile a copy of the model whose free root body is fixed at the pose in `base` qpos."""
    model = loaded.model
    root = int(np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_FREE)[0])
    a = model.jnt_qposadr[root]
    spec = load_spec(loaded.source, strip_meshes=bool(loaded.stripped_meshes) or None)
    jname = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, root)
    joint = next(j for j in spec.joints if j.name == jname)
    body = joint.parent
    spec.delete(joint)
    body.pos = base[a:a + 3].copy()
    body.quat = base[a + 3:a + 7].copy()
    for key in list(spec.keys):
        spec.delete(key)
    from msdiversity.models.registry import _quiet_compile

    return _quiet_compile(spec.compile)


def _foot_grf(model: mujoco.MjModel, data: mujoco.MjData, feet: dict[str, set[int]]):
    """Per-foot contact force on the foot (N, world), COP (m, NaN if unloaded) and moment about the COP."""
    force = np.zeros((2, 3))
    cop = np.full((2, 3), np.nan)
    moment = np.zeros((2, 3))
    f6 = np.zeros(6)
    per = {0: [], 1: []}
    for i in range(data.ncon):
        c = data.contact[i]
        for fi, side in enumerate(FEET):
            g = feet[side]
            if c.geom1 in g or c.geom2 in g:
                mujoco.mj_contactForce(model, data, i, f6)
                fw = c.frame.reshape(3, 3).T @ f6[:3]  # force on geom2, world frame
                if c.geom1 in g:  # foot is geom1: it receives the opposite force
                    fw = -fw
                per[fi].append((c.pos.copy(), fw))
    for fi in (0, 1):
        if not per[fi]:
            continue
        p = np.array([x for x, _ in per[fi]])
        f = np.array([y for _, y in per[fi]])
        force[fi] = f.sum(0)
        fz = np.clip(f[:, 2], 0.0, None)
        if fz.sum() > 1e-6:
            cop[fi] = (fz[:, None] * p).sum(0) / fz.sum()
            moment[fi] = np.cross(p - cop[fi], f).sum(0)
    return force, cop, moment


def _simulate(model: mujoco.MjModel, base: np.ndarray, exc: np.ndarray, n_sub: int, act_ids: np.ndarray,
              feet: dict[str, set[int]] | None):
    """Zero-order-hold excitations (T, M) -> qpos (T, nq), activation (T, M), GRF arrays or None."""
    d = mujoco.MjData(model)
    d.qpos[:] = base
    T = len(exc)
    ctrl_lo, ctrl_hi = model.actuator_ctrlrange[act_ids].T
    d.act[model.actuator_actadr[act_ids]] = np.clip(exc[0], ctrl_lo, ctrl_hi)  # start at steady activation
    mujoco.mj_forward(model, d)
    qpos = np.empty((T, model.nq))
    act = np.empty((T, len(act_ids)))
    grf = (np.zeros((T, 2, 3)), np.full((T, 2, 3), np.nan), np.zeros((T, 2, 3))) if feet else None
    for k in range(T):
        qpos[k] = d.qpos
        act[k] = d.act[model.actuator_actadr[act_ids]]
        if feet:
            grf[0][k], grf[1][k], grf[2][k] = _foot_grf(model, d, feet)
        d.ctrl[act_ids] = np.clip(exc[k], ctrl_lo, ctrl_hi)
        if k < T - 1:
            mujoco.mj_step(model, d, nstep=n_sub)
        if not np.all(np.isfinite(d.qpos)):
            raise InputError(f"simulation diverged at t={d.time:.3f} s", field="excitation")
    return qpos, act, grf


def synthesize(seed: int | np.random.Generator, loaded_model: LoadedModel, duration: float = 2.0,
               control_hz: float = 50.0, n_components: int | None = None, max_excitation: float = 0.6,
               min_free_fraction: float = 0.8, max_attempts: int = 10,
               root_lift: float = 0.05) -> ReferenceMotion:
    """Forward-simulate `loaded_model` under seeded smooth excitations (see the module docstring).

    Args:
        seed: int seed or numpy Generator (first argument, as for every random function here).
        loaded_model: from `load_model`.
        duration: s.
        control_hz: control (and recording) rate; the physics runs at the model timestep with the
            excitation held over each control step.
        n_components: plant this many synergies (None: independent patterns per muscle).
        max_excitation: peak excitation.
        min_free_fraction: fraction of (frame, joint) pairs that must be off the joint limits.
        max_attempts: draws before giving up on `min_free_fraction` (the draw with the most
            frames off the limits is kept).
        root_lift: m the welded root of a free-root model is raised above its keyframe pose.

    Returns:
        ReferenceMotion on `duration * control_hz + 1` frames with coords = the model's hinge/slide
        joints, true excitation/activation (T, muscles), GRF when the model has foot geoms, and meta
        (seed, model, attempts, root handling, synergy ground truth).
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    model = loaded_model.model
    if not duration > 0 or not control_hz > 0:
        raise InputError("duration and control_hz must be > 0", field="duration")
    n_sub = max(1, int(round(1.0 / (control_hz * model.opt.timestep))))
    dt = n_sub * model.opt.timestep
    T = int(round(duration / dt)) + 1
    t = np.arange(T) * dt
    mids = muscle_ids(model)
    if len(mids) == 0:
        raise InputError(f"model {loaded_model.name} has no muscle actuators to excite", field="model")
    base = model.key_qpos[0].copy() if model.nkey else model.qpos0.copy()
    free = np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_FREE)
    sim_model, root_mode = model, "none"
    if len(free):
        lifted = base.copy()
        lifted[model.jnt_qposadr[free[0]] + 2] += root_lift
        sim_model, root_mode = _weld_root(loaded_model, lifted), "welded"
    sim_base = base if root_mode == "none" else _strip_root_qpos(model, base, int(free[0]))
    jids = scalar_joint_ids(sim_model)
    jnames = tuple(mujoco.mj_id2name(sim_model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in jids)
    # Joints driven by joint-equality constraints (myo-sim knee translations/rotations) follow
    # their driver and have tiny ranges: judge limits on independent joints only.
    driven = {int(sim_model.eq_obj1id[e]) for e in range(sim_model.neq)
              if sim_model.eq_type[e] == mujoco.mjtEq.mjEQ_JOINT and sim_model.eq_active0[e]}
    lim = sim_model.jnt_limited[jids].astype(bool) & ~np.isin(jids, list(driven))
    lo, hi = sim_model.jnt_range[jids].T
    margin = np.minimum(np.where(sim_model.jnt_type[jids] == mujoco.mjtJoint.mjJNT_HINGE, np.deg2rad(2.0), 0.002),
                        0.05 * (hi - lo))
    fg = foot_geoms(sim_model)
    feet = {s: {mujoco.mj_name2id(sim_model, mujoco.mjtObj.mjOBJ_GEOM, g) for g in fg[s]} for s in FEET}
    feet = feet if any(feet.values()) else None

    sim_mids = muscle_ids(sim_model)
    best = None
    for attempt in range(1, max_attempts + 1):
        pat = make_excitation(rng, t, len(mids), n_components, max_excitation)
        qpos, act, grf = _simulate(sim_model, sim_base, pat.excitation, n_sub, sim_mids, feet)
        q = qpos[:, sim_model.jnt_qposadr[jids]]  # (T, joints)
        at_limit = lim & ((q < lo + margin) | (q > hi - margin))  # (T, joints)
        free_frac = float(np.mean(~at_limit[:, lim])) if lim.any() else 1.0  # mean over joints and frames
        if best is None or free_frac > best[0]:
            best = (free_frac, attempt, pat, q, act, grf)
        if free_frac >= min_free_fraction:
            break
    free_frac, attempt, pat, q, act, grf = best
    if free_frac < min_free_fraction:
        warnings.warn(f"synthetic motion for {loaded_model.name} (seed {seed}): independent joints off their limits in only "
                      f"{free_frac:.0%} of (frame, joint) pairs after {max_attempts} draws", MotionWarning, stacklevel=2)
    names = tuple(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, i) for i in mids)
    is_rot = sim_model.jnt_type[jids] == mujoco.mjtJoint.mjJNT_HINGE
    meta = {
        "source": "synthetic", "format": "synthetic", "model": loaded_model.name,
        "model_source": loaded_model.source, "seed": seed if isinstance(seed, int) else None,
        "duration": float(t[-1]), "control_hz": float(1.0 / dt), "n_components": n_components,
        "max_excitation": max_excitation, "attempts": attempt, "free_fraction": free_frac, "root": root_mode,
        "root_lift": float(root_lift) if root_mode == "welded" else 0.0,
        "joint_range_visited": {n: [float(q[:, i].min()), float(q[:, i].max())] for i, n in enumerate(jnames)},
    }
    if pat.weights is not None:
        meta["synergy_weights"] = pat.weights.tolist()  # (muscles, k)
        meta["synergy_patterns"] = pat.patterns.tolist()  # (k, T)
    g = GRF(force=grf[0], cop=grf[1], free_moment=grf[2], notes=("simulated foot contact forces",)) if grf else None
    return ReferenceMotion(time=t, coord_names=jnames, coords=q, coord_is_rotation=is_rot, grf=g,
                           excitation=pat.excitation, activation=act, muscle_names=names, meta=meta)


def _strip_root_qpos(model: mujoco.MjModel, qpos: np.ndarray, root: int) -> np.ndarray:
    a = model.jnt_qposadr[root]
    return np.concatenate([qpos[:a], qpos[a + 7:]])
