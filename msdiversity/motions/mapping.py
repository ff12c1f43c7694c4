"""Map a `ReferenceMotion` onto a MuJoCo model: full qpos/qvel per frame plus a report of what mapped.

Rules (all stated in the `MappingReport`):

- Coordinates map to the model's hinge/slide joints by exact name, then case-insensitively; a user
  `mapping` {file name: model joint} overrides (an empty value drops a coordinate).
- Pelvis coordinates go onto the model's free root when it has one. OpenSim's `ground_pelvis`
  joint is a CustomJoint whose rotations are applied body-fixed in the order rotation1 = Z
  (`pelvis_tilt`), rotation2 = X (`pelvis_list`), rotation3 = Y (`pelvis_rotation`), so
  R_pelvis = Rz(tilt) Rx(list) Ry(rotation) in OpenSim's Y-up ground; translations are
  `pelvis_tx/ty/tz` in that ground. Both are rotated into MuJoCo's Z-up world with
  `OPENSIM_TO_MUJOCO` (X forward, Y left, Z up). The model's `pelvis` body is assumed to carry
  the OpenSim pelvis axes (X forward, Y up, Z right; true for myo-sim's legs: the hip flexion
  axis is pelvis +Z); the root pose is solved so that the pelvis body lands on the reference pose.
  myolegs itself stands facing world -Y, so its mapped root carries a +90 deg yaw: the reference
  walks along +X. Without a `pelvis` body the root body itself is assumed to be MuJoCo-style
  (X forward, Y left, Z up).
- With a free root and foot contact geoms, the whole trajectory is shifted vertically so the
  lowest foot point over the motion touches the ground plane z = 0 (subject and model differ in
  size; a floating or buried model cannot reproduce the contacts). The shift is reported; pass
  `ground=False` to keep the file's height.
- Joints coupled to a tracked joint through a joint equality constraint (myo-sim knees:
  `knee_angle_translation*`, `knee_angle_rotation*`, `knee_angle_beta_*`) are filled with the
  model's own polynomial q1 = q1_0 + sum_k a_k (q2 - q2_0)^k (`eq_data[:5]`), so the reference pose
  satisfies the constraints.
- Other model joints keep the base posture (keyframe 0 if the model has one, else qpos0).
- Sign conventions: OpenSim's gait2354/gait2392 flex the knee negatively (range -120..10 deg)
  while myo-sim (Rajagopal-style) knees flex positively (0..120 deg). With `auto_sign=True`
  (default) a limited hinge whose values lie mostly (>50 % of frames) outside its range while the
  negated values lie (>=95 %) inside is negated and reported. A user mapping value '-name' negates
  explicitly; 'name' (no minus) in the mapping turns the automatic check off for that coordinate.
- Values outside a tracked joint's range are counted per joint (warning); `clip=True` clips them.
- A tracked limited joint *mostly* outside its range (more than `MOSTLY_OUT` of the frames beyond
  `OUT_TOL` rad) is refused (InputError naming the file, the joint and the numbers): such a
  reference is nonsensical for the model (e.g. an OpenSim knee with the opposite sign whose negated
  values do not pass the automatic 95 % rule because the knee hyperextends). Explicit opt-ins:
  `negate=True` negates such a hinge when the negated values fit better; `clip=True` clips; both
  are stated in the report's notes. `strict=False` (for `motion inspect`) only warns.
- qvel is a central difference with `mj_differentiatePos` (right for free-joint quaternions).
"""

from __future__ import annotations

import dataclasses
import warnings

import mujoco
import numpy as np

from msdiversity.errors import InputError
from msdiversity.models.registry import LoadedModel, foot_geoms, muscle_ids, scalar_joint_ids
from msdiversity.models.registry import ground_height as registry_ground_height
from msdiversity.motions.opensim import OPENSIM_TO_MUJOCO, MotionWarning
from msdiversity.motions.reference import ModelReference, ReferenceMotion

MOSTLY_OUT = 0.5  # fraction of frames
OUT_TOL = np.deg2rad(2.0)  # rad (m for slides: 0.035): out-of-range by less does not count as "out" here
PELVIS_ROT = ("pelvis_tilt", "pelvis_list", "pelvis_rotation")
PELVIS_TRANS = ("pelvis_tx", "pelvis_ty", "pelvis_tz")


def _rx(a):
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _ry(a):
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rz(a):
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def opensim_pelvis_matrix(tilt, list_, rotation) -> np.ndarray:
    """(..., 3, 3) pelvis orientation in OpenSim ground: body-fixed Z(tilt), X(list), Y(rotation), rad."""
    tilt, list_, rotation = (np.asarray(a, float) for a in (tilt, list_, rotation))
    return _rz(tilt) @ _rx(list_) @ _ry(rotation)


@dataclasses.dataclass(frozen=True)
class MappingReport:
    """What mapped where.

    Attributes:
        model: model name.
        source: motion source (file or 'synthetic').
        matched: ((file coordinate, model joint), ...).
        root: file coordinates placed on the free root (pelvis_*), and `root_joint` its name.
        unmatched_file: file coordinates with no model joint.
        unmatched_model: model hinge/slide joints the file does not drive (kept at the base posture).
        negated: model joints whose file values were negated (sign convention).
        coupled: ((model joint, driving joint), ...) filled through equality constraints.
        out_of_range: {model joint: frames outside its range} (only non-zero counts).
        out_of_range_max: {model joint: largest excursion beyond the range, rad or m}.
        clipped: whether out-of-range values were clipped.
        ground_shift: m added to the root height (None when not applied).
        base: 'keyframe <name>' or 'qpos0'.
        n_frames, dt: frames and s between frames.
        notes: other decisions (resampling, GRF plate assignment, ...).
    """

    model: str
    source: str
    matched: tuple[tuple[str, str], ...]
    root: tuple[str, ...]
    root_joint: str | None
    unmatched_file: tuple[str, ...]
    unmatched_model: tuple[str, ...]
    negated: tuple[str, ...]
    coupled: tuple[tuple[str, str], ...]
    out_of_range: dict
    out_of_range_max: dict
    clipped: bool
    ground_shift: float | None
    base: str
    n_frames: int
    dt: float
    notes: tuple[str, ...] = ()

    def summary_line(self) -> str:
        oor = sum(self.out_of_range.values())
        return (f"{self.source} -> {self.model}: {len(self.matched)} joints matched"
                f"{' (' + str(len(self.negated)) + ' negated)' if self.negated else ''}"
                f"{', pelvis on free root ' + repr(self.root_joint) if self.root else ''}, "
                f"{len(self.coupled)} coupled, {len(self.unmatched_file)} file coordinates unmatched, "
                f"{len(self.unmatched_model)} model joints untracked, {oor} out-of-range values"
                f"{' (clipped)' if self.clipped and oor else ''}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _base_qpos(model: mujoco.MjModel, keyframe) -> tuple[np.ndarray, str]:
    if keyframe is None or keyframe is False or model.nkey == 0:
        return model.qpos0.copy(), "qpos0"
    if keyframe == "auto" or keyframe is True:
        k = 0
    elif isinstance(keyframe, str):
        k = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, keyframe)
        if k < 0:
            raise InputError(f"model has no keyframe '{keyframe}'", field="keyframe")
    else:
        k = int(keyframe)
    name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_KEY, k) or str(k)
    return model.key_qpos[k].copy(), f"keyframe {name}"


def _free_root(model: mujoco.MjModel) -> int | None:
    free = np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_FREE)
    return int(free[0]) if len(free) else None


def _fmt(lo: float, hi: float, model, j: int) -> str:
    """A joint range in deg (hinge) or m (slide)."""
    if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE:
        return f"{np.rad2deg(lo):.0f}..{np.rad2deg(hi):.0f} deg"
    return f"{lo:.3f}..{hi:.3f} m"


def _pelvis_offset(model: mujoco.MjModel, root: int, base: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Pelvis body pose in the root body frame at the base posture: (R (3,3), t (3,), body name)."""
    pid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "pelvis")
    if pid < 0:
        return OPENSIM_TO_MUJOCO.copy(), np.zeros(3), mujoco.mj_id2name(
            model, mujoco.mjtObj.mjOBJ_BODY, model.jnt_bodyid[root]) or "root"
    d = mujoco.MjData(model)
    d.qpos[:] = base
    a = model.jnt_qposadr[root]
    d.qpos[a:a + 7] = [0, 0, 0, 1, 0, 0, 0]
    mujoco.mj_kinematics(model, d)
    rb = model.jnt_bodyid[root]
    r_root = d.xmat[rb].reshape(3, 3)
    r = r_root.T @ d.xmat[pid].reshape(3, 3)
    t = r_root.T @ (d.xpos[pid] - d.xpos[rb])
    return r, t, "pelvis"


def _mat2quat(r: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(r).reshape(9))
    return q


def geom_low_point(model: mujoco.MjModel, data: mujoco.MjData, g: int) -> np.ndarray:
    """(3,) m, world position of the lowest point of geom `g` after kinematics (exact for
    sphere/capsule/ellipsoid/box/cylinder; the bounding sphere's bottom for meshes etc.)."""
    c, R, s = data.geom_xpos[g].copy(), data.geom_xmat[g].reshape(3, 3), model.geom_size[g]
    ez = np.array([0.0, 0.0, 1.0])
    typ = model.geom_type[g]
    if typ == mujoco.mjtGeom.mjGEOM_SPHERE:
        return c - s[0] * ez
    if typ == mujoco.mjtGeom.mjGEOM_CAPSULE or typ == mujoco.mjtGeom.mjGEOM_CYLINDER:
        a = R[:, 2]
        end = c - np.sign(a[2] or 1.0) * s[1] * a  # the lower end of the axis
        if typ == mujoco.mjtGeom.mjGEOM_CAPSULE:
            return end - s[0] * ez
        down = -(ez - a[2] * a)  # steepest descent within the end disc
        n = np.linalg.norm(down)
        return end + (s[0] * down / n if n > 1e-12 else 0.0)
    if typ == mujoco.mjtGeom.mjGEOM_ELLIPSOID:
        u = R.T @ ez
        return c + R @ (-(s ** 2) * u / np.sqrt(np.sum((s * u) ** 2)))
    if typ == mujoco.mjtGeom.mjGEOM_BOX:
        return c + R @ (-np.sign(R[2]) * s)
    return c - model.geom_rbound[g] * ez  # mesh etc.: bounding sphere


def _lowest_foot_z(model: mujoco.MjModel, qpos: np.ndarray, geoms: list[int]) -> np.ndarray:
    """(T,) lowest world z of the given geoms (see `geom_low_point`)."""
    d = mujoco.MjData(model)
    out = np.empty(len(qpos))
    for i, q in enumerate(qpos):
        d.qpos[:] = q
        mujoco.mj_kinematics(model, d)
        out[i] = min(geom_low_point(model, d, g)[2] for g in geoms)
    return out


def _fill_coupled(model, qpos, tracked_jids: set[int]) -> list[tuple[str, str]]:
    """Fill joints driven by joint-equality constraints (in place). Returns (joint, driver) pairs."""
    eqs = [e for e in range(model.neq)
           if model.eq_type[e] == mujoco.mjtEq.mjEQ_JOINT and model.eq_active0[e]
           and model.eq_obj1id[e] not in tracked_jids]
    done: list[tuple[str, str]] = []
    pending = list(eqs)
    known = set(range(model.njnt)) - {int(model.eq_obj1id[e]) for e in eqs}
    for _ in range(len(eqs) + 1):
        nxt = []
        for e in pending:
            j1, j2 = int(model.eq_obj1id[e]), int(model.eq_obj2id[e])
            if j2 >= 0 and j2 not in known:
                nxt.append(e)
                continue
            a1 = model.jnt_qposadr[j1]
            c = model.eq_data[e][:5]
            if j2 < 0:
                qpos[:, a1] = model.qpos0[a1] + c[0]
                drv = "(constant)"
            else:
                a2 = model.jnt_qposadr[j2]
                x = qpos[:, a2] - model.qpos0[a2]
                qpos[:, a1] = model.qpos0[a1] + c[0] + x * (c[1] + x * (c[2] + x * (c[3] + x * c[4])))
                drv = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j2)
            known.add(j1)
            done.append((mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j1), drv))
        if not nxt:
            break
        pending = nxt
    return done


def _qvel(model, qpos: np.ndarray, dt: float) -> np.ndarray:
    """(T, nv) central differences (one-sided at the ends) with mj_differentiatePos."""
    T = len(qpos)
    qvel = np.zeros((T, model.nv))
    if T < 2:
        return qvel
    for t in range(T):
        a, b = max(t - 1, 0), min(t + 1, T - 1)
        mujoco.mj_differentiatePos(model, qvel[t], (b - a) * dt, qpos[a], qpos[b])
    return qvel


def _uniform(motion: ReferenceMotion) -> tuple[ReferenceMotion, list[str]]:
    if motion.n_frames < 2:
        raise InputError("a motion needs at least 2 frames to map onto a model", path=motion.meta.get("source"))
    t = motion.time
    dt = (t[-1] - t[0]) / (len(t) - 1)
    # Uniform up to the rounding of printed times (e.g. 600 Hz written as 0.0017, 0.0033, ...).
    if np.max(np.abs(t - (t[0] + dt * np.arange(len(t))))) > 0.1 * dt:
        rate = 1.0 / dt
        return motion.resample(rate), [f"time steps were not uniform; resampled to {rate:.4g} Hz"]
    return motion, []


def map_to_model(motion: ReferenceMotion, loaded_model: LoadedModel, mapping: dict | None = None,
                 clip: bool = False, keyframe="auto", ground: bool = True, auto_sign: bool = True,
                 warn: bool = True, negate: bool = False, strict: bool = True) -> tuple[ModelReference, MappingReport]:
    """Express `motion` in `loaded_model`'s state space (see the module docstring for the rules).

    Args:
        motion: coordinates in radians/metres (OpenSim names or model joint names).
        loaded_model: from `msdiversity.models.load_model`.
        mapping: {file coordinate: model joint} overrides; '' or None drops a coordinate; a leading
            '-' ('-knee_angle_r') negates the values.
        clip: clip tracked joints to their ranges.
        keyframe: base posture for untracked joints: 'auto' (keyframe 0 if any, else qpos0),
            a keyframe name/index, or None (qpos0).
        ground: with a free root and foot geoms, shift the root height so the lowest foot point
            over the motion is at z = 0.
        auto_sign: negate hinge coordinates whose sign convention is evidently opposite (see above).
        warn: emit `MotionWarning`s for out-of-range values.
        negate: negate a limited hinge that is mostly out of range when its negated values fit better
            (explicit opt-in; reported).
        strict: refuse a tracked joint mostly out of range (unless clipped); False only warns.

    Returns:
        (ModelReference, MappingReport)
    """
    model = loaded_model.model if isinstance(loaded_model, LoadedModel) else loaded_model
    mname = loaded_model.name if isinstance(loaded_model, LoadedModel) else "model"
    src = str(motion.meta.get("source", "motion"))
    motion, notes = _uniform(motion)
    T = motion.n_frames
    dt = float((motion.time[-1] - motion.time[0]) / (T - 1))
    base, base_name = _base_qpos(model, keyframe)
    qpos = np.tile(base, (T, 1))  # (T, nq)

    jids = scalar_joint_ids(model)
    jnames = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in jids]
    by_name = dict(zip(jnames, jids))
    by_lower = {n.lower(): j for n, j in by_name.items()}
    root = _free_root(model)
    root_name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, root) if root is not None else None

    mapping = dict(mapping or {})
    explicit_sign: dict[str, float] = {}
    for k, v in list(mapping.items()):
        if v and v.startswith("-"):
            mapping[k] = v = v[1:]
            explicit_sign[k] = -1.0
        elif v:
            explicit_sign[k] = 1.0
        if k not in motion.coord_names:
            raise InputError(f"mapping names '{k}', which is not a coordinate of the motion "
                             f"(have: {', '.join(motion.coord_names)})", path=src, field=k)
        if v and v not in by_name:
            raise InputError(f"mapping target '{v}' is not a hinge/slide joint of {mname} "
                             f"(have: {', '.join(jnames)})", field=k)

    on_root = root is not None and any(n in motion.coord_names for n in PELVIS_ROT + PELVIS_TRANS)
    matched: list[tuple[str, str]] = []
    root_coords: list[str] = []
    unmatched_file: list[str] = []
    for ci, n in enumerate(motion.coord_names):
        if n in mapping:
            tgt = mapping[n]
            if tgt:
                matched.append((n, tgt))
            else:
                unmatched_file.append(n)
        elif on_root and n in PELVIS_ROT + PELVIS_TRANS and n not in by_name:
            root_coords.append(n)
        elif n in by_name:
            matched.append((n, n))
        elif n.lower() in by_lower:
            matched.append((n, mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, by_lower[n.lower()])))
        else:
            unmatched_file.append(n)
    targets = [t for _, t in matched]
    if len(set(targets)) != len(targets):
        dup = sorted({t for t in targets if targets.count(t) > 1})
        raise InputError(f"several coordinates map onto joint(s) {', '.join(dup)}", path=src, field=dup[0])

    # ---- scalar joints ----
    oor, oor_max = {}, {}
    negated: list[str] = []
    for fn, mn in matched:
        j = by_name[mn]
        v = motion.coord(fn).copy()
        if fn in explicit_sign:
            v = v * explicit_sign[fn]
            if explicit_sign[fn] < 0:
                negated.append(mn)
        elif auto_sign and model.jnt_limited[j] and model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE:
            lo, hi = model.jnt_range[j]
            inside = lambda x: float(np.mean((x >= lo - 1e-6) & (x <= hi + 1e-6)))  # noqa: E731
            if inside(v) < 0.5 and inside(-v) >= 0.95:
                v = -v
                negated.append(mn)
                notes.append(f"{fn} negated onto {mn}: {inside(-v):.0%} of frames in range as given, "
                             f"{inside(v):.0%} negated (opposite sign convention)")
        if model.jnt_limited[j]:
            lo, hi = model.jnt_range[j]
            out_frac = lambda x: float(np.mean((x < lo - OUT_TOL) | (x > hi + OUT_TOL)))  # noqa: E731
            if negate and fn not in explicit_sign and out_frac(v) > MOSTLY_OUT and out_frac(-v) < out_frac(v):
                notes.append(f"{fn} negated onto {mn} (negate = true): {out_frac(v):.0%} of frames out of range "
                             f"as given, {out_frac(-v):.0%} negated")
                v = -v
                if mn not in negated:
                    negated.append(mn)
            if out_frac(v) > MOSTLY_OUT:
                msg = (f"{out_frac(v):.0%} of frames ({int(round(out_frac(v) * T))} of {T}) lie outside the range of "
                       f"{mname} joint '{mn}' [{_fmt(lo, hi, model, j)}] (file values {_fmt(v.min(), v.max(), model, j)}"
                       f"; negated {out_frac(-v):.0%} out)")
                if clip:
                    notes.append(f"{fn}: {msg}; clipped to the range (clip = true)")
                elif strict:
                    raise InputError(f"{msg}: the reference does not fit the model. Fix the mapping "
                                     f"('-{mn}' negates), or opt in with [motion] negate = true (--negate) or "
                                     f"clip = true (--clip)", path=src, field=fn)
            tol = 1e-6
            bad = (v < lo - tol) | (v > hi + tol)
            if bad.any():
                oor[mn] = int(bad.sum())
                oor_max[mn] = float(max(lo - v.min(), v.max() - hi))
                if clip:
                    v = np.clip(v, lo, hi)
        qpos[:, model.jnt_qposadr[j]] = v
    if oor and warn:
        unit = lambda mn: "deg" if model.jnt_type[by_name[mn]] == mujoco.mjtJoint.mjJNT_HINGE else "cm"  # noqa: E731
        scale = lambda mn: np.rad2deg(1) if unit(mn) == "deg" else 100.0  # noqa: E731
        detail = ", ".join(f"{k}: {c} frames, up to {oor_max[k] * scale(k):.1f} {unit(k)}" for k, c in oor.items())
        warnings.warn(f"{src}: values outside {mname} joint ranges ({detail})"
                      f"{'; clipped' if clip else '; pass clip=True / --clip to clip'}", MotionWarning,
                      stacklevel=2)

    # ---- free root ----
    ground_shift = None
    if root_coords:
        get = lambda n: motion.coord(n) if n in motion.coord_names else np.zeros(T)  # noqa: E731
        r_os = opensim_pelvis_matrix(*(get(n) for n in PELVIS_ROT))  # (T, 3, 3)
        p_os = np.stack([get(n) for n in PELVIS_TRANS], 1)  # (T, 3)
        r_off, t_off, pel_body = _pelvis_offset(model, root, base)
        r_pel = OPENSIM_TO_MUJOCO @ r_os  # (T, 3, 3) pelvis axes in the MuJoCo world
        r_root = r_pel @ r_off.T
        p_root = p_os @ OPENSIM_TO_MUJOCO.T - r_root @ t_off
        a = model.jnt_qposadr[root]
        qpos[:, a:a + 3] = p_root
        qpos[:, a + 3:a + 7] = np.stack([_mat2quat(r) for r in r_root])
        missing = [n for n in PELVIS_ROT + PELVIS_TRANS if n not in motion.coord_names]
        if missing:
            notes.append(f"pelvis coordinates missing from the file, taken as 0: {', '.join(missing)}")
        notes.append(f"pelvis pose placed on free root '{root_name}' through body '{pel_body}' "
                     "(OpenSim Z-X-Y body-fixed pelvis rotations, Y-up ground rotated to Z-up)")

    tracked = {int(by_name[m]) for _, m in matched}
    coupled = _fill_coupled(model, qpos, tracked)

    if root_coords and ground:
        fg = foot_geoms(model)
        gids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, g) for side in fg.values() for g in side]
        if gids:
            low = _lowest_foot_z(model, qpos, gids)
            gz = registry_ground_height(model)
            ground_shift = float(gz - low.min())
            qpos[:, model.jnt_qposadr[root] + 2] += ground_shift
            notes.append(f"root height shifted by {ground_shift * 100:+.1f} cm so the lowest foot point "
                         f"over the motion touches the ground (z = {gz:.3f} m)")

    # a planar root (slide joints on a body hanging from the world, e.g. myolegs_sagittal): the matched
    # vertical slide gets the same ground alignment as a free root
    planar = [j for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_SLIDE
              and model.body_parentid[model.jnt_bodyid[j]] == 0 and int(j) in tracked]
    if root is None and planar and ground:
        vert = [j for j in planar if abs(model.jnt_axis[j][2]) > 0.5]
        fg = foot_geoms(model)
        gids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, g) for side in fg.values() for g in side]
        if vert and gids:
            low = _lowest_foot_z(model, qpos, gids)
            gz = registry_ground_height(model)
            ground_shift = float(gz - low.min())
            j = vert[0]
            qpos[:, model.jnt_qposadr[j]] += ground_shift * np.sign(model.jnt_axis[j][2])
            notes.append(f"root height ({mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j)}) shifted by "
                         f"{ground_shift * 100:+.1f} cm so the lowest foot point over the motion touches the "
                         f"ground (z = {gz:.3f} m)")

    coupled_names = {c for c, _ in coupled}
    unmatched_model = [n for n in jnames if by_name[n] not in tracked and n not in coupled_names]

    # ---- muscles / GRF ----
    mids = muscle_ids(model)
    act_names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, i) for i in range(model.nu)]

    def per_actuator(arr, names):
        if arr is None:
            return None
        out = np.full((T, model.nu), np.nan)
        idx = {n: k for k, n in enumerate(names)}
        for a_i, n in enumerate(act_names):
            if n in idx:
                out[:, a_i] = arr[:, idx[n]]
        return out

    exc = per_actuator(motion.excitation, motion.muscle_names)
    act = per_actuator(motion.activation, motion.muscle_names)
    emg = per_actuator(motion.emg, motion.emg_names)
    if motion.emg is not None:
        miss = sorted(set(motion.emg_names) - set(act_names))
        if miss:
            notes.append(f"EMG channels without a model muscle: {', '.join(miss)}")
    grf = cop = None
    if motion.grf is not None:
        grf, cop = motion.grf.force.copy(), motion.grf.cop.copy()
        notes.extend(motion.grf.notes)

    joint_mask = np.array([int(j) in tracked for j in jids], bool)
    report = MappingReport(
        model=mname, source=src, matched=tuple(matched), root=tuple(root_coords),
        root_joint=root_name if root_coords else None, unmatched_file=tuple(unmatched_file),
        unmatched_model=tuple(unmatched_model), negated=tuple(negated), coupled=tuple(coupled), out_of_range=oor,
        out_of_range_max=oor_max, clipped=bool(clip), ground_shift=ground_shift, base=base_name,
        n_frames=T, dt=dt, notes=tuple(notes))
    meta = dict(motion.meta, model=mname, model_source=getattr(loaded_model, "source", mname),
                mapping=report.summary_line(), root_tracked=bool(root_coords or planar), n_muscles=len(mids),
                t0=float(motion.time[0]),
                tracked_joints=[m for _, m in matched])
    ref = ModelReference(dt=dt, qpos=qpos, qvel=_qvel(model, qpos, dt), grf=grf, excitation=exc,
                         activation=act, emg=emg, joint_mask=joint_mask, meta=meta, cop=cop)
    return ref, report
