"""Ctrl-C during training (a real SIGINT): exit 130 and one intact checkpoint; non-finite training
stops with one message. Real `msdiversity run` processes interrupted at 10 random moments and
resumed to the uninterrupted metrics bit for bit: `benchmarks/interrupt_resume.py` (about 12
processes, ~15 min on 2 busy cores; run by hand). Bitwise resume in-process: tests/resume_check.py."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest


TINY = """\
name = "tiny"
[model]
name = "myoelbow_2dof"
[motion]
source = "synthetic"
seed = 1
duration = 0.5
[env]
episode_length = 25
backend = "cpu"
threads = 1
[train]
iterations = 400
num_envs = 4
unroll_length = 4
num_minibatches = 1
update_epochs = 1
hidden = [16]
checkpoint_every = 2
eval_every = 3
eval_envs = 2
eval_steps = 5
[ensemble]
seeds = [0, 1]
"""


@pytest.mark.slow
def test_ctrl_c_during_training_exits_130_with_one_checkpoint(tmp_path, monkeypatch, capsys):
    """SIGINT (a real signal to this process) once training is under way: the command returns 130
    (it returned 0), the interrupt waits for the iteration, and the checkpoint on disk is whole, with
    its metric history. Real processes at 10 random moments: benchmarks/interrupt_resume.py."""
    from msdiversity.cli import main
    from msdiversity.ensemble import checkpoint

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(TINY)
    res = tmp_path / "results" / "tiny"

    def fire():  # once members.json is written (env built, about to compile) and a bit later
        while not (res / "members.json").exists():
            time.sleep(0.05)
        time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=fire, daemon=True).start()
    assert main(["train", "tiny.toml"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
    steps = sorted(int(p.name) for p in (res / "checkpoints").iterdir() if p.name.isdigit())
    assert steps and steps[-1] < 400
    hist = checkpoint.load_history(res / "checkpoints", steps[-1])
    assert sorted(hist) == list(range(steps[-1] + 1)) or sorted(hist) == list(range(steps[-1]))
    assert not list(res.rglob(".*.tmp"))


@pytest.mark.slow
def test_non_finite_training_stops_with_one_message(tmp_path):
    from msdiversity.config import experiment_from_dict
    from msdiversity.ensemble import train_experiment
    from msdiversity.errors import TrainingDiverged

    exp = experiment_from_dict({
        "name": "nf", "model": {"name": "myoelbow_2dof"},
        "motion": {"source": "synthetic", "seed": 0, "duration": 0.5},
        "env": {"backend": "cpu", "threads": 1, "episode_length": 25},
        "train": {"iterations": 3, "num_envs": 4, "unroll_length": 4, "num_minibatches": 1, "update_epochs": 1,
                  "hidden": [16], "eval_every": 10, "eval_envs": 2, "eval_steps": 5},
        # a finite but absurd weight: rewards of -1e38 overflow the value loss to inf, then NaN
        "ensemble": {"seeds": [0], "effort_weight": [3e38]}})
    with pytest.raises(TrainingDiverged) as e:
        train_experiment(exp, results_dir=tmp_path / "r", show_progress=False)
    msg = str(e.value)
    assert "iteration 1" in msg and "member 0 (seed 0" in msg and "non-finite" in msg, msg
    assert not any(p.name.isdigit() for p in (tmp_path / "r" / "checkpoints").iterdir())  # nothing bad saved
