"""Model registry: every built-in model loads and summarizes; stripping keeps masses; MS-Human-700."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from msdiversity.cli import main
from msdiversity.errors import ModelError
from msdiversity.models import list_models, load_model, summarize
from msdiversity.models.registry import ModelLoadWarning

MS700 = Path(__file__).parents[2] / "shared" / "data" / "ms_human_700" / "MS-Human-700.xml"


@pytest.mark.parametrize("name", list_models())
def test_every_builtin_model_loads_and_summarizes(name):
    s = summarize(load_model(name))
    assert s.n_muscles > 0 and len(s.muscle_names) == s.n_muscles
    assert s.muscle_peak_force.shape == (s.n_muscles,) and np.all(s.muscle_peak_force > 0)
    assert s.joint_ranges.shape == (len(s.joint_names), 2)
    assert 5.0 < s.total_mass < 120.0
    if name in ("myolegs", "myofullbody"):
        assert s.free_root is not None and s.foot_geoms["r"] and s.foot_geoms["l"]


@pytest.mark.parametrize("name", ["myoelbow_2dof", "myolegs"])
def test_strip_meshes_keeps_masses_and_inertias(name):
    a, b = load_model(name, strip_meshes=True), load_model(name, strip_meshes=False)
    assert a.stripped_geoms > 0 and b.stripped_geoms == 0
    assert a.model.ngeom < b.model.ngeom
    np.testing.assert_array_equal(a.model.body_mass, b.model.body_mass)
    np.testing.assert_array_equal(a.model.body_inertia, b.model.body_inertia)
    np.testing.assert_array_equal(a.model.body_ipos, b.model.body_ipos)


@pytest.mark.skipif(not MS700.exists(), reason=f"MS-Human-700 XML absent ({MS700})")
def test_ms_human_700_loads_with_missing_meshes_and_textures():
    from msdiversity.models import registry

    registry._load_cached.cache_clear()
    with pytest.warns(ModelLoadWarning, match="textures with missing image files"):
        lm = load_model(MS700)
    assert lm.stripped_textures and lm.stripped_meshes and "stripped" in lm.stripped_summary
    s = summarize(lm)
    assert s.n_muscles == 700 and s.nq == 85
    assert s.total_mass == pytest.approx(57.79, abs=0.05)  # documented in ../shared/data/ms_human_700/README.md


def test_unknown_model_is_a_model_error(capsys):
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        load_model("nope")
    with pytest.raises(ModelError, match="model file not found"):
        load_model("/no/such/model.xml")


def test_models_cli_lists_all(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr()
    for name in list_models():
        assert name in out.out


def test_no_mujoco_empty_prefix_noise(tmp_path):
    """myo-sim's builders trigger MuJoCo's C-level 'empty prefix' warning; loading stays quiet
    (nothing on stderr, no MUJOCO_LOG.TXT written)."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", "from msdiversity.models import load_model; load_model('myolegs')"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "empty prefix" not in r.stderr and "empty prefix" not in r.stdout
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


# ---- myolegs_sagittal ------------------------------------------------------------------------------

DATA = Path(__file__).parents[2] / "shared" / "data" / "opensim"
WALK_IK, WALK_GRF = DATA / "gait2354_subject01_walk1_ik.mot", DATA / "gait2354_subject01_walk1_grf.mot"
SAGITTAL_COORDS = ("pelvis_tilt", "pelvis_tx", "pelvis_ty", "hip_flexion_r", "knee_angle_r", "ankle_angle_r",
                   "mtp_angle_r", "hip_flexion_l", "knee_angle_l", "ankle_angle_l", "mtp_angle_l")


def _joint_names(m):
    import mujoco

    return [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(m.njnt)]


def test_myolegs_sagittal_keeps_bodies_muscles_and_masses():
    from msdiversity.models.registry import SAGITTAL_LOCKED

    full, sag = load_model("myolegs").model, load_model("myolegs_sagittal").model
    s = summarize(load_model("myolegs_sagittal"))
    # free root (7 qpos / 6 dof) -> 3 root joints; 6 locked hinges
    assert (sag.nq, sag.nv) == (full.nq - 7 + 3 - 6, full.nv - 6 + 3 - 6) == (25, 25)
    assert sag.nu == sag.na == 80 and s.n_muscles == 80 and s.free_root is None
    assert s.joint_names[:3] == ("pelvis_tx", "pelvis_ty", "pelvis_tilt")
    assert not set(SAGITTAL_LOCKED) & set(_joint_names(sag))
    assert sag.nbody == full.nbody and sag.ngeom == full.ngeom
    np.testing.assert_array_equal(sag.body_mass, full.body_mass)
    np.testing.assert_array_equal(sag.body_inertia, full.body_inertia)
    assert s.total_mass == summarize(load_model("myolegs")).total_mass
    # muscles unchanged: explicit length ranges and peak forces, same tendons
    np.testing.assert_array_equal(sag.actuator_lengthrange, full.actuator_lengthrange)
    np.testing.assert_array_equal(sag.actuator_gainprm, full.actuator_gainprm)
    np.testing.assert_array_equal(sag.actuator_dynprm, full.actuator_dynprm)
    assert sag.ntendon == full.ntendon
    # the coupled knee keeps its 14 joint equality constraints
    assert sag.neq == full.neq == 14
    assert s.foot_geoms == summarize(load_model("myolegs")).foot_geoms
    # same heights as myolegs: qpos0 and the 'standing' keyframe (feet on the ground)
    ty = sag.jnt_qposadr[_joint_names(sag).index("pelvis_ty")]
    assert sag.qpos0[ty] == pytest.approx(full.qpos0[2])
    assert s.keyframes == ("standing",) and sag.key_qpos[0, ty] == pytest.approx(full.key_qpos[0, 2])


def _planar_motion(T=12):
    """An in-memory OpenSim-named sagittal motion (rad, m)."""
    from msdiversity.motions import ReferenceMotion

    t = np.linspace(0, 0.55, T)
    ph = 2 * np.pi * t / 1.1
    vals = {"pelvis_tilt": 0.15 * np.sin(ph) + 0.05, "pelvis_tx": 0.3 * t, "pelvis_ty": 0.93 + 0.02 * np.cos(2 * ph),
            "hip_flexion_r": 0.4 * np.sin(ph), "knee_angle_r": -0.6 - 0.4 * np.sin(ph),
            "ankle_angle_r": 0.2 * np.cos(ph), "mtp_angle_r": 0.1 * np.sin(ph),
            "hip_flexion_l": -0.3 * np.sin(ph), "knee_angle_l": -0.3 + 0.2 * np.sin(ph),
            "ankle_angle_l": -0.1 * np.cos(ph), "mtp_angle_l": 0.05 * np.cos(ph)}
    names = tuple(vals)
    return ReferenceMotion(time=t, coord_names=names, coords=np.stack([vals[n] for n in names], 1),
                           coord_is_rotation=np.array([n not in ("pelvis_tx", "pelvis_ty") for n in names]),
                           meta={"source": "planar"})


def test_myolegs_sagittal_forward_kinematics_equal_free_root_myolegs():
    """The same sagittal motion placed on both models gives the same pose of every body: pelvis_tx/ty
    are the pelvis origin's world x/z, and pelvis_tilt has OpenSim's sign (rotation about the pelvis'
    +Z axis, the subject's right: positive turns the pelvis' forward axis upward)."""
    import dataclasses

    import mujoco

    from msdiversity.motions import map_to_model

    full, sag = load_model("myolegs"), load_model("myolegs_sagittal")
    motion = _planar_motion()
    ra, _ = map_to_model(motion, full, ground=False)
    rb, rep = map_to_model(motion, sag, ground=False)
    assert {f for f, _ in rep.matched} == set(SAGITTAL_COORDS) and dict(rep.matched)["pelvis_tilt"] == "pelvis_tilt"
    flipped = dataclasses.replace(motion, coords=motion.coords * np.where(
        np.array(motion.coord_names) == "pelvis_tilt", -1.0, 1.0))
    rc, _ = map_to_model(flipped, sag, ground=False)
    da, db, dc = mujoco.MjData(full.model), mujoco.MjData(sag.model), mujoco.MjData(sag.model)
    pel = mujoco.mj_name2id(sag.model, mujoco.mjtObj.mjOBJ_BODY, "pelvis")
    worst, worst_flipped = 0.0, 0.0
    for t in range(motion.n_frames):
        for d, m, q in ((da, full.model, ra.qpos[t]), (db, sag.model, rb.qpos[t]), (dc, sag.model, rc.qpos[t])):
            d.qpos[:] = q
            mujoco.mj_kinematics(m, d)
        worst = max(worst, np.abs(da.xpos[1:] - db.xpos[1:]).max(), np.abs(da.xmat[1:] - db.xmat[1:]).max())
        worst_flipped = max(worst_flipped, np.abs(da.xpos[1:] - dc.xpos[1:]).max())
        np.testing.assert_allclose(db.xpos[pel][[0, 2]], motion.coords[t, [1, 2]], atol=1e-12)
        fwd = db.xmat[pel].reshape(3, 3)[:, 0]  # pelvis X axis in the world
        assert np.arctan2(fwd[2], fwd[0]) == pytest.approx(motion.coords[t, 0], abs=1e-9)
    assert worst < 1e-9
    assert worst_flipped > 0.05  # the opposite tilt sign would be visibly wrong


@pytest.mark.skipif(not WALK_IK.exists(), reason=f"shared OpenSim example data absent ({DATA})")
def test_myolegs_sagittal_maps_the_shared_walk():
    from msdiversity.motions import MotionWarning, load_model_reference

    lm = load_model("myolegs_sagittal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MotionWarning)
        ref, rep = load_model_reference(WALK_IK, lm, grf=WALK_GRF)
    assert {f for f, _ in rep.matched} == set(SAGITTAL_COORDS)
    assert set(rep.negated) == {"knee_angle_r", "knee_angle_l"} and not rep.unmatched_model
    dropped = {"pelvis_list", "pelvis_rotation", "pelvis_tz", "hip_adduction_r", "subtalar_angle_l"}
    assert dropped <= set(rep.unmatched_file)
    assert ref.qpos.shape == (rep.n_frames, lm.model.nq) and np.isfinite(ref.qpos).all()
    assert ref.grf.shape == (rep.n_frames, 2, 3)
    assert ref.joint_mask.sum() == len(SAGITTAL_COORDS)


def test_myolegs_sagittal_steps_and_stands_on_the_cpu_backend():
    """5 substeps stay finite; from 'standing' with zero excitation the model sags (no muscle holds
    it) but stays on its feet for 0.2 s: no divergence, both feet on the ground carrying load,
    nothing sinks into the ground."""
    import jax
    import jax.numpy as jnp
    import mujoco

    from msdiversity.motions.mapping import _lowest_foot_z
    from msdiversity.physics import make_backend, state_from_arrays

    lm = load_model("myolegs_sagittal")
    m = lm.model
    be = make_backend(lm, "cpu", nthread=1)
    s0 = state_from_arrays(m.key_qpos[0], np.zeros(m.nv), np.zeros(m.na))
    s, o = be.step(s0, jnp.full(m.nu, 0.1), 5)
    assert not bool(o.diverged) and all(np.isfinite(np.asarray(x)).all() for x in (s.qpos, s.qvel, s.act))

    step = jax.jit(lambda st, u: be.step(st, u, 10))  # 20 ms control steps
    gids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, g) for side in summarize(lm).foot_geoms.values()
            for g in side]
    top = _lowest_foot_z(m, m.key_qpos[:1], gids)[0]  # the keyframe stands on the ground (z = 0.015 m)
    weight = m.body_subtreemass[0] * np.linalg.norm(m.opt.gravity)
    ty = summarize(lm).joint_names.index("pelvis_ty")
    s = s0
    for _ in range(10):
        s, o = step(s, jnp.zeros(m.nu))
        q = np.asarray(s.qpos, float)
        assert not bool(o.diverged)
        assert abs(_lowest_foot_z(m, q[None], gids)[0] - top) < 0.003  # on the ground, not through it
        assert np.all(np.asarray(o.grf)[:, 2] > 0.05 * weight)  # both feet loaded
        assert q[ty] > m.key_qpos[0, ty] - 0.08  # sags, but far from falling
    assert abs(float(o.grf[0, 2]) - float(o.grf[1, 2])) < 0.02 * weight  # a symmetric stance


def test_with_options_copies_and_reaches_the_cpu_backend():
    import mujoco

    from msdiversity.models.registry import with_options
    from msdiversity.physics import make_backend

    lm = load_model("myolegs_sagittal")
    fast = with_options(lm, timestep=0.005, integrator="implicitfast", iterations=4, ls_iterations=8)
    assert fast.model is not lm.model and fast.name == lm.name and fast.source == lm.source
    assert lm.model.opt.timestep == 0.002 and lm.model.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER
    assert fast.model.opt.timestep == 0.005 and fast.model.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    assert (fast.model.opt.iterations, fast.model.opt.ls_iterations) == (4, 8)
    assert dict(fast.options) == {"timestep": 0.005, "integrator": int(mujoco.mjtIntegrator.mjINT_IMPLICITFAST),
                                  "iterations": 4, "ls_iterations": 8}
    again = with_options(fast, timestep=0.004)  # options merge
    assert again.model.opt.timestep == 0.004 and again.model.opt.iterations == 4
    be = make_backend(again, "cpu", nthread=1)  # recompiled with GRF sensors: options re-applied
    assert be.model.opt.timestep == 0.004 and be.model.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    with pytest.raises(ModelError, match="unknown integrator"):
        with_options(lm, integrator="verlet")
    with pytest.raises(ModelError, match="timestep must be > 0"):
        with_options(lm, timestep=0.0)
