"""A diverging env ends its own episode, is counted in metrics, and leaves the others untouched."""

import jax
import jax.numpy as jnp
import numpy as np

from msdiversity.emulator import EnvConfig, make_env
from msdiversity.emulator.testing import simulated_reference
from msdiversity.models import load_model


def test_diverging_env_is_isolated():
    loaded = load_model("myoelbow_2dof")
    ref = simulated_reference(0, loaded, n_frames=20)
    env = make_env(loaded, ref, EnvConfig(random_init=False, threads=2), backend="cpu")
    n = 4
    reset = jax.jit(jax.vmap(env.reset))
    step = jax.jit(jax.vmap(env.step))
    s0 = reset(jax.random.split(jax.random.PRNGKey(0), n))
    a = jnp.full((n, env.action_size), 0.3)
    good = step(s0, a)
    # env 1: corrupted physics state (a velocity MuJoCo rejects); env 2: NaN action from a broken policy
    ps = s0.pipeline_state
    bad0 = s0.replace(pipeline_state=ps.replace(qvel=ps.qvel.at[1, 0].set(1e12)))
    bad_a = a.at[2, 0].set(jnp.nan)
    s = step(bad0, bad_a)  # must not raise
    assert np.asarray(s.metrics["diverged"]).tolist() == [0.0, 1.0, 1.0, 0.0]
    assert np.asarray(s.done).tolist() == [0.0, 1.0, 1.0, 0.0]
    assert np.asarray(s.info["diverged"]).tolist() == [0.0, 1.0, 1.0, 0.0]
    for leaf in jax.tree.leaves(s):
        assert np.isfinite(np.asarray(leaf, float)).all()
    for i in (0, 3):
        for x, y in zip(jax.tree.leaves(jax.tree.map(lambda v: v[i], s)),
                        jax.tree.leaves(jax.tree.map(lambda v: v[i], good))):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # training goes on: the next step works and the healthy envs keep going
    s = step(s, a)
    assert np.isfinite(np.asarray(s.obs)).all()
