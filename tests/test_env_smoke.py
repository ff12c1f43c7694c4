"""Every registered model: jit reset and step, finite values, stable shapes (cpu backend; the env on
mjx-warp is checked in test_warp_parity.py, the mjx-jax physics against MuJoCo C in test_physics_backends.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msdiversity.config import section_to_dataclass
from msdiversity.emulator import EnvConfig, make_env
from msdiversity.emulator.testing import simulated_reference
from msdiversity.errors import ConfigError
from msdiversity.models import list_models, load_model

CASES = [(name, "cpu") for name in list_models()]


@pytest.mark.parametrize("name,backend", CASES)
def test_env_reset_step_smoke(name, backend):
    loaded = load_model(name)
    ref = simulated_reference(0, loaded, n_frames=12)
    env = make_env(loaded, ref, EnvConfig(threads=2), backend=backend)
    n = 3
    reset = jax.jit(jax.vmap(env.reset))
    step = jax.jit(jax.vmap(env.step))
    s = reset(jax.random.split(jax.random.PRNGKey(1), n))
    assert s.obs.shape == (n, env.observation_size)
    assert s.info["errors"].shape == (n, len(env.error_names))
    a = jnp.full((n, env.action_size), 0.1)
    for _ in range(3):
        s2 = step(s, a)
        assert jax.tree.map(jnp.shape, s2) == jax.tree.map(jnp.shape, s)  # stable structure and shapes
        s = s2
    for leaf in jax.tree.leaves(s):
        assert np.isfinite(np.asarray(leaf, float)).all()
    assert float(s.metrics["diverged"].sum()) == 0.0
    assert s.info["muscle_force"].shape == (n, loaded.model.nu)
    assert s.info["grf"].shape == (n, 2, 3)
    if env.has_grf:  # feet models start from the keyframe on the ground
        assert float(s.info["grf"][..., 2].sum()) > 0.0
    rec = env.recording_arrays(jax.tree.map(lambda x: x[0], s))
    assert rec["body_pos"].shape == (len(env.body_names), 3)


def test_env_tracks_its_own_reference_exactly():
    """Replaying the reference's true excitations from its first frame reproduces it: errors ~ 0."""
    loaded = load_model("myoelbow_2dof")
    ref = simulated_reference(3, loaded, n_frames=30)
    env = make_env(loaded, ref, EnvConfig(random_init=False), backend="cpu")
    s = jax.jit(env.reset)(jax.random.PRNGKey(0))
    step = jax.jit(env.step)
    worst = 0.0
    for i in range(25):
        s = step(s, jnp.asarray(ref.excitation[i], jnp.float32))
        worst = max(worst, float(s.metrics["joint_err_deg"]))
    assert worst < 0.01  # degrees (float32 state rounding only)
    assert float(s.reward) > 0.99
    # a wrong excitation pattern is detected
    s = jax.jit(env.reset)(jax.random.PRNGKey(0))
    for i in range(25):
        s = step(s, jnp.asarray(1.0 - ref.excitation[i], jnp.float32))
    assert float(s.metrics["joint_err_deg"]) > 1.0 or float(s.done) == 1.0


def test_env_config_from_toml_section():
    cfg = section_to_dataclass(EnvConfig, {"control_hz": 100, "obs_frames_ahead": [1, 3], "backend": "cpu"}, "env")
    assert cfg.control_hz == 100 and cfg.obs_frames_ahead == (1, 3)
    with pytest.raises(ConfigError):
        section_to_dataclass(EnvConfig, {"control_hzz": 100}, "env")
    loaded = load_model("myoelbow_2dof")
    ref = simulated_reference(0, loaded, n_frames=5)
    with pytest.raises(ConfigError, match="control_hz"):
        make_env(loaded, ref, EnvConfig(control_hz=33.0), backend="cpu")


def test_residual_root_forces_reported_and_penalised():
    loaded = load_model("myolegs")
    ref = simulated_reference(0, loaded, n_frames=8)
    env = make_env(loaded, ref, EnvConfig(residual_root=True, random_init=False), backend="cpu")
    assert env.action_size == loaded.model.nu + 6
    s = jax.jit(env.reset)(jax.random.PRNGKey(0))
    a = jnp.zeros(env.action_size).at[-6:].set(jnp.array([0.5, 0, 0, 0, 0, 0]))
    s = jax.jit(env.step)(s, a)
    assert abs(float(s.metrics["residual_force_N"]) - 0.5 * env.config.residual_max_force) < 1e-3
    assert float(s.metrics["reward/residual"]) < 0.0
