"""Reference-motion data types: what a motion file says (`ReferenceMotion`) and what the emulator
consumes once it is mapped onto a model (`ModelReference`).

Both are frozen dataclasses of numpy arrays with named axes, and both convert to and from an
`xarray.Dataset` and save/load as netCDF (h5netcdf engine, written atomically).

Frames and units (SI; angles in radians):
- `ReferenceMotion.coords` keep the source's coordinate convention (OpenSim names and, for the
  pelvis translations, OpenSim's Y-up ground frame); `map_to_model` converts to the model.
- `GRF` arrays are always in the MuJoCo world frame (Z up). `read_grf` converts OpenSim's Y-up
  ground frame on reading (see `msdiversity.motions.opensim.OPENSIM_TO_MUJOCO`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from msdiversity.errors import InputError
from msdiversity.util.io import save_dataset_atomic

FEET = ("r", "l")
AXES = ("x", "y", "z")


def _json_default(o: Any):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def _meta_to_attr(meta: dict) -> str:
    return json.dumps(meta, default=_json_default, sort_keys=True)


def _attr_to_meta(s: str | None) -> dict:
    return json.loads(s) if s else {}


def _resample_time(time: np.ndarray, rate_hz: float) -> np.ndarray:
    """Uniform grid from time[0] at `rate_hz`, not extrapolating past time[-1] (1e-9 s slack)."""
    if not rate_hz > 0:
        raise InputError(f"resampling rate must be > 0 Hz, got {rate_hz}", field="rate")
    n = int(np.floor((time[-1] - time[0]) * rate_hz + 1e-6)) + 1
    return time[0] + np.arange(n) / rate_hz


def _interp_linear(t_new: np.ndarray, t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Linear interpolation of y (T, ...) along axis 0 (keeps bounds such as [0, 1] and NaN holes)."""
    flat = y.reshape(len(t), -1)
    out = np.stack([np.interp(t_new, t, flat[:, j]) for j in range(flat.shape[1])], axis=1) \
        if flat.shape[1] else np.zeros((len(t_new), 0))
    return out.reshape((len(t_new),) + y.shape[1:])


def _interp_smooth(t_new: np.ndarray, t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cubic-spline interpolation (C2, so derived velocities stay smooth); linear below 4 samples."""
    if len(t) < 4:
        return _interp_linear(t_new, t, y)
    from scipy.interpolate import CubicSpline

    return CubicSpline(t, y, axis=0)(t_new)


@dataclasses.dataclass(frozen=True)
class GRF:
    """Ground reaction force per foot, sampled on the owning motion's time axis.

    Attributes:
        force: (T, feet, 3) N, force the ground exerts on the foot, MuJoCo world frame (Z up).
        cop: (T, feet, 3) m, centre of pressure in the world frame (NaN while the foot is unloaded).
        free_moment: (T, feet, 3) N m, moment about the COP in the world frame.
        feet: foot labels, ('r', 'l').
        time: (T,) s when the GRF is on its own clock (straight from `read_grf`); None when it
            shares the owning `ReferenceMotion.time`.
        notes: how it was obtained (plate -> foot assignment and why).
    """

    force: np.ndarray
    cop: np.ndarray
    free_moment: np.ndarray
    feet: tuple[str, ...] = FEET
    time: np.ndarray | None = None
    notes: tuple[str, ...] = ()

    def at(self, t_new: np.ndarray) -> "GRF":
        """Linearly resample onto `t_new` (s); needs `time`. Outside the recorded span: zero force."""
        if self.time is None:
            raise ValueError("GRF.at needs a GRF with its own time axis")
        t = self.time
        inside = (t_new >= t[0] - 1e-9) & (t_new <= t[-1] + 1e-9)
        f = _interp_linear(t_new, t, self.force)
        m = _interp_linear(t_new, t, self.free_moment)
        cop = _interp_linear(t_new, t, np.nan_to_num(self.cop))
        unloaded = np.isnan(self.cop).any(-1)  # (T, feet)
        unl = _interp_linear(t_new, t, unloaded.astype(float)) > 0.5
        f[~inside] = 0.0
        m[~inside] = 0.0
        cop[~inside] = np.nan
        cop[unl] = np.nan
        return GRF(force=f, cop=cop, free_moment=m, feet=self.feet, time=None, notes=self.notes)


@dataclasses.dataclass(frozen=True)
class ReferenceMotion:
    """A reference motion: named joint coordinates over time, with optional GRF, muscle ground truth
    (synthetic motions) and EMG.

    Attributes:
        time: (T,) s, strictly increasing.
        coord_names: (C,) coordinate names (OpenSim names, or model joint names).
        coords: (T, C) rad for rotations, m for translations.
        coord_is_rotation: (C,) bool.
        grf: per-foot GRF on `time`, or None.
        excitation: (T, M) true excitations in [0, 1] (synthetic motions), or None.
        activation: (T, M) true activations in [0, 1], or None.
        muscle_names: (M,) names for excitation/activation columns.
        emg: (T, E) EMG envelopes (normalised, >= 0), or None.
        emg_names: (E,) muscle names of the EMG channels.
        meta: provenance (source file, format, model, seed, frame, ...). JSON-serialisable.
    """

    time: np.ndarray
    coord_names: tuple[str, ...]
    coords: np.ndarray
    coord_is_rotation: np.ndarray
    grf: GRF | None = None
    excitation: np.ndarray | None = None
    activation: np.ndarray | None = None
    muscle_names: tuple[str, ...] = ()
    emg: np.ndarray | None = None
    emg_names: tuple[str, ...] = ()
    meta: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        t = np.asarray(self.time, float)
        c = np.asarray(self.coords, float)
        if t.ndim != 1 or c.shape != (len(t), len(self.coord_names)):
            raise ValueError(f"coords {c.shape} must be (T={len(t)}, C={len(self.coord_names)})")
        if len(t) > 1 and not np.all(np.diff(t) > 0):
            raise InputError("time must be strictly increasing", path=self.meta.get("source"), field="time")
        object.__setattr__(self, "time", t)
        object.__setattr__(self, "coords", c)
        object.__setattr__(self, "coord_names", tuple(self.coord_names))
        object.__setattr__(self, "coord_is_rotation", np.asarray(self.coord_is_rotation, bool))
        object.__setattr__(self, "muscle_names", tuple(self.muscle_names))
        object.__setattr__(self, "emg_names", tuple(self.emg_names))

    # ---- derived -------------------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        return len(self.time)

    @property
    def duration(self) -> float:
        """s, last minus first time."""
        return float(self.time[-1] - self.time[0]) if len(self.time) else 0.0

    @property
    def rate(self) -> float:
        """Hz, mean rate (frames - 1) / duration; robust to times printed with few decimals
        (nan for a single frame)."""
        return float((len(self.time) - 1) / self.duration) if len(self.time) > 1 else float("nan")

    @property
    def velocities(self) -> np.ndarray:
        """(T, C) rad/s or m/s, second-order central differences (`np.gradient`) on `time`."""
        if len(self.time) < 2:
            return np.zeros_like(self.coords)
        return np.gradient(self.coords, self.time, axis=0)

    def coord(self, name: str) -> np.ndarray:
        """(T,) one coordinate by name."""
        try:
            return self.coords[:, self.coord_names.index(name)]
        except ValueError:
            raise InputError(f"no coordinate '{name}' (have: {', '.join(self.coord_names)})",
                             path=self.meta.get("source"), field=name) from None

    # ---- transforms ----------------------------------------------------------------------------
    def with_grf(self, grf: GRF | None) -> "ReferenceMotion":
        """Attach a GRF; one on its own clock is resampled (linearly) onto this motion's time."""
        meta = self.meta
        if grf is not None:
            if grf.time is not None:
                grf = grf.at(self.time)
            meta = dict(meta, grf_notes=list(grf.notes))
        return dataclasses.replace(self, grf=grf, meta=meta)

    def resample(self, rate_hz: float) -> "ReferenceMotion":
        """Resample to a uniform `rate_hz` grid from time[0] (no extrapolation past time[-1]).

        Coordinates: cubic spline (smooth velocities). GRF, excitation, activation, EMG: linear
        (keeps non-negativity and the [0, 1] bounds).
        """
        t_new = _resample_time(self.time, rate_hz)
        grf = None
        if self.grf is not None:
            grf = dataclasses.replace(self.grf, time=self.time).at(t_new)
        lin = lambda a: None if a is None else _interp_linear(t_new, self.time, a)  # noqa: E731
        meta = dict(self.meta, resampled_hz=float(rate_hz))
        return dataclasses.replace(
            self, time=t_new, coords=_interp_smooth(t_new, self.time, self.coords), grf=grf,
            excitation=lin(self.excitation), activation=lin(self.activation), emg=lin(self.emg),
            meta=meta)

    # ---- serialisation -------------------------------------------------------------------------
    def to_dataset(self) -> xr.Dataset:
        """xarray Dataset with dims time, coord (+ foot, axis, muscle, emg_channel when present)."""
        ds = xr.Dataset(
            {
                "coords": (("time", "coord"), self.coords, {"units": "rad or m (see coord_is_rotation)"}),
                "coord_is_rotation": (("coord",), self.coord_is_rotation),
            },
            coords={"time": ("time", self.time, {"units": "s"}), "coord": list(self.coord_names)},
            attrs={"kind": "msdiversity.ReferenceMotion", "meta": _meta_to_attr(self.meta)},
        )
        if self.grf is not None:
            ds = ds.assign_coords(foot=list(self.grf.feet), axis=list(AXES))
            ds["grf_force"] = (("time", "foot", "axis"), self.grf.force,
                               {"units": "N", "frame": "mujoco_world_zup", "notes": json.dumps(list(self.grf.notes))})
            ds["grf_cop"] = (("time", "foot", "axis"), self.grf.cop, {"units": "m", "frame": "mujoco_world_zup"})
            ds["grf_free_moment"] = (("time", "foot", "axis"), self.grf.free_moment,
                                     {"units": "N m", "frame": "mujoco_world_zup"})
        if self.excitation is not None or self.activation is not None:
            ds = ds.assign_coords(muscle=list(self.muscle_names))
            if self.excitation is not None:
                ds["excitation"] = (("time", "muscle"), self.excitation, {"units": "1"})
            if self.activation is not None:
                ds["activation"] = (("time", "muscle"), self.activation, {"units": "1"})
        if self.emg is not None:
            ds = ds.assign_coords(emg_channel=list(self.emg_names))
            ds["emg"] = (("time", "emg_channel"), self.emg, {"units": "1"})
        return ds

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> "ReferenceMotion":
        grf = None
        if "grf_force" in ds:
            grf = GRF(force=ds["grf_force"].values, cop=ds["grf_cop"].values,
                      free_moment=ds["grf_free_moment"].values, feet=tuple(str(f) for f in ds["foot"].values),
                      notes=tuple(json.loads(ds["grf_force"].attrs.get("notes", "[]"))))
        get = lambda k: ds[k].values if k in ds else None  # noqa: E731
        return cls(
            time=ds["time"].values,
            coord_names=tuple(str(c) for c in ds["coord"].values),
            coords=ds["coords"].values,
            coord_is_rotation=ds["coord_is_rotation"].values.astype(bool),
            grf=grf,
            excitation=get("excitation"),
            activation=get("activation"),
            muscle_names=tuple(str(m) for m in ds["muscle"].values) if "muscle" in ds.coords else (),
            emg=get("emg"),
            emg_names=tuple(str(m) for m in ds["emg_channel"].values) if "emg_channel" in ds.coords else (),
            meta=_attr_to_meta(ds.attrs.get("meta")),
        )

    def save(self, path: str | Path) -> Path:
        """Write netCDF (h5netcdf) atomically."""
        return save_dataset_atomic(self.to_dataset(), path)

    @classmethod
    def load(cls, path: str | Path) -> "ReferenceMotion":
        ds = _open(path, "msdiversity.ReferenceMotion")
        return cls.from_dataset(ds)


def _open(path: str | Path, kind: str) -> xr.Dataset:
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", path=p)
    try:
        with xr.open_dataset(p, engine="h5netcdf") as ds:
            ds = ds.load()
    except Exception as e:  # h5py/h5netcdf raise various OSError/ValueError types
        raise InputError(f"cannot read netCDF: {e}", path=p) from None
    if ds.attrs.get("kind") != kind:
        raise InputError(f"expected a {kind} dataset, got kind={ds.attrs.get('kind')!r}", path=p, field="kind")
    return ds


@dataclasses.dataclass(frozen=True)
class ModelReference:
    """A reference motion expressed in a model's state space (what the emulator consumes).

    Attributes:
        dt: s between frames.
        qpos: (T, nq) full model qpos (free root filled from pelvis_* when present; untracked
            joints at the model default / keyframe; coupled joints filled through equality
            constraints).
        qvel: (T, nv) finite differences of qpos (mj_differentiatePos, so free joints are right).
        grf: (T, 2, 3) N per foot ('r', 'l'), MuJoCo world frame (Z up), or None.
        excitation: (T, nu) true excitations (synthetic motions), or None.
        activation: (T, nu) true activations, or None.
        emg: (T, nu) EMG with NaN columns for muscles without EMG, or None.
        joint_mask: (n_scalar_joints,) bool, True for joints the reference tracks (matched).
        meta: provenance (source, model, mapping summary, ...).
        cop: (T, 2, 3) m centre of pressure per foot (world, NaN when unloaded), or None.
        cycle_shift: (3,) m, world-frame root translation per cycle when the reference is one
            loopable cycle (`msdiversity.motions.gait.periodic_cycle`): the frame after T - 1 is
            frame 0 with the root moved by `cycle_shift` (horizontal; z = 0). None = not periodic.
    """

    dt: float
    qpos: np.ndarray
    qvel: np.ndarray
    grf: np.ndarray | None
    excitation: np.ndarray | None
    activation: np.ndarray | None
    emg: np.ndarray | None
    joint_mask: np.ndarray
    meta: dict = dataclasses.field(default_factory=dict)
    cop: np.ndarray | None = None
    cycle_shift: np.ndarray | None = None

    def __post_init__(self):
        if self.cycle_shift is not None:
            c = np.asarray(self.cycle_shift, float).reshape(-1)
            if c.shape != (3,) or not np.isfinite(c).all():
                raise InputError(f"cycle_shift must be 3 finite numbers (m), got {self.cycle_shift!r}",
                                 field="cycle_shift")
            object.__setattr__(self, "cycle_shift", c)

    @property
    def n_frames(self) -> int:
        return int(self.qpos.shape[0])

    @property
    def time(self) -> np.ndarray:
        """(T,) s from 0."""
        return np.arange(self.n_frames) * self.dt

    def to_dataset(self) -> xr.Dataset:
        ds = xr.Dataset(
            {
                "qpos": (("time", "qpos_index"), self.qpos),
                "qvel": (("time", "dof_index"), self.qvel),
                "joint_mask": (("joint",), np.asarray(self.joint_mask, bool)),
            },
            coords={"time": ("time", self.time, {"units": "s"})},
            attrs={"kind": "msdiversity.ModelReference", "dt": float(self.dt), "meta": _meta_to_attr(self.meta)},
        )
        for k, dims, units in (("grf", ("time", "foot", "axis"), "N"), ("cop", ("time", "foot", "axis"), "m"),
                               ("excitation", ("time", "actuator"), "1"),
                               ("activation", ("time", "actuator"), "1"), ("emg", ("time", "actuator"), "1")):
            v = getattr(self, k)
            if v is not None:
                ds[k] = (dims, v, {"units": units})
        if self.cycle_shift is not None:
            ds["cycle_shift"] = (("axis",), self.cycle_shift,
                                 {"units": "m", "frame": "mujoco_world_zup",
                                  "description": "root translation per cycle (periodic reference)"})
        if "foot" in ds.dims:
            ds = ds.assign_coords(foot=list(FEET))
        if "axis" in ds.dims:
            ds = ds.assign_coords(axis=list(AXES))
        return ds

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> "ModelReference":
        get = lambda k: ds[k].values if k in ds else None  # noqa: E731
        return cls(dt=float(ds.attrs["dt"]), qpos=ds["qpos"].values, qvel=ds["qvel"].values, grf=get("grf"),
                   excitation=get("excitation"), activation=get("activation"), emg=get("emg"),
                   joint_mask=ds["joint_mask"].values.astype(bool), meta=_attr_to_meta(ds.attrs.get("meta")),
                   cop=get("cop"), cycle_shift=get("cycle_shift"))

    def save(self, path: str | Path) -> Path:
        return save_dataset_atomic(self.to_dataset(), path)

    @classmethod
    def load(cls, path: str | Path) -> "ModelReference":
        return cls.from_dataset(_open(path, "msdiversity.ModelReference"))
