"""Whole-body scale on the cpu backend: myofullbody (416 muscles) and MS-Human-700 (700 muscles) each
reset, step, and complete one training iteration of a 2-member ensemble.

Small networks and batches: this checks that the whole pipeline runs at this size (shapes, the
batched MuJoCo callback, the muscle state, outputs), not learning. ~25 s CPU per model.
Throughput and memory at these sizes: `msdiversity bench physics --model ...` and docs/SCALING.md.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msdiversity.config import experiment_from_dict
from msdiversity.emulator import EnvConfig, make_env
from msdiversity.emulator.testing import simulated_reference
from msdiversity.ensemble import train_experiment
from msdiversity.models import load_model

MS700 = Path(__file__).parents[2] / "shared" / "data" / "ms_human_700" / "MS-Human-700.xml"
MODELS = [pytest.param("myofullbody", 416, id="myofullbody"),
          pytest.param(str(MS700), 700, id="ms_human_700",
                       marks=pytest.mark.skipif(not MS700.exists(), reason=f"MS-Human-700 XML absent ({MS700})"))]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")  # missing meshes stripped, synthetic joint-range notes
@pytest.mark.parametrize("model,muscles", MODELS)
def test_wholebody_resets_steps_and_trains_one_iteration(tmp_path, model, muscles):
    loaded = load_model(model)
    assert loaded.model.nu == muscles
    # reset and step a batch of 2 envs on the cpu backend (MuJoCo C through mujoco.batch)
    ref = simulated_reference(0, loaded, n_frames=6, max_excitation=0.2)
    env = make_env(loaded, ref, EnvConfig(random_init=False, threads=2), backend="cpu")
    assert env.action_size == muscles

    def run(keys):
        s = jax.vmap(env.reset)(keys)
        a = jnp.asarray(np.tile(ref.excitation[:3][:, None], (1, 2, 1)), jnp.float32)  # (3 steps, 2 envs, nu)
        return jax.lax.scan(lambda s, u: (lambda s2: (s2, (s2.info["activation"], s2.info["diverged"],
                                                           s2.info["errors"])))(jax.vmap(env.step)(s, u)), s, a)[1]

    act, diverged, err = [np.asarray(x) for x in jax.jit(run)(jax.random.split(jax.random.PRNGKey(0), 2))]
    assert act.shape == (3, 2, muscles) and not diverged.any() and np.isfinite(err).all()
    # replaying the reference's own excitations reproduces its activations (same MuJoCo dynamics)
    np.testing.assert_allclose(act[:, 0], ref.activation[1:4], atol=1e-4)

    exp = experiment_from_dict({
        "name": "wholebody", "model": {"name": model},
        "motion": {"source": "synthetic", "seed": 0, "duration": 0.3},
        "env": {"backend": "cpu", "threads": 2},
        "train": {"iterations": 1, "num_envs": 2, "unroll_length": 4, "num_minibatches": 1, "eval_every": 1,
                  "eval_envs": 2, "eval_steps": 3, "checkpoint_every": 1000, "hidden": [32, 32]},
        "ensemble": {"seeds": [0, 1]}})
    r = train_experiment(exp, results_dir=tmp_path / "r", show_progress=False)
    ds = r.metrics
    assert r.iterations == 1 and ds.sizes["member"] == 2 and ds.attrs["backend"] == "cpu"
    for v in ("joint_err_deg", "reward_task", "activation_mean"):
        assert np.isfinite(ds[v].isel(iteration=0).values).all(), v
    assert np.isfinite(ds["eval_joint_err_deg"].values).all()  # before and after the update
    assert (tmp_path / "r" / "metrics.nc").exists()
