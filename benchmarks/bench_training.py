"""Training benchmark (not a test): 8-member ensembles on myoelbow_2dof, this machine's CPU.

Cases
- synthetic: a 2 s synthetic motion (forward simulation under seeded smooth excitations);
- arm26: the OpenSim arm26 inverse-kinematics motion in ../shared/data/opensim/ (1 s);
- compare: on the synthetic motion and the same iteration budget, exp vs adversarial reward and
  gaussian vs flow policy.
Goal: every member's deterministic-policy mean joint-angle error <= 3 deg within 15 min wall clock.
Prints learning curves (iteration, wall time, per-member eval joint error in deg) and a summary.

Usage: python benchmarks/bench_training.py [--cases synthetic,arm26,compare] [--iterations 300]
       [--compare-iterations 100] [--members 8] [--out results/bench_training]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ARM26 = ROOT.parent / "shared" / "data" / "opensim" / "arm26_InverseKinematics.mot"
TARGET_DEG = 3.0
BUDGET_S = 15 * 60


def experiment(name: str, motion: dict, train: dict, members: int):
    from msdiversity.config import experiment_from_dict

    seeds = list(range(members // 2))
    return experiment_from_dict({
        "name": name, "model": {"name": "myoelbow_2dof"}, "motion": motion, "env": {"backend": "cpu"},
        "train": {"eval_every": 10, "checkpoint_every": 100, **train},
        # members = seeds x effort exponents (2 and 3), effort weight 0.1 (the default experiment's kind)
        "ensemble": {"seeds": seeds, "effort_exponent": [2.0, 3.0], "effort_weight": [0.1]}})


def run(name: str, motion: dict, train: dict, members: int, out: Path) -> dict:
    from msdiversity.ensemble import train_experiment

    t0 = time.perf_counter()
    r = train_experiment(experiment(name, motion, train, members), results_dir=out / name, show_progress=True)
    wall = time.perf_counter() - t0
    ds = r.metrics
    ev = ds["eval_joint_err_deg"].dropna("iteration", how="all")
    wt = ds["wall_time"].max("member")
    print(f"\n== {name}: learning curve (eval, deterministic policy; mean joint-angle error, deg) ==")
    print("iteration  wall_s  " + "  ".join(f"m{m}" for m in ds.member.values) + "   max")
    reached = None
    for it in ev.iteration.values:
        w = float(wt.sel(iteration=max(int(it) - 1, 0))) if it > 0 else 0.0
        e = ev.sel(iteration=it).values
        print(f"{int(it):9d} {w:7.1f}  " + " ".join(f"{x:5.2f}" for x in e) + f"  {e.max():5.2f}")
        if reached is None and np.all(e <= TARGET_DEG):
            reached = (int(it), w)
    fin = ev.isel(iteration=-1).values
    res = {"case": name, "members": int(ds.sizes["member"]), "iterations": r.iterations, "wall_s": round(wall, 1),
           "final_deg": [round(float(x), 3) for x in fin], "final_mean_deg": round(float(fin.mean()), 3),
           "final_max_deg": round(float(fin.max()), 3),
           "all_below_3deg_at": None if reached is None else {"iteration": reached[0], "wall_s": round(reached[1], 1)},
           "goal_met": bool(reached is not None and reached[1] <= BUDGET_S),
           "env_steps_per_member": int(ds["env_steps"].max()),
           "env_steps_per_s": round(float(ds["env_steps"].max()) * ds.sizes["member"] / float(wt.max()), 0)}
    print(json.dumps(res))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="synthetic,arm26,compare")
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--compare-iterations", type=int, default=100)
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("results/bench_training"))
    a = ap.parse_args(argv)
    cases = a.cases.split(",")
    synth = {"source": "synthetic", "seed": 0, "duration": 2.0}
    results = []
    if "synthetic" in cases:
        results.append(run("synthetic", synth, {"iterations": a.iterations}, a.members, a.out))
    if "arm26" in cases:
        if ARM26.exists():
            results.append(run("arm26", {"source": str(ARM26)}, {"iterations": a.iterations}, a.members, a.out))
        else:
            print(f"arm26 skipped: {ARM26} not found")
    if "compare" in cases:
        for reward, policy in (("exp", "gaussian"), ("adversarial", "gaussian"), ("exp", "flow")):
            results.append(run(f"compare_{reward}_{policy}", synth,
                               {"iterations": a.compare_iterations, "reward": reward, "policy": policy},
                               a.members, a.out))
    print("\n== summary ==")
    print(f"{'case':28s} {'members':>7s} {'iters':>5s} {'wall s':>7s} {'mean deg':>8s} {'max deg':>8s}  all<=3deg at")
    for r in results:
        at = r["all_below_3deg_at"]
        at_s = "never" if at is None else f"it {at['iteration']} / {at['wall_s']:.0f} s"
        print(f"{r['case']:28s} {r['members']:7d} {r['iterations']:5d} {r['wall_s']:7.0f} {r['final_mean_deg']:8.2f} "
              f"{r['final_max_deg']:8.2f}  {at_s}")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "summary.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
