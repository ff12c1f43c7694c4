"""Preparation shared by every analysis: masking dead frames, units, time normalisation.

Time normalisation: the recording spans one reference motion (one gait cycle or one movement), so
phase 0..100 % maps linearly onto [time[0], time[-1]] and each signal is linearly interpolated onto
101 samples. Frames after early termination (`alive` False) are NaN and stay NaN after
interpolation (a phase sample is NaN when either neighbouring frame is).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import xarray as xr

from msdiversity.errors import InputError

N_PHASE = 101


def phase_grid(time: np.ndarray, n: int = N_PHASE) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Phase samples (%), their times (s), and linear-interpolation indices/weights into `time`.

    Returns:
        phase (n,) %, phase_time (n,) s, i0 (n,) int, w (n,) float: value = v[i0] (1 - w) + v[i0 + 1] w.
    """
    time = np.asarray(time, float)
    phase = np.linspace(0.0, 100.0, n)
    pt = time[0] + (time[-1] - time[0]) * phase / 100.0
    i0 = np.clip(np.searchsorted(time, pt, side="right") - 1, 0, max(len(time) - 2, 0))
    if len(time) < 2:
        return phase, pt, np.zeros(n, int), np.zeros(n)
    w = np.clip((pt - time[i0]) / (time[i0 + 1] - time[i0]), 0.0, 1.0)
    return phase, pt, i0, w


def to_phase(a: np.ndarray, time: np.ndarray, axis: int, n: int = N_PHASE) -> np.ndarray:
    """Linearly interpolate array `a` along `axis` (the time axis) onto n phase samples."""
    _, _, i0, w = phase_grid(time, n)
    if a.shape[axis] < 2:
        return np.repeat(a, n, axis=axis)
    shape = [1] * a.ndim
    shape[axis] = n
    w = w.reshape(shape)
    return np.take(a, i0, axis=axis) * (1 - w) + np.take(a, i0 + 1, axis=axis) * w


def body_weight_n(rec: xr.Dataset) -> float:
    """m g in N from attrs `body_mass_kg` and `gravity` (scalar or 3-vector; default 9.81)."""
    mass = rec.attrs.get("body_mass_kg")
    if mass is None or not np.isfinite(float(mass)) or float(mass) <= 0:
        raise InputError("recording attrs lack a positive 'body_mass_kg' (needed for GRF in % body weight)",
                         field="body_mass_kg")
    g = rec.attrs.get("gravity", 9.81)
    if isinstance(g, str):
        g = json.loads(g)
    g = float(np.linalg.norm(np.atleast_1d(np.asarray(g, float))))
    return float(mass) * (g if g > 0 else 9.81)


def joint_is_rotation(rec: xr.Dataset) -> np.ndarray:
    """(joint,) bool: rotational (hinge) joints. From coord `joint_is_rotation`, else the model's
    joint types when the model loads, else all True."""
    if "joint_is_rotation" in rec.coords or "joint_is_rotation" in rec:
        return np.asarray(rec["joint_is_rotation"].values, bool)
    names = [str(j) for j in rec["joint"].values]
    try:
        import mujoco

        from msdiversity.models import load_model

        m = load_model(rec.attrs["model"]).model
        out = []
        for n in names:
            jid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)
            out.append(jid < 0 or m.jnt_type[jid] == mujoco.mjtJoint.mjJNT_HINGE)
        return np.array(out, bool)
    except Exception:
        return np.ones(len(names), bool)


def wrap_to_reference(q: np.ndarray, qref: np.ndarray, is_rot: np.ndarray) -> np.ndarray:
    """Hinge angles (rad) moved by whole turns to within ±pi of the reference: q and q ± 2 pi are the
    same pose, so errors and distances must not count the turn. q (..., T, J), qref (T, J)."""
    d = q - qref
    wrapped = qref + (d + np.pi) % (2 * np.pi) - np.pi
    return np.where(np.asarray(is_rot, bool), wrapped, q)


REQUIRED = {"activation": ("member", "trial", "time", "muscle"), "qpos": ("member", "trial", "time", "joint"),
            "qpos_ref": ("time", "joint")}


@dataclasses.dataclass
class Prepared:
    """Arrays the analyses use, all NaN where a member was not alive.

    Shapes: M members, K1 trials, T frames, P = 101 phase samples, NM muscles, J joints.
    """

    time: np.ndarray  # (T,) s
    phase: np.ndarray  # (P,) %
    phase_time: np.ndarray  # (P,) s
    act_t: np.ndarray  # (M, K1, T, NM) activation, 1
    act: np.ndarray  # (M, K1, P, NM) activation, 1
    kin: np.ndarray  # (M, K1, P, Jx) tracked joints: deg (hinge) / cm (slide)
    kin_ref: np.ndarray  # (P, Jx) same units
    kin_names: list[str]
    kin_rot: np.ndarray  # (Jx,) bool: column of `kin` is a hinge (deg); False = slide (cm)
    grf: np.ndarray | None  # (M, K1, P, 2, 3) % body weight
    grf_ref: np.ndarray | None  # (P, 2, 3) % body weight, or None
    is_rot: np.ndarray  # (J,) bool
    tracked: np.ndarray  # (J,) bool
    bw: float | None  # body weight N
    phase_note: str = "time-normalised over the recording (0-100 %)"  # or % gait cycle (analysis.gaitcycle)
    cycles: object = None  # analysis.gaitcycle.GaitCycles when phase is % gait cycle


def check_recording(rec: xr.Dataset) -> None:
    """Raise InputError naming the first missing variable / wrong dims."""
    src = rec.encoding.get("source", "recording")
    for name, dims in REQUIRED.items():
        if name not in rec:
            raise InputError(f"recording lacks variable '{name}' with dims {dims}", path=src, field=name)
        if tuple(rec[name].dims) != dims:
            raise InputError(f"expected dims {dims}, got {tuple(rec[name].dims)}", path=src, field=name)
    if rec.sizes["member"] < 2:
        raise InputError(f"need at least 2 members to analyse diversity, got {rec.sizes['member']}",
                         path=src, field="member")
    if rec.sizes["time"] < 2:
        raise InputError("need at least 2 time frames", path=src, field="time")


def prepare(rec: xr.Dataset, n_phase: int = N_PHASE) -> Prepared:
    check_recording(rec)
    time = np.asarray(rec["time"].values, float)
    alive = np.asarray(rec["alive"].values, bool) if "alive" in rec else np.ones(rec["activation"].shape[:3], bool)
    dead = ~alive[..., None]  # (M, K1, T, 1)
    act_t = np.where(dead, np.nan, np.asarray(rec["activation"].values))
    phase, pt, _, _ = phase_grid(time, n_phase)
    from msdiversity.analysis.gaitcycle import phase_normaliser  # % gait cycle when the reference GRF has cycles

    norm, phase_note, cycles = phase_normaliser(rec, time, n_phase)
    if cycles is not None:  # phase_time: the first cycle's times
        pt = cycles.windows[0, 0] + (cycles.windows[0, 1] - cycles.windows[0, 0]) * phase / 100.0
    is_rot = joint_is_rotation(rec)
    tracked = (np.asarray(rec["tracked_joint"].values, bool) if "tracked_joint" in rec.coords or "tracked_joint" in rec
               else np.ones(rec.sizes["joint"], bool))
    scale = np.where(is_rot, 180.0 / np.pi, 100.0)[tracked]  # deg for hinges, cm for slides
    qref_rad = np.asarray(rec["qpos_ref"].values, float)
    q = wrap_to_reference(np.where(dead, np.nan, np.asarray(rec["qpos"].values, float)), qref_rad, is_rot)
    q = q[..., tracked] * scale
    qref = qref_rad[:, tracked] * scale
    grf = grf_ref = bw = None
    if "grf" in rec:
        bw = body_weight_n(rec)
        g = np.where(dead[..., None], np.nan, np.asarray(rec["grf"].values, float)) / bw * 100.0
        grf = norm(g, 2)
        if "grf_ref" in rec and np.all(np.isfinite(rec["grf_ref"].values)):
            grf_ref = norm(np.asarray(rec["grf_ref"].values, float) / bw * 100.0, 0)
    return Prepared(time=time, phase=phase, phase_time=pt, act_t=act_t, act=norm(act_t, 2),
                    kin=norm(q, 2), kin_ref=norm(qref, 0),
                    kin_names=[str(j) for j, t in zip(rec["joint"].values, tracked) if t], kin_rot=is_rot[tracked],
                    grf=grf, grf_ref=grf_ref, is_rot=is_rot, tracked=tracked, bw=bw, phase_note=phase_note,
                    cycles=cycles)
