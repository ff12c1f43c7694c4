"""MJX backend: the whole step is JAX (impl='jax' on any device; impl='warp' on an NVIDIA GPU).

GRF: after the last substep `rne_postconstraint` gives `cfrc_ext`, the external spatial force on
every body (contacts, plus `xfrc_applied`, which the env never sets on feet). Summed over a foot's
bodies, its force part is the foot's GRF in the world frame; the centre of pressure is where that
force meets the ground plane (at the mean height of that foot's active contact points) with no
horizontal moment (force-plate formula), using the moment about the subtree centre of mass that
`cfrc_ext` is expressed at. This matches the CPU backend's
contact sensors on flat ground (`tests/test_physics_backends.py`).

impl='warp' is selected only when a GPU and `warp` are importable; it could not be run on the
machine this was written on (no GPU), and reads GRF as zero (rne_postconstraint is JAX-only).

MJX on the CPU needs the XLA flags set by `msdiversity.physics.xla` before JAX starts.
"""

from __future__ import annotations

import contextlib
import io

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
# mujoco.mjx prints "Failed to import warp" on import when the optional warp-lang is absent (the normal
# CPU install); that is not an error here, so keep it off the user's console.
with contextlib.redirect_stdout(io.StringIO()):
    from mujoco import mjx

from msdiversity.models import LoadedModel
from msdiversity.physics.base import FEET, PhysicsSpec, PhysicsState, StepOutputs, make_spec
from msdiversity.physics.cpu import HUGE


def _ground_height(model: mujoco.MjModel) -> float:
    planes = [g for g in range(model.ngeom)
              if model.geom_bodyid[g] == 0 and model.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE]
    return float(model.geom_pos[planes[0], 2]) if planes else 0.0


class MjxBackend:
    """mujoco-mjx backend. See module docstring."""

    def __init__(self, loaded: LoadedModel | mujoco.MjModel, body_ids: np.ndarray | None = None,
                 impl: str = "jax"):
        model = loaded.model if isinstance(loaded, LoadedModel) else loaded
        self.model = model
        self.impl = impl
        self.name = f"mjx-{impl}"
        self.spec: PhysicsSpec = make_spec(model, body_ids)
        self.mx = mjx.put_model(model, impl=impl)
        # (2, nbody) which bodies carry each foot's contact geoms
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
        d = mjx.make_data(self.mx, impl=self.impl)
        return d.replace(qpos=state.qpos, qvel=state.qvel, act=state.act, qacc_warmstart=state.qacc_warmstart,
                         ctrl=jnp.asarray(ctrl, d.ctrl.dtype),
                         qfrc_applied=jnp.zeros_like(d.qfrc_applied) if qfrc is None else qfrc)

    def _grf(self, d) -> tuple[jax.Array, jax.Array]:
        if not self.spec.has_feet or self.impl != "jax":
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

    def step(self, state: PhysicsState, ctrl: jax.Array, nsub: int,
             qfrc_applied: jax.Array | None = None) -> tuple[PhysicsState, StepOutputs]:
        """Advance one simulation by `nsub` substeps under constant `ctrl` (nu,)."""
        if nsub < 1:
            raise ValueError("nsub must be >= 1")
        d0 = self._data(state, ctrl, qfrc_applied)
        d = jax.lax.fori_loop(0, int(nsub), lambda _, d: mjx.step(self.mx, d), d0)
        grf, cop = self._grf(d)  # forces of the last substep
        afrc = d.actuator_force
        # position/velocity stages at the new state (as the CPU backend's stage=mjSTAGE_VEL)
        d = mjx.fwd_velocity(self.mx, mjx.fwd_position(self.mx, d))
        new = PhysicsState(qpos=d.qpos, qvel=d.qvel, act=d.act, qacc_warmstart=d.qacc_warmstart)
        vec = jnp.concatenate([d.qpos, d.qvel, d.act, d.qacc_warmstart])
        diverged = ~jnp.all(jnp.isfinite(vec)) | (jnp.max(jnp.abs(jnp.concatenate([d.qpos, d.qvel]))) > HUGE)
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
