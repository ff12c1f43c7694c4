"""Ensemble training on the real emulator (myoelbow_2dof, MuJoCo C backend, synthetic reference).

Budget: about 3-4 minutes on 2 shared cores in total (each training compiles once, ~15 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from msdiversity.config import experiment_from_dict
from msdiversity.ensemble import load_trained, train_experiment
from msdiversity.ensemble.config import EnsembleConfig, expand_members
from msdiversity.errors import ConfigError
from resume_check import assert_resume_bitwise


def make_exp(train: dict, ensemble: dict, name: str = "t"):
    return experiment_from_dict({
        "name": name, "model": {"name": "myoelbow_2dof"},
        "motion": {"source": "synthetic", "seed": 0, "duration": 2.0},
        "env": {"backend": "cpu"},
        "train": {"num_envs": 32, "unroll_length": 16, "eval_every": 10, "eval_envs": 16, "checkpoint_every": 1000,
                  **train},
        "ensemble": ensemble})


def eval_err(ds, it):
    return ds["eval_joint_err_deg"].isel(iteration=it).values  # (members,)


def test_members_grid_and_list_expansion():
    m = expand_members(EnsembleConfig(seeds=(0, 1), effort_exponent=(2.0, 3.0), effort_weight=(0.1,)))
    assert [(r["seed"], r["effort_exponent"]) for r in m] == [(0, 2.0), (0, 3.0), (1, 2.0), (1, 3.0)]
    m = expand_members(EnsembleConfig(mode="list", seeds=(0, 1, 2), effort_exponent=(2.0, 3.0, 4.0)))
    assert [(r["seed"], r["effort_exponent"], r["effort_weight"]) for r in m] == [(0, 2.0, 0.1), (1, 3.0, 0.1),
                                                                                 (2, 4.0, 0.1)]
    with pytest.raises(ConfigError, match="ensemble.effort_exponent"):
        expand_members(EnsembleConfig(mode="list", seeds=(0, 1, 2), effort_exponent=(2.0, 3.0)))


@pytest.mark.slow
def test_training_halves_error_and_effort_exponent_changes_activation(tmp_path):
    """Two members (p = 1 and p = 4, same seed, strong effort weight) in one vmapped program."""
    exp = make_exp({"iterations": 60}, {"seeds": [0], "effort_exponent": [1.0, 4.0], "effort_weight": [1.0]})
    r = train_experiment(exp, results_dir=tmp_path / "r", show_progress=False)
    ds = r.metrics
    e0, e1 = eval_err(ds, 0), eval_err(ds, -1)
    print("joint error deg initial", e0, "final", e1)
    assert np.all(e1 <= 0.5 * e0), (e0, e1)
    act = ds["eval_activation_mean"].isel(iteration=-1).values
    act_train = ds["activation_mean"].isel(iteration=slice(-11, -1)).mean("iteration").values
    print("final mean activation (eval, train last 10 it)", act, act_train)
    # a^1 penalises low activations far more than a^4: the p=4 member co-contracts more
    assert act[1] > 1.2 * act[0] and act_train[1] > 1.2 * act_train[0]
    # outputs
    for f in ("metrics.nc", "members.json", "experiment.json"):
        assert (tmp_path / "r" / f).exists()
    for v in ("joint_err_deg", "body_err_cm", "episode_length", "reward_task", "reward_effort", "cost_effort"):
        assert v in ds and np.isfinite(ds[v].isel(iteration=slice(0, -1)).values).all(), v
    assert ds["joint_err_deg"].attrs["units"] == "deg"
    # the recorder's entry point gives back the same deterministic policies
    make_policy, params, members, env = load_trained(tmp_path / "r")
    assert [m["effort_exponent"] for m in members] == [1.0, 4.0]
    s = env.reset(jax.random.PRNGKey(0))
    a = make_policy(params[1])(s.obs, jax.random.PRNGKey(1))
    assert a.shape == (env.action_size,) and bool(((a >= 0) & (a <= 1)).all())


@pytest.mark.slow
def test_resume_matches_uninterrupted(tmp_path):
    tr = {"iterations": 6, "num_envs": 8, "unroll_length": 8, "num_minibatches": 2, "checkpoint_every": 2,
          "eval_every": 3}
    exp = make_exp(tr, {"seeds": [3], "effort_weight": [0.1]})
    assert_resume_bitwise(exp, tmp_path, ("joint_err_deg", "eval_joint_err_deg", "loss_value"))


SHARD_SCRIPT = r"""
import json, sys, jax, numpy as np
sys.path.insert(0, {tests!r})
from test_ensemble_training import make_exp
from msdiversity.ensemble import train_experiment
assert len(jax.devices()) == 4, jax.devices()
out = {{}}
for shard in (True, False):
    exp = make_exp({{"iterations": 2, "num_envs": 8, "unroll_length": 8, "num_minibatches": 2, "eval_every": 1}},
                   {{"seeds": [0, 1], "effort_exponent": [2.0, 3.0], "shard": shard}})
    r = train_experiment(exp, results_dir={tmp!r} + f"/{{shard}}", show_progress=False)
    out[str(shard)] = {{"sharded": int(r.metrics.attrs["sharded"]), "err": r.metrics["joint_err_deg"].values[:, :2].tolist(),
                       "loss": r.metrics["loss_value"].values[:, :2].tolist()}}
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow
def test_member_axis_sharded_over_4_host_devices(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    code = SHARD_SCRIPT.format(tests=str(Path(__file__).parent), tmp=str(tmp_path))
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=400,
                       cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.split("RESULT")[-1])
    assert res["True"]["sharded"] == 1 and res["False"]["sharded"] == 0
    # 4 members on 4 devices give the same numbers as on one device
    np.testing.assert_allclose(res["True"]["err"], res["False"]["err"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res["True"]["loss"], res["False"]["loss"], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("train", [{"reward": "adversarial"}, {"policy": "flow"}], ids=["adversarial", "flow"])
def test_adversarial_reward_and_flow_policy_train(tmp_path, train):
    exp = make_exp({"iterations": 50, **train}, {"seeds": [0], "effort_weight": [0.0]})
    ds = train_experiment(exp, results_dir=tmp_path / "r", show_progress=False).metrics
    e0, e1 = eval_err(ds, 0), eval_err(ds, -1)
    print(train, "joint error deg", e0, "->", e1)
    assert np.all(e1 <= 0.5 * e0), (e0, e1)
    if train.get("reward") == "adversarial":
        d_pos = ds["disc_D_pos"].isel(iteration=slice(-10, -1)).mean().item()
        d_neg = ds["disc_D_neg"].isel(iteration=slice(-10, -1)).mean().item()
        assert d_pos > d_neg  # the discriminator separates zero error from the policy's errors
    else:
        assert ds["flow_displacement"].isel(iteration=-2).item() > 0  # the flow moved the samples


def test_cli_train_rejects_bad_keys_with_one_line(tmp_path, capsys):
    from msdiversity.cli import main

    p = tmp_path / "bad.toml"
    p.write_text('name = "bad"\n[train]\nlearning_rat = 0.1\n')
    assert main(["train", str(p)]) == 2
    err = capsys.readouterr().err
    assert "train.learning_rat" in err and "bad.toml" in err
    p.write_text('name = "bad"\n[ensemble]\nmode = "list"\nseeds = [0, 1, 2]\neffort_exponent = [2.0, 3.0]\n')
    assert main(["train", str(p)]) == 2
    assert "ensemble.effort_exponent" in capsys.readouterr().err
