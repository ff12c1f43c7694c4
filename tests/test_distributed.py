"""Several processes (jax.distributed): 2 local CPU processes on 127.0.0.1 train the same members as
one process, with the member axis sharded over both processes' devices (one member each).

Checks: the same metrics and trained parameters as a single-process run; outputs written once, by
process 0 (every atomic file write of each process is logged; process 1 writes none), and one
orbax checkpoint per step to which both processes contribute. ~1 min CPU.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
import xarray as xr

from msdiversity.ensemble import load_trained, train_experiment
from msdiversity.ensemble.distributed import DistributedConfig, config_from
from msdiversity.errors import ConfigError

EXPERIMENT = """
name = "dist"
[model]
name = "myoelbow_2dof"
[motion]
source = "synthetic"
seed = 0
duration = 1.0
[env]
backend = "cpu"
threads = 1
[train]
iterations = 2
num_envs = 8
unroll_length = 8
num_minibatches = 2
eval_every = 1
eval_envs = 4
eval_steps = 10
checkpoint_every = 1
hidden = [32, 32]
[ensemble]
seeds = [0, 1]
effort_weight = [0.1]
"""

# One process of the run: logs every os.replace (how msdiversity writes files atomically), then runs
# the real CLI. Process 0 gets its settings as flags, process 1 from the environment.
PROCESS = """
import json, os, sys
log = []
_replace = os.replace
def replace(src, dst, *a, **k):
    log.append(os.path.basename(str(dst)))
    return _replace(src, dst, *a, **k)
os.replace = replace
from msdiversity.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    if e.code:
        raise
finally:
    with open(os.environ["WRITES_LOG"], "w") as f:
        json.dump(log, f)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_process_settings_from_flags_env_and_slurm():
    assert config_from(environ={}) is None
    assert config_from("h:1", 2, 1, environ={}) == DistributedConfig("h:1", 2, 1)
    env = {"MSD_COORDINATOR": "10.0.0.1:4000", "MSD_NUM_PROCESSES": "4", "MSD_PROCESS_ID": "3"}
    assert config_from(environ=env) == DistributedConfig("10.0.0.1:4000", 4, 3)
    assert config_from(process_id=0, environ=env).process_id == 0  # a flag beats the environment
    assert config_from(environ={"SLURM_JOB_ID": "7", "SLURM_NTASKS": "8"}) == DistributedConfig(slurm=True)
    assert config_from(environ={"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}) is None
    with pytest.raises(ConfigError, match="missing --process-id"):
        config_from("h:1", 2, environ={})
    with pytest.raises(ConfigError, match="0 <= process id"):
        config_from("h:1", 2, 2, environ={})
    with pytest.raises(ConfigError, match="HOST:PORT"):
        config_from("nohost", 2, 0, environ={})


@pytest.mark.slow
def test_two_cpu_processes_equal_one_process_and_write_once(tmp_path):
    toml = tmp_path / "dist.toml"
    toml.write_text(EXPERIMENT)
    addr = f"127.0.0.1:{_free_port()}"
    out = tmp_path / "two"
    procs = []
    for pid in (0, 1):
        env = dict(os.environ, JAX_PLATFORMS="cpu", WRITES_LOG=str(tmp_path / f"writes{pid}.json"),
                   MSD_PROGRESS_INTERVAL="1000")
        args = ["train", str(toml), "--results-dir", str(out)]
        if pid == 0:
            args += ["--coordinator", addr, "--num-processes", "2", "--process-id", "0"]
        else:
            env.update(MSD_COORDINATOR=addr, MSD_NUM_PROCESSES="2", MSD_PROCESS_ID="1")
        procs.append(subprocess.Popen([sys.executable, "-c", PROCESS, *args], env=env, cwd=tmp_path,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = [p.communicate(timeout=500)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]

    one = train_experiment(toml, results_dir=tmp_path / "one", show_progress=False)
    with xr.open_dataset(out / "metrics.nc", engine="h5netcdf") as ds:
        two = ds.load()
    assert two.attrs["devices"] == 2 and two.attrs["sharded"] == 1
    assert one.metrics.attrs["devices"] == 1 and one.metrics.attrs["sharded"] == 0
    for v in ("eval_joint_err_deg", "joint_err_deg", "reward_task", "activation_mean"):
        np.testing.assert_allclose(two[v].values, one.metrics[v].values, rtol=1e-5, atol=1e-6, err_msg=v)

    # written once: process 0 wrote every msdiversity output, process 1 none of them
    w0, w1 = (json.loads((tmp_path / f"writes{k}.json").read_text()) for k in (0, 1))
    for name in ("metrics.nc", "members.json", "experiment.json", "meta.json", "history-2.npz"):
        assert name in w0, (name, w0)
    assert w1 == [], w1
    # one orbax checkpoint per kept step, restorable by a single process with the same parameters
    assert sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit()) == [1, 2]
    _, p_two, _, _ = load_trained(out)
    _, p_one, _, _ = load_trained(tmp_path / "one")
    for a, b in zip(jax.tree_util.tree_leaves(p_two), jax.tree_util.tree_leaves(p_one)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
