"""What every physics backend shares: the state pytree, the per-control-step outputs, static model facts.

A backend advances a *single* simulation by `nsub` MuJoCo substeps (`step(state, ctrl, nsub)`), as a
pure JAX function; batches come from `jax.vmap`. Everything here is float32 on the JAX side (JAX's
default); the CPU backend simulates in float64 and rounds the state to float32 between control steps
(relative error ~1e-7, far below the tracking errors this suite measures).

Conventions of the outputs (same for every backend):
- `xpos`, `actuator_length`, `actuator_velocity` describe the state *after* the step (the backend
  recomputes position and velocity stages at the new state);
- `actuator_force`, `grf`, `cop` are the forces that acted during the last substep (MuJoCo's usual
  "derived fields are one substep behind" for acceleration-stage quantities).
- `grf[side]` is the force the ground (any geom of the world body) exerts on the foot geoms of that
  side, in the world frame, N; `cop[side]` the centre of pressure (the vertical-force-weighted mean
  of the contact points), m, zero when the foot is off the ground.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct

from msdiversity.errors import ModelError
from msdiversity.models import registry

FEET = ("r", "l")


@struct.dataclass
class PhysicsState:
    """Integration state of one simulation (float32).

    qacc_warmstart is carried so that a control step split into substeps continues exactly as one
    long MuJoCo simulation would (the constraint solver's warm start).
    """

    qpos: jax.Array  # (nq,)
    qvel: jax.Array  # (nv,)
    act: jax.Array  # (na,) muscle activations
    qacc_warmstart: jax.Array  # (nv,)


@struct.dataclass
class StepOutputs:
    """Per-control-step outputs of a backend (float32 unless noted)."""

    xpos: jax.Array  # (tracked bodies, 3) m, world frame, at the new state
    actuator_force: jax.Array  # (nu,) N (muscles pull: negative)
    actuator_length: jax.Array  # (nu,) m, at the new state
    actuator_velocity: jax.Array  # (nu,) m/s, at the new state
    grf: jax.Array  # (2, 3) N, feet ('r', 'l'), world frame, force on the foot
    cop: jax.Array  # (2, 3) m, world frame
    diverged: jax.Array  # () bool: this simulation failed and its state was restored


@dataclasses.dataclass(frozen=True)
class PhysicsSpec:
    """Static facts a backend and the env need about a model (numpy, never traced)."""

    model: mujoco.MjModel
    body_ids: np.ndarray  # (tracked bodies,) body ids whose xpos is returned
    foot_geom_ids: tuple[np.ndarray, np.ndarray]  # geom ids of the right and left foot
    is_muscle: np.ndarray  # (nu,) bool
    muscle_f0: np.ndarray  # (nu,) N peak isometric force (1 for non-muscles)
    muscle_l0: np.ndarray  # (nu,) m optimal fibre length as MuJoCo defines it (1 for non-muscles)
    muscle_range: np.ndarray  # (nu, 2) normalised operating range (gainprm[0:2])
    muscle_vmax: np.ndarray  # (nu,) L0/s (gainprm[6])
    lengthrange: np.ndarray  # (nu, 2) m
    has_feet: bool

    @property
    def nq(self) -> int:
        return self.model.nq

    @property
    def nv(self) -> int:
        return self.model.nv

    @property
    def na(self) -> int:
        return self.model.na

    @property
    def nu(self) -> int:
        return self.model.nu


def make_spec(model: mujoco.MjModel, body_ids: np.ndarray | None = None) -> PhysicsSpec:
    """Static facts of `model`; `body_ids` defaults to every body but the world."""
    if model.na != model.nu:
        # The env treats each actuator as one muscle with one activation state.
        raise ModelError(f"model has {model.nu} actuators but {model.na} activation states; "
                         "msdiversity needs one activation per actuator (muscle actuators)")
    body_ids = np.arange(1, model.nbody) if body_ids is None else np.asarray(body_ids, int)
    feet = registry.foot_geoms(model)
    ids = tuple(np.array([mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, g) for g in feet[s]], int)
                for s in FEET)
    is_muscle = np.zeros(model.nu, bool)
    is_muscle[registry.muscle_ids(model)] = True
    prm = model.actuator_gainprm
    lr = model.actuator_lengthrange.copy()
    rng = prm[:, 0:2].copy()
    l0 = (lr[:, 1] - lr[:, 0]) / np.maximum(rng[:, 1] - rng[:, 0], mujoco.mjMINVAL)
    return PhysicsSpec(
        model=model,
        body_ids=body_ids,
        foot_geom_ids=ids,
        is_muscle=is_muscle,
        muscle_f0=np.where(is_muscle, prm[:, 2], 1.0),
        muscle_l0=np.where(is_muscle, np.maximum(l0, mujoco.mjMINVAL), 1.0),
        muscle_range=rng,
        muscle_vmax=np.where(is_muscle, np.maximum(prm[:, 6], mujoco.mjMINVAL), 1.0),
        lengthrange=lr,
        has_feet=bool(len(ids[0]) and len(ids[1])),
    )


def muscle_state(spec: PhysicsSpec, length: jax.Array, velocity: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Normalised fibre length and velocity exactly as MuJoCo's muscle gain uses them.

    L = range[0] + (length - lengthrange[0]) / L0 (1 = optimal length), V = velocity / (L0 * vmax).
    Zero for non-muscle actuators.

    Args:
        length, velocity: (..., nu) actuator length (m) and velocity (m/s).
    Returns:
        (L, V), each (..., nu), dimensionless.
    """
    l0 = jnp.asarray(spec.muscle_l0, jnp.float32)
    L = spec.muscle_range[:, 0] + (length - spec.lengthrange[:, 0]) / l0
    V = velocity / (l0 * spec.muscle_vmax)
    m = jnp.asarray(spec.is_muscle)
    return jnp.where(m, L, 0.0), jnp.where(m, V, 0.0)


def cop_from_forces(forces: jax.Array, points: jax.Array, side_matrix: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Sum world-frame contact forces per foot and their centre of pressure.

    Args:
        forces: (k, 3) N force on the foot at each contact (or contact group), world frame.
        points: (k, 3) m application point (contact point, or a group's own centre of pressure).
        side_matrix: (2, k) 1 where contact k belongs to that foot's ground contact, else 0.
    Returns:
        grf (2, 3) N, cop (2, 3) m (zero where a foot carries < 1e-6 N vertical force).
    """
    grf = side_matrix @ forces  # (2, 3)
    fz = jnp.maximum(forces[:, 2], 0.0)  # (k,) only pushing contacts define the COP
    wsum = side_matrix @ fz  # (2,)
    cop = (side_matrix * fz[None]) @ points / jnp.maximum(wsum, 1e-6)[:, None]
    return grf, jnp.where((wsum > 1e-6)[:, None], cop, 0.0)


def state_from_arrays(qpos, qvel, act, qacc_warmstart=None) -> PhysicsState:
    qpos = jnp.asarray(qpos, jnp.float32)
    qvel = jnp.asarray(qvel, jnp.float32)
    return PhysicsState(qpos=qpos, qvel=qvel, act=jnp.asarray(act, jnp.float32),
                        qacc_warmstart=jnp.zeros_like(qvel) if qacc_warmstart is None
                        else jnp.asarray(qacc_warmstart, jnp.float32))
