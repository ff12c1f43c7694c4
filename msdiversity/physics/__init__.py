"""Physics backends behind one small interface.

A backend exposes pure JAX functions of ONE simulation (batch with `jax.vmap`):

    state = physics.state_from_arrays(qpos, qvel, act)
    state, out = backend.step(state, ctrl, nsub)       # nsub MuJoCo substeps under constant ctrl
    out = backend.forward(state)                        # outputs without stepping

`state` is a `PhysicsState` (qpos, qvel, act, qacc_warmstart) and `out` a `StepOutputs` (tracked body
positions, actuator force/length/velocity, per-foot GRF and centre of pressure in the world frame,
and a `diverged` flag). Backends:

- `cpu`: MuJoCo C (`mujoco.batch`) called through `jax.pure_callback`; a vmap over members x envs
  becomes one call stepping every simulation on a thread pool.
- `mjx` / `mjx-jax`: mujoco-mjx with `impl='jax'` (any device).
- `mjx-warp`: mujoco-mjx with `impl='warp'` (MuJoCo Warp; needs `warp-lang`). On an NVIDIA GPU the
  kernels run in CUDA; without one Warp compiles them for the CPU (slow, but the same code path, which
  the tests use).
- `auto`: `mjx-warp` when a GPU and warp are present, else `cpu` (never warp on a CPU).

Importing this package adds the XLA CPU flags MJX needs (see `msdiversity.physics.xla`) to
`XLA_FLAGS` if JAX has not started yet.
"""

from msdiversity.physics.xla import ensure_cpu_xla_flags

ensure_cpu_xla_flags()

from msdiversity.physics.base import (FEET, PhysicsSpec, PhysicsState, StepOutputs, make_spec,  # noqa: E402
                                      muscle_state, state_from_arrays)
from msdiversity.physics.select import available_backends, make_backend, resolve_backend  # noqa: E402

__all__ = ["FEET", "PhysicsSpec", "PhysicsState", "StepOutputs", "available_backends", "make_backend",
           "make_spec", "muscle_state", "resolve_backend", "state_from_arrays"]
