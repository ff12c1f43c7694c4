"""Classical baselines on myoelbow_2dof: feasible ranges contain static optimisation; arm26 vs OpenSim."""

import warnings
from pathlib import Path

import numpy as np
import pytest

from msdiversity.analysis.baselines import muscle_problem, reference_state, solve_frames
from msdiversity.models import load_model, summarize
from msdiversity.models.registry import muscle_ids

DATA = Path(__file__).parents[2] / "shared" / "data" / "opensim"
IK = DATA / "arm26_InverseKinematics.mot"
SO = DATA / "arm26_StaticOptimization_activation.sto"


@pytest.fixture(scope="module")
def arm26_solution():
    if not (IK.exists() and SO.exists()):
        pytest.skip(f"arm26 OpenSim data not found in {DATA}")
    from msdiversity.motions import map_to_model, read_opensim

    lm = load_model("myoelbow_2dof")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 0.1 deg over the elbow range on one frame
        ref, _ = map_to_model(read_opensim(IK), lm)
    # OpenSim's static-optimisation tool low-passes coordinates at 6 Hz before differentiating.
    qpos, qvel, qacc = reference_state(lm.model, ref.qpos, ref.dt, None, cutoff_hz=6.0)
    prob = muscle_problem(lm.model, qpos, qvel, qacc, muscle_ids(lm.model))
    frames = np.arange(0, qpos.shape[0], 2)
    sol = solve_frames(prob, frames, exponents=(1.0, 2.0))
    t = np.arange(qpos.shape[0]) * ref.dt
    return lm, prob, frames, t[frames], sol


def test_inverse_dynamics_matches_forward_dynamics():
    # Apply the ID torques as qfrc_applied: forward dynamics must return the prescribed qacc.
    import mujoco

    m = load_model("myoelbow_2dof").model
    t = np.linspace(0, 1, 101)
    q = np.stack([0.3 * np.sin(2 * t), 0.2 + 1.0 * t ** 2], axis=1)
    qpos, qvel, qacc = reference_state(m, q, t[1] - t[0])
    prob = muscle_problem(m, qpos, qvel, qacc, muscle_ids(m))
    d = mujoco.MjData(m)
    for i in (10, 50, 90):
        d.qpos[:], d.qvel[:] = qpos[i], qvel[i]
        d.ctrl[:] = 0
        d.act[:] = 0
        d.qfrc_applied[:] = 0
        mujoco.mj_forward(m, d)
        # Muscles at zero activation still pull passively: the applied force supplies the rest.
        d.qfrc_applied[:] = prob.tau[i] - d.qfrc_actuator
        mujoco.mj_forward(m, d)
        np.testing.assert_allclose(d.qacc, qacc[i], atol=1e-6)


def test_feasible_ranges_contain_static_optimisation(arm26_solution):
    _, prob, frames, _, sol = arm26_solution
    lo, hi, so = sol["lo"], sol["hi"], sol["so"]
    assert np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo <= hi + 1e-9)
    assert np.all(so >= lo[None] - 1e-6) and np.all(so <= hi[None] + 1e-6)
    # SO solutions satisfy the torque equality.
    for j in range(so.shape[0]):
        res = np.einsum("fdm,fm->fd", prob.A[frames], so[j]) - prob.b[frames]
        assert np.abs(res).max() < 1e-4 * max(1.0, np.abs(prob.b).max())
    assert np.abs(sol["residual"]).max() == 0.0  # muscles can produce the arm26 torques
    # p = 1 minimises the sum; p = 2 cannot have a smaller sum.
    assert np.all(so[0].sum(1) <= so[1].sum(1) + 1e-6)


def test_static_optimisation_correlates_with_opensim(arm26_solution):
    from msdiversity.motions.opensim import read_table

    lm, _, _, t, sol = arm26_solution
    tab = read_table(SO)
    labels = list(tab.labels)
    names = summarize(lm).muscle_names
    r = {}
    for i, n in enumerate(names):
        x = np.interp(t, tab.time, tab.data[:, labels.index(n)])
        r[n] = float(np.corrcoef(x, sol["so"][1][:, i])[0, 1]) if np.std(sol["so"][1][:, i]) > 0 else float("nan")
    print("r(MuJoCo SO p=2, OpenSim SO) per muscle:", {k: round(v, 3) for k, v in r.items()})
    # The main agonists against gravity (biceps long head) and the elbow extensors that balance its
    # shoulder moment follow OpenSim closely; BRA/BICshort/TRIlong are near zero in OpenSim.
    assert r["BIClong"] > 0.85
    assert r["TRIlat"] > 0.9 and r["TRImed"] > 0.9
