"""Small reference motions made by forward simulation (for tests and benchmarks).

`simulated_reference` runs plain MuJoCo C under seeded constant-per-control-step excitations and
returns a `ModelReference` with the true qpos/qvel/excitation/activation (and GRF for models with
feet, from mj_contactForce). Free-root models start from their first keyframe when they have one.
"""

from __future__ import annotations

import mujoco
import numpy as np

from msdiversity.models import LoadedModel, registry
from msdiversity.motions import ModelReference


def _grf(model: mujoco.MjModel, data: mujoco.MjData, feet: dict[str, set[int]]) -> np.ndarray:
    """(2, 3) world-frame ground force on each foot, from mj_contactForce (the reference definition)."""
    out = np.zeros((2, 3))
    f = np.zeros(6)
    for i in range(data.ncon):
        c = data.contact[i]
        mujoco.mj_contactForce(model, data, i, f)
        fw = c.frame.reshape(3, 3).T @ f[:3]  # force on geom2 from geom1, world frame
        g1, g2 = int(c.geom[0]), int(c.geom[1])
        for k, side in enumerate(("r", "l")):
            if g2 in feet[side] and model.geom_bodyid[g1] == 0:
                out[k] += fw
            elif g1 in feet[side] and model.geom_bodyid[g2] == 0:
                out[k] -= fw
    return out


def simulated_reference(seed: int, loaded: LoadedModel, n_frames: int = 20, control_hz: float = 50.0,
                        max_excitation: float = 0.5) -> ModelReference:
    """Forward-simulate `n_frames` control steps; frame i is the state after i control steps."""
    rng = np.random.default_rng(seed)
    model = loaded.model
    data = mujoco.MjData(model)
    if model.nkey:
        mujoco.mj_resetDataKeyframe(model, data, 0)
    mujoco.mj_forward(model, data)
    nsub = int(round(1.0 / control_hz / model.opt.timestep))
    fg = registry.foot_geoms(model)
    feet = {s: {mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, g) for g in fg[s]} for s in fg}
    has_feet = bool(feet["r"] and feet["l"])
    qpos, qvel, act, exc, grf = [], [], [], [], []
    u = rng.uniform(0, max_excitation, (n_frames, model.nu))
    for i in range(n_frames):
        qpos.append(data.qpos.copy())
        qvel.append(data.qvel.copy())
        act.append(data.act.copy())
        grf.append(_grf(model, data, feet) if has_feet else np.zeros((2, 3)))
        data.ctrl[:] = u[i]
        exc.append(u[i])
        for _ in range(nsub):
            mujoco.mj_step(model, data)
    nj = len(registry.scalar_joint_ids(model))
    return ModelReference(dt=1.0 / control_hz, qpos=np.array(qpos), qvel=np.array(qvel),
                          grf=np.array(grf) if has_feet else None, excitation=np.array(exc),
                          activation=np.array(act), emg=None, joint_mask=np.ones(nj, bool),
                          meta={"source": "msdiversity.emulator.testing.simulated_reference", "seed": seed})
