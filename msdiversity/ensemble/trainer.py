"""Ensemble training: every member (seed x regularizer setting) in ONE vmapped, jitted program.

`Trainer.iteration` (msdiversity.learning.ppo) is vmapped over the member axis; regularizer values
are traced leaves of that axis, so members differ in data, not in code. The CPU physics backend is a
`jax.pure_callback` with `vmap_method='broadcast_all'`, so all members' environments step in one
`mujoco.batch` call per control step. The member axis is sharded over `jax.devices()` (of every
process of a `jax.distributed` run) when their number divides the member count; each device runs
its own block of members under `jax.shard_map` (`msdiversity.ensemble.distributed`).

Outputs under `results/<experiment>/`: `checkpoints/` (orbax, every `checkpoint_every` iterations,
at the end and on Ctrl-C), `metrics.nc` (dims member, iteration), `members.json`, `experiment.json`,
`MUJOCO_LOG.TXT` (MuJoCo's warnings, only when there were any).

Ctrl-C (SIGINT) during training is deferred to the next safe point (between iterations): the state
after the last completed iteration is checkpointed once and KeyboardInterrupt is raised (the CLI
exits 130). A second Ctrl-C exits at once (130) without a new checkpoint; the previous one is
intact. One process at a time writes a results folder (`msdiversity.util.io.results_lock`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from msdiversity.config import Experiment, experiment_from_dict, load_experiment
from msdiversity.ensemble import checkpoint, distributed
from msdiversity.ensemble.build import build_env, user_files
from msdiversity.ensemble.config import EnsembleConfig, expand_members, section
from msdiversity.learning import QflexConfig, TrainConfig, make_trainer
from msdiversity.learning.regularizers import FIELDS as REG_FIELDS
from msdiversity.learning.regularizers import Regularizers
from msdiversity.errors import TrainingDiverged
from msdiversity.util.io import file_digest, remove_stale_tmp, results_lock, save_dataset_atomic, write_text_atomic

UNITS = {"joint_err_deg": "deg", "body_err_cm": "cm", "eval_joint_err_deg": "deg", "eval_body_err_cm": "cm",
         "episode_length": "control steps", "wall_time": "s", "env_steps": "control steps (per member, cumulative)",
         "time_to_failure": "control steps", "eval_time_to_failure_s": "s"}


# [train] keys that may change between a run and its --resume (they do not change the trained state)
BOOKKEEPING = ("iterations", "checkpoint_every", "eval_every", "eval_envs", "eval_steps")


@dataclasses.dataclass
class TrainResult:
    results_dir: Path
    members: list[dict]
    metrics: xr.Dataset
    iterations: int
    wall_s: float
    resumed_from: int | None
    summary: str


def _var(name: str) -> str:
    return name.replace("/", "_")


def _stack_regs(members: list[dict]) -> Regularizers:
    return Regularizers(**{f: jnp.asarray([m[f] for m in members], jnp.float32) for f in REG_FIELDS})


def _sharding(n_members: int, enabled: bool):
    """Member axis over every device of every process (msdiversity.ensemble.distributed), or None."""
    mesh = distributed.member_mesh(n_members, enabled)
    return None if mesh is None else jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("member"))


class Ensemble:
    """The compiled functions of one experiment's ensemble (members stacked on axis 0)."""

    def __init__(self, env, tc: TrainConfig, members: list[dict], shard: bool = True,
                 qc: QflexConfig | None = None):
        self.trainer = tr = make_trainer(env, tc, qc)
        self.members = members
        self.regs = _stack_regs(members)
        self.sharding = _sharding(len(members), shard)
        keys = jnp.stack([jax.random.PRNGKey(m["seed"]) for m in members])  # (members, 2)
        split = jax.vmap(jax.random.split)(keys)  # (members, 2, 2)
        self.init_keys, self.eval_keys = split[:, 0], split[:, 1]
        s = self.sharding
        put = lambda x: distributed.put_global(x, s)  # noqa: E731
        # each device runs its own block of members (its physics callbacks see only local data)
        par = lambda f: distributed.member_parallel(jax.vmap(f), None if s is None else s.mesh)  # noqa: E731
        self.regs = put(self.regs)
        self._init = jax.jit(par(tr.init), out_shardings=s)
        kw = dict(in_shardings=(s, s), out_shardings=(s, s)) if s is not None else {}
        # no buffer donation: on Ctrl-C the last completed state must still be alive to be saved
        self._iteration = jax.jit(par(tr.iteration), **kw)
        self._evaluate = jax.jit(par(tr.evaluate))
        # (members,) bool: every parameter of the member finite (a NaN/inf learning rate or weight
        # turns them non-finite, after which every metric is meaningless)
        self._finite = jax.jit(par(lambda st: jnp.all(jnp.stack(
            [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(st.params)]))))
        self.put = put

    def init(self):
        return self._init(self.put(self.init_keys), self.regs)

    def abstract_state(self):
        shapes = jax.eval_shape(jax.vmap(self.trainer.init), self.init_keys, self.regs)
        return checkpoint.abstract_like(shapes, self.sharding)

    def iteration(self, state):
        return self._iteration(state, self.regs)

    def finite(self, state) -> np.ndarray:
        return distributed.to_host(self._finite(state))

    def evaluate(self, state, it: int) -> dict[str, np.ndarray]:
        keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(self.eval_keys, it)
        return distributed.to_host(self._evaluate(jax.vmap(self.trainer.policy_params)(state), self.put(keys)))


def _settings(exp: Experiment, tc: TrainConfig, members: list[dict]) -> dict:
    """Everything that shapes the training program and its data (checked on resume)."""
    s = {k: exp.section(k) for k in ("model", "motion", "env", "qflex")}
    return {"sections": json.loads(json.dumps(s, sort_keys=True, default=str)),
            # a motion edited in place must not be continued from checkpoints trained on the old one
            "files": {str(p): file_digest(p) for p in user_files(exp)},
            "train": {k: v for k, v in dataclasses.asdict(tc).items() if k not in BOOKKEEPING},
            "members": members}


def metrics_dataset(rows: dict[int, dict[str, np.ndarray]], members: list[dict], n_iter: int, attrs: dict) -> xr.Dataset:
    """Per-member metrics, dims (member, iteration); iteration i = policy after i updates for eval_*,
    and the i-th update's rollout for the training means. Missing entries are NaN."""
    names = sorted({k for r in rows.values() for k in r})
    M = len(members)
    data = {n: np.full((M, n_iter + 1), np.nan, np.float32) for n in names}
    for i, r in rows.items():
        for k, v in r.items():
            data[k][:, i] = v
    coords = {"member": np.arange(M), "iteration": np.arange(n_iter + 1)}
    for f in ("seed", *REG_FIELDS):
        coords[f] = ("member", np.array([m[f] for m in members]))
    ds = xr.Dataset({k: (("member", "iteration"), v) for k, v in data.items()}, coords=coords, attrs=attrs)
    for k in ds.data_vars:
        ds[k].attrs["units"] = UNITS.get(k, "1")
    return ds


class _Interrupt:
    """Ctrl-C requests, counted by `_deferred_sigint`'s handler."""

    requested = 0


@contextlib.contextmanager
def _deferred_sigint():
    """While active, the first SIGINT only sets a flag (checked between iterations): a
    KeyboardInterrupt raised inside a JAX host callback (the CPU physics) or an orbax save would
    corrupt the run. A second SIGINT exits the process at once with 130."""
    flag = _Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag.requested += 1
        if flag.requested == 1:
            sys.stderr.write("\ninterrupt: stopping after the current iteration to save a checkpoint "
                             "(Ctrl-C again to quit now; the previous checkpoint stays)\n")
            sys.stderr.flush()
        else:
            sys.stderr.write("\ninterrupted again: quitting without a new checkpoint\n")
            sys.stderr.flush()
            os._exit(130)

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, old)


def _check_finite(ens: "Ensemble", state, m: dict[str, np.ndarray], members: list[dict], it: int) -> None:
    """Raise TrainingDiverged when a member's losses or parameters are no longer finite."""
    bad = {k: np.flatnonzero(~np.isfinite(v)) for k, v in m.items() if k.startswith("loss")}
    bad = {k: v for k, v in bad.items() if len(v)}
    nonfinite_params = np.flatnonzero(~ens.finite(state))
    if not bad and not len(nonfinite_params):
        return
    ids = sorted({int(i) for v in bad.values() for i in v} | {int(i) for i in nonfinite_params})
    what = ", ".join(sorted(bad)) if bad else "parameters"
    desc = "; ".join(f"member {i} (seed {members[i]['seed']}, " + ", ".join(f"{f} {members[i][f]:g}" for f in REG_FIELDS)
                     + ")" for i in ids[:3]) + (f"; +{len(ids) - 3} more" if len(ids) > 3 else "")
    raise TrainingDiverged(f"training diverged at iteration {it + 1}: {what} of {desc} became non-finite; "
                           "lower [train] learning_rate or the regularizer weights (the last checkpoint "
                           "before this iteration is kept)")


def train_experiment(experiment: str | Path | Experiment, resume: bool = False, results_dir: Path | None = None,
                     train_overrides: dict | None = None, ensemble_overrides: dict | None = None,
                     env_overrides: dict | None = None, backend: str | None = None, show_progress: bool = True,
                     on_iteration: Callable[[int, dict], Any] | None = None) -> TrainResult:
    """Train an experiment's ensemble; see the module docstring for outputs.

    Args:
        experiment: path of the TOML file or a parsed Experiment.
        resume: continue from the newest checkpoint in `results_dir/checkpoints` (settings must match;
            `iterations` may be raised).
        results_dir: default `results/<experiment name>`.
        *_overrides: replace keys of the [train] / [ensemble] / [env] sections.
        on_iteration: called after each iteration with (iteration, metrics of that iteration, named
            like the metrics.nc variables, e.g. `joint_err_deg`, `reward_task`, each (members,));
            used by the pipeline for sub-progress (and by tests to simulate an interrupt). If it returns
            True, training stops after that iteration as if `iterations` had been reached there
            (final evaluation and checkpoint; benchmarks use this for a wall-clock budget).
    """
    from msdiversity.util.progress import console

    distributed.ensure_initialized()  # a multi-process run described by the environment / SLURM, if any
    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment)
    tc = section(TrainConfig, exp, "train", train_overrides).validate(exp.path)
    qc = section(QflexConfig, exp, "qflex").validate(exp.path)
    ec = section(EnsembleConfig, exp, "ensemble", ensemble_overrides)
    members = expand_members(ec, exp.path)
    out = Path(results_dir) if results_dir is not None else exp.results_dir
    from msdiversity.physics.cpu import mujoco_warnings

    primary = distributed.is_primary()  # only process 0 of a multi-process run writes outputs
    show_progress = show_progress and primary
    lock = results_lock(out) if primary else contextlib.nullcontext()
    log = out / f"MUJOCO_LOG{distributed.process_suffix()}.TXT"
    with lock, mujoco_warnings(log) as (mjw, owned), _deferred_sigint() as sigint:
        if primary:
            remove_stale_tmp(out)  # left by a killed writer; nobody else writes here while we hold the lock
        try:
            res = _train_locked(exp, tc, qc, ec, members, out, resume, backend, env_overrides, show_progress,
                                on_iteration, sigint)
        finally:
            if owned and mjw.count:
                console.print(f"[yellow]{mjw.summary()}[/]")
    return res


def _train_locked(exp, tc, qc, ec, members, out, resume, backend, env_overrides, show_progress, on_iteration,
                  sigint) -> TrainResult:
    from msdiversity.util.progress import console, make_progress

    from msdiversity.physics.select import nworld_at_least

    with nworld_at_least(len(members) * max(tc.num_envs, tc.eval_envs)):  # mjx-warp buffers: every world
        built = build_env(exp, backend=backend, env_overrides=env_overrides)
    env = built.env
    ens = Ensemble(env, tc, members, shard=ec.shard, qc=qc)
    settings = _settings(exp, tc, members)
    mngr = checkpoint.manager(out / "checkpoints")

    rows: dict[int, dict[str, np.ndarray]] = {}
    start, resumed_from, wall0 = 0, None, 0.0
    state = None
    if resume:
        say = (lambda s: console.print(f"[yellow]{s}[/]")) if show_progress else None
        step, state = checkpoint.restore_latest(mngr, ens.abstract_state(), settings, say=say)
        if step is not None:
            start = resumed_from = int(step)
            rows = _resume_rows(out, start, say or (lambda s: None))
            wall = [float(np.nanmax(r["wall_time"])) for i, r in rows.items() if i < start and "wall_time" in r]
            wall0 = max(wall) if wall else 0.0
        elif show_progress:
            console.print("[yellow]no checkpoint found: starting from scratch[/]")
    if state is None:
        if mngr.latest_step() is not None and not resume:
            for s in list(mngr.all_steps()):
                mngr.delete(s)
        state = ens.init()

    attrs = {"experiment": exp.name, "model": built.loaded.name, "motion": built.motion_desc,
             "control_hz": float(env.config.control_hz), "num_envs_per_member": tc.num_envs,
             "unroll_length": tc.unroll_length, "config": json.dumps({"name": exp.name, **exp.sections}, default=str),
             "reward": tc.reward, "policy": tc.policy, "learner": tc.learner, "devices": len(jax.devices()),
             "sharded": int(ens.sharding is not None), "backend": env.backend_name,
             "train_config": json.dumps(dataclasses.asdict(tc), default=str)}
    primary = distributed.is_primary()
    if primary:
        write_text_atomic(out / "members.json", json.dumps({"members": members, "train": dataclasses.asdict(tc),
                                                            "qflex": dataclasses.asdict(qc),
                                                            "ensemble": dataclasses.asdict(ec)}, indent=1, default=str))
        write_text_atomic(out / "experiment.json", json.dumps({"name": exp.name, **exp.sections,
                                                               "_path": str(exp.path) if exp.path else None},
                                                              indent=1, default=str))

    def write_metrics():
        if primary:
            save_dataset_atomic(metrics_dataset(rows, members, tc.iterations, attrs), out / "metrics.nc")

    def save(step):
        # the history first (inside the checkpoint folder, atomically), then the commit, then metrics.nc:
        # a kill between any two leaves a checkpoint whose metric rows are on disk
        checkpoint.save(mngr, step, state, settings, history=rows)
        write_metrics()

    steps_per_it = tc.num_envs * tc.unroll_length
    t0 = time.perf_counter() - wall0
    progress = make_progress() if show_progress else None
    done_it = start
    try:
        if progress is not None:
            progress.start()
            task = progress.add_task(f"train {exp.name} ({len(members)} members)", total=tc.iterations,
                                     completed=start, info="compiling...")
        for it in range(start, tc.iterations):
            if sigint.requested:
                raise KeyboardInterrupt
            row = rows.setdefault(it, {})
            if it % tc.eval_every == 0 and "eval_joint_err_deg" not in row:
                row.update({_var(k): np.asarray(v) for k, v in ens.evaluate(state, it).items()})
            new_state, m = ens.iteration(state)  # dispatched asynchronously
            m = {_var(k): np.asarray(v) for k, v in distributed.to_host(m).items()}  # blocks until done
            _check_finite(ens, new_state, m, members, it)
            state = new_state  # only now: an interrupt while waiting keeps the previous, complete state
            m["wall_time"] = np.full(len(members), time.perf_counter() - t0)
            m["env_steps"] = np.full(len(members), float((it + 1) * steps_per_it))
            row.update(m)
            done_it = it + 1
            if progress is not None:
                el = time.perf_counter() - t0
                rate = (done_it - start) * steps_per_it * len(members) / max(el - wall0, 1e-9)
                err = np.nanmean(m.get("joint_err_deg", np.nan))
                progress.update(task, completed=done_it,
                                info=f"{rate:,.0f} env steps/s  joint err {err:.2f} deg")
            stop = bool(on_iteration(it, m)) if on_iteration is not None else False
            if stop:
                break
            if done_it % tc.checkpoint_every == 0 and done_it < tc.iterations:
                save(done_it)
        if sigint.requested:
            raise KeyboardInterrupt
        rows.setdefault(done_it, {}).update(
            {_var(k): np.asarray(v) for k, v in ens.evaluate(state, done_it).items()})
        save(done_it)
    except KeyboardInterrupt:
        # the state after the last completed iteration (saving nothing new when that step is on disk);
        # the interrupt stays deferred while saving
        if done_it > 0:
            save(done_it)
        if progress is not None:
            progress.stop()
        console.print(f"[yellow]interrupted after {done_it} iterations; "
                      + ("checkpoint saved, continue with --resume[/]" if done_it else "nothing to save[/]"))
        raise
    finally:
        if progress is not None:
            progress.stop()
    wall = time.perf_counter() - t0
    ds = metrics_dataset(rows, members, tc.iterations, attrs)
    if done_it < tc.iterations:
        ds = ds.isel(iteration=slice(0, done_it + 1))
    fin = ds["eval_joint_err_deg"].isel(iteration=-1).values if "eval_joint_err_deg" in ds else np.full(len(members), np.nan)
    ini = ds["eval_joint_err_deg"].isel(iteration=0).values if "eval_joint_err_deg" in ds else fin
    summary = (f"trained {len(members)} members x {done_it} iterations in {wall:.0f} s: joint error "
               f"{np.nanmean(ini):.2f} -> {np.nanmean(fin):.2f} deg (max {np.nanmax(fin):.2f}); results in {out}")
    if show_progress:
        console.print(summary)
    return TrainResult(results_dir=out, members=members, metrics=ds, iterations=done_it, wall_s=wall,
                       resumed_from=resumed_from, summary=summary)


def _resume_rows(out: Path, start: int, say: Callable[[str], None]) -> dict[int, dict[str, np.ndarray]]:
    """Metric rows 0..start of the run being resumed from checkpoint `start`: the history saved with
    that checkpoint, else (checkpoints of older versions) `metrics.nc`. The row `start` keeps only
    its eval_* entries (the policy after `start` updates); the rest of it is recomputed."""
    rows = checkpoint.load_history(out / "checkpoints", start)
    if rows is None:
        rows = {}
        old = out / "metrics.nc"
        if old.exists():
            try:
                with xr.open_dataset(old, engine="h5netcdf") as ds:
                    for i in range(min(start + 1, ds.sizes["iteration"])):
                        rows[i] = {k: ds[k].values[:, i] for k in ds.data_vars}
            except Exception as e:  # noqa: BLE001  (h5py/netCDF raise many types for a damaged file)
                say(f"{old} is unreadable ({type(e).__name__}); the metric history before iteration {start} is lost")
                rows = {}
        if start and not rows:
            say(f"no metric history for checkpoint {start}: iterations before it read NaN in metrics.nc")
    rows = {i: {k: v for k, v in r.items() if np.isfinite(v).any()} for i, r in rows.items() if i <= start}
    rows[start] = {k: v for k, v in rows.get(start, {}).items() if k.startswith("eval_")}
    return rows


def load_trained(results_dir: str | Path, backend: str | None = None):
    """Rebuild the env and the trained policies of a results folder (for the recorder).

    Returns:
        (make_policy, params_per_member, members, env): `make_policy(params, deterministic=True)`
        gives `policy(obs (obs_size,), key) -> excitation (nu,)`; `params_per_member` is a list of
        per-member parameter pytrees (same order as `members`, the dicts of members.json).
    """
    from msdiversity.errors import InputError

    results_dir = Path(results_dir)
    for f in ("experiment.json", "members.json"):
        if not (results_dir / f).exists():
            raise InputError(f"no {f}: not a training results folder (run `msdiversity train` first)", path=results_dir)
    d = json.loads((results_dir / "experiment.json").read_text())
    path = d.pop("_path", None)
    exp = experiment_from_dict(d, Path(path) if path else None)
    info = json.loads((results_dir / "members.json").read_text())
    members = info["members"]
    tc = section(TrainConfig, exp, "train", {k: tuple(v) if isinstance(v, list) else v
                                             for k, v in info["train"].items()})
    qc = section(QflexConfig, exp, "qflex", {k: tuple(v) if isinstance(v, list) else v
                                             for k, v in info.get("qflex", {}).items()})
    built = build_env(exp, backend=backend)
    ens = Ensemble(built.env, tc, members, shard=False, qc=qc)
    mngr = checkpoint.manager(results_dir / "checkpoints")
    step, state = checkpoint.restore_latest(mngr, ens.abstract_state())
    if step is None:
        raise InputError("no checkpoint found", path=results_dir / "checkpoints")
    pp = jax.vmap(ens.trainer.policy_params)(state)
    per = [jax.tree_util.tree_map(lambda x, i=i: x[i], pp) for i in range(len(members))]
    return ens.trainer.make_policy, per, members, built.env
