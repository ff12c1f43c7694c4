"""Gait inverse dynamics: external loads at the COP, equality projection, root residuals, vector
feasibility. Hand-derived cases on small MJCF models, then the shared walk on myolegs."""

import warnings
from pathlib import Path

import mujoco
import numpy as np
import pytest
import xarray as xr

from msdiversity.analysis import baselines as B

DATA = Path(__file__).parents[2] / "shared" / "data" / "opensim"

FREE_BODY = """
<mujoco><option gravity="0 0 -9.81"/>
  <worldbody><body name="box" pos="0 0 1"><freejoint name="root"/>
    <geom type="box" size="0.1 0.2 0.3" mass="2"/></body></worldbody></mujoco>"""

COUPLED = """
<mujoco><option gravity="0 0 -9.81"/>
  <worldbody><body name="upper" pos="0 0 0"><joint name="a" type="hinge" axis="0 1 0"/>
    <geom type="capsule" fromto="0 0 0 0.5 0 0" size="0.02" mass="1"/>
    <body name="lower" pos="0.5 0 0"><joint name="b" type="hinge" axis="0 1 0"/>
      <geom type="capsule" fromto="0 0 0 0.4 0 0" size="0.02" mass="1.5"/></body></body></worldbody>
  <equality><joint joint1="b" joint2="a" polycoef="0 0.5 0.2 0 0"/></equality></mujoco>"""


def test_free_body_with_known_external_force():
    """A 2 kg box held still, tilted, with 10 N up at 0.1 m along world x from its origin and a free
    moment 0.5 N m about z: the root must add (0, 0, 19.62 - 10) N and -( (0.1,0,0) x (0,0,10) + (0,0,0.5) )
    = (0, 1, -0.5) N m."""
    m = mujoco.MjModel.from_xml_string(FREE_BODY)
    q = np.zeros((3, 7))
    q[:, 2] = 1.0
    q[:, 3:] = [np.cos(0.3), np.sin(0.3) / np.sqrt(2), 0.0, np.sin(0.3) / np.sqrt(2)]  # tilted
    zero = np.zeros((3, 6))
    loads = B.FootLoads(force=np.tile([0.0, 0.0, 10.0], (3, 1, 1)), cop=np.tile([0.1, 0.0, 1.0], (3, 1, 1)),
                        free_moment=np.tile([0.0, 0.0, 0.5], (3, 1, 1)), bodies=(1,))
    idn = B.inverse_dynamics(m, q, zero, zero, loads)
    np.testing.assert_allclose(idn.root_force, np.tile([0.0, 0.0, 2 * 9.81 - 10.0], (3, 1)), atol=1e-9)
    np.testing.assert_allclose(idn.root_moment, np.tile([0.0, 1.0, -0.5], (3, 1)), atol=1e-9)
    assert idn.body_weight == pytest.approx(2 * 9.81)
    # the COP's wrench about the origin, by hand
    f, tq = B.wrench_about_origin(np.array([0.0, 0.0, 10.0]), np.array([0.1, 0.0, 1.0]), np.array([0.0, 0.0, 0.5]),
                                  np.array([0.0, 0.0, 1.0]))
    np.testing.assert_allclose(tq, [0.0, -1.0, 0.5])
    # unloaded foot (NaN COP): nothing applied
    f, tq = B.wrench_about_origin(np.ones(3), np.full(3, np.nan), None, np.zeros(3))
    assert not f.any() and not tq.any()


def test_equality_coupled_dofs_are_projected_by_virtual_work():
    """b = 0.5 a + 0.2 a^2: held still at a = 0.4, the torque on the one independent coordinate a
    must equal dV/da of the potential energy along the constraint (finite differences of V)."""
    m = mujoco.MjModel.from_xml_string(COUPLED)
    a0 = 0.4
    coupled = lambda a: np.array([a, 0.5 * a + 0.2 * a ** 2])  # noqa: E731
    q = np.tile(coupled(a0), (1, 1))
    z = np.zeros((1, 2))
    idn = B.inverse_dynamics(m, q, z, z)
    d = mujoco.MjData(m)

    def V(a):
        d.qpos[:] = coupled(a)
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        return -np.sum(m.body_mass * (d.xipos @ m.opt.gravity))

    dV = (V(a0 + 1e-6) - V(a0 - 1e-6)) / 2e-6
    assert idn.ind.tolist() == [0]
    np.testing.assert_allclose(idn.S[0, :, 0], [1.0, 0.5 + 0.4 * a0], atol=1e-9)  # db/da
    np.testing.assert_allclose(idn.tau[0], [dV, 0.0], rtol=1e-6)
    # treated independently (the old way), the coupled dof's own load is simply lost
    assert abs(idn.tau_full[0, 0] - dV) > 0.1 * abs(dV)


def test_recording_loads_need_the_centre_of_pressure():
    m = mujoco.MjModel.from_xml_string(FREE_BODY)
    rec = xr.Dataset({"grf_ref": (("time", "foot", "axis"), np.zeros((2, 2, 3)))},
                     coords={"foot": ["r", "l"], "axis": ["x", "y", "z"]})
    loads, note = B.recording_loads(rec, m)
    assert loads is None and "centre of pressure" in note


@pytest.fixture(scope="module")
def walk():
    if not (DATA / "gait2354_subject01_walk1_ik.mot").exists():
        pytest.skip(f"shared walk data not found in {DATA}")
    from msdiversity.models import load_model
    from msdiversity.models.registry import muscle_ids
    from msdiversity.motions import load_motion, map_to_model

    lm = load_model("myolegs")
    m = lm.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mot = load_motion(DATA / "gait2354_subject01_walk1_ik.mot", grf=DATA / "gait2354_subject01_walk1_grf.mot")
        ref, _ = map_to_model(mot, lm)
    qpos, qvel, qacc = B.reference_state(m, ref.qpos, ref.dt, None, cutoff_hz=6.0)
    loads = B.FootLoads(force=ref.grf, cop=ref.cop, free_moment=mot.grf.free_moment, bodies=B.foot_bodies(m))
    prob = B.muscle_problem(m, qpos, qvel, qacc, muscle_ids(m), loads)
    frames = np.arange(3, ref.n_frames - 3, 6)
    sol = B.solve_frames(prob, frames, exponents=(2.0,), ranges=False)
    return m, ref, prob, frames, sol


def test_walk_root_residuals_and_knee_reserve(walk):
    m, ref, prob, frames, sol = walk
    names = B.dof_names(m)
    bw = prob.id.body_weight
    fz = np.abs(prob.id.root_force[:, 2]) / bw * 100
    print(f"root residual |Fz|: mean {fz.mean():.1f} % BW, max {fz.max():.1f} % BW; measured vertical GRF "
          f"{ref.grf[:, :, 2].sum(1).min() / bw * 100:.0f}..{ref.grf[:, :, 2].sum(1).max() / bw * 100:.0f} % BW")
    assert fz.mean() < 8.0 and fz[3:-3].max() < 20.0  # the measured GRF carries the weight
    assert [B.foot_bodies(m)] == [tuple(mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"calcn_{s}") for s in "rl")]
    # dependent knee dofs carry nothing of their own; the knee torque is physiological (~1 N m/kg)
    assert not prob.id.S.shape[2] == m.nv and np.all(prob.tau[:, names.index("knee_angle_translation2_r")] == 0)
    knee = prob.tau[:, [names.index("knee_angle_r"), names.index("knee_angle_l")]]
    assert np.abs(knee).max() < 1.5 * m.body_subtreemass[0]
    # muscles produce the torques: no reserve on the knees (was ~1300-3000 N m)
    kn = [names.index("knee_angle_r"), names.index("knee_angle_l")]
    assert np.abs(sol["residual"][:, kn]).max() < 1.0
    assert np.abs(sol["residual"][:, prob.sel]).max() < 1.0


def test_torque_error_separates_truth_members_and_random(walk):
    """Planted: truth = the SO solution, members = truth + N(0, sd), random = uniform activations."""
    _, _, prob, frames, sol = walk
    so = sol["so"][0]
    b_ok = prob.b[frames] - sol["residual"][:, prob.sel]
    rng = np.random.default_rng(0)
    members = np.clip(so[None] + np.array([0.01, 0.03, 0.06])[:, None, None] * rng.standard_normal((3,) + so.shape), 0, 1)
    rand = rng.random((1,) + so.shape)
    acts = np.concatenate([so[None], members, rand, np.zeros((1,) + so.shape)])
    err, rel = B.torque_error(prob.A[frames], b_ok, acts)
    print("relative torque error truth, members, random, zero:", np.round(rel, 3))
    assert err.shape == (6, len(frames))
    assert rel[0] < 0.01 < rel[1] < rel[2] < rel[3] < rel[4]
    assert rel[4] > 1.0 and rel[5] == pytest.approx(1.0)


def test_baselines_on_myoelbow_store_vector_error_and_feasible_set():
    """baselines() end to end on a recording shaped like myoelbow_2dof whose members are the SO
    solution plus noise of growing size: vector error ranks them; feasible samples meet A a = b."""
    from msdiversity.analysis.prep import prepare
    from msdiversity.analysis.synthetic import synthetic_recording
    from msdiversity.models import load_model, summarize
    from msdiversity.models.registry import muscle_ids

    lm = load_model("myoelbow_2dof")
    s = summarize(lm)
    T = 60
    rec = synthetic_recording(1, n_members=4, n_trials=2, n_time=T, n_muscles=6, n_joints=2, k_true=2,
                              n_families=1, with_grf=False, dt=0.02)
    rec = rec.assign_coords(muscle=list(s.muscle_names), joint=list(s.joint_names))
    t = rec["time"].values
    qref = np.stack([0.1 * np.sin(2 * np.pi * t / t[-1]), 0.3 + 1.2 * (1 - np.cos(np.pi * t / t[-1])) / 2], 1)
    rec["ref_qpos_full"] = (("time", "qpos_index"), qref)
    rec.attrs["model"] = "myoelbow_2dof"
    qpos, qvel, qacc = B.reference_state(lm.model, qref, 0.02)
    prob = B.muscle_problem(lm.model, qpos, qvel, qacc, muscle_ids(lm.model))
    so = B.solve_frames(prob, np.arange(T), exponents=(2.0,), ranges=False)["so"][0]  # (T, 6)
    rng = np.random.default_rng(0)
    sd = np.array([0.0, 0.01, 0.04, 0.1])[:, None, None, None]
    rec["activation"][:] = np.clip(so[None, None] + sd * rng.standard_normal((4, 2, T, 6)), 0, 1)
    rec["activation_ref"] = (("time", "muscle"), so)
    prep = prepare(rec, 41)
    out = B.baselines(rec, prep, exponents=(2.0,), feasible_frames=3, feasible_samples=150, seed=1)
    rel = out["base_torque_error_rel"].values
    assert rel[0] < 0.01 and np.all(np.diff(rel) > 0), rel
    assert int(out["base_id_valid"]) == 1 and "base_root_residual_force" not in out  # no feet, no free root
    smp = out["base_feasible_samples"]
    assert smp.dims == ("fphase", "fsample", "muscle") and smp.shape == (3, 150, 6)
    fr = out["base_frame"].sel(phase=out["fphase"]).values
    resid = np.abs(np.einsum("fdm,fsm->fsd", prob.A[fr], smp.values.astype(float)) - prob.b[fr][:, None])
    assert resid.max() < 1e-3 * np.abs(prob.b).max()
    p = out["base_feasible_percentile"].values
    assert p.shape == (4, 3, 6) and np.nanmin(p) >= 0 and np.nanmax(p) <= 1
    assert out["base_feasible_percentile_ref"].shape == (3, 6)
    assert np.all((out["base_feasible_coverage"].values >= 0) & (out["base_feasible_coverage"].values <= 1))
    # the report panel draws it: one violin per (phase, muscle), members as dots, truth and SO as markers
    from msdiversity.report.figures import feasible_set, feasible_set_caption

    ana = out.assign_coords(phase_time=("phase", prep.phase_time))
    fig = feasible_set(ana, rec)
    kinds = [tr.type for tr in fig.data]
    assert kinds.count("violin") == 3 * 6 and kinds.count("scatter") == 3 * (4 + 2)
    cap = feasible_set_caption(ana)
    assert "feasible distribution" in cap and "NOT VALID" not in cap
