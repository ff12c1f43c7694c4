"""The `mjx-warp` backend (MuJoCo Warp kernels behind MJX) against MuJoCo C, on this machine's CPU.

Warp compiles the same kernels a GPU runs for its CPU device, so these tests exercise the GPU code
path without a GPU. `benchmarks/device_check.sh` runs this file on CUDA.

Time (2 shared cores): first run ~2-3 min (Warp compiles kernels per model, XLA compiles the
programs); later runs reuse Warp's kernel cache (`.venv/warp-cache`, set in conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from msdiversity.config import experiment_from_dict
from msdiversity.emulator import EnvConfig, make_env
from msdiversity.emulator.testing import _grf, simulated_reference
from msdiversity.ensemble import train_experiment
from msdiversity.models import load_model, registry
from msdiversity.physics import make_backend, resolve_backend, state_from_arrays
from msdiversity.physics.select import _has_gpu

# Named tolerances. Warp simulates in float32 throughout, MuJoCo C in float64. Measured here:
# elbow qpos 2.2e-6 rad, activation 1.8e-7, force 6e-6 x max after 40 control steps (400 physics
# steps); myolegs qpos 3e-6 (standing) / 9e-6 rad (walking) after 100 physics steps, activations
# 6e-8, per-foot GRF 0.004 / 0.016 N of up to 1.3 kN.
QPOS_TOL = 1e-4  # rad (or m for the root translation)
ACT_TOL = 1e-6  # activation (dimensionless, 0..1)
FORCE_RTOL = 1e-3  # muscle force, relative to the largest
GRF_ATOL, GRF_RTOL = 0.1, 1e-4  # N, and relative to the largest |GRF| component


def _c_rollout(m, qpos, qvel, U, nsub, feet=None):
    """MuJoCo C (float64) from a float32-rounded start: qpos, act, actuator_force (and GRF) per control step."""
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:] = np.float32(qpos), np.float32(qvel)
    Q, A, F, G = [], [], [], []
    for u in U:
        d.ctrl[:] = u
        for _ in range(nsub):
            mujoco.mj_step(m, d)
        Q.append(d.qpos.copy())
        A.append(d.act.copy())
        F.append(d.actuator_force.copy())  # forces of the last substep, as the backends report
        if feet is not None:
            G.append(_grf(m, d, feet))
    return tuple(np.array(x) for x in (Q, A, F, G))


def _warp_rollout(be, qpos, qvel, U, nsub):
    """Backend rollout of a batch of starts (B, nq) under the same controls (T, nu)."""
    s0 = jax.vmap(lambda q, v: state_from_arrays(q, v, jnp.zeros(be.spec.na)))(
        jnp.asarray(qpos, jnp.float32), jnp.asarray(qvel, jnp.float32))

    def body(s, u):
        s, o = jax.vmap(lambda s: be.step(s, u, nsub))(s)
        return s, (s.qpos, s.act, o.actuator_force, o.grf, o.diverged)

    out = jax.jit(lambda s: jax.lax.scan(body, s, jnp.asarray(U, jnp.float32)))(s0)[1]
    return [np.asarray(x) for x in out]  # each (T, B, ...)


def test_warp_matches_mujoco_on_elbow():
    loaded = load_model("myoelbow_2dof")
    m = loaded.model
    U = np.tile(np.array([0.3, 0.3, 0.3, 0.6, 0.6, 0.6], np.float32), (40, 1))  # 40 control steps
    nsub = 10
    Q, A, F, _ = _c_rollout(m, m.qpos0, np.zeros(m.nv), U, nsub)
    assert np.ptp(Q[:, 1]) > 1.0  # the elbow really moves (flexes by > 1 rad)
    be = make_backend(loaded, "mjx-warp", nworld=4)
    q, a, f, _, dv = _warp_rollout(be, m.qpos0[None], np.zeros((1, m.nv)), U, nsub)
    assert not dv.any()
    assert np.abs(q[:, 0] - Q).max() < QPOS_TOL
    assert np.abs(a[:, 0] - A).max() < ACT_TOL
    assert np.abs(f[:, 0] - F).max() < FORCE_RTOL * np.abs(F).max()


def test_warp_matches_mujoco_on_myolegs_standing_and_walking():
    """Two starts in one batch: the standing keyframe, and mid-stride of the shared walk (frame 20,
    right heel strike: both feet loaded, joints moving). Same seeded excitations, 100 physics steps."""
    loaded = load_model("myolegs")
    m = loaded.model
    # mid-stride state of the shared walk, shipped with the tests (CI has no ../shared): qpos/qvel of
    # frame 20 as load_model_reference maps gait2354_subject01_walk1 onto myolegs
    walk = np.load(Path(__file__).parent / "data" / "myolegs_walk_frame20.npz")
    nsub, n = 5, 20  # 20 control steps of 5 substeps = 100 physics steps (0.2 s)
    U = np.random.default_rng(0).uniform(0, 0.3, (n, m.nu)).astype(np.float32)
    starts = [(m.key_qpos[0], np.zeros(m.nv)), (walk["qpos"], walk["qvel"])]
    fg = registry.foot_geoms(m)
    feet = {s: {mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, g) for g in fg[s]} for s in fg}
    be = make_backend(loaded, "mjx-warp", nworld=4)
    q, a, _, g, dv = _warp_rollout(be, np.stack([s[0] for s in starts]), np.stack([s[1] for s in starts]), U, nsub)
    assert not dv.any()
    for i, label in enumerate(("standing", "walking")):
        Q, A, _, G = _c_rollout(m, *starts[i], U, nsub, feet)
        assert np.ptp(Q[:, 7:], axis=0).max() > 0.3, label  # joints really move (> 0.3 rad)
        assert (G[:, :, 2].sum(axis=1) > 100.0).all(), label  # feet carry load throughout
        assert np.abs(q[-1, i] - Q[-1]).max() < QPOS_TOL, label  # qpos after 100 steps
        assert np.abs(q[:, i] - Q).max() < QPOS_TOL, label
        assert np.abs(a[:, i] - A).max() < ACT_TOL, label
        assert np.abs(g[:, i] - G).max() < GRF_ATOL + GRF_RTOL * np.abs(G).max(), label  # (T, foot, xyz)


def test_auto_stays_cpu_without_gpu_and_warp_runs_by_name():
    assert resolve_backend("auto") == ("mjx-warp" if _has_gpu() else "cpu")
    assert resolve_backend("mjx-warp") == "mjx-warp"  # explicit request works on a CPU too


def _exp(backend: str):
    return experiment_from_dict({
        "name": f"warp_{backend}", "model": {"name": "myoelbow_2dof"},
        "motion": {"source": "synthetic", "seed": 0, "duration": 1.0},
        "env": {"backend": backend},
        "train": {"iterations": 2, "num_envs": 4, "unroll_length": 4, "num_minibatches": 2, "eval_every": 2,
                  "eval_envs": 2, "eval_steps": 5, "checkpoint_every": 1000},
        "ensemble": {"seeds": [0, 1], "effort_weight": [0.1]}})


def test_env_and_two_iteration_ensemble_training_on_warp(tmp_path):
    """The env on mjx-warp equals the env on cpu step by step (observations and tracking errors);
    a 2-member ensemble trains 2 iterations on mjx-warp and writes its outputs."""
    loaded = load_model("myoelbow_2dof")
    ref = simulated_reference(0, loaded, n_frames=12)
    envs = {b: make_env(loaded, ref, EnvConfig(random_init=False), backend=b) for b in ("cpu", "mjx-warp")}
    assert envs["mjx-warp"].backend_name == "mjx-warp"
    u = jnp.asarray(ref.excitation[:10], jnp.float32)
    obs = {}
    for b, env in envs.items():
        def run(key, env=env):
            s = env.reset(key)
            return jax.lax.scan(lambda s, a: (lambda s2: (s2, (s2.obs, s2.info["errors"])))(env.step(s, a)), s, u)[1]
        obs[b] = [np.asarray(x) for x in jax.jit(run)(jax.random.PRNGKey(0))]
    for x_cpu, x_warp in zip(obs["cpu"], obs["mjx-warp"]):
        np.testing.assert_allclose(x_warp, x_cpu, rtol=1e-3, atol=1e-4)

    r = train_experiment(_exp("mjx-warp"), results_dir=tmp_path / "w", show_progress=False)
    w = r.metrics
    assert r.iterations == 2 and w.attrs["backend"] == "mjx-warp" and w.sizes["member"] == 2
    for v in ("joint_err_deg", "reward_task", "eval_joint_err_deg"):
        vals = w[v].isel(iteration=[0, 2] if v.startswith("eval") else [0, 1]).values
        assert np.isfinite(vals).all() and (vals != 0).any(), v
    assert (tmp_path / "w" / "metrics.nc").exists() and any((tmp_path / "w" / "checkpoints").iterdir())
