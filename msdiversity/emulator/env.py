"""Muscle-driven motion-imitation environment: pure `reset(key)` / `step(state, action)` of ONE env.

Batch with `jax.vmap` (members x envs); with the `cpu` backend the vmapped physics is one
`mujoco.batch` call. Action = muscle excitations (nu,) in [0, 1] (non-muscle actuators: [0, 1] maps
onto their ctrlrange), plus 6 residual root wrench components in [-1, 1] when
`EnvConfig.residual_root` is on (OpenSim RRA/CMC-style residual actuators, off by default,
penalised in the reward and reported as `residual_force_N` / `residual_torque_Nm`).

The reference is resampled once to the control rate; reference body positions come from MuJoCo
forward kinematics of the reference qpos. An episode starts at a random reference frame
(reference-state initialisation: qpos, qvel and, when known, activations of that frame) and ends
when tracking deviates beyond the thresholds, the simulation diverges, the reference ends, or
`episode_length` steps have passed (truncation). The env never resets itself; a training loop
resets the envs whose `done` is 1.

Tracking error vector `info['errors']` (non-negative, 0 = perfect, each divided by its scale):
`joint_pos` mean |dq| over tracked scalar joints, `joint_vel` mean |dqdot|, `body_pos` mean body
position error, `end_effector` the same over end-effector bodies, and for a free root `root_pos`
(distance) and `root_rot` (angle). Metrics: `err/<name>` (normalised), `joint_err_deg` (mean abs
over tracked hinge joints, degrees), `body_err_cm`, `reward/<term>`, `diverged`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct

from msdiversity.errors import ConfigError, InputError
from msdiversity.models import LoadedModel, registry
from msdiversity.physics import PhysicsState, make_backend, muscle_state, resolve_backend
from msdiversity.physics.base import FEET


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """Imitation env settings (the experiment's `[env]` section). Units: s, rad, m, N."""

    control_hz: float = 50.0  # policy rate; the model timestep must divide 1/control_hz
    episode_length: int = 250  # control steps before truncation
    backend: str = "auto"  # auto | cpu | mjx | mjx-jax | mjx-warp
    threads: int = 0  # cpu backend threads (0 = all CPUs)
    random_init: bool = True  # reference-state initialisation at a random phase (else frame 0)
    init_activation: float = 0.0  # activation at reset when the reference has none
    obs_frames_ahead: tuple[int, ...] = (1, 2, 5)  # reference frames shown to the policy
    tracked_bodies: tuple[str, ...] = ()  # empty: every movable body with mass
    end_effectors: tuple[str, ...] = ()  # empty: tracked bodies without tracked children
    # early termination (any one ends the episode)
    term_joint_err: float = 0.6  # rad, mean abs error over tracked joints
    term_body_err: float = 0.25  # m, mean body position error
    term_root_drop: float = 0.0  # m, root body this far below its reference height (0 = off; walking: 0.15)
    term_root_rot: float = 0.0  # rad, root orientation error (free root; 0 = off; walking: 0.6)
    # tracking-error vector: add the GRF term (needs a reference with GRF)
    grf_error: bool = False
    # error normalisation scales (error / scale)
    scale_joint_pos: float = 0.1  # rad
    scale_joint_vel: float = 1.0  # rad/s
    scale_body_pos: float = 0.05  # m
    scale_end_effector: float = 0.05  # m
    scale_root_pos: float = 0.05  # m
    scale_root_rot: float = 0.1  # rad
    scale_grf: float = 0.1  # fraction of body weight, mean over feet of |F - F_ref|
    # DeepMimic baseline reward: sum_i w_i exp(-k_i * squared error_i)
    w_pose: float = 0.5
    w_vel: float = 0.1
    w_end_effector: float = 0.15
    w_body: float = 0.25
    k_pose: float = 2.0  # per rad^2 summed over tracked joints
    k_vel: float = 0.1  # per (rad/s)^2 summed
    k_end_effector: float = 40.0  # per m^2 summed over end effectors
    k_body: float = 10.0  # per m^2 summed over bodies (and root position/orientation)
    # residual root forces (free-root models only)
    residual_root: bool = False
    residual_max_force: float = 200.0  # N per axis at action 1
    residual_max_torque: float = 100.0  # N m per axis at action 1
    residual_weight: float = 0.1  # reward penalty * (|f|/max)^2 mean over the 6 axes


@struct.dataclass
class State:
    """One env's state (brax/Playground style)."""

    pipeline_state: PhysicsState
    obs: jax.Array  # (obs_size,)
    reward: jax.Array  # ()
    done: jax.Array  # () float 0/1
    metrics: dict[str, jax.Array]
    info: dict[str, Any]


def _interp_rows(t_new: np.ndarray, t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Linear interpolation of (T, ...) rows onto t_new, NaN-preserving per column."""
    flat = y.reshape(len(t), -1)
    out = np.empty((len(t_new), flat.shape[1]))
    for j in range(flat.shape[1]):
        out[:, j] = np.interp(t_new, t, flat[:, j])
    return out.reshape(len(t_new), *y.shape[1:])


def _quat_adrs(model: mujoco.MjModel) -> list[int]:
    return [int(model.jnt_qposadr[j]) + (3 if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE else 0)
            for j in range(model.njnt)
            if model.jnt_type[j] in (mujoco.mjtJoint.mjJNT_FREE, mujoco.mjtJoint.mjJNT_BALL)]


def _quat_rel_angle(q1: jax.Array, q2: jax.Array) -> jax.Array:
    """Rotation angle (rad) between unit quaternions (w, x, y, z)."""
    dot = jnp.abs(jnp.sum(q1 * q2, axis=-1)) / (jnp.linalg.norm(q1, axis=-1) * jnp.linalg.norm(q2, axis=-1) + 1e-9)
    return 2.0 * jnp.arccos(jnp.clip(dot, 0.0, 1.0))


class Env:
    """See module docstring. Build with `make_env`."""

    def __init__(self, loaded: LoadedModel, reference, config: EnvConfig, backend: str | None = None):
        self.config = config
        self.loaded = loaded
        model = loaded.model
        self.model = model
        self.backend_name = resolve_backend(backend or config.backend)
        dt = 1.0 / float(config.control_hz)
        nsub = dt / model.opt.timestep
        if config.control_hz <= 0 or abs(nsub - round(nsub)) > 1e-6 or round(nsub) < 1:
            raise ConfigError(f"control_hz={config.control_hz}: 1/control_hz must be a whole number of model "
                              f"timesteps ({model.opt.timestep} s)", field="env.control_hz")
        self.nsub = int(round(nsub))
        self.dt = dt
        self._check_reference(reference)

        # --- static structure --------------------------------------------------------------------
        jids = registry.scalar_joint_ids(model)
        self.joint_names = tuple(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in jids)
        self._jq = model.jnt_qposadr[jids]  # (joints,) qpos index
        self._jv = model.jnt_dofadr[jids]  # (joints,) qvel index
        mask = np.asarray(reference.joint_mask, bool)
        if mask.shape != (len(jids),):
            raise InputError(f"reference joint_mask has shape {mask.shape}, expected ({len(jids)},) "
                             "(one per hinge/slide joint)", field="joint_mask")
        if not mask.any():
            raise InputError("reference tracks no joint (joint_mask all False)", field="joint_mask")
        self.tracked_joint = mask
        self._hinge = mask & (model.jnt_type[jids] == mujoco.mjtJoint.mjJNT_HINGE)
        free = [j for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
        self.free_root = bool(free) and model.jnt_qposadr[free[0]] == 0
        # a planar root (e.g. myolegs_sagittal): slide + hinge joints on a body hanging from the world
        _slide, _hinge = int(mujoco.mjtJoint.mjJNT_SLIDE), int(mujoco.mjtJoint.mjJNT_HINGE)
        root_j = [j for j in range(model.njnt) if model.body_parentid[model.jnt_bodyid[j]] == 0
                  and int(model.jnt_type[j]) in (_slide, _hinge)]
        self.planar_root = (not self.free_root) and any(model.jnt_type[j] == mujoco.mjtJoint.mjJNT_SLIDE
                                                        for j in root_j)
        if self.free_root:
            self._root_dofs = np.arange(6)
            self._root_dof_is_force = np.array([True] * 3 + [False] * 3)
        elif self.planar_root:
            self._root_dofs = np.array([model.jnt_dofadr[j] for j in root_j])
            self._root_dof_is_force = np.array([model.jnt_type[j] == mujoco.mjtJoint.mjJNT_SLIDE for j in root_j])
            # root coordinates are scored as root position/orientation, not as joint angles
            is_root = np.isin(jids, root_j)
            self._planar_slides = np.array([model.jnt_qposadr[j] for j in root_j
                                            if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_SLIDE])
            self._planar_hinges = np.array([model.jnt_qposadr[j] for j in root_j
                                            if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE], int)
            mask = mask & ~is_root
            self.tracked_joint = mask
            self._hinge = mask & (model.jnt_type[jids] == mujoco.mjtJoint.mjJNT_HINGE)
        else:
            self._root_dofs = np.zeros(0, int)
            self._root_dof_is_force = np.zeros(0, bool)
        self.body_ids, self.body_names = self._tracked_bodies(model, config.tracked_bodies)
        self.end_effector_idx = self._end_effectors(model, config.end_effectors)
        self.end_effector_names = tuple(self.body_names[i] for i in self.end_effector_idx)
        self.muscle_names = tuple(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, i) or f"actuator{i}"
                                  for i in range(model.nu))
        if config.residual_root and not len(self._root_dofs):
            raise ConfigError("residual_root needs a model with a free or planar (slide + hinge) root",
                              field="env.residual_root")
        self.residual = bool(config.residual_root)
        self.n_residual = len(self._root_dofs) if self.residual else 0
        self.action_size = model.nu + self.n_residual
        self.error_names = ("joint_pos", "joint_vel", "body_pos", "end_effector") + (
            ("root_pos", "root_rot") if (self.free_root or self.planar_root) else ())
        scales = [config.scale_joint_pos, config.scale_joint_vel, config.scale_body_pos,
                  config.scale_end_effector, config.scale_root_pos, config.scale_root_rot][: len(self.error_names)]
        if config.grf_error:
            if getattr(reference, "grf", None) is None:
                raise ConfigError("grf_error = true needs a reference motion with GRF ([motion] grf = ...)",
                                  field="env.grf_error")
            self.error_names = self.error_names + ("grf",)
            scales.append(config.scale_grf)
        self._scales = np.array(scales)
        self.body_weight = float(model.body_subtreemass[0] * np.linalg.norm(model.opt.gravity))  # N
        lo, hi = model.actuator_ctrlrange.T
        # muscles: ctrl = excitation (MuJoCo clamps it to ctrlrange, e.g. [0.001, 1]);
        # other actuators: [0, 1] maps linearly onto their ctrlrange
        is_muscle = np.zeros(model.nu, bool)
        is_muscle[registry.muscle_ids(model)] = True
        lim = model.actuator_ctrllimited.astype(bool) & ~is_muscle
        self._ctrl_lo = np.where(lim, lo, 0.0)
        self._ctrl_span = np.where(lim, hi - lo, 1.0)

        # the root body: the first tracked body hanging from the world (pelvis), for the height check
        def depth(b):
            d = 0
            while b:
                b, d = int(model.body_parentid[b]), d + 1
            return d

        self._root_body = int(np.argmin([depth(int(b)) for b in self.body_ids]))
        self.physics = make_backend(loaded, self.backend_name, body_ids=self.body_ids, nthread=config.threads)
        self._pspec = self.physics.spec
        self._prepare_reference(reference)
        self.has_grf = self._pspec.has_feet
        self.observation_size = int(self._obs_size())

    # ---- setup helpers ----------------------------------------------------------------------------
    @staticmethod
    def _check_reference(ref) -> None:
        for name in ("dt", "qpos", "qvel", "joint_mask"):
            if not hasattr(ref, name):
                raise InputError(f"reference has no field '{name}' (expected a ModelReference)", field=name)
        if ref.qpos.ndim != 2 or len(ref.qpos) < 2:
            raise InputError(f"reference qpos must be (T >= 2, nq), got {ref.qpos.shape}", field="qpos")
        if not np.isfinite(ref.qpos).all() or not np.isfinite(ref.qvel).all():
            raise InputError("reference qpos/qvel contain NaN or inf", field="qpos")

    @staticmethod
    def _tracked_bodies(model, names) -> tuple[np.ndarray, tuple[str, ...]]:
        if names:
            ids = []
            for n in names:
                b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n)
                if b < 0:
                    raise ConfigError(f"unknown body {n!r}", field="env.tracked_bodies")
                ids.append(b)
            ids = np.array(ids)
        else:  # movable bodies (not welded to the world) that have mass
            ids = np.array([b for b in range(1, model.nbody)
                            if model.body_weldid[b] != 0 and model.body_mass[b] > 0])
            if not len(ids):
                ids = np.arange(1, model.nbody)
        return ids, tuple(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, int(b)) for b in ids)

    def _end_effectors(self, model, names) -> np.ndarray:
        if names:
            idx = []
            for n in names:
                if n not in self.body_names:
                    raise ConfigError(f"end effector {n!r} is not a tracked body", field="env.end_effectors")
                idx.append(self.body_names.index(n))
            return np.array(idx)
        tracked = set(int(b) for b in self.body_ids)
        has_child = {int(model.body_parentid[b]) for b in tracked}
        # a leaf: no tracked body below it (walk up every tracked body's ancestors)
        anc = set()
        for b in tracked:
            p = int(model.body_parentid[b])
            while p > 0:
                anc.add(p)
                p = int(model.body_parentid[p])
        del has_child
        return np.array([i for i, b in enumerate(self.body_ids) if int(b) not in anc])

    def _prepare_reference(self, ref) -> None:
        model = self.model
        T = len(ref.qpos)
        shift = getattr(ref, "cycle_shift", None)
        self.periodic = shift is not None
        root_adr = self._root_translation_adr(model)
        if self.periodic:
            # one loopable cycle: frame T would be frame 0 with the root moved by `shift`. Resampled
            # onto a whole number n of control steps (the cycle is rescaled in time by < dt / 2).
            shift = np.asarray(shift, float).reshape(3)
            period = T * float(ref.dt)
            n = max(2, int(round(period / self.dt)))
            t_ref = np.arange(T + 1) * float(ref.dt)
            t = np.arange(n) * (period / n)

            def rs(y):
                y = np.asarray(y, float)
                return _interp_rows(t, t_ref, np.concatenate([y, y[:1]], axis=0))

            q_ext = np.concatenate([ref.qpos, ref.qpos[:1]], axis=0).astype(float)
            q_ext[-1, root_adr] += shift[: len(root_adr)]
            qpos = _interp_rows(t, t_ref, q_ext)
        else:
            shift = np.zeros(3)
            t_ref = np.arange(T) * float(ref.dt)
            n = int(np.floor(t_ref[-1] / self.dt + 1e-9)) + 1
            if n < 2:
                raise InputError(f"reference lasts {t_ref[-1]:.3f} s: shorter than one control step ({self.dt} s)")
            t = np.arange(n) * self.dt
            same = abs(float(ref.dt) - self.dt) < 1e-9
            rs = (lambda y: np.asarray(y, float)[:n]) if same else (lambda y: _interp_rows(t, t_ref, np.asarray(y, float)))
            qpos = rs(ref.qpos)
        # per-cycle translation of the root qpos entries (x, y[, z]) and of every body (3,)
        self._root_adr = root_adr
        self.cycle_shift = shift
        self._qshift = np.zeros(model.nq)
        self._qshift[root_adr] = shift[: len(root_adr)]
        for a in _quat_adrs(model):
            qpos[:, a:a + 4] /= np.linalg.norm(qpos[:, a:a + 4], axis=1, keepdims=True)
        qvel = rs(ref.qvel)
        d = mujoco.MjData(model)
        xpos = np.empty((n, len(self.body_ids), 3))
        for i in range(n):
            d.qpos[:] = qpos[i]
            mujoco.mj_kinematics(model, d)
            xpos[i] = d.xpos[self.body_ids]
        self.ref_time = t
        self.ref_t0 = float((getattr(ref, "meta", None) or {}).get("t0", 0.0))  # s, source-file time of frame 0
        self.ref_qpos_full, self.ref_qvel_full, self.ref_body_pos = qpos, qvel, xpos
        opt = lambda name: (None if getattr(ref, name, None) is None else rs(getattr(ref, name)))  # noqa: E731
        self.ref_grf, self.ref_activation = opt("grf"), opt("activation")
        self.ref_cop = opt("cop")  # (T, 2, 3) m, NaN while unloaded; for gait inverse dynamics
        self.ref_excitation, self.ref_emg = opt("excitation"), opt("emg")
        self.n_frames = n
        f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        self._r = {"qpos": f32(qpos), "qvel": f32(qvel), "xpos": f32(xpos)}
        if self.ref_grf is not None:
            self._r["grf"] = f32(self.ref_grf)
        if self.ref_activation is not None:
            self._r["act"] = f32(np.clip(self.ref_activation, 0, 1))
        if self.ref_emg is not None:
            self._r["emg"] = f32(self.ref_emg)  # NaN columns kept: muscles without EMG

    def _residual_scale(self) -> jax.Array:
        """(n_residual,) N for translational root dofs, N m for rotational ones, at action 1."""
        c = self.config
        return jnp.asarray(np.where(self._root_dof_is_force, c.residual_max_force, c.residual_max_torque)
                           [: self.n_residual], jnp.float32)

    @staticmethod
    def _root_translation_adr(model) -> np.ndarray:
        """qpos indices that translate the whole model horizontally: a free root's x, y, or slide
        joints of a root body (a planar root) along world x / y."""
        for j in range(model.njnt):
            if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE and model.jnt_qposadr[j] == 0:
                return np.array([0, 1])
        out = []
        for j in range(model.njnt):
            if (model.jnt_type[j] == mujoco.mjtJoint.mjJNT_SLIDE and model.body_parentid[model.jnt_bodyid[j]] == 0):
                ax = np.abs(model.jnt_axis[j])
                if ax[2] < 0.5:  # horizontal slide
                    out.append(int(model.jnt_qposadr[j]))
        return np.array(out, int)

    # ---- pure functions -----------------------------------------------------------------------------
    def _obs_size(self) -> int:
        nj, nu, k = len(self._jq), self.model.nu, len(self.config.obs_frames_ahead)
        root = 11 if self.free_root else 0
        return 2 * nj + root + 4 * nu + k * (nj + (7 if self.free_root else 0)) + (3 if self.periodic else 1)

    def _ref_at(self, idx, cycle):
        """Reference qpos (nq,) and body positions (bodies, 3) at frame idx of cycle `cycle`."""
        c = jnp.asarray(cycle, jnp.float32)
        q = self._r["qpos"][idx] + c * jnp.asarray(self._qshift, jnp.float32)
        x = self._r["xpos"][idx] + c * jnp.asarray(self.cycle_shift, jnp.float32)
        return q, x

    def _advance(self, idx, cycle, k: int = 1):
        """Frame and cycle k control steps after (idx, cycle): wraps when periodic, holds the last frame otherwise."""
        if self.periodic:
            j = idx + k
            return j % self.n_frames, cycle + j // self.n_frames
        return jnp.minimum(idx + k, self.n_frames - 1), cycle

    def _errors(self, qpos, qvel, xpos, idx, cycle, grf):
        """(errors (n_err,), raw dict of squared-error sums and metric values)."""
        r = self._r
        ref_q, ref_x = self._ref_at(idx, cycle)
        m = jnp.asarray(self.tracked_joint, jnp.float32)
        nm = jnp.maximum(m.sum(), 1.0)
        dq = (qpos[self._jq] - ref_q[self._jq]) * m  # (joints,)
        dv = (qvel[self._jv] - r["qvel"][idx][self._jv]) * m
        db = jnp.linalg.norm(xpos - ref_x, axis=-1)  # (bodies,)
        de = db[self.end_effector_idx]
        comps = [jnp.abs(dq).sum() / nm, jnp.abs(dv).sum() / nm, db.mean(), de.mean()]
        sq = {"pose": jnp.sum(dq ** 2), "vel": jnp.sum(dv ** 2), "ee": jnp.sum(de ** 2), "body": jnp.mean(db ** 2)}
        if self.free_root:
            dr = jnp.linalg.norm(qpos[:3] - ref_q[:3])
            ang = _quat_rel_angle(qpos[3:7], ref_q[3:7])
            comps += [dr, ang]
            sq["body"] = sq["body"] + dr ** 2 + ang ** 2
        elif self.planar_root:
            dr = jnp.linalg.norm(qpos[self._planar_slides] - ref_q[self._planar_slides])
            ang = (jnp.abs(qpos[self._planar_hinges] - ref_q[self._planar_hinges]).sum()
                   if len(self._planar_hinges) else jnp.zeros(()))
            comps += [dr, ang]
            sq["body"] = sq["body"] + dr ** 2 + ang ** 2
        extra = {"root_drop": ref_x[self._root_body, 2] - xpos[self._root_body, 2],
                 "root_rot": comps[5] if (self.free_root or self.planar_root) else jnp.zeros(())}
        if "grf" in r:
            dg = grf - r["grf"][idx]  # (2, 3) N
            extra["grf_abs"] = jnp.mean(jnp.linalg.norm(dg, axis=-1)) / self.body_weight  # fraction of BW
            extra["vgrf_pct"] = 100.0 * dg[:, 2] / self.body_weight  # (2,) % BW
            if self.config.grf_error:
                comps.append(extra["grf_abs"])
        raw = jnp.stack(comps)
        hm = jnp.asarray(self._hinge, jnp.float32)
        joint_deg = jnp.rad2deg(jnp.sum(jnp.abs(dq) * hm) / jnp.maximum(hm.sum(), 1.0))
        errors = jnp.nan_to_num(raw / self._scales, nan=1e3, posinf=1e3)
        return errors, raw, sq, joint_deg, extra

    def _obs(self, ps: PhysicsState, out, idx, cycle):
        q, v = ps.qpos, ps.qvel
        L, V = muscle_state(self._pspec, out.actuator_length, out.actuator_velocity)
        parts = [q[self._jq], v[self._jv]]
        if self.free_root:
            quat = q[3:7] * jnp.where(q[3] < 0, -1.0, 1.0)
            parts += [q[2:3], quat, v[0:6]]
        parts += [ps.act, L, V, -out.actuator_force / self._pspec.muscle_f0]
        last = self.n_frames - 1
        for k in self.config.obs_frames_ahead:
            j, cj = self._advance(idx, cycle, k)
            rq, _ = self._ref_at(j, cj)
            parts.append(rq[self._jq] - q[self._jq])
            if self.free_root:
                parts += [rq[:3] - q[:3], rq[3:7]]
        # phase: progress through the reference, and its angle on the gait cycle when periodic
        if self.periodic:
            frac = idx / self.n_frames
            ang = 2.0 * jnp.pi * frac
            parts.append(jnp.stack([frac, jnp.sin(ang), jnp.cos(ang)]).astype(jnp.float32))
        else:
            parts.append(jnp.reshape(idx / max(last, 1), (1,)).astype(jnp.float32))
        obs = jnp.concatenate([jnp.ravel(p).astype(jnp.float32) for p in parts])
        return jnp.clip(jnp.nan_to_num(obs), -1e3, 1e3)

    def _finish(self, ps, out, idx, cycle, steps, excitation, prev_excitation, residual, diverged, first: bool):
        cfg = self.config
        errors, raw, sq, joint_deg, extra = self._errors(ps.qpos, ps.qvel, out.xpos, idx, cycle, out.grf)
        terms = {"pose": cfg.w_pose * jnp.exp(-cfg.k_pose * sq["pose"]),
                 "vel": cfg.w_vel * jnp.exp(-cfg.k_vel * sq["vel"]),
                 "end_effector": cfg.w_end_effector * jnp.exp(-cfg.k_end_effector * sq["ee"]),
                 "body": cfg.w_body * jnp.exp(-cfg.k_body * sq["body"])}
        reward = sum(terms.values())
        metrics = {f"err/{n}": errors[i] for i, n in enumerate(self.error_names)}
        metrics.update({f"reward/{k}": v for k, v in terms.items()})
        metrics["joint_err_deg"] = joint_deg
        metrics["body_err_cm"] = raw[2] * 100.0
        if "vgrf_pct" in extra:
            metrics["grf_err_pct_bw"] = 100.0 * extra["grf_abs"]
            metrics["vgrf_sqerr_pct_bw"] = jnp.mean(extra["vgrf_pct"] ** 2)  # (% BW)^2, mean over feet
        if self.residual:
            f = jnp.asarray(self._root_dof_is_force)
            pen = cfg.residual_weight * jnp.mean((residual / self._residual_scale()) ** 2)
            reward = reward - pen
            metrics["reward/residual"] = -pen
            metrics["residual_force_N"] = jnp.linalg.norm(jnp.where(f, residual, 0.0))
            metrics["residual_torque_Nm"] = jnp.linalg.norm(jnp.where(f, 0.0, residual))
        residual_cost = metrics.get("reward/residual", jnp.zeros(())) * -1.0
        div = jnp.asarray(diverged, jnp.float32)
        metrics["diverged"] = div
        # a diverged step carries the restored *input* state (see the physics backends), so its errors
        # say nothing about tracking: it is a failure (errors at the cap: task reward ~0, not ~1); its
        # error metrics stay finite but undefined: learners and evaluation leave them out
        # (learning.common.unroll_means / evaluate_policy mask them with `diverged`)
        errors = jnp.where(div > 0, 1e3, errors)
        metrics.update({f"err/{n}": errors[i] for i, n in enumerate(self.error_names)})
        mean_joint = raw[0]
        terminated = (mean_joint > cfg.term_joint_err) | (raw[2] > cfg.term_body_err) | (div > 0)
        if cfg.term_root_drop > 0:
            terminated = terminated | (extra["root_drop"] > cfg.term_root_drop)
        if cfg.term_root_rot > 0 and (self.free_root or self.planar_root):
            terminated = terminated | (extra["root_rot"] > cfg.term_root_rot)
        ref_end = jnp.zeros((), bool) if self.periodic else (idx >= self.n_frames - 1)
        truncated = (ref_end | (steps >= cfg.episode_length)) & ~terminated
        done = jnp.where(first, 0.0, (terminated | truncated).astype(jnp.float32))
        reward = jnp.where(div > 0, 0.0, jnp.nan_to_num(reward))
        info = {
            "errors": errors,
            "activation": ps.act,
            "excitation": excitation,
            "prev_excitation": prev_excitation,
            "muscle_force": -out.actuator_force,
            "grf": out.grf,
            "cop": out.cop,
            "phase_idx": idx,
            "cycle": jnp.asarray(cycle, jnp.int32),
            "steps": steps,
            "truncation": jnp.where(first, 0.0, truncated.astype(jnp.float32)),
            "diverged": div,
            "qpos": ps.qpos[self._jq],
            "body_pos": out.xpos,
        }
        if self.residual:
            info["residual"] = residual
            # the weighted residual penalty, for learners that build their own reward from the error
            # vector (PPO, Qflex): residual help is never free
            info["residual_cost"] = jnp.asarray(residual_cost, jnp.float32)
        if "emg" in self._r:
            info["emg_ref"] = self._r["emg"][idx]
        return State(pipeline_state=ps, obs=self._obs(ps, out, idx, cycle), reward=jnp.asarray(reward, jnp.float32),
                     done=done, metrics=metrics, info=info)

    def reset(self, key: jax.Array) -> State:
        """Start an episode at a random reference frame (or frame 0 if `random_init` is off)."""
        hi = self.n_frames if self.periodic else max(self.n_frames - 1, 1)
        idx = jax.random.randint(key, (), 0, hi) if self.config.random_init else jnp.asarray(0)
        idx = idx.astype(jnp.int32)
        r = self._r
        nu = self.model.nu
        act = r["act"][idx] if "act" in r else jnp.full((nu,), self.config.init_activation, jnp.float32)
        ps = PhysicsState(qpos=r["qpos"][idx], qvel=r["qvel"][idx], act=act,
                          qacc_warmstart=jnp.zeros_like(r["qvel"][idx]))
        out = self.physics.forward(ps, jnp.zeros(nu, jnp.float32))
        zeros = jnp.zeros(nu, jnp.float32)
        return self._finish(ps, out, idx, jnp.asarray(0, jnp.int32), jnp.asarray(0, jnp.int32), act, act,
                            jnp.zeros(self.n_residual, jnp.float32), out.diverged, first=True)

    def step(self, state: State, action: jax.Array) -> State:
        """Apply excitations (and residuals) for one control step (`nsub` physics substeps)."""
        nu = self.model.nu
        action = jnp.asarray(action, jnp.float32)
        # a non-finite action (a broken policy) is treated as divergence; physics gets a finite one
        bad_action = ~jnp.all(jnp.isfinite(action))
        action = jnp.nan_to_num(action, nan=0.0, posinf=1.0, neginf=0.0)
        excitation = jnp.clip(action[:nu], 0.0, 1.0)  # (nu,)
        ctrl = self._ctrl_lo + excitation * self._ctrl_span
        qfrc = None
        residual = jnp.zeros(self.n_residual, jnp.float32)
        if self.residual:
            residual = jnp.clip(action[nu:nu + self.n_residual], -1.0, 1.0) * self._residual_scale()
            qfrc = jnp.zeros(self.model.nv, jnp.float32).at[self._root_dofs].set(residual)
        ps, out = self.physics.step(state.pipeline_state, ctrl, self.nsub, qfrc)
        idx, cycle = self._advance(state.info["phase_idx"], state.info["cycle"])
        steps = state.info["steps"] + 1
        return self._finish(ps, out, idx, cycle, steps, excitation, state.info["excitation"], residual,
                            out.diverged | bad_action, first=False)

    # ---- recorder helpers ---------------------------------------------------------------------------
    @staticmethod
    def recording_arrays(state: State) -> dict[str, jax.Array]:
        """Per-step arrays the recorder stores (single env; vmap/scan freely)."""
        i = state.info
        return {"qpos": i["qpos"], "body_pos": i["body_pos"], "activation": i["activation"],
                "excitation": i["excitation"], "muscle_force": i["muscle_force"], "grf": i["grf"], "cop": i["cop"],
                "alive": 1.0 - state.done, "phase_idx": i["phase_idx"]}

    def reference_arrays(self) -> dict[str, np.ndarray | None]:
        """The reference at the control rate (numpy): time (T,), qpos (T, joints), body_pos (T, bodies, 3),
        qpos_full (T, nq), qvel_full (T, nv), grf (T, 2, 3) | None, cop (T, 2, 3) | None, activation/excitation/emg (T, nu) | None."""
        return {"time": self.ref_time, "qpos": self.ref_qpos_full[:, self._jq], "body_pos": self.ref_body_pos,
                "qpos_full": self.ref_qpos_full, "qvel_full": self.ref_qvel_full, "grf": self.ref_grf, "cop": self.ref_cop,
                "activation": self.ref_activation, "excitation": self.ref_excitation, "emg": self.ref_emg}

    @property
    def feet(self) -> tuple[str, ...]:
        return FEET


def make_env(loaded_model: LoadedModel, reference, config: EnvConfig | None = None,
             backend: str | None = None) -> Env:
    """Build the imitation env. `backend` overrides `config.backend` ('auto' | 'cpu' | 'mjx' | ...)."""
    return Env(loaded_model, reference, config or EnvConfig(), backend)
