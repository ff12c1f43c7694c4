"""Benchmark: analyse 64 members x 416 muscles x 1000 frames of synthetic data (goal: <= 60 s here).

Run: `.venv/bin/python benchmarks/bench_analysis.py [--members 64 --muscles 416 --frames 1000 --trials 3]`.
Generation of the synthetic recording is not timed; the analysis (everything `msdiversity analyze`
does except the MuJoCo baselines, which need a model; UMAP included, numba compilation included on a
cold cache) is. Prints the per-stage timings and one summary line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", type=int, default=64)
    ap.add_argument("--muscles", type=int, default=416)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=3, help="1 deterministic + (trials-1) stochastic")
    ap.add_argument("--goal", type=float, default=60.0)
    args = ap.parse_args()

    from msdiversity.analysis import AnalysisConfig, analyze_recording, synthetic_recording

    t = time.perf_counter()
    rec = synthetic_recording(0, n_members=args.members, n_trials=args.trials, n_time=args.frames,
                              n_muscles=args.muscles, n_joints=40, n_bodies=20, k_true=6, n_families=3,
                              act_member_sd=0.1, dt=0.001, dtype=np.float32)
    gen = time.perf_counter() - t
    print(f"generated recording {dict(rec.sizes)} in {gen:.1f} s ({rec.nbytes / 1e9:.2f} GB)")
    t = time.perf_counter()
    ds = analyze_recording(rec, AnalysisConfig(baselines=False))
    took = time.perf_counter() - t
    print("stage timings (s):", json.loads(ds.attrs["timings_s"]))
    print(f"k_common={int(ds['syn_k_common'])} (planted 6), families={int(ds['emb_n_families'])} (planted 3), "
          f"index={ds['div_index'].values.round(3).tolist()}")
    status = "OK" if took <= args.goal else "SLOWER THAN GOAL"
    print(f"bench_analysis: {args.members} members x {args.muscles} muscles x {args.frames} frames x "
          f"{args.trials} trials analysed in {took:.1f} s (goal <= {args.goal:.0f} s) {status}")


if __name__ == "__main__":
    main()
