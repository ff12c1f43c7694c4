"""MJX backend: the whole step runs on the JAX device, `impl='jax'` (XLA) or `impl='warp'` (MuJoCo Warp).

impl='jax': pure JAX. GRF: after the last substep `rne_postconstraint` gives `cfrc_ext`, the external
spatial force on every body (contacts, plus `xfrc_applied`, which the env never sets on feet). Summed
over a foot's bodies, its force part is the foot's GRF in the world frame; the centre of pressure is
where that force meets the ground plane (at the mean height of that foot's active contact points)
with no horizontal moment (force-plate formula), using the moment about the subtree centre of mass
that `cfrc_ext` is expressed at. This matches the CPU backend's contact sensors on flat ground
(`tests/test_physics_backends.py`).

impl='warp': MuJoCo Warp kernels behind the MJX API (the kernels MS-Emulator runs on GPUs). Warp
compiles them for CUDA on an NVIDIA GPU and for its CPU device elsewhere, so the same code path is
tested on a CPU-only machine (`tests/test_warp_parity.py`). GRF comes exactly as on the CPU backend:
the simulated model is the user's plus one netforce contact sensor per foot body
(`cpu.model_with_contact_sensors`), which MuJoCo Warp evaluates like MuJoCo C. After the substeps one
`mjx.forward` recomputes positions and velocities at the new state (MJX's `fwd_velocity` is JAX-only).

Warp's contact and constraint buffers are sized when the data template is made: constraints per
world (`njmax`, an upper bound from the model: equality rows + limited joints/tendons + 4 pyramid rows
per contact) and contacts for ALL worlds together (`naconmax = contacts_per_world x nworld`; MJX
flattens every vmapped axis into Warp's world axis). `nworld` is the most simulations stepped in one
call (members x envs); too small a value drops contacts (Warp prints an overflow warning), too
large a value costs memory and, on the CPU, time (kernels sweep the whole pool). `MSD_MJX_NWORLD`
sets the default: 4096 with a GPU, 64 on Warp's CPU device (there only to test the code path);
training sizes it to members x envs and `bench physics` to `--nsim` (`select.nworld_at_least`). Kernel cache: Warp's own (`WARP_CACHE_PATH`, default
~/.cache/warp); the tests keep it under `.venv/warp-cache` so CI reuses compiled kernels.

MJX on the CPU needs the XLA flags set by `msdiversity.physics.xla` before JAX starts.
"""

from __future__ import annotations

import contextlib
import io
import os

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
# mujoco.mjx prints "Failed to import warp" on import when the optional warp-lang is absent (the normal
# CPU install); that is not an error here, so keep it off the user's console.
with contextlib.redirect_stdout(io.StringIO()):
    from mujoco import mjx

from msdiversity.models import LoadedModel
from msdiversity.physics.base import FEET, PhysicsSpec, PhysicsState, StepOutputs, cop_from_forces, make_spec
from msdiversity.physics.cpu import HUGE, model_with_contact_sensors

DEFAULT_NWORLD = {"gpu": 4096, "cpu": 64}
CONTACTS_PER_WORLD = 48  # MuJoCo Warp's own default for these models; myolegs/myofullbody use <= 11


def default_nworld() -> int:
    """Simulations per call the warp buffers are sized for (`MSD_MJX_NWORLD`; else 4096 with a GPU, 64 without)."""
    if os.environ.get("MSD_MJX_NWORLD"):
        return int(os.environ["MSD_MJX_NWORLD"])
    return DEFAULT_NWORLD["gpu" if any(d.platform == "gpu" for d in jax.devices()) else "cpu"]


def configure_warp() -> None:
    """Quiet Warp's per-kernel 'Module ... load' lines unless MSD_WARP_VERBOSE=1 (errors still print)."""
    import warp as wp

    if not os.environ.get("MSD_WARP_VERBOSE"):
        wp.config.log_level = wp.LOG_WARNING


def warp_njmax(model: mujoco.MjModel, contacts_per_world: int = CONTACTS_PER_WORLD) -> int:
    """Upper bound on constraint rows of one world: equality rows (connect 3, weld 6, joint/tendon 1),
    one per limited joint and tendon, and 4 per contact (pyramidal friction cone, condim 3)."""
    eq_rows = {int(mujoco.mjtEq.mjEQ_CONNECT): 3, int(mujoco.mjtEq.mjEQ_WELD): 6}
    n_eq = sum(eq_rows.get(int(t), 1) for t in model.eq_type)
    per_contact = 4 if model.opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL else 3
    return int(n_eq + model.jnt_limited.sum() + model.tendon_limited.sum() + per_contact * contacts_per_world)


def _ground_height(model: mujoco.MjModel) -> float:
    planes = [g for g in range(model.ngeom)
              if model.geom_bodyid[g] == 0 and model.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE]
    return float(model.geom_pos[planes[0], 2]) if planes else 0.0


class MjxBackend:
    """mujoco-mjx backend. See module docstring.

    Args:
        loaded: the model (a LoadedModel, so that impl='warp' can add GRF sensors).
        body_ids: bodies whose positions are returned, (tracked bodies,).
        impl: 'jax' or 'warp'.
        nworld: (warp) most simulations stepped in one call; default `default_nworld()`.
        contacts_per_world: (warp) contact capacity per simulation.
    """

    def __init__(self, loaded: LoadedModel | mujoco.MjModel, body_ids: np.ndarray | None = None,
                 impl: str = "jax", nworld: int | None = None, contacts_per_world: int = CONTACTS_PER_WORLD):
        self.impl = impl
        self.name = f"mjx-{impl}"
        self._sens_cols = np.zeros(0, int)
        if impl == "warp":
            configure_warp()
            if isinstance(loaded, LoadedModel):
                model, adr, side = model_with_contact_sensors(loaded)
            else:
                model, adr, side = loaded, np.zeros(0, int), np.zeros((2, 0))
            self._sens_cols = (adr[:, None] + np.arange(6)[None]).reshape(-1)  # (sensors*6,)
            self._sens_side = jnp.asarray(side, jnp.float32)  # (2, sensors)
            self.nworld = int(nworld or default_nworld())
            self.njmax = warp_njmax(model, contacts_per_world)
            self.naconmax = int(contacts_per_world) * self.nworld
            self.mx = mjx.put_model(model, impl="warp")
            self._d0 = mjx.make_data(model, impl="warp", naconmax=self.naconmax, njmax=self.njmax)
        else:
            model = loaded.model if isinstance(loaded, LoadedModel) else loaded
            self.mx = mjx.put_model(model, impl="jax")
            self._d0 = None
        self.model = model
        self.spec: PhysicsSpec = make_spec(model, body_ids)
        # (2, nbody) which bodies carry each foot's contact geoms (impl='jax' GRF)
        side = np.zeros((2, model.nbody))
        for k in range(len(FEET)):
            side[k, np.unique(model.geom_bodyid[self.spec.foot_geom_ids[k]])] = 1.0
        self._side = jnp.asarray(side, jnp.float32)
        gs = np.zeros((2, model.ngeom), bool)
        for k in range(len(FEET)):
            gs[k, self.spec.foot_geom_ids[k]] = True
        self._geom_side = jnp.asarray(gs)  # (2, ngeom)
        self._root = int(model.body_rootid[np.flatnonzero(side.any(0))[0]]) if side.any() else 0
        self._h = _ground_height(model)

    def _data(self, state: PhysicsState, ctrl, qfrc):
        d = self._d0 if self._d0 is not None else mjx.make_data(self.mx, impl=self.impl)
        return d.replace(qpos=state.qpos, qvel=state.qvel, act=state.act, qacc_warmstart=state.qacc_warmstart,
                         ctrl=jnp.asarray(ctrl, d.ctrl.dtype),
                         qfrc_applied=jnp.zeros_like(d.qfrc_applied) if qfrc is None else qfrc)

    def _grf(self, d) -> tuple[jax.Array, jax.Array]:
        if self.impl == "warp":
            if not len(self._sens_cols):
                z = jnp.zeros((2, 3), jnp.float32)
                return z, z
            sens = d.sensordata[self._sens_cols].reshape(-1, 6)  # (sensors, [force, pos])
            # the sensor reports the force body1 (foot) exerts on body2 (world): the GRF is its negative
            return cop_from_forces(-sens[:, :3], sens[:, 3:], self._sens_side)
        return self._grf_cfrc(d)

    def _grf_cfrc(self, d) -> tuple[jax.Array, jax.Array]:
        if not self.spec.has_feet:
            z = jnp.zeros((2, 3), jnp.float32)
            return z, z
        d = mjx.rne_postconstraint(self.mx, d)
        cf = d._impl.cfrc_ext  # (nbody, 6) [torque, force] about subtree_com[root]  # noqa: SLF001
        tau = self._side @ cf[:, :3]  # (2, 3)
        f = self._side @ cf[:, 3:]  # (2, 3)
        c = d.subtree_com[self._root]  # (3,)
        # the ground height under each foot: mean height of its active contact points (the "ground"
        # may be a raised world geom, e.g. the myolegs platform 1.5 cm above the floor plane)
        con = d._impl.contact  # noqa: SLF001
        active = (con.dist < 0)[None, :] & (self._geom_side[:, con.geom[:, 0]] | self._geom_side[:, con.geom[:, 1]])
        n = active.sum(axis=1)
        h = jnp.where(n > 0, (active * con.pos[None, :, 2]).sum(axis=1) / jnp.maximum(n, 1), self._h)  # (2,)
        rz = h - c[2]
        fz = f[:, 2]
        safe = jnp.where(jnp.abs(fz) > 1e-6, fz, 1.0)
        rx = (rz * f[:, 0] - tau[:, 1]) / safe
        ry = (tau[:, 0] + rz * f[:, 1]) / safe
        cop = jnp.stack([c[0] + rx, c[1] + ry, h], axis=-1)
        return f, jnp.where((fz > 1e-6)[:, None], cop, 0.0)

    def _outputs(self, d, grf, cop, afrc, diverged) -> StepOutputs:
        avel = d._impl.actuator_velocity  # noqa: SLF001
        return StepOutputs(xpos=d.xpos[self.spec.body_ids], actuator_force=afrc, actuator_length=d.actuator_length,
                           actuator_velocity=avel, grf=grf, cop=cop, diverged=diverged)

    def _new_state_stages(self, d):
        """Position and velocity stages at the stepped state (as the CPU backend's stage=mjSTAGE_VEL)."""
        if self.impl == "warp":
            return mjx.forward(self.mx, d)  # MJX's fwd_velocity is JAX-only; forward runs the Warp kernels
        return mjx.fwd_velocity(self.mx, mjx.fwd_position(self.mx, d))

    def step(self, state: PhysicsState, ctrl: jax.Array, nsub: int,
             qfrc_applied: jax.Array | None = None) -> tuple[PhysicsState, StepOutputs]:
        """Advance one simulation by `nsub` substeps under constant `ctrl` (nu,)."""
        if nsub < 1:
            raise ValueError("nsub must be >= 1")
        d0 = self._data(state, ctrl, qfrc_applied)
        d = jax.lax.fori_loop(0, int(nsub), lambda _, d: mjx.step(self.mx, d), d0)
        grf, cop = self._grf(d)  # forces of the last substep
        afrc = d.actuator_force
        new = PhysicsState(qpos=d.qpos, qvel=d.qvel, act=d.act, qacc_warmstart=d.qacc_warmstart)
        d = self._new_state_stages(d)
        vec = jnp.concatenate([new.qpos, new.qvel, new.act, new.qacc_warmstart])
        diverged = ~jnp.all(jnp.isfinite(vec)) | (jnp.max(jnp.abs(jnp.concatenate([new.qpos, new.qvel]))) > HUGE)
        out = self._outputs(d, grf, cop, afrc, diverged)
        # a diverged simulation keeps its input state and reports zero outputs (the env ends it)
        new = jax.tree.map(lambda a, b: jnp.where(diverged, a, b), state, new)
        out = jax.tree.map(lambda x: jnp.where(diverged, 0.0, jnp.nan_to_num(x)), out).replace(diverged=diverged)
        return new, out

    def forward(self, state: PhysicsState, ctrl: jax.Array | None = None) -> StepOutputs:
        """Outputs at `state` without stepping (mj_forward)."""
        ctrl = jnp.zeros(self.spec.nu) if ctrl is None else ctrl
        d = mjx.forward(self.mx, self._data(state, ctrl, None))
        grf, cop = self._grf(d)
        out = self._outputs(d, grf, cop, d.actuator_force, jnp.asarray(False))
        return jax.tree.map(lambda x: jnp.nan_to_num(x), out)

    def data_bytes(self) -> int:
        """Bytes of one simulation's MJX Data on the device (warp: contact buffers counted per world)."""
        d = self._d0 if self._d0 is not None else mjx.make_data(self.model, impl="jax")
        total = sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(d) if hasattr(x, "shape"))
        if self.impl == "warp":  # contact__* leaves hold all worlds' contacts: count this world's share
            pool = sum(int(np.prod(x.shape)) * x.dtype.itemsize
                       for p, x in jax.tree_util.tree_leaves_with_path(d)
                       if hasattr(x, "shape") and "contact__" in jax.tree_util.keystr(p))
            total += pool // self.nworld - pool
        return total
