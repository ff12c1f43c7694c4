"""Gait benchmark: PPO vs Qflex vs Qflex + adversarial reward on myolegs walking (and running) with GRF.

Side by side with the same members (seeds x effort exponents), the same environment (periodic gait
cycle from the trial, treadmill trials converted to overground, GRF in the error vector, walking
early termination) and the same wall-clock budget per method. Each method trains in one vmapped
program on the CPU backend; after every evaluation the members' deterministic policies are scored
from random phases of the cycle:

- joint error (deg): mean |q - q_ref| over tracked hinge joints; errors of fallen episodes are held
  at their last value, and `alive` (fraction of the evaluation before termination) is reported;
- body position error (cm);
- vertical GRF RMSE (% body weight) over both feet against the trial's measured GRF.

A member *reaches* the target when joint error <= 5 deg, vGRF RMSE <= 10 % BW and alive >= 0.95.
The share of time in physics is the time the same number of env steps takes in the physics
backend alone (measured once per run with a fixed action) over the measured iteration time.

    python benchmarks/bench_gait.py --budget-min 40                       # all three on the walk
    python benchmarks/bench_gait.py --methods qflex --budget-min 120      # the 2-hour target
    python benchmarks/bench_gait.py --motion run --budget-min 20          # Rajagopal running trial

Prints progress lines while training and one table at the end; curves go to
results/bench_gait/<motion>_<method>/metrics.nc and a summary JSON to results/bench_gait/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "opensim"
MOTIONS = {
    "walk": ("gait2354_subject01_walk1_ik.mot", "gait2354_subject01_walk1_grf.mot"),
    "run": ("rajagopal_subject01_run_ik.mot", "rajagopal_subject01_run_grf.mot"),
}

# The gait task (model, motion options, env, ensemble, Qflex settings) is experiments/walk.toml's:
# one source for what the CPU-sized walking experiment runs. Only the learner differs per method.
WALK = ROOT / "experiments" / "walk.toml"
METHODS = {
    "ppo": {"learner": "ppo", "reward": "exp", "num_envs": 128, "unroll_length": 16, "num_minibatches": 8,
            "hidden": [256, 256]},
    "qflex": {"learner": "qflex", "reward": "exp", "num_envs": 64, "unroll_length": 16},
    "qflex_adv": {"learner": "qflex", "reward": "adversarial", "num_envs": 64, "unroll_length": 16},
}


def experiment(motion: str, method: str, model: str, members: int, args) -> dict:
    import tomllib

    base = tomllib.loads(WALK.read_text())
    ik, grf = MOTIONS[motion]
    train = {**base["train"], "iterations": 100000, "eval_every": args.eval_every, **METHODS[method]}
    qflex = dict(base.get("qflex", {}))
    seeds = list(range(max(1, members // 2)))
    exps = [2.0, 3.0] if members > 1 else [2.0]
    if args.quick:
        train.update(num_envs=8, eval_envs=4, eval_steps=10, eval_every=2)
        qflex.update(hidden=[32, 32], batch_size=32, buffer_size=2048, start_steps=64, grad_steps=2, flow_steps=2,
                     updates_per_iteration=2)
        if method == "ppo":
            train.update(num_minibatches=2, hidden=[32, 32])
    return {"name": f"bench_gait_{motion}_{method}", "model": {"name": model},
            "motion": {**base["motion"], "source": str(DATA / ik), "grf": str(DATA / grf)},
            "env": {**base["env"], "backend": "cpu"}, "train": train, "qflex": qflex,
            "ensemble": {**base["ensemble"], "seeds": seeds, "effort_exponent": exps}}


def physics_rate(env, n: int) -> float:
    """Env steps/s of the physics backend alone at batch n (fixed action, compiled)."""
    import jax
    import jax.numpy as jnp

    s = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), n))
    a = jnp.full((n, env.action_size), 0.1, jnp.float32)
    if getattr(env, "n_residual", 0):
        a = a.at[:, env.model.nu:].set(0.0)  # residuals off: physics alone
    step = jax.jit(jax.vmap(env.step))
    s = step(s, a)
    jax.block_until_ready(s.obs)
    t0 = time.perf_counter()
    k = 10
    for _ in range(k):
        s = step(s, a)
    jax.block_until_ready(s.obs)
    return k * n / (time.perf_counter() - t0)


def run_method(motion, method, args) -> dict:
    from msdiversity.config import experiment_from_dict
    from msdiversity.ensemble import train_experiment
    from msdiversity.ensemble.build import build_env

    exp = experiment_from_dict(experiment(motion, method, args.model, args.members, args))
    out = Path(args.out) / f"{motion}_{method}"
    budget = args.budget_min * 60.0
    t0 = time.perf_counter()
    last = [t0]

    def on_it(it, m):
        now = time.perf_counter()
        if now - last[0] > args.log_every_s:
            last[0] = now
            print(f"  [{method}] it {it + 1}  {now - t0:6.0f} s  train joint err "
                  f"{np.nanmean(m.get('joint_err_deg', np.nan)):.2f} deg", flush=True)
        return now - t0 > budget

    res = train_experiment(exp, results_dir=out, show_progress=False, on_iteration=on_it)
    ds = res.metrics
    ev = ds["eval_joint_err_deg"].dropna("iteration", how="all")
    its = ev["iteration"].values
    pick = lambda v: ds[v].sel(iteration=its).values if v in ds else np.full((len(res.members), len(its)), np.nan)  # noqa: E731
    j, b, g, alive = (pick("eval_joint_err_deg"), pick("eval_body_err_cm"), pick("eval_vgrf_rmse_pct_bw"),
                      pick("eval_alive"))
    steps = np.nanmax(ds["env_steps"].values, axis=0)
    wall = np.nanmax(ds["wall_time"].values, axis=0)
    env_steps_at = [float(steps[i - 1]) if i > 0 else 0.0 for i in its]
    wall_at = [float(wall[i - 1]) if i > 0 else 0.0 for i in its]
    reach = (j <= 5.0) & (g <= 10.0) & (alive >= 0.95)  # (members, evals)
    all_reach = np.flatnonzero(reach.all(axis=0))
    first = int(all_reach[0]) if len(all_reach) else None
    # physics share: the same env steps through the physics alone vs the measured training rate
    env = build_env(exp).env
    n_batch = len(res.members) * exp.section("train")["num_envs"]
    phys = physics_rate(env, n_batch)
    # training rate after the first iteration (which includes compilation)
    last = res.iterations - 1
    train_rate = ((steps[last] - steps[0]) * len(res.members) / max(wall[last] - wall[0], 1e-9) if last > 0
                  else steps[0] * len(res.members) / max(wall[0], 1e-9))
    return {
        "method": method, "motion": motion, "members": len(res.members), "iterations": res.iterations,
        "env_steps_per_member": float(steps[res.iterations - 1]), "wall_s": float(wall[res.iterations - 1]),
        "curve": {"iteration": its.tolist(), "env_steps": env_steps_at, "wall_s": wall_at,
                  "joint_err_deg": j.tolist(), "body_err_cm": b.tolist(), "vgrf_rmse_pct_bw": g.tolist(),
                  "alive": alive.tolist()},
        "final": {"joint_mean": float(np.nanmean(j[:, -1])), "joint_worst": float(np.nanmax(j[:, -1])),
                  "body_mean": float(np.nanmean(b[:, -1])), "vgrf_mean": float(np.nanmean(g[:, -1])),
                  "vgrf_worst": float(np.nanmax(g[:, -1])), "alive_min": float(np.nanmin(alive[:, -1]))},
        "best": {"joint_worst": float(np.nanmin(np.nanmax(j, axis=0))),
                 "vgrf_worst": float(np.nanmin(np.nanmax(g, axis=0)))},
        "reached": None if first is None else {"env_steps": env_steps_at[first], "wall_s": wall_at[first]},
        "train_env_steps_per_s": float(train_rate), "physics_env_steps_per_s": float(phys),
        "physics_share": float(min(1.0, train_rate / phys)),
    }


def table(rows: list[dict]) -> str:
    head = (f"{'motion':6} {'method':10} {'M':>2} {'env steps/m':>11} {'wall s':>7} {'joint deg':>15} "
            f"{'body cm':>8} {'vGRF %BW':>15} {'alive':>6} {'reached (steps, s)':>20} {'phys %':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        f = r["final"]
        reach = "-" if r["reached"] is None else f"{r['reached']['env_steps']:.2e}, {r['reached']['wall_s']:.0f}"
        lines.append(f"{r['motion']:6} {r['method']:10} {r['members']:>2} {r['env_steps_per_member']:>11.3g} "
                     f"{r['wall_s']:>7.0f} {f['joint_mean']:>6.2f} (max {f['joint_worst']:>5.2f}) {f['body_mean']:>8.2f} "
                     f"{f['vgrf_mean']:>6.1f} (max {f['vgrf_worst']:>5.1f}) {f['alive_min']:>6.2f} {reach:>20} "
                     f"{100 * r['physics_share']:>6.0f}%")
    lines.append("joint/vGRF: mean over members (worst member) at the end; alive: worst member's fraction of the "
                 "evaluation before a fall; reached: first evaluation where every member has joint <= 5 deg, "
                 "vGRF RMSE <= 10 % BW and alive >= 0.95; phys %: time share of the physics backend.")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", default="ppo,qflex,qflex_adv")
    ap.add_argument("--motion", default="walk", help="walk, run or walk,run")
    ap.add_argument("--model", default="myolegs")
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--budget-min", type=float, default=40.0, help="wall-clock minutes per method")
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--log-every-s", type=float, default=60.0)
    ap.add_argument("--out", default=str(ROOT / "results" / "bench_gait"))
    ap.add_argument("--quick", action="store_true", help="tiny settings: checks the script runs")
    ap.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not DATA.exists():
        print(f"shared data not found at {DATA}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.single:  # one method in this process (the driver below starts one process per method)
        r = run_method(args.motion, args.methods, args)
        (out / f"{args.motion}_{args.methods}.json").write_text(json.dumps(r, indent=1))
        return 0
    rows = []
    for motion in args.motion.split(","):
        for method in args.methods.split(","):
            print(f"== {motion} / {method}: {args.members} members, {args.budget_min:g} min", flush=True)
            # a fresh process per method: same start for each (no warm caches, no memory carried over)
            given = list(argv if argv is not None else sys.argv[1:])  # later flags win in argparse
            cmd = [sys.executable, __file__, *given, "--single", "--methods", method, "--motion", motion]
            subprocess.run(cmd, check=True)
            r = json.loads((out / f"{motion}_{method}.json").read_text())
            rows.append(r)
            (out / "summary.json").write_text(json.dumps(rows, indent=1))
            print(table([r]), flush=True)
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
