"""Gait inverse dynamics on the shared walk: measured GRF at the COP + equality projection vs the old ID.

    python benchmarks/check_gait_id.py [--old /path/to/old_baselines.py]

Maps OpenSim gait2354 subject01 walk (IK + GRF, ../shared/data/opensim) onto myolegs, low-passes at
6 Hz (as OpenSim's tools do) and prints: the measured vertical GRF (% BW), the root residual
force/moment of the new inverse dynamics, joint moment ranges, static-optimisation reserves on
every 3rd frame, and the torque error of planted activation vectors. With --old (a copy of the
previous baselines.py), the same numbers for the previous inverse dynamics (GRF ignored, contacts
and equality constraints as MuJoCo's inverse solver makes them).
"""

import argparse
import importlib.util
import warnings
from pathlib import Path

import numpy as np

from msdiversity.analysis import baselines as B
from msdiversity.models import load_model
from msdiversity.models.registry import muscle_ids
from msdiversity.motions import load_motion, map_to_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "opensim"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", help="previous baselines.py to compare with")
    ap.add_argument("--cutoff", type=float, default=6.0)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    lm = load_model("myolegs")
    m = lm.model
    mot = load_motion(DATA / "gait2354_subject01_walk1_ik.mot", grf=DATA / "gait2354_subject01_walk1_grf.mot")
    ref, _ = map_to_model(mot, lm)
    qpos, qvel, qacc = B.reference_state(m, ref.qpos, ref.dt, None, cutoff_hz=args.cutoff)
    bw = m.body_subtreemass[0] * np.linalg.norm(m.opt.gravity)
    names = B.dof_names(m)
    fz = ref.grf[:, :, 2].sum(1) / bw * 100
    print(f"frames {ref.n_frames} at {1 / ref.dt:.0f} Hz; model weight {bw:.0f} N; measured total vertical GRF "
          f"{fz.min():.1f} .. {fz.max():.1f} % BW")
    loads = B.FootLoads(force=ref.grf, cop=ref.cop, free_moment=mot.grf.free_moment, bodies=B.foot_bodies(m))
    frames = np.arange(2, ref.n_frames - 2, 3)
    knees = [names.index(n) for n in ("knee_angle_r", "knee_angle_l")]
    for label, ld in (("new ID, measured GRF at COP", loads), ("new ID, no GRF", None)):
        prob = B.muscle_problem(m, qpos, qvel, qacc, muscle_ids(m), ld)
        rf, rm = prob.id.root_force / bw * 100, prob.id.root_moment
        inner = slice(3, -3)  # the filter's and differences' end effects
        print(f"\n{label}: root residual Fz |mean| {np.abs(rf[:, 2]).mean():.1f} % BW, max {np.abs(rf[:, 2]).max():.1f} "
              f"(inner frames: mean {np.abs(rf[inner, 2]).mean():.1f}, max {np.abs(rf[inner, 2]).max():.1f}); "
              f"Fz range {rf[:, 2].min():.1f} .. {rf[:, 2].max():.1f} % BW; Fx, Fy |mean| {np.abs(rf[:, 0]).mean():.1f}, "
              f"{np.abs(rf[:, 1]).mean():.1f} % BW; moments |mean| {np.round(np.abs(rm).mean(0), 1).tolist()} N m, "
              f"max {np.round(np.abs(rm).max(0), 1).tolist()} N m")
        for n in ("hip_flexion_r", "knee_angle_r", "ankle_angle_r"):
            x = prob.tau[:, names.index(n)]
            print(f"  {n}: {x.min():.1f} .. {x.max():.1f} N m")
        sol = B.solve_frames(prob, frames, exponents=(2.0,), ranges=False)
        res = sol["residual"][:, prob.sel]
        print(f"  SO p=2 on {len(frames)} frames: max |reserve| {np.abs(res).max():.1f} N m, knees "
              f"{np.abs(sol['residual'][:, knees]).max():.1f} N m")
        if ld is not None:
            so = sol["so"][0]
            b_ok = prob.b[frames] - sol["residual"][:, prob.sel]
            rng = np.random.default_rng(0)
            cand = {"truth (SO)": so[None], "truth + N(0, 0.03)": np.clip(so + 0.03 * rng.standard_normal(so.shape), 0, 1)[None],
                    "uniform random": rng.random((1,) + so.shape), "all zero": np.zeros((1,) + so.shape)}
            for k, a in cand.items():
                _, rel = B.torque_error(prob.A[frames], b_ok, a)
                print(f"  torque error {k}: {rel[0]:.3f} (relative)")
    if args.old:
        spec = importlib.util.spec_from_file_location("old_baselines", args.old)
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        prob = old.muscle_problem(m, qpos, qvel, qacc, muscle_ids(m))
        rz = prob.tau[:, 2] / bw * 100
        sol = old.solve_frames(prob, frames, exponents=(2.0,), ranges=False)
        print(f"\nold ID: root Fz (mj_inverse, contacts on, GRF ignored) {rz.min():.1f} .. {rz.max():.1f} % BW; "
              f"reported root residual {np.abs(sol['residual'][:, :6]).max():.1f}; max |reserve| "
              f"{np.abs(sol['residual']).max():.0f} N m, knees {np.abs(sol['residual'][:, knees]).max():.0f} N m")


if __name__ == "__main__":
    main()
