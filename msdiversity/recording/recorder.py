"""Rollouts of a trained ensemble into the recording Dataset (see `msdiversity.recording`).

Alive: a trial is alive at frame 0 and stays alive until the env terminates early (tracking error
beyond the thresholds, or divergence); the frame where it terminates and every later frame are
`alive = False` (the arrays keep whatever the simulation produced there; analyses mask them).
Reaching the end of the reference is not a termination.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time as _time
from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import xarray as xr

from msdiversity.errors import InputError

REG_FIELDS = ("effort_exponent", "effort_weight", "smoothness_weight", "synergy_weight", "emg_weight")
UNITS = {"excitation": "1", "activation": "1", "muscle_force": "N", "qpos": "rad or m", "qpos_ref": "rad or m",
         "body_pos": "m", "body_pos_ref": "m", "grf": "N", "grf_ref": "N", "cop": "m", "cop_ref": "m",
         "ref_qpos_full": "MuJoCo qpos (rad, m, quaternion)", "ref_qvel_full": "MuJoCo qvel (rad/s, m/s)",
         "time": "s", "alive": "bool"}


@dataclasses.dataclass
class RecordConfig:
    """`[record]` section."""

    trials: int = 4  # stochastic trials per member (trial 0, deterministic, comes on top)
    seed: int = 0  # PRNG seed of the stochastic trials
    chunk: int = 25  # control steps per jitted call (progress granularity)


def _stack(per_member: list):
    return jax.tree_util.tree_map(lambda *x: jnp.stack(x), *per_member)


def _rollout_fns(env, make_policy, chunk: int):
    """(start, advance): jitted, vmapped over (members, trials)."""

    def start_one(params, key):
        del params
        s = env.reset(key)
        rec = env.recording_arrays(s)
        rec["alive"] = jnp.asarray(1.0, jnp.float32)
        return (s, jnp.asarray(1.0, jnp.float32)), rec

    def advance_one(params, carry, keys, is_det):
        pol_d = make_policy(params, True)
        pol_s = make_policy(params, False)

        def body(c, k):
            s, alive = c
            a = jnp.where(is_det, pol_d(s.obs, k), pol_s(s.obs, k))  # (nu,) mean action for trial 0
            ns = env.step(s, a)
            terminated = ns.done * (1.0 - ns.info["truncation"])
            alive = alive * (1.0 - terminated)
            rec = env.recording_arrays(ns)
            rec["alive"] = alive
            return (ns, alive), rec

        return jax.lax.scan(body, carry, keys)

    over_trials_start = jax.vmap(start_one, in_axes=(None, 0))
    start = jax.jit(jax.vmap(over_trials_start, in_axes=(0, 0)))  # params (M,...), keys (M, K1, 2)
    over_trials = jax.vmap(advance_one, in_axes=(None, 0, 0, 0))
    advance = jax.jit(jax.vmap(over_trials, in_axes=(0, 0, 0, None)))  # keys (M, K1, chunk, 2), is_det (K1,)
    return start, advance


def record_ensemble(env, make_policy, params: list, members: list[dict], trials: int = 4, seed: int = 0,
                    chunk: int = 25, attrs: dict | None = None, progress=None) -> xr.Dataset:
    """Roll out every member over the whole reference and return the recording Dataset.

    Args:
        env: emulator Env (its `random_init` is switched off and `episode_length` raised for recording).
        make_policy: `make_policy(params, deterministic) -> policy(obs, key) -> excitation (nu,)`.
        params: per-member policy parameter pytrees (list, same order as `members`).
        members: member dicts (member, seed, effort_exponent, ...), e.g. from members.json.
        trials: stochastic trials per member (K); the Dataset has K + 1 trials.
        seed: PRNG seed for the stochastic trials.
        progress: optional callable(done_steps, total_steps).

    Returns:
        xr.Dataset with dims member, trial, time, muscle, joint, body, foot, axis (see docs/CONTRACTS.md).
    """
    if len(params) != len(members) or not members:
        raise InputError(f"got {len(params)} parameter sets for {len(members)} members", field="members")
    # Recording always starts at reference frame 0 and runs to the end of the reference: the env's
    # config is only read when its functions are traced, which happens below.
    env.config = dataclasses.replace(env.config, random_init=False,
                                     episode_length=max(env.config.episode_length, env.n_frames + 1))
    M, K1, T = len(members), trials + 1, env.n_frames
    stacked = _stack(params)
    key = jax.random.PRNGKey(seed)
    k_reset, k_roll = jax.random.split(key)
    n_chunks = max(1, math.ceil((T - 1) / chunk))
    keys = jax.random.split(k_roll, M * K1 * n_chunks * chunk).reshape(M, K1, n_chunks, chunk, -1)
    reset_keys = jax.random.split(k_reset, M * K1).reshape(M, K1, -1)
    is_det = jnp.arange(K1) == 0
    start, advance = _rollout_fns(env, make_policy, chunk)
    carry, rec0 = start(stacked, reset_keys)
    pieces = [jax.tree_util.tree_map(lambda x: np.asarray(x)[:, :, None], rec0)]  # (M, K1, 1, ...)
    done = 1
    for c in range(n_chunks):
        carry, recs = advance(stacked, carry, keys[:, :, c], is_det)
        pieces.append(jax.tree_util.tree_map(np.asarray, recs))  # (M, K1, chunk, ...)
        done = min(T, done + chunk)
        if progress is not None:
            progress(done, T)
    arr = {k: np.concatenate([p[k] for p in pieces], axis=2)[:, :, :T] for k in pieces[0]}
    return _dataset(env, arr, members, attrs or {})


def _dataset(env, arr: dict, members: list[dict], attrs: dict) -> xr.Dataset:
    model = env.model
    ref = env.reference_arrays()
    T = env.n_frames
    time = np.asarray(ref["time"][:T], float)
    jids = np.array([mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in env.joint_names])
    is_rot = model.jnt_type[jids] == mujoco.mjtJoint.mjJNT_HINGE
    mtk = ("member", "trial", "time")
    ds = xr.Dataset(
        {
            "excitation": (mtk + ("muscle",), arr["excitation"].astype(np.float32)),
            "activation": (mtk + ("muscle",), arr["activation"].astype(np.float32)),
            "muscle_force": (mtk + ("muscle",), arr["muscle_force"].astype(np.float32)),
            "qpos": (mtk + ("joint",), arr["qpos"].astype(np.float64)),
            "qpos_ref": (("time", "joint"), np.asarray(ref["qpos"][:T], float)),
            "body_pos": (mtk + ("body", "axis"), arr["body_pos"].astype(np.float64)),
            "body_pos_ref": (("time", "body", "axis"), np.asarray(ref["body_pos"][:T], float)),
            "ref_qpos_full": (("time", "qpos_index"), np.asarray(ref["qpos_full"][:T], float)),
            "ref_qvel_full": (("time", "dof_index"), np.asarray(ref["qvel_full"][:T], float)),
            "alive": (mtk, arr["alive"] > 0.5),
        },
        coords={
            "member": np.array([int(m.get("member", i)) for i, m in enumerate(members)]),
            "trial": np.arange(arr["activation"].shape[1]),
            "time": time,
            "muscle": list(env.muscle_names),
            "joint": list(env.joint_names),
            "body": list(env.body_names),
            "axis": ["x", "y", "z"],
            "seed": ("member", np.array([int(m["seed"]) for m in members])),
            **{f: ("member", np.array([float(m.get(f, np.nan)) for m in members])) for f in REG_FIELDS},
            "tracked_joint": ("joint", np.asarray(env.tracked_joint, bool)),
            "joint_is_rotation": ("joint", is_rot),
        },
    )
    if env.has_grf:
        ds["grf"] = (mtk + ("foot", "axis"), arr["grf"].astype(np.float64))
        ds["cop"] = (mtk + ("foot", "axis"), arr["cop"].astype(np.float64))
        ds = ds.assign_coords(foot=list(env.feet))
        if ref["grf"] is not None:
            ds["grf_ref"] = (("time", "foot", "axis"), np.asarray(ref["grf"][:T], float))
        if ref.get("cop") is not None:  # measured centre of pressure: gait inverse dynamics applies the GRF there
            ds["cop_ref"] = (("time", "foot", "axis"), np.asarray(ref["cop"][:T], float))
    for name in ("activation", "excitation", "emg"):  # emg: envelopes attached by [motion] emg (NaN = none)
        if ref.get(name) is not None:
            ds[f"{name}_ref"] = (("time", "muscle"), np.asarray(ref[name][:T], float))
            ds[f"{name}_ref"].attrs["units"] = "1"
    for v in list(ds.data_vars) + ["time"]:
        if v in UNITS:
            ds[v].attrs["units"] = UNITS[v]
    from msdiversity import __version__

    g = np.asarray(model.opt.gravity, float)
    ds.attrs.update({"dt": float(env.dt), "body_mass_kg": float(model.body_subtreemass[0]),
                     "gravity": float(np.linalg.norm(g)), "gravity_vector": json.dumps(g.tolist()),
                     "msdiversity_version": __version__, "units": json.dumps(UNITS),
                     "model": str(getattr(env.loaded, "source", "")), "experiment": "", "motion": "",
                     "ref_t0": float(getattr(env, "ref_t0", 0.0)),
                     "config": "{}"})
    ds.attrs.update({k: (v if isinstance(v, (str, int, float)) else json.dumps(v, default=str))
                     for k, v in attrs.items()})
    return ds


def record_experiment(results_dir: str | Path, config: RecordConfig | None = None, backend: str | None = None,
                      out: str | Path | None = None, show_progress: bool = True) -> Path:
    """Load the trained ensemble in `results_dir`, record it, write `recording.nc` atomically."""
    from msdiversity.ensemble import load_trained
    from msdiversity.util.io import save_dataset_atomic
    from msdiversity.util.progress import console, make_progress

    cfg = config or RecordConfig()
    results_dir = Path(results_dir)
    t0 = _time.perf_counter()
    make_policy, params, members, env = load_trained(results_dir, backend=backend)
    exp = json.loads((results_dir / "experiment.json").read_text())
    motion = exp.get("motion", {})
    attrs = {"experiment": str(exp.get("name", results_dir.name)),
             "motion": str(motion.get("source", "")) if isinstance(motion, dict) else str(motion),
             "config": json.dumps(exp, default=str, sort_keys=True), "record_config": json.dumps(dataclasses.asdict(cfg))}
    total = env.n_frames
    if show_progress:
        with make_progress(transient=True) as prog:
            task = prog.add_task("record", total=total, info="")

            def cb(done, n):
                rate = done * len(members) * (cfg.trials + 1) / max(_time.perf_counter() - t0, 1e-9)
                prog.update(task, completed=done, info=f"{rate:.0f} steps/s")

            ds = record_ensemble(env, make_policy, params, members, cfg.trials, cfg.seed, cfg.chunk, attrs, cb)
    else:
        ds = record_ensemble(env, make_policy, params, members, cfg.trials, cfg.seed, cfg.chunk, attrs)
    path = Path(out) if out else results_dir / "recording.nc"
    save_dataset_atomic(ds, path)
    alive = ds["alive"].values
    full = float(np.mean(alive[:, :, -1]))
    jerr = np.rad2deg(np.abs(ds["qpos"].values[:, 0] - ds["qpos_ref"].values[None]))
    hinge = ds["joint_is_rotation"].values & ds["tracked_joint"].values
    mean_err = float(np.nanmean(np.where(alive[:, 0, :, None], jerr, np.nan)[..., hinge])) if hinge.any() else np.nan
    console.print(f"record: {len(members)} members x {cfg.trials + 1} trials x {total} frames in "
                  f"{_time.perf_counter() - t0:.1f} s; {full:.0%} of trials alive to the end; "
                  f"trial-0 mean |joint error| {mean_err:.2f} deg -> {path}")
    return path
