"""Ctrl-C at random moments during `msdiversity run`, then resume: nothing lost, nothing false.

    .venv/bin/python benchmarks/interrupt_resume.py [--n 10] [--seed 0] [--workdir DIR]

1. A reference: the tiny experiment below trained uninterrupted (`msdiversity train`).
2. A chain of `n` real `msdiversity run` processes on one results folder, each sent SIGINT at a
   uniformly random moment of its training (from the moment it has written `members.json`, i.e.
   built its env, up to 90 % of the time its remaining iterations are expected to take, estimated
   from the reference's `wall_time`); each continues from the previous one's checkpoint.
3. `msdiversity train --resume` finishes the chain.

Checks: every interrupted process exits 130 and prints no traceback, `CpuCallback error`,
`StepAlreadyExistsError` or `Directory not empty`; no stray temporary files remain; the finished
chain's metrics.nc equals the reference's bit for bit (every variable but wall_time). Prints one
line per interrupt and a verdict; exit status 0 only when everything held. ~1 min per process on
2 busy cores (too long for the test suite; tests/test_interrupts.py checks one in-process SIGINT).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TOML = """\
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
iterations = {iterations}
num_envs = 4
unroll_length = 4
num_minibatches = 1
update_epochs = 1
hidden = [16]
checkpoint_every = 4
eval_every = 3
eval_envs = 2
eval_steps = 5
[ensemble]
seeds = [0, 1]
"""
BAD_OUTPUT = ("Traceback", "CpuCallback", "StepAlreadyExists", "Directory not empty")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "msdiversity.cli", *args]


def _steps(ckpt: Path) -> list[int]:
    return sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit()) if ckpt.is_dir() else []


def _run(cmd: list[str], cwd: Path, log: Path, timeout: float) -> int:
    with open(log, "w") as f:
        return subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout,
                              env=dict(os.environ, PYTHONUNBUFFERED="1")).returncode


def interrupt_chain(n: int = 10, seed: int = 0, workdir: str | Path | None = None, iterations: int = 16,
                    timeout: float = 900.0, say=print) -> dict:
    """Run the check; returns {'ok': bool, 'interrupts': [...], 'identical': bool, 'problems': [...]}."""
    import xarray as xr

    work = Path(workdir or tempfile.mkdtemp(prefix="msd-interrupt-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "tiny.toml").write_text(TOML.format(iterations=iterations))
    problems: list[str] = []

    t0 = time.monotonic()
    rc = _run(_cli("train", "tiny.toml", "--results-dir", "results/ref"), work, work / "ref.log", timeout)
    if rc != 0:
        raise RuntimeError(f"reference training failed ({rc}); see {work / 'ref.log'}")
    members = work / "results" / "ref" / "members.json"
    total = time.monotonic() - t0
    with xr.open_dataset(work / "results" / "ref" / "metrics.nc", engine="h5netcdf") as ds:
        ref = {k: ds[k].values.copy() for k in ds.data_vars}
    wall = ref["wall_time"][:, :iterations].max(axis=0)  # (iterations,) s since the loop started
    per_it = float(np.median(np.diff(wall)))
    setup = max(total - float(wall[iterations - 1]), 0.0)  # everything outside the loop, compile included
    say(f"reference: {iterations} iterations in {total:.0f} s ({per_it:.2f} s each); workdir {work}")

    rng = np.random.default_rng(seed)
    res_dir = work / "results" / "chain"
    members = res_dir / "members.json"
    records = []
    for k in range(n):
        done = _steps(res_dir / "checkpoints")
        remaining = iterations - (done[-1] if done else 0)
        if remaining <= 1:
            say(f"chain finished its training after {k} interrupts; stopping early")
            break
        log = work / f"run{k}.log"
        launch = time.time()
        with open(log, "w") as f:
            p = subprocess.Popen(_cli("run", "tiny.toml", "--name", "chain"), cwd=work, stdout=f,
                                 stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
            while p.poll() is None and not (members.exists() and members.stat().st_mtime >= launch):
                time.sleep(0.05)
            delay = float(rng.uniform(0.0, 0.9 * (0.5 * setup + remaining * per_it)))
            time.sleep(delay)
            sent = p.poll() is None
            if sent:
                p.send_signal(signal.SIGINT)
            rc = p.wait(timeout=timeout)
        out = log.read_text()
        steps = _steps(res_dir / "checkpoints")
        bad = [b for b in BAD_OUTPUT if b in out]
        tmp = [str(q) for q in res_dir.rglob(".*.tmp")]
        ok = sent and rc == 130 and not bad and not tmp
        if not ok:
            problems.append(f"interrupt {k}: sent={sent} rc={rc} bad output={bad} stray tmp={tmp} (log {log})")
        records.append({"delay_s": delay, "rc": rc, "checkpoints": steps, "ok": ok})
        say(f"interrupt {k + 1}/{n}: SIGINT {delay:5.1f} s into training -> exit {rc}; checkpoints {steps}"
            + ("" if ok else "  <-- PROBLEM"))

    rc = _run(_cli("train", "tiny.toml", "--resume", "--results-dir", "results/chain"), work, work / "final.log", timeout)
    if rc != 0:
        problems.append(f"final resume exited {rc} (log {work / 'final.log'})")
        identical = False
    else:
        with xr.open_dataset(res_dir / "metrics.nc", engine="h5netcdf") as ds:
            got = {k: ds[k].values.copy() for k in ds.data_vars}
        keys = sorted(set(ref) - {"wall_time"})
        differ = [k for k in keys if k not in got or not np.array_equal(ref[k], got[k], equal_nan=True)]
        identical = not differ and set(got) == set(ref)
        if not identical:
            problems.append(f"metrics differ from the uninterrupted run: {differ or sorted(set(got) ^ set(ref))}")
    verdict = not problems and len(records) == n
    say(f"{sum(r['ok'] for r in records)}/{len(records)} interrupts exited 130 cleanly; resumed metrics identical "
        f"to the uninterrupted run: {identical}; {'OK' if verdict else 'FAILED: ' + '; '.join(problems)}")
    return {"ok": verdict, "interrupts": records, "identical": identical, "problems": problems, "workdir": str(work)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=16)
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    return 0 if interrupt_chain(a.n, a.seed, a.workdir, a.iterations)["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
