"""myolegs stands quietly from its `standing` keyframe on the cpu backend; GRF carries body weight.

Muscles hold every joint: each control step (100 Hz) a static optimisation picks activations in
[0, 1] whose torques (moment arms x (F0 * FL * FV * a + passive)) best match a joint PD law towards
the keyframe plus the torque that keeps the current accelerations zero (bias - passive -
constraint). A free body on two feet also needs balance, which this simple controller does not
provide, so a residual *torque* on the root (3 rotational dofs of the free joint, PD on the root
orientation, ~35 N m) keeps the pelvis upright. It applies no force: the vertical GRF must then
carry the whole weight in quiet standing. The residual torque is asserted to stay small.
"""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from scipy.optimize import lsq_linear

from msdiversity.models import load_model
from msdiversity.physics import make_backend, state_from_arrays

KP, KD = 200.0, 20.0  # joint PD, N m/rad and N m s/rad
KR, DR = 1000.0, 100.0  # root orientation PD (residual torque only)
NSUB = 5  # 100 Hz control on the 2 ms model
SETTLE, MEASURE = 50, 75  # control steps: 0.5 s settling, 0.75 s measured


def _muscle_ctrl(m, d2, qpos, qvel, qkey):
    """Static optimisation: activations in [0, 1] producing the PD + equilibrium joint torques."""
    d2.qpos[:], d2.qvel[:] = qpos, qvel
    d2.act[:] = 0
    mujoco.mj_forward(m, d2)
    bias = d2.actuator_force.copy()  # passive muscle forces
    need = d2.qfrc_bias - d2.qfrc_passive - d2.qfrc_constraint
    d2.act[:] = 1
    mujoco.mj_forward(m, d2)
    gain = d2.actuator_force - bias  # force per unit activation at this length and velocity
    R = np.zeros((m.nu, m.nv))
    mujoco.mju_sparse2dense(R, d2.actuator_moment, d2.moment_rownnz, d2.moment_rowadr, d2.moment_colind)
    jd, jq = np.arange(6, m.nv), np.arange(7, m.nq)
    tau = need[jd] + KP * (qkey[jq] - qpos[jq]) - KD * qvel[jd]
    A = R[:, jd].T * gain[None]
    b = tau - R[:, jd].T @ bias
    reg = 1e-3 * np.abs(A).max() * np.eye(m.nu)
    return lsq_linear(np.vstack([A, reg]), np.concatenate([b, np.zeros(m.nu)]), bounds=(0, 1)).x


def test_myolegs_stands_and_grf_equals_body_weight():
    loaded = load_model("myolegs")
    m = loaded.model
    be = make_backend(loaded, "cpu", nthread=1)
    d2 = mujoco.MjData(m)
    qkey = m.key_qpos[0].copy()
    weight = m.body_subtreemass[0] * np.linalg.norm(m.opt.gravity)
    step = jax.jit(lambda s, u, f: be.step(s, u, NSUB, f))
    s = state_from_arrays(qkey, np.zeros(m.nv), np.zeros(m.na))
    fz, heights, torques, speeds = [], [], [], []
    for k in range(SETTLE + MEASURE):
        qpos, qvel = np.asarray(s.qpos, float), np.asarray(s.qvel, float)
        u = _muscle_ctrl(m, d2, qpos, qvel, qkey)
        e = np.zeros(3)
        mujoco.mju_subQuat(e, qkey[3:7], qpos[3:7])
        qfrc = np.zeros(m.nv)
        qfrc[3:6] = KR * e - DR * qvel[3:6]  # root torque only; qfrc[0:3] (force) stays 0
        s, o = step(s, jnp.asarray(u, jnp.float32), jnp.asarray(qfrc, jnp.float32))
        assert not bool(o.diverged)
        if k >= SETTLE:
            fz.append(float(o.grf[:, 2].sum()))
            heights.append(float(s.qpos[2]))
            torques.append(np.linalg.norm(qfrc[3:6]))
            speeds.append(float(np.abs(np.asarray(s.qvel)).max()))
    fz = np.array(fz)
    # quiet: the pelvis stays within 2 cm of the keyframe height and nothing moves fast
    assert np.abs(np.array(heights) - qkey[2]).max() < 0.02
    assert max(speeds) < 3.0
    assert np.mean(torques) < 80.0  # N m: balance aid only
    assert abs(fz.mean() / weight - 1.0) < 0.05, (fz.mean(), weight)
    assert np.all(np.abs(fz / weight - 1.0) < 0.15)  # and no large transients while measured
