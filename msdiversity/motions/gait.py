"""Gait-reference tools: gait events, treadmill detection and conversion, one loopable gait cycle.

- `contact_events` / `force_events` / `gait_events` / `grf_events`: heel strikes and toe-offs from the
  vertical ground reaction force, with hysteresis, sub-sample (linearly interpolated) timing and
  minimum stance/swing durations; `foot_kinematic_events` from the feet's motion when there is no GRF.
  `contact_events` is signal-agnostic (onsets/offsets of any "on" episodes: EMG bursts, force-plate
  channels in A/D counts, ...).
- `detect_treadmill` / `treadmill_speed` / `to_overground`: a treadmill trial keeps the pelvis in
  place while the stance foot slides backward with the belt. On fixed ground that motion is
  physically impossible, so a simulated model cannot track it; adding belt speed x time to the
  root's forward translation (a Galilean change of frame: joint angles and forces unchanged) gives
  the equivalent overground walk.
- `periodic_cycle`: one stride (heel strike to the next heel strike of the same foot), or a half
  stride completed by bilateral mirroring, made exactly loopable: frame N (the one after the last)
  equals frame 0 with the root translated by `ModelReference.cycle_shift`.
- `apply_gait_options`: the `[motion] treadmill / periodic / cycles` settings in one call.

Frames and units: MuJoCo world, Z up, SI units, angles in radians; times in s from frame 0 of the
reference (`ModelReference.time`) unless a time axis is given. Feet are ('r', 'l') as in
`ModelReference.grf` (T, 2, 3).
"""

from __future__ import annotations

import dataclasses
import re
import warnings

import mujoco
import numpy as np

from msdiversity.errors import InputError
from msdiversity.motions.reference import FEET, GRF, ModelReference

# Minimum-duration defaults (s): shorter stances are spikes, shorter swings are dips inside a stance.
MIN_STANCE_S = 0.1
MIN_SWING_S = 0.1


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------

def _cross(t: np.ndarray, x: np.ndarray, k: int, level: float) -> float:
    """s, time where x crosses `level` between samples k and k+1 (linear interpolation)."""
    dx = x[k + 1] - x[k]
    f = (level - x[k]) / dx if np.isfinite(dx) and dx != 0 else 0.5
    return float(t[k] + np.clip(f, 0.0, 1.0) * (t[k + 1] - t[k]))


def _check_series(time, signal, field: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(time, float)
    x = np.asarray(signal, float)
    if t.ndim != 1 or len(t) < 2:
        raise InputError(f"time must be a 1-D array of at least 2 samples (s), got shape {t.shape}", field="time")
    if x.shape != t.shape:
        raise InputError(f"{field} must have one value per time sample: shape {t.shape}, got {x.shape}",
                         field=field)
    if not np.all(np.diff(t) > 0):
        raise InputError("time must be strictly increasing (s)", field="time")
    return t, x


def contact_events(time, signal, on: float, off: float | None = None, min_stance_s: float = MIN_STANCE_S,
                   min_swing_s: float = MIN_SWING_S) -> tuple[np.ndarray, np.ndarray]:
    """Onsets and offsets of the "on" episodes of a signal, with hysteresis.

    An episode is a maximal run of samples with `signal > off` in which the signal also exceeds `on`
    at least once (so noise around `off` alone never starts one). Its onset and offset are the
    times where the signal crosses `off`, linearly interpolated between the two samples around the
    crossing. Then episodes shorter than `min_stance_s` are dropped (spikes; an episode cut by the
    start or end of the record is kept, its true length being unknown), and gaps shorter than
    `min_swing_s` are closed (brief dips), in that order.

    Args:
        time: (T,) s, strictly increasing (need not be uniform).
        signal: (T,) any unit (N for a vertical force, a.u. for an EMG envelope); NaN counts as off.
        on: level that confirms an episode, in the signal's unit.
        off: level that times it (<= on); default `on` (no hysteresis).
        min_stance_s, min_swing_s: s, minimum episode and gap durations.

    Returns:
        (onsets (n,), offsets (m,)) in s, increasing. An episode already on at time[0] has no onset,
        one still on at time[-1] has no offset.
    """
    t, x = _check_series(time, signal, "signal")
    off = on if off is None else off
    if not off <= on:
        raise InputError(f"the timing level off={off} must not exceed the confirming level on={on}", field="off")
    if min_stance_s < 0 or min_swing_s < 0:
        raise InputError(f"minimum durations must be >= 0 s, got stance {min_stance_s}, swing {min_swing_s}",
                         field="min_stance_s" if min_stance_s < 0 else "min_swing_s")
    above = np.nan_to_num(x, nan=-np.inf) > off
    edge = np.diff(above.astype(np.int8))
    starts = list(np.flatnonzero(edge == 1) + 1)
    ends = list(np.flatnonzero(edge == -1) + 1)
    if above[0]:
        starts.insert(0, 0)
    if above[-1]:
        ends.append(len(x))
    runs: list[list] = []  # [onset or None, offset or None]
    for s, e in zip(starts, ends):
        if not np.any(x[s:e] > on):
            continue
        runs.append([None if s == 0 else _cross(t, x, s - 1, off), None if e == len(x) else _cross(t, x, e - 1, off)])
    runs = [r for r in runs if r[0] is None or r[1] is None or r[1] - r[0] >= min_stance_s]
    merged: list[list] = []
    for r in runs:
        if merged and merged[-1][1] is not None and r[0] is not None and r[0] - merged[-1][1] < min_swing_s:
            merged[-1][1] = r[1]
        else:
            merged.append(r)
    return (np.array([r[0] for r in merged if r[0] is not None], float),
            np.array([r[1] for r in merged if r[1] is not None], float))


def onset_level(fz, threshold_n: float) -> float:
    """N, level at which a vertical force series is timed: the unloaded baseline plus 4 noise
    standard deviations (median and 1.4826 x MAD of the samples below `threshold_n`), at least 2 %
    and at most 50 % of `threshold_n` above the baseline; 25 % of `threshold_n` if the force never
    drops below it."""
    fz = np.asarray(fz, float)
    low = fz[np.isfinite(fz) & (fz < threshold_n)]
    if len(low) < 10:
        return 0.25 * threshold_n
    base = float(np.median(low))
    noise = 1.4826 * float(np.median(np.abs(low - base)))
    return base + float(np.clip(4.0 * noise, 0.02 * threshold_n, 0.5 * threshold_n))


def force_events(time, fz, threshold_n: float = 20.0, onset_n: float | None = None,
                 min_stance_s: float = MIN_STANCE_S, min_swing_s: float = MIN_SWING_S
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Heel strikes and toe-offs of one vertical force series (one foot, or one force plate).

    Contact is confirmed where the force exceeds `threshold_n` and timed where it crosses
    `onset_n` (default `onset_level`: just above the unloaded noise floor), so the timing does not
    lag by the time the force takes to rise to the threshold. See `contact_events`.

    Args:
        time: (T,) s.
        fz: (T,) vertical force, N (or any unit, with thresholds in it: e.g. raw plate counts).
        threshold_n: contact-confirming force.
        onset_n: timing level; default from the data (`onset_level`).
        min_stance_s, min_swing_s: s.

    Returns:
        (heel_strike (n,), toe_off (m,)) times in s.
    """
    t, f = _check_series(time, fz, "fz")
    if not threshold_n > 0:
        raise InputError(f"threshold_n must be > 0 N, got {threshold_n}", field="threshold_n")
    lvl = onset_level(f, threshold_n) if onset_n is None else float(onset_n)
    if lvl > threshold_n:
        raise InputError(f"onset_n={lvl} N must not exceed threshold_n={threshold_n} N", field="onset_n")
    return contact_events(t, f, threshold_n, lvl, min_stance_s, min_swing_s)


def estimate_body_weight(fz_total) -> float:
    """N, approximate body weight from the total vertical GRF (T,): its mean over the frames where any
    foot is loaded (> 20 N). Exact over whole strides with every step on a plate; low when steps
    fall off the plates. Pass the body weight explicitly when it is known."""
    fz_total = np.asarray(fz_total, float)
    loaded = fz_total[np.isfinite(fz_total) & (fz_total > 20.0)]
    if not len(loaded):
        raise InputError("the GRF is never loaded (> 20 N): cannot estimate the body weight", field="grf")
    return float(loaded.mean())


def _events_dict(time, force: np.ndarray, feet, threshold_n, threshold_bw, body_weight_n, onset_n,
                 min_stance_s, min_swing_s) -> dict:
    if threshold_bw is not None:
        if not threshold_bw > 0:
            raise InputError(f"threshold_bw must be a fraction of body weight > 0, got {threshold_bw}",
                             field="threshold_bw")
        bw = body_weight_n if body_weight_n is not None else estimate_body_weight(np.nansum(force[:, :, 2], 1))
        threshold_n = threshold_bw * bw
    out = {}
    for fi, foot in enumerate(feet):
        hs, to = force_events(time, force[:, fi, 2], threshold_n, onset_n, min_stance_s, min_swing_s)
        out[foot] = {"heel_strike": hs, "toe_off": to}
    return out


def gait_events(grf, dt: float, threshold_n: float = 20.0, *, threshold_bw: float | None = None,
                body_weight_n: float | None = None, onset_n: float | None = None,
                min_stance_s: float = MIN_STANCE_S, min_swing_s: float = MIN_SWING_S, t0: float = 0.0) -> dict:
    """Heel strikes and toe-offs per foot from the vertical GRF (see `force_events`).

    Args:
        grf: (T, 2, 3) N per foot ('r', 'l'), Z up (the `ModelReference.grf` layout).
        dt: s between samples.
        threshold_n: contact force, N; or give `threshold_bw`, a fraction of the body weight
            (`body_weight_n`, N, default `estimate_body_weight` of the GRF).
        onset_n: N, timing level (default per foot from its noise floor, `onset_level`).
        min_stance_s, min_swing_s: s.
        t0: s, time of sample 0.

    Returns:
        {'r': {'heel_strike': (n,) s, 'toe_off': (m,) s}, 'l': {...}}
    """
    g = np.asarray(grf, float)
    if g.ndim != 3 or g.shape[1] != len(FEET) or g.shape[2] != 3:
        raise InputError(f"grf must be (T, 2, 3) N per foot ('r', 'l') and axis (x, y, z), got {g.shape}",
                         field="grf")
    if not dt > 0:
        raise InputError(f"dt must be > 0 s, got {dt}", field="dt")
    time = t0 + np.arange(len(g)) * float(dt)
    return _events_dict(time, g, FEET, threshold_n, threshold_bw, body_weight_n, onset_n, min_stance_s, min_swing_s)


def grf_events(grf: GRF, time=None, threshold_n: float = 20.0, **kwargs) -> dict:
    """`gait_events` for a `GRF` object (e.g. straight from `read_grf`, on its own clock).

    Args:
        grf: a GRF; its `time` is used unless `time` (T,) s is given (needed when `grf.time` is None).
        threshold_n, kwargs: as for `gait_events` (threshold_bw, body_weight_n, onset_n,
            min_stance_s, min_swing_s).

    Returns:
        {foot: {'heel_strike': (n,) s, 'toe_off': (m,) s}} for each of `grf.feet`.
    """
    t = grf.time if time is None else np.asarray(time, float)
    if t is None:
        raise InputError("this GRF has no time axis of its own (it shares its motion's): pass time=motion.time",
                         field="time")
    f = np.asarray(grf.force, float)
    if f.ndim != 3 or f.shape[0] != len(t):
        raise InputError(f"GRF force must be (T={len(t)}, feet, 3) N, got {f.shape}", field="force")
    return _events_dict(t, f, tuple(grf.feet), threshold_n, kwargs.pop("threshold_bw", None),
                        kwargs.pop("body_weight_n", None), kwargs.pop("onset_n", None),
                        kwargs.pop("min_stance_s", MIN_STANCE_S), kwargs.pop("min_swing_s", MIN_SWING_S))


# ---------------------------------------------------------------------------------------------
# Model helpers: root, feet, kinematics
# ---------------------------------------------------------------------------------------------

def _mj(model) -> mujoco.MjModel:
    return model.model if hasattr(model, "model") and isinstance(model.model, mujoco.MjModel) else model


@dataclasses.dataclass(frozen=True)
class _Root:
    """How the model's root moves: a free joint, slide joints on a world child, or not at all.

    free: (joint id, qpos adr, dof adr) of the free root, or None.
    slides: ((qpos adr, dof adr, world axis (3,)), ...) of root slide joints (when no free root).
    body: the root body id.
    """

    free: tuple[int, int, int] | None
    slides: tuple[tuple[int, int, np.ndarray], ...]
    body: int

    @property
    def moves(self) -> bool:
        return self.free is not None or any(abs(ax[2]) < 0.5 for _, _, ax in self.slides)

    def horizontal_slides(self):
        return [(a, d, ax) for a, d, ax in self.slides if abs(ax[2]) < 0.5]

    def position(self, qpos: np.ndarray) -> np.ndarray:
        """(T, 3) m root translation in the world (slide roots: sum of slide displacements)."""
        qpos = np.atleast_2d(qpos)
        if self.free is not None:
            return qpos[:, self.free[1]:self.free[1] + 3].copy()
        out = np.zeros((len(qpos), 3))
        for a, _, ax in self.slides:
            out += qpos[:, a:a + 1] * ax
        return out

    def translation_to_q(self, delta: np.ndarray) -> dict[int, np.ndarray]:
        """{qpos adr: (T,) increment} realising the world translations delta (T, 3) (horizontal part
        for slide roots, least squares over their axes)."""
        delta = np.atleast_2d(delta)
        if self.free is not None:
            a = self.free[1]
            return {a + k: delta[:, k] for k in range(3)}
        hs = self.horizontal_slides()
        if not hs:
            raise InputError("the model's root cannot translate horizontally (no free joint and no horizontal "
                             "slide joints on the root body)", field="model")
        A = np.stack([ax[:2] for _, _, ax in hs], 1)  # (2, k)
        sol = np.linalg.lstsq(A, delta[:, :2].T, rcond=None)[0]  # (k, T)
        return {a: sol[i] for i, (a, _, _) in enumerate(hs)}

    def velocity_to_v(self, dv: np.ndarray) -> dict[int, np.ndarray]:
        """{dof adr: (T,) increment} realising the world linear velocity increments dv (T, 3)."""
        if self.free is not None:
            d = self.free[2]
            dv = np.atleast_2d(dv)
            return {d + k: dv[:, k] for k in range(3)}
        qd = self.translation_to_q(dv)
        dof = {a: d for a, d, _ in self.slides}
        return {dof[a]: v for a, v in qd.items()}


def _root(model: mujoco.MjModel) -> _Root:
    free = np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_FREE)
    if len(free):
        j = int(free[0])
        return _Root((j, int(model.jnt_qposadr[j]), int(model.jnt_dofadr[j])), (), int(model.jnt_bodyid[j]))
    slides = []
    body = 0
    for j in range(model.njnt):
        b = int(model.jnt_bodyid[j])
        if model.body_parentid[b] != 0 or model.jnt_type[j] != mujoco.mjtJoint.mjJNT_SLIDE:
            continue
        if body and b != body:
            continue
        body = b
        ax = np.zeros(3)
        mujoco.mju_rotVecQuat(ax, model.jnt_axis[j], model.body_quat[b])
        slides.append((int(model.jnt_qposadr[j]), int(model.jnt_dofadr[j]), ax / np.linalg.norm(ax)))
    return _Root(None, tuple(slides), body)


def _foot_geom_ids(model: mujoco.MjModel) -> dict[str, list[int]]:
    from msdiversity.models.registry import foot_geoms

    fg = foot_geoms(model)
    ids = {s: [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, g) for g in fg.get(s, ())] for s in FEET}
    missing = [s for s in FEET if not ids[s]]
    if missing:
        raise InputError(f"the model has no foot contact geoms for foot {', '.join(missing)} (expected collidable "
                         "geoms on calcn/talus/toes/foot bodies named *_r / *_l)", field="model")
    return ids


def _pelvis_body(model: mujoco.MjModel, root: _Root) -> int:
    """The body whose X axis is the forward direction: the OpenSim-style `pelvis` body if the model has
    one, else the root body (MuJoCo style)."""
    pid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "pelvis")
    return int(pid) if pid >= 0 else root.body


@dataclasses.dataclass(frozen=True)
class _Kin:
    """Per-frame forward kinematics of what the gait tools need.

    geom_pos: {foot: (T, G, 3) m} foot geom centres; low_point: {foot: (T, G, 3) m} each geom's
    lowest point; body_pos / body_mat: {foot: (T, G, 3) / (T, G, 3, 3)} pose of each geom's body;
    on_toes: {foot: (G,) bool} geoms on a toes body; heading: (T, 3) pelvis forward axis;
    pelvis: (T, 3) m pelvis position.
    """

    geom_pos: dict
    low_point: dict
    body_pos: dict
    body_mat: dict
    on_toes: dict
    heading: np.ndarray
    pelvis: np.ndarray

    def low(self, foot: str) -> np.ndarray:
        """(T,) m lowest point of the foot."""
        return self.low_point[foot][:, :, 2].min(1)


def _kinematics(model: mujoco.MjModel, qpos: np.ndarray) -> _Kin:
    from msdiversity.motions.mapping import geom_low_point

    gids = _foot_geom_ids(model)
    pid = _pelvis_body(model, _root(model))
    T = len(qpos)
    pos = {s: np.empty((T, len(g), 3)) for s, g in gids.items()}
    low = {s: np.empty((T, len(g), 3)) for s, g in gids.items()}
    bpos = {s: np.empty((T, len(g), 3)) for s, g in gids.items()}
    bmat = {s: np.empty((T, len(g), 3, 3)) for s, g in gids.items()}
    head, pel = np.empty((T, 3)), np.empty((T, 3))
    d = mujoco.MjData(model)
    for i, q in enumerate(qpos):
        d.qpos[:] = q
        mujoco.mj_kinematics(model, d)
        for s, g in gids.items():
            b = model.geom_bodyid[g]
            pos[s][i] = d.geom_xpos[g]
            low[s][i] = [geom_low_point(model, d, k) for k in g]
            bpos[s][i] = d.xpos[b]
            bmat[s][i] = d.xmat[b].reshape(-1, 3, 3)
        head[i] = d.xmat[pid].reshape(3, 3)[:, 0]
        pel[i] = d.xpos[pid]
    toes = {s: np.array([(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, model.geom_bodyid[k]) or "")
                         .lower().startswith("toe") for k in g], bool) for s, g in gids.items()}
    return _Kin(pos, low, bpos, bmat, toes, head, pel)


def _horizontal_unit(v: np.ndarray, what: str) -> np.ndarray:
    h = np.array([v[0], v[1], 0.0])
    n = np.linalg.norm(h)
    if n < 1e-6:
        raise InputError(f"cannot tell the walking direction: the {what} has no horizontal component", field="qpos")
    return h / n


def walking_direction(ref: ModelReference, model, kin: _Kin | None = None) -> np.ndarray:
    """(3,) unit horizontal vector: the mean forward axis of the pelvis over the motion (the `pelvis`
    body's X axis, OpenSim convention; else the root body's X axis)."""
    m = _mj(model)
    kin = kin or _kinematics(m, ref.qpos)
    return _horizontal_unit(kin.heading.mean(0), "pelvis forward axis")


def _stance_frames(ref: ModelReference, kin: _Kin, contact_height_m: float = 0.01) -> tuple[dict, str]:
    """{foot: (T,) bool} frames on which each foot stands flat, and where that came from.

    Loaded frames: with a GRF, the foot carries more than 20 % of its peak vertical force (and > 20 N);
    without, it is the lower foot. Of those, the frames where the foot's lowest point is within
    `contact_height_m` of its lowest over the loaded frames (5th percentile): the foot flat on the
    ground, where the mapped model's contact point is most trustworthy (subject and model feet
    differ; while the heel rises or lands the model's lowest point need not be the subject's).
    """
    lows = np.stack([kin.low(s) for s in FEET], 1)  # (T, 2)
    if ref.grf is not None:
        fz = np.nan_to_num(ref.grf[:, :, 2])
        loaded = fz > np.maximum(20.0, 0.2 * fz.max(0))
        src = "grf"
    else:
        lower = np.argmin(lows, 1)
        loaded = np.stack([lower == i for i in range(len(FEET))], 1)
        src = "foot height"
    out = {}
    for i, s in enumerate(FEET):
        if loaded[:, i].any():
            floor = np.percentile(lows[loaded[:, i], i], 5)
            out[s] = loaded[:, i] & (lows[:, i] < floor + contact_height_m)
        else:
            out[s] = loaded[:, i]
    return out, src


def _contact_point_velocity(kin: _Kin, foot: str, dt: float) -> np.ndarray:
    """(T, 3) m/s world velocity of the material point of the foot at its lowest point (the point
    touching the ground): the body-fixed point under the lowest geom at frame i, followed through
    frames i - 1 and i + 1 (central difference; one-sided at the ends). A point in contact moves with
    the ground: 0 overground, the belt velocity on a treadmill (a rolling geom's centre does not)."""
    low = kin.low_point[foot]  # (T, G, 3)
    g = np.argmin(low[:, :, 2], 1)
    T = len(g)
    i = np.arange(T)
    a, b = np.maximum(i - 1, 0), np.minimum(i + 1, T - 1)
    R, x = kin.body_mat[foot], kin.body_pos[foot]
    local = np.einsum("tji,tj->ti", R[i, g], low[i, g] - x[i, g])  # (T, 3) in the body frame
    world = lambda k: np.einsum("tij,tj->ti", R[k, g], local) + x[k, g]  # noqa: E731
    return (world(b) - world(a)) / ((b - a)[:, None] * dt)


# ---------------------------------------------------------------------------------------------
# Treadmill
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TreadmillDetection:
    """What the stance feet say about the ground.

    Attributes:
        speed: m/s belt speed estimate: minus the median forward velocity of the stance foot's
            contact point over the stance frames (positive = the feet slide backward).
        pelvis_speed: m/s mean forward speed of the pelvis over the motion.
        lateral_speed: m/s median lateral (left +) velocity of the stance foot.
        direction: (3,) unit forward direction (mean pelvis heading, horizontal).
        belt_direction: (3,) unit horizontal direction the belt carries the subject forward in, i.e.
            minus the median stance-foot velocity (the heading's within a few degrees; `to_overground`
            moves the root along it so that the stance feet stand still).
        backward_fraction: share of stance frames in which the stance foot moves backward.
        n_stance_frames: frames used (both feet).
        stance_from: 'grf' or 'foot height'.
        is_treadmill: speed > min_speed, pelvis_speed < pelvis_ratio x speed and the sliding is
            consistent (backward_fraction >= 0.7).
        reason: one line explaining the decision.
    """

    speed: float
    pelvis_speed: float
    lateral_speed: float
    direction: tuple[float, float, float]
    belt_direction: tuple[float, float, float]
    backward_fraction: float
    n_stance_frames: int
    stance_from: str
    is_treadmill: bool
    reason: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary_line(self) -> str:
        return (f"{'treadmill trial' if self.is_treadmill else 'not a treadmill trial'}: stance feet move "
                f"{-self.speed:+.2f} m/s forward ({self.backward_fraction:.0%} of {self.n_stance_frames} stance "
                f"frames backward, stance from {self.stance_from}), pelvis {self.pelvis_speed:+.2f} m/s; {self.reason}")


def detect_treadmill(ref: ModelReference, model, min_speed: float = 0.2, pelvis_ratio: float = 0.25,
                     kin: _Kin | None = None) -> TreadmillDetection:
    """Estimate the belt speed from the stance feet and decide whether the motion is a treadmill trial.

    Forward kinematics of `ref.qpos`; on stance frames (GRF-loaded, or the lowest foot without a
    GRF, see `_stance_frames`) the stance foot's contact point (centre of its lowest foot geom) is
    differentiated in the world frame and projected on the walking direction; the median over all
    stance frames of both feet, negated, is the belt speed. Overground it is ~0.

    Args:
        ref: reference on a model with a free (or slide-joint) root and foot contact geoms.
        model: LoadedModel or MjModel.
        min_speed: m/s, belt speeds below this are "not a treadmill".
        pelvis_ratio: a treadmill trial's pelvis moves forward slower than this fraction of the belt.
    """
    m = _mj(model)
    if not _root(m).moves:
        raise InputError("treadmill detection needs a model whose root translates (free joint or root slides)",
                         field="treadmill")
    kin = kin or _kinematics(m, ref.qpos)
    d = _horizontal_unit(kin.heading.mean(0), "pelvis forward axis")
    lat = np.array([-d[1], d[0], 0.0])
    stance, src = _stance_frames(ref, kin)
    v = np.concatenate([_contact_point_velocity(kin, s, ref.dt)[stance[s]] for s in FEET])  # (n, 3)
    fwd, side = v @ d, v @ lat
    dur = ref.dt * (ref.n_frames - 1)
    pel = float((kin.pelvis[-1] - kin.pelvis[0]) @ d / dur) if dur > 0 else 0.0
    n = len(fwd)
    if n < 5:
        return TreadmillDetection(0.0, pel, 0.0, tuple(d), tuple(d), 0.0, n, src, False,
                                  f"only {n} stance frames: cannot judge")
    belt = -np.median(v[:, :2], 0)  # (2,) m/s, what the belt adds to the subject's motion
    speed = float(belt @ d[:2])
    bdir = tuple(float(x) for x in (_horizontal_unit(np.r_[belt, 0], "belt velocity") * np.sign(speed or 1.0)
                                    if np.linalg.norm(belt) > 1e-6 else d))
    back = float(np.mean(fwd < 0))
    if speed < -min_speed:
        ok, why = False, (f"the stance feet move forward ({-speed:.2f} m/s): they are not planted, and no belt "
                          "moves them backward")
    elif speed <= min_speed:
        ok, why = False, f"the stance feet stay put (|{-speed:.2f}| <= {min_speed:g} m/s): fixed ground"
    elif abs(pel) >= pelvis_ratio * speed:
        ok, why = False, (f"the pelvis travels ({pel:+.2f} m/s, >= {pelvis_ratio:g} x the {speed:.2f} m/s foot "
                          "sliding): not a belt")
    elif back < 0.7:
        ok, why = False, f"the stance feet slide backward in only {back:.0%} of stance frames (need 70 %)"
    else:
        ok, why = True, f"belt speed {speed:.2f} m/s"
    return TreadmillDetection(speed, pel, float(np.median(side)), tuple(float(x) for x in d), bdir, back, n, src,
                              ok, why)


def treadmill_speed(ref: ModelReference, model) -> float:
    """m/s belt speed estimated from the stance feet (see `detect_treadmill`; ~0 overground)."""
    return detect_treadmill(ref, model).speed


def to_overground(ref: ModelReference, model, speed: float, direction=None) -> ModelReference:
    """The overground equivalent of a treadmill motion at belt `speed` (m/s).

    Adds speed * t (t = `ref.time`, s) along the walking direction to the root's horizontal
    translation (free root qpos[0:2], i.e. MuJoCo x for a reference walking along +X; root slide
    joints by least squares), speed to the root's linear velocity, and speed * t to the GRF centre
    of pressure. Joint angles and forces are unchanged (a constant-velocity change of frame).

    Args:
        ref: the treadmill reference.
        model: LoadedModel or MjModel.
        speed: m/s belt speed (positive = belt moving backward under the subject).
        direction: (3,) or (2,) forward direction; default `walking_direction(ref, model)`.
    """
    m = _mj(model)
    speed = float(speed)
    if not np.isfinite(speed):
        raise InputError(f"belt speed must be a finite number (m/s), got {speed}", field="treadmill")
    root = _root(m)
    if not root.moves:
        raise InputError("converting a treadmill motion needs a model whose root translates (free joint or root "
                         "slides)", field="treadmill")
    d = walking_direction(ref, m) if direction is None else _horizontal_unit(
        np.r_[np.asarray(direction, float).reshape(-1)[:2], 0.0], "given direction")
    t = ref.time
    qpos, qvel = ref.qpos.copy(), ref.qvel.copy()
    for a, inc in root.translation_to_q(speed * t[:, None] * d).items():
        qpos[:, a] += inc
    for k, inc in root.velocity_to_v(np.tile(speed * d, (len(t), 1))).items():
        qvel[:, k] += inc
    cop = None if ref.cop is None else ref.cop + (speed * t[:, None, None] * d)  # NaN stays NaN
    meta = dict(ref.meta)
    tm = dict(meta.get("treadmill") or {})
    tm.update(converted=True, belt_speed=speed, direction=[float(x) for x in d])
    meta["treadmill"] = tm
    return dataclasses.replace(ref, qpos=qpos, qvel=qvel, cop=cop, meta=meta)


# ---------------------------------------------------------------------------------------------
# Periodic cycle
# ---------------------------------------------------------------------------------------------

MODES = ("auto", "stride", "mirror")

def mirror_name(name: str) -> str | None:
    """The bilateral partner of a name with an _r/_l (or r_/l_, _r_/_l_) side tag, else None."""
    for pat, rep in ((r"_r$", "_l"), (r"_l$", "_r"), (r"^r_", "l_"), (r"^l_", "r_"), (r"_r_", "_l_"),
                     (r"_l_", "_r_")):
        if re.search(pat, name):
            return re.sub(pat, rep, name, count=1)
    return None


def _peak_times(time: np.ndarray, x: np.ndarray, min_distance_s: float) -> np.ndarray:
    """s, interior local maxima of x (T,) at least `min_distance_s` apart and standing out by a fifth
    of the signal's range, refined by a parabola through the peak sample and its neighbours."""
    from scipy.signal import find_peaks

    dt = float(np.median(np.diff(time)))
    lo, hi = np.percentile(x, [2, 98])
    pk, _ = find_peaks(x, distance=max(1, int(round(min_distance_s / dt))), prominence=0.2 * (hi - lo) or None)
    out = []
    for k in pk:
        a, b, c = x[k - 1], x[k], x[k + 1]
        den = a - 2 * b + c
        off = 0.5 * (a - c) / den if den < 0 else 0.0
        out.append(time[k] + np.clip(off, -0.5, 0.5) * (time[k + 1] - time[k - 1]) / 2)
    return np.array(out, float)


def foot_kinematic_events(ref: ModelReference, model, min_stance_s: float = MIN_STANCE_S,
                          min_swing_s: float = MIN_SWING_S, kin: _Kin | None = None) -> dict:
    """Heel strikes and toe-offs per foot from the feet's positions relative to the pelvis (Zeni et al.
    2008, Gait & Posture 27: 710): heel strike = the rear foot's most forward position along the
    walking direction, toe-off = the toes' most backward one (parabolic sub-frame refinement).

    Needs neither a GRF nor a foot that reaches the ground, so it also works when the model's feet
    hover above the floor (subject and model differ in size) or on a treadmill. Heel strikes agree
    with the GRF to a frame or two on the shared walking and running trials; toe-offs less well in
    running.

    Returns:
        {'r': {'heel_strike': (n,) s, 'toe_off': (m,) s}, 'l': {...}}, times from frame 0.
    """
    m = _mj(model)
    kin = kin or _kinematics(m, ref.qpos)
    d = _horizontal_unit(kin.heading.mean(0), "pelvis forward axis")
    gap = min_stance_s + min_swing_s
    out = {}
    for s in FEET:
        toes = kin.on_toes[s]
        rear = ~toes if (~toes).any() else np.ones_like(toes)
        front = toes if toes.any() else np.ones_like(toes)
        heel = (kin.geom_pos[s][:, rear].mean(1) - kin.pelvis) @ d
        toe = (kin.geom_pos[s][:, front].mean(1) - kin.pelvis) @ d
        out[s] = {"heel_strike": _peak_times(ref.time, heel, gap), "toe_off": _peak_times(ref.time, -toe, gap)}
    return out


@dataclasses.dataclass(frozen=True)
class _Mirror:
    """Bilateral mirror of a model state: scalar joints swapped with their _r/_l partner and signed,
    the free root reflected; `lat_body` (3,) is the body's lateral axis in the root frame and
    `offset` (m) the position of its symmetry plane along it."""

    q_src: np.ndarray  # (n,) qpos adr of each scalar joint's partner
    q_dst: np.ndarray  # (n,) qpos adr of the joint
    v_src: np.ndarray
    v_dst: np.ndarray
    sign: np.ndarray  # (n,)
    q0_src: np.ndarray
    q0_dst: np.ndarray
    act_perm: np.ndarray  # (nu,) actuator index of each actuator's partner
    lat_body: np.ndarray
    offset: float


def _mirror_map(model: mujoco.MjModel, root: _Root) -> _Mirror:
    from msdiversity.models.registry import scalar_joint_ids

    if root.free is None and not root.moves:
        raise InputError("bilateral mirroring needs a model whose root moves (a free root, or planar slides and a "
                         "hinge); give a motion with a full stride (mode='stride')", field="periodic")
    ball = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(model.njnt)
            if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_BALL]
    if ball:
        raise InputError(f"bilateral mirroring of ball joints is not supported ({', '.join(ball)})", field="periodic")
    d = mujoco.MjData(model)
    d.qpos[:] = model.qpos0
    if root.free is not None:
        a = root.free[1]
        d.qpos[a:a + 7] = [0, 0, 0, 1, 0, 0, 0]
    mujoco.mj_kinematics(model, d)
    rb = root.body
    r_root = d.xmat[rb].reshape(3, 3)
    pid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "pelvis")
    # lateral axis: OpenSim pelvis +Z (right) when there is a pelvis body, else MuJoCo-style root +Y (left)
    lat_w = d.xmat[pid].reshape(3, 3)[:, 2] if pid >= 0 else r_root[:, 1]
    lat = r_root.T @ lat_w
    lat /= np.linalg.norm(lat)
    sb = np.eye(3) - 2 * np.outer(lat, lat)

    names = {mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b): b for b in range(model.nbody)}
    mids = [(d.xpos[b] + d.xpos[names[p]]) / 2 for n, b in names.items()
            if n and (p := mirror_name(n)) in names and n < p]
    offset = float(np.mean([lat @ (r_root.T @ (x - d.xpos[rb])) for x in mids])) if mids else 0.0

    jids = scalar_joint_ids(model)
    jname = {j: mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in jids}
    by_name = {n: j for j, n in jname.items()}
    q_src, q_dst, v_src, v_dst, sign = [], [], [], [], []
    paired = 0
    for j in jids:
        pn = mirror_name(jname[j])
        k = by_name.get(pn, j) if pn else j
        paired += k != j
        aj, ak = r_root.T @ d.xaxis[j], r_root.T @ d.xaxis[k]
        dot = float(ak @ sb @ aj)
        if abs(dot) < 0.95:
            raise InputError(f"joint '{jname[j]}' and its mirror '{jname[k]}' have axes that are not mirror "
                             f"images (|cos| = {abs(dot):.2f}); cannot mirror the motion", field="periodic")
        hinge = model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE
        sign.append(-np.sign(dot) if hinge else np.sign(dot))
        q_src.append(model.jnt_qposadr[k])
        q_dst.append(model.jnt_qposadr[j])
        v_src.append(model.jnt_dofadr[k])
        v_dst.append(model.jnt_dofadr[j])
    if not paired:
        raise InputError("the model has no _r/_l joint pairs: cannot build the second half of a stride by mirroring",
                         field="periodic")
    act = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, i) or "" for i in range(model.nu)]
    aidx = {n: i for i, n in enumerate(act)}
    perm = np.array([aidx.get(mirror_name(n) or "", i) for i, n in enumerate(act)], int)
    q_src, q_dst = np.array(q_src, int), np.array(q_dst, int)
    return _Mirror(q_src, q_dst, np.array(v_src, int), np.array(v_dst, int), np.array(sign, float),
                   model.qpos0[q_src].copy(), model.qpos0[q_dst].copy(), perm, lat, offset)


def _quat_to_mat(q: np.ndarray) -> np.ndarray:
    r = np.zeros(9)
    mujoco.mju_quat2Mat(r, np.asarray(q, float) / np.linalg.norm(q))
    return r.reshape(3, 3)


def _mat_to_quat(r: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(r, float).reshape(9))
    return q


def _rotvec_to_quat(v: np.ndarray) -> np.ndarray:
    ang = float(np.linalg.norm(v))
    if ang < 1e-12:
        return np.array([1.0, 0, 0, 0])
    q = np.zeros(4)
    mujoco.mju_axisAngle2Quat(q, v / ang, ang)
    return q


def _quat_to_rotvec(q: np.ndarray) -> np.ndarray:
    v = np.zeros(3)
    mujoco.mju_quat2Vel(v, np.asarray(q, float) / np.linalg.norm(q), 1.0)
    return v


def _mat_to_rotvec(r: np.ndarray) -> np.ndarray:
    return _quat_to_rotvec(_mat_to_quat(r))


def _root_poses(model: mujoco.MjModel, root: _Root, qpos: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(world position (3,), rotation (3, 3))] of the root body at each frame of qpos (T, nq). A free root's
    position is its qpos translation; a planar root's is the sum of its slides (as `_Root.position`)."""
    pos = root.position(qpos)
    if root.free is not None:
        a = root.free[1]
        return [(p, _quat_to_mat(q[a + 3:a + 7])) for p, q in zip(pos, qpos)]
    d = mujoco.MjData(model)
    out = []
    for p, q in zip(pos, qpos):
        d.qpos[:] = q
        mujoco.mj_kinematics(model, d)
        out.append((p, d.xmat[root.body].reshape(3, 3).copy()))
    return out


class _State:
    """qpos/qvel frames with the mirror applied as one function (identity when `mirror` is None)."""

    def __init__(self, model, root: _Root, mirror: _Mirror | None, lat_w: np.ndarray | None, line_c: np.ndarray | None):
        self.model, self.root, self.mir = model, root, mirror
        self.S = None if lat_w is None else np.eye(3) - 2 * np.outer(lat_w, lat_w)
        self.c = line_c

    def q(self, q: np.ndarray) -> np.ndarray:
        """Mirrored qpos (nq,)."""
        if self.mir is None:
            return q.copy()
        m, out = self.mir, q.copy()
        out[m.q_dst] = m.q0_dst + m.sign * (q[m.q_src] - m.q0_src)
        if self.root.free is not None:
            a = self.root.free[1]
            r = _quat_to_mat(q[a + 3:a + 7])
            sb = np.eye(3) - 2 * np.outer(m.lat_body, m.lat_body)
            r2 = self.S @ r @ sb
            out[a:a + 3] = self.S @ (q[a:a + 3] - self.c) + self.c - 2 * m.offset * (r2 @ m.lat_body)
            out[a + 3:a + 7] = _mat_to_quat(r2)
        return out

    def v(self, v: np.ndarray) -> np.ndarray:
        """Mirrored qvel (nv,) (free root: linear S v, local angular -S_b w)."""
        if self.mir is None:
            return v.copy()
        m, out = self.mir, v.copy()
        out[m.v_dst] = m.sign * v[m.v_src]
        if self.root.free is not None:
            d = self.root.free[2]
            sb = np.eye(3) - 2 * np.outer(m.lat_body, m.lat_body)
            out[d:d + 3] = self.S @ v[d:d + 3]
            out[d + 3:d + 6] = -sb @ v[d + 3:d + 6]
        return out


def _scalar_adrs(model: mujoco.MjModel, root: _Root) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(qpos adr, dof adr, is_horizontal_root_slide) of every hinge/slide joint."""
    from msdiversity.models.registry import scalar_joint_ids

    jids = scalar_joint_ids(model)
    hs = {a for a, _, _ in root.horizontal_slides()}
    qa = np.array([model.jnt_qposadr[j] for j in jids], int)
    return qa, np.array([model.jnt_dofadr[j] for j in jids], int), np.array([a in hs for a in qa], bool)


def _h0(s):
    return s * (1 - s) ** 2


def _h1(s):
    return s * s * (s - 1)


def _correction(D: np.ndarray, v_end: np.ndarray, v0_mirrored: np.ndarray, Mv, Tc: float, s: np.ndarray):
    """(len(s), k) additive correction c(s) = s D + a h0(s) + b h1(s) that removes the position
    mismatch D at s = 1 and makes the velocity continuous across the seam(s):
    v_end - D/Tc - b/Tc = Mv(v0 - D/Tc - a/Tc), solved with the smallest (a, b)."""
    rhs = Tc * (v_end - v0_mirrored) - (D - Mv(D))
    a, b = -Mv(rhs) / 2, rhs / 2
    return s[:, None] * D + _h0(s)[:, None] * a + _h1(s)[:, None] * b


def _pick_cut(events: dict, mode: str, cycles: int, mirror_ok: bool, dt: float, T: int):
    """(kind, foot(s), t_start, t_end, n_cycles) of the first usable stretch, or None."""
    if mode in ("auto", "stride"):
        best = None
        for want in range(cycles, 0, -1):
            for s in FEET:
                hs = events[s]["heel_strike"]
                for k in range(len(hs) - want):
                    i0, i1 = int(round(hs[k] / dt)), int(round(hs[k + want] / dt))
                    if i1 <= T - 1 and i1 - i0 >= 4 and (best is None or hs[k] < best[2]):
                        best = ("stride", s, float(hs[k]), float(hs[k + want]), want)
            if best:
                return best
    if mode in ("auto", "mirror") and mirror_ok:
        best = None
        for s, o in (("r", "l"), ("l", "r")):
            for h in events[s]["heel_strike"]:
                nxt = events[o]["heel_strike"][events[o]["heel_strike"] > h]
                if len(nxt):
                    i0, i1 = int(round(h / dt)), int(round(nxt[0] / dt))
                    if i1 <= T - 1 and i1 - i0 >= 2 and (best is None or h < best[2]):
                        best = ("mirror", f"{s}->{o}", float(h), float(nxt[0]), 1)
        return best
    return None


def _event_sources(ref: ModelReference, m, kin_fn):
    """Yield (name, events): from the GRF (when loaded at all), then from the foot kinematics (when the
    model has foot geoms), computed only when asked for."""
    if ref.grf is not None and np.nanmax(ref.grf[:, :, 2]) > 20.0:
        yield "grf", gait_events(np.nan_to_num(ref.grf), ref.dt)
    try:
        kin = kin_fn()
    except InputError:
        return
    yield "foot kinematics", foot_kinematic_events(ref, m, kin=kin)


def periodic_cycle(ref: ModelReference, model, cycles: int = 1, mode: str = "auto") -> ModelReference:
    """One loopable gait cycle cut from `ref`: frames 0..N-1, where frame N (the one after N-1) equals
    frame 0 with the root translated by the returned reference's `cycle_shift`.

    Cut (mode):
      - 'stride': [hs_k, hs_{k+cycles}) between heel strikes of the same foot (the earliest; fewer
        strides, with a warning, when `cycles` are not available);
      - 'mirror': a half stride (heel strike of one foot to the next of the other) and its bilateral
        mirror image (joint values swapped between _r/_l partners with the signs their axes imply,
        the free root reflected about the walking line, which negates pelvis list and rotation and the
        lateral offset; GRF feet swapped, lateral GRF negated; EMG/excitation columns swapped);
      - 'auto': 'stride' if possible, else 'mirror' if the model is bilaterally symmetric.
      Heel strikes come from the GRF (`gait_events`) and, when that gives no usable stretch, from the
      foot kinematics (`foot_kinematic_events`).

    Seam: the end-to-start mismatch D of every hinge/slide joint, the root height and the root
    orientation (world rotation vector) is removed by c(s) = s D + a s(1-s)^2 + b s^2(s-1), s = i/N:
    a linear ramp plus the smallest cubic terms that also make the velocity continuous across the
    seam(s). The root's horizontal translation is kept; `cycle_shift` = its change over the cycle
    (z = 0). qvel is recomputed by periodic central differences (`mj_differentiatePos`, right for
    the free joint's quaternion). Non-root ball joints are left as cut.

    Args:
        ref: reference on a model with foot contact geoms (or a GRF).
        model: LoadedModel or MjModel.
        cycles: strides to keep (>= 1).
        mode: 'auto', 'stride' or 'mirror'.

    Returns:
        ModelReference with `cycle_shift` set and meta['periodic'] describing the cut and the seam.

    Raises:
        InputError: bad mode/cycles, or the motion holds no complete gait cycle.
    """
    from msdiversity.motions.opensim import MotionWarning

    if mode not in MODES:
        raise InputError(f"periodic mode must be one of {', '.join(MODES)}, got {mode!r}", field="mode")
    if not isinstance(cycles, (int, np.integer)) or isinstance(cycles, bool) or cycles < 1:
        raise InputError(f"cycles must be an integer >= 1, got {cycles!r}", field="cycles")
    m = _mj(model)
    root = _root(m)
    T, dt = ref.n_frames, float(ref.dt)
    kin_cache: list[_Kin] = []

    def kin_fn() -> _Kin:
        if not kin_cache:
            kin_cache.append(_kinematics(m, ref.qpos))
        return kin_cache[0]

    mir, mirror_err = None, ""
    if mode != "stride":
        try:
            mir = _mirror_map(m, root)
        except InputError as e:
            mirror_err = e.reason
    mirror_ok = mir is not None
    sources: list[tuple[str, dict]] = []
    cut, src = None, None
    for name, ev in _event_sources(ref, m, kin_fn):
        sources.append((name, ev))
        cut = _pick_cut(ev, "stride" if mode == "auto" else mode, cycles, mirror_ok, dt, T)
        if cut:
            src = name
            break
    if cut is None and mode == "auto":
        for name, ev in sources:
            cut = _pick_cut(ev, "mirror", cycles, mirror_ok, dt, T)
            if cut:
                src = name
                break
    if not sources:
        raise InputError("the motion holds no complete gait cycle: it has no GRF and the model has no foot contact "
                         "geoms to find heel strikes from", field="periodic")
    if cut is None:
        found = "; ".join(f"{n}: " + ", ".join(f"{s} heel strikes at {np.round(ev[s]['heel_strike'], 3).tolist()} s"
                                               for s in FEET) for n, ev in sources)
        need = {"stride": "two heel strikes of the same foot",
                "mirror": "a heel strike of each foot"
                          + ("" if mirror_ok else f" and a mirrorable model ({mirror_err})"),
                "auto": "two heel strikes of the same foot, or one of each foot on a model with _r/_l joint pairs"
                        + ("" if mirror_ok else f" ({mirror_err})")}[mode]
        raise InputError(f"the motion holds no complete gait cycle (need {need}; found {found})", field="periodic")
    kind, foot, t_a, t_b, n_cyc = cut
    if n_cyc < cycles:
        warnings.warn(f"periodic cycle: only {n_cyc} complete stride(s) in the motion, {cycles} requested",
                      MotionWarning, stacklevel=2)
    i0, i1 = int(round(t_a / dt)), int(round(t_b / dt))
    Nc = i1 - i0  # frames of the corrected stretch (a stride, or a half stride when mirroring)
    Tc = Nc * dt
    qseg = ref.qpos[i0:i1 + 1].copy()  # (Nc + 1, nq), last = the frame after the stretch
    qvel = ref.qvel
    pos = root.position(ref.qpos[[i0, i1]])  # (2, 3)

    # ---- walking line and mirror ----
    mirror = None
    if kind == "mirror":
        disp = pos[1] - pos[0]
        # the walking line bisects the pelvis headings at the two heel strikes (mirror images of each
        # other in a symmetric gait; the half stride's displacement includes the sway toward the new
        # stance foot, and a mean over a non-whole number of strides is biased by the pelvis rotation)
        hd = kin_fn().heading
        dwalk = _horizontal_unit(_horizontal_unit(hd[i0], "pelvis forward axis")
                                 + _horizontal_unit(hd[i1], "pelvis forward axis"), "pelvis forward axis")
        lat_w = np.array([-dwalk[1], dwalk[0], 0.0])
        # walking line half way (laterally) between the mid-sagittal points at the two heel strikes
        mids = [p + r @ (mir.offset * mir.lat_body) for p, r in _root_poses(m, root, ref.qpos[[i0, i1]])]
        c = lat_w * (lat_w @ (mids[0] + mids[1]) / 2)
        mirror = _State(m, root, mir, lat_w, c)
        h_vec = dwalk * (dwalk @ disp)
    st = mirror or _State(m, root, None, None, None)

    # ---- targets for the frame after the stretch ----
    target_q = st.q(qseg[0])
    if kind == "mirror":
        for adr, inc in root.translation_to_q(h_vec[None]).items():
            target_q[adr] += inc[0]
        shift = 2 * h_vec
    else:
        shift = pos[1] - pos[0]
        shift[2] = 0.0
        for adr, inc in root.translation_to_q(shift[None]).items():
            target_q[adr] += inc[0]
    target_v = st.v(qvel[i0])
    s = np.arange(Nc + 1) / Nc
    qa, va, hslide = _scalar_adrs(m, root)
    D_raw = qseg[-1, qa] - target_q[qa]
    D = np.where(hslide, 0.0, D_raw)
    if mirror is not None:
        mm = mirror.mir
        # signed permutation on the scalar-joint vector (order of qa)
        pos_of = {int(x): i for i, x in enumerate(qa)}
        src_idx = np.array([pos_of[int(x)] for x in mm.q_src])
        dst_idx = np.array([pos_of[int(x)] for x in mm.q_dst])

        def Mj(x):
            y = x.copy()
            y[dst_idx] = mm.sign * x[src_idx]
            return y
    else:
        def Mj(x):
            return x
    corr = _correction(D, qvel[i1, va], target_v[va], Mj, Tc, s)
    qseg[:, qa] -= corr
    seam_before = {}
    sj = _scalar_joints(m)
    hinge_q = np.array([m.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE for j in sj], bool)
    mask = np.asarray(ref.joint_mask, bool)
    pick = hinge_q & mask if mask.shape == hinge_q.shape and (hinge_q & mask).any() else hinge_q
    if pick.any():
        k = int(np.argmax(np.abs(D_raw) * pick))
        seam_before["joint_max_deg"] = float(np.rad2deg(abs(D_raw[k])))
        seam_before["joint"] = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, sj[k])
        if seam_before["joint_max_deg"] > 15.0:
            warnings.warn(f"periodic cycle: the cut t = {t_a:.3f} .. {t_b:.3f} s is far from periodic "
                          f"({seam_before['joint']} differs by {seam_before['joint_max_deg']:.1f} deg at the seam; "
                          "the correction spreads that over the cycle)", MotionWarning, stacklevel=2)
    if root.free is not None:
        a, dv = root.free[1], root.free[2]
        S_lin = (lambda x: mirror.S @ x) if mirror is not None else (lambda x: x)
        S_ang = (lambda x: -mirror.S @ x) if mirror is not None else (lambda x: x)
        # translation: mismatch against the target (horizontal part is zero by construction for strides)
        Dp = qseg[-1, a:a + 3] - target_q[a:a + 3]
        qseg[:, a:a + 3] -= _correction(Dp, qvel[i1, dv:dv + 3], target_v[dv:dv + 3], S_lin, Tc, s)
        # orientation: world rotation-vector mismatch and world angular velocities
        r_end, r_tgt = _quat_to_mat(qseg[-1, a + 3:a + 7]), _quat_to_mat(target_q[a + 3:a + 7])
        Dr = _mat_to_rotvec(r_end @ r_tgt.T)
        w_end = r_end @ qvel[i1, dv + 3:dv + 6]
        w_tgt = r_tgt @ target_v[dv + 3:dv + 6]
        cr = _correction(Dr, w_end, w_tgt, S_ang, Tc, s)
        for i in range(Nc + 1):
            qn = np.zeros(4)
            mujoco.mju_mulQuat(qn, _rotvec_to_quat(-cr[i]), qseg[i, a + 3:a + 7] / np.linalg.norm(qseg[i, a + 3:a + 7]))
            qseg[i, a + 3:a + 7] = qn
        seam_before["root_height_cm"] = float(abs(Dp[2]) * 100)
        seam_before["root_rotation_deg"] = float(np.rad2deg(np.linalg.norm(Dr)))
        seam_before["root_horizontal_cm"] = float(np.hypot(Dp[0], Dp[1]) * 100)

    # ---- assemble the cycle ----
    first = qseg[:Nc]
    others = {k: None if getattr(ref, k) is None else getattr(ref, k)[i0:i1] for k in
              ("grf", "cop", "excitation", "activation", "emg")}
    if kind == "mirror":
        mm = mirror.mir
        second = np.stack([mirror.q(q) for q in first])
        for adr, inc in root.translation_to_q(h_vec[None]).items():
            second[:, adr] += inc[0]
        cyc = np.concatenate([first, second])
        S = mirror.S
        for k in ("excitation", "activation", "emg"):
            if others[k] is not None:
                others[k] = np.concatenate([others[k], others[k][:, mm.act_perm]])
        if others["grf"] is not None:
            g2 = others["grf"][:, ::-1] @ S.T
            others["grf"] = np.concatenate([others["grf"], g2])
        if others["cop"] is not None:
            c2 = (others["cop"][:, ::-1] - mirror.c) @ S.T + mirror.c + h_vec
            others["cop"] = np.concatenate([others["cop"], c2])
    else:
        cyc = first
    N = len(cyc)
    if mask.shape == hinge_q.shape:  # joints coupled to tracked ones through equality constraints follow them
        from msdiversity.motions.mapping import _fill_coupled

        _fill_coupled(m, cyc, {int(j) for j, tr in zip(sj, mask) if tr})
    # quaternion sign continuity
    if root.free is not None:
        a = root.free[1]
        for i in range(1, N):
            if cyc[i, a + 3:a + 7] @ cyc[i - 1, a + 3:a + 7] < 0:
                cyc[i, a + 3:a + 7] *= -1
    dq = np.zeros(m.nq)
    for adr, inc in root.translation_to_q(shift[None]).items():
        dq[adr] = inc[0]
    qv = periodic_qvel(m, cyc, dt, dq)
    cycle_shift = root.position(dq[None])[0] if root.free is None else shift.copy()
    cycle_shift[2] = 0.0

    jump = seam_jump_deg(m, cyc, dq)
    meta = dict(ref.meta)
    meta["periodic"] = {
        "mode": kind, "foot": foot, "events_from": src, "t_start": t_a, "t_end": t_b,
        "t0": float(ref.meta.get("t0", 0.0)),
        "source_frames": [i0, i1], "cycles": n_cyc, "n_frames": N,
        "period_s": N * dt, "cycle_shift": [float(x) for x in cycle_shift],
        "seam_mismatch_before": seam_before, "seam_jump_deg": jump,
    }
    return dataclasses.replace(ref, qpos=cyc, qvel=qv, cycle_shift=cycle_shift, meta=meta, **others)


def _scalar_joints(model: mujoco.MjModel) -> list[int]:
    from msdiversity.models.registry import scalar_joint_ids

    return list(scalar_joint_ids(model))


def periodic_qvel(model, qpos: np.ndarray, dt: float, delta_q: np.ndarray | None = None) -> np.ndarray:
    """(N, nv) central differences of a periodic qpos (N, nq) with `mj_differentiatePos`: the frame
    before 0 is frame N-1 minus `delta_q` (nq,), the one after N-1 is frame 0 plus `delta_q` (the
    per-cycle root translation; zeros elsewhere)."""
    m = _mj(model)
    N = len(qpos)
    dq = np.zeros(m.nq) if delta_q is None else np.asarray(delta_q, float)
    ext = np.concatenate([qpos[-1:] - dq, qpos, qpos[:1] + dq])
    out = np.zeros((N, m.nv))
    for i in range(N):
        mujoco.mj_differentiatePos(m, out[i], 2 * dt, ext[i], ext[i + 2])
    return out


def seam_jump_deg(model, qpos: np.ndarray, delta_q: np.ndarray | None = None) -> dict:
    """Continuity of a periodic qpos (N, nq) at its wrap, over hinge joints (deg).

    Returns {'seam': max |q_0 - (2 q_{N-1} - q_{N-2})| (the wrapped frame's departure from a linear
    extrapolation: 0 for a smooth wrap), 'interior': the same second difference's max over the other
    frames (what smooth motion itself gives), 'step': max |q_0 - q_{N-1}| (the raw frame-to-frame
    step at the seam), 'interior_step': max interior step}."""
    m = _mj(model)
    dq = np.zeros(m.nq) if delta_q is None else np.asarray(delta_q, float)
    hinge = [m.jnt_qposadr[j] for j in _scalar_joints(m) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE]
    if not hinge or len(qpos) < 3:
        return {"seam": 0.0, "interior": 0.0, "step": 0.0, "interior_step": 0.0}
    q = np.concatenate([qpos, qpos[:2] + dq])[:, hinge]  # (N + 2, J)
    d2 = np.abs(q[2:] - 2 * q[1:-1] + q[:-2])  # second difference centred on frames 1..N
    d1 = np.abs(np.diff(q, axis=0))  # steps 0->1 .. N->N+1
    N = len(qpos)
    # centred on frame N-1 (index N-2) and N (= frame 0 wrapped, index N-1) involve the seam
    seam = max(d2[N - 2].max(), d2[N - 1].max())
    interior = d2[: N - 2].max() if N > 2 else 0.0
    return {"seam": float(np.rad2deg(seam)), "interior": float(np.rad2deg(interior)),
            "step": float(np.rad2deg(d1[N - 1].max())), "interior_step": float(np.rad2deg(d1[: N - 1].max()))}


# ---------------------------------------------------------------------------------------------
# The [motion] options in one call
# ---------------------------------------------------------------------------------------------

def parse_treadmill(treadmill) -> str | float:
    """'auto', 'off' or a belt speed in m/s (float >= 0) from a `[motion] treadmill` value."""
    if isinstance(treadmill, bool):
        raise InputError(f"expected 'auto', 'off' or a belt speed in m/s, got {treadmill!r}", field="motion.treadmill")
    if isinstance(treadmill, (int, float)):
        if not np.isfinite(treadmill) or treadmill < 0:
            raise InputError(f"belt speed must be a finite number >= 0 m/s, got {treadmill!r}",
                             field="motion.treadmill")
        return float(treadmill)
    if isinstance(treadmill, str):
        s = treadmill.strip().lower()
        if s in ("auto", "off"):
            return s
        try:
            return parse_treadmill(float(s))
        except ValueError:
            pass
    raise InputError(f"expected 'auto', 'off' or a belt speed in m/s, got {treadmill!r}", field="motion.treadmill")


def ground_stance(ref: ModelReference, model, cutoff_hz: float = 6.0) -> tuple[ModelReference, dict]:
    """Move the root vertically, frame by frame, so that the loaded foot stands on the ground.

    After mapping, one constant shift puts the lowest foot point of the whole motion on the ground
    (`map_to_model`); between subject and model feet and through IK error the loaded foot then
    hovers up to a few cm on other frames, where the simulated model gets no ground reaction at the
    reference state. On every frame where a foot is loaded (GRF > max(20 N, 20 % of its peak); the
    lower foot without a GRF) the root height is corrected by the lowest loaded foot's height above
    the ground; frames without a loaded foot (flight) are interpolated; the correction is low-passed
    (zero-lag Butterworth, `cutoff_hz`) so no jerk is introduced. qvel is corrected accordingly.

    Returns:
        (reference, info {'mean_cm', 'max_cm', 'frames'}); unchanged when the root has no vertical
        freedom or no foot geoms.
    """
    from msdiversity.models.registry import ground_height

    m = _mj(model)
    root = _root(m)
    if root.free is not None:
        za, zd = root.free[1] + 2, root.free[2] + 2
    else:
        vert = [(a, d) for a, d, ax in root.slides if abs(ax[2]) > 0.5]
        if not vert:
            return ref, {}
        za, zd = vert[0]
    if not any(_foot_geom_ids(m).values()):
        return ref, {}
    kin = _kinematics(m, ref.qpos)
    lows = np.stack([kin.low(f) for f in FEET], 1) - ground_height(m)  # (T, 2) m above the ground
    if ref.grf is not None:
        fz = np.nan_to_num(ref.grf[:, :, 2])
        loaded = fz > np.maximum(20.0, 0.2 * fz.max(0))
    else:
        loaded = lows == lows.min(1, keepdims=True)
    has = loaded.any(1)
    if has.sum() < 2:
        return ref, {}
    err = np.where(loaded, lows, np.inf).min(1)  # (T,) lowest loaded foot above the ground
    t = np.arange(len(err))
    err = np.interp(t, t[has], err[has])
    if len(err) > 12 and cutoff_hz > 0 and cutoff_hz < 0.5 / ref.dt:
        from scipy.signal import butter, filtfilt

        b_, a_ = butter(2, cutoff_hz * 2.0 * ref.dt)
        err = filtfilt(b_, a_, err, padlen=min(3 * max(len(a_), len(b_)), len(err) - 1))
    qpos, qvel = ref.qpos.copy(), ref.qvel.copy()
    sign = 1.0 if root.free is not None else float(np.sign([ax[2] for a, d, ax in root.slides if a == za][0]))
    qpos[:, za] -= sign * err
    qvel[:, zd] -= sign * np.gradient(err, ref.dt)
    info = {"mean_cm": float(100 * np.abs(err).mean()), "max_cm": float(100 * np.abs(err).max()),
            "frames": int(has.sum())}
    return dataclasses.replace(ref, qpos=qpos, qvel=qvel, meta=dict(ref.meta, ground_stance=info)), info


def apply_gait_options(ref: ModelReference, model, treadmill="auto", periodic: bool = False,
                       cycles: int = 1, mode: str = "auto") -> tuple[ModelReference, list[str]]:
    """Apply `[motion] treadmill`, `periodic`, `cycles`: treadmill conversion first, then the cycle.

    Args:
        treadmill: 'auto' (detect with `detect_treadmill`, convert when it is a treadmill trial;
            skipped for models without a translating root or feet, or references whose root is not
            tracked), 'off', or a belt speed in m/s (convert at that speed).
        periodic: cut one loopable cycle (`periodic_cycle`, `cycles` strides, `mode`).

    Returns:
        (reference, notes): notes are one line per decision (also stored in meta['treadmill'] and
        meta['periodic']).
    """
    m = _mj(model)
    tm = parse_treadmill(treadmill)
    notes: list[str] = []
    root = _root(m)
    if ref.cycle_shift is not None and tm != "off":
        notes.append("treadmill: not checked (the reference is already one periodic cycle)")
    elif tm == "auto":
        if not root.moves or ref.meta.get("root_tracked") is False:
            notes.append("treadmill: not checked (the model's root does not translate or the motion does not "
                         "drive it)")
        else:
            try:
                det = detect_treadmill(ref, m)
            except InputError as e:
                notes.append(f"treadmill: not checked ({e.reason})")
            else:
                meta = dict(ref.meta, treadmill=dict(det.to_dict(), converted=False))
                ref = dataclasses.replace(ref, meta=meta)
                if det.is_treadmill:
                    ref = to_overground(ref, m, det.speed, det.belt_direction)
                    notes.append(f"{det.summary_line()} -> converted to overground")
                else:
                    notes.append(det.summary_line())
    elif tm != "off":
        ref = to_overground(ref, m, tm)
        ref.meta["treadmill"]["source"] = "given"
        notes.append(f"treadmill: converted to overground at the given belt speed {tm:.2f} m/s")
    if (ref.grf is not None and root.moves and ref.meta.get("root_tracked") is not False
            and "ground_stance" not in ref.meta):  # once: a second pass would only re-measure ~0
        ref, gs = ground_stance(ref, m)
        if gs:
            notes.append(f"stance feet on the ground: root height corrected by {gs['mean_cm']:.1f} cm on average "
                         f"(max {gs['max_cm']:.1f} cm) over {gs['frames']} loaded frames")
    if not isinstance(periodic, bool):
        raise InputError(f"expected true or false, got {periodic!r}", field="motion.periodic")
    if periodic and ref.cycle_shift is not None:
        notes.append("periodic: the reference is already one periodic cycle; kept as it is")
    elif periodic:
        ref = periodic_cycle(ref, m, cycles=cycles, mode=mode)
        p = ref.meta["periodic"]
        what = (f"{p['cycles']} stride(s) between {p['foot']} heel strikes" if p["mode"] == "stride" else
                f"half stride between heel strikes {p['foot']}, mirrored")
        notes.append(f"periodic: {what} (from the {p['events_from']}) at t = {p['t0'] + p['t_start']:.3f} .. "
                     f"{p['t0'] + p['t_end']:.3f} s -> {p['n_frames']} frames = {p['period_s']:.3f} s, "
                     f"shift {np.round(p['cycle_shift'], 3).tolist()} m, seam mismatch removed "
                     f"{p['seam_mismatch_before'].get('joint_max_deg', 0):.1f} deg "
                     f"({p['seam_mismatch_before'].get('joint', '-')})")
    return ref, notes
