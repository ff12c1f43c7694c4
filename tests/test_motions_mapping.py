"""Mapping motions onto models, GRF plate assignment, netCDF round trips."""

from __future__ import annotations

import warnings
from pathlib import Path

import mujoco
import numpy as np
import pytest
import xarray as xr

from msdiversity.cli import main
from msdiversity.errors import InputError
from msdiversity.models import load_model
from msdiversity.motions import (GRF, ModelReference, MotionWarning, ReferenceMotion, map_to_model, read_grf,
                                 read_opensim)
from msdiversity.motions.mapping import opensim_pelvis_matrix
from msdiversity.motions.opensim import OPENSIM_TO_MUJOCO

DATA = Path(__file__).parents[2] / "shared" / "data" / "opensim"
needs_data = pytest.mark.skipif(not DATA.exists(), reason=f"shared OpenSim example data absent ({DATA})")


@pytest.fixture(scope="module")
def gait():
    ik = read_opensim(DATA / "gait2354_subject01_walk1_ik.mot")
    grf = read_grf(DATA / "gait2354_subject01_walk1_grf.mot", motion=ik)
    return ik.with_grf(grf)


@pytest.fixture(scope="module")
def gait_on_myolegs(gait):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MotionWarning)
        return map_to_model(gait, load_model("myolegs"))


@needs_data
def test_gait_maps_onto_myolegs(gait_on_myolegs):
    ref, rep = gait_on_myolegs
    model = load_model("myolegs").model
    assert rep.root_joint == "root" and set(rep.root) == {"pelvis_tilt", "pelvis_list", "pelvis_rotation",
                                                          "pelvis_tx", "pelvis_ty", "pelvis_tz"}
    matched = dict(rep.matched)
    for side in "rl":
        for j in ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle", "ankle_angle"):
            assert matched[f"{j}_{side}"] == f"{j}_{side}"
    assert set(rep.unmatched_file) == {"lumbar_extension", "lumbar_bending", "lumbar_rotation"}
    # gait2354 flexes the knee negatively, myo-sim positively: detected and negated.
    assert set(rep.negated) == {"knee_angle_r", "knee_angle_l"}
    assert rep.n_frames == 73 and 1 / rep.dt == pytest.approx(60.0, rel=1e-4)
    assert ref.qpos.shape == (73, model.nq) and ref.qvel.shape == (73, model.nv)
    assert len(rep.coupled) == 14 and rep.unmatched_model == ()
    # Quaternions unit norm; tracked mask covers the 14 matched joints.
    assert np.linalg.norm(ref.qpos[:, 3:7], axis=1) == pytest.approx(1.0)
    assert ref.joint_mask.sum() == 14


@needs_data
def test_coupled_knee_joints_satisfy_equality_constraints(gait_on_myolegs):
    ref, _ = gait_on_myolegs
    model = load_model("myolegs").model
    d = mujoco.MjData(model)
    for t in (0, 20, 40, 72):
        d.qpos[:] = ref.qpos[t]
        mujoco.mj_forward(model, d)
        eq_rows = d.efc_type == mujoco.mjtConstraint.mjCNSTR_EQUALITY
        assert eq_rows.sum() == 14
        assert np.abs(d.efc_pos[eq_rows]).max() < 1e-12


@needs_data
def test_pelvis_and_grf_frames_agree(gait_on_myolegs):
    """The COP of each loaded foot must lie under that foot of the mapped model (heel..toe along
    the walking direction, within 6 cm laterally of the foot): checks plate->foot assignment, the
    Y-up->Z-up rotation, the pelvis Z-X-Y rotation order, the knee sign and the ground alignment."""
    ref, _ = gait_on_myolegs
    model = load_model("myolegs").model
    d = mujoco.MjData(model)
    n_checked = 0
    for t in range(0, ref.n_frames, 3):
        d.qpos[:] = ref.qpos[t]
        mujoco.mj_kinematics(model, d)
        for fi, side in enumerate("rl"):
            if ref.grf[t, fi, 2] < 200:
                continue
            heel, toe, cop = d.body(f"calcn_{side}").xpos, d.body(f"toes_{side}").xpos, ref.cop[t, fi]
            assert heel[0] - 0.05 < cop[0] < toe[0] + 0.08, (t, side)
            assert abs(cop[1] - (heel[1] + toe[1]) / 2) < 0.06, (t, side)
            assert min(heel[2], toe[2]) < 0.08  # heel or toes near the ground after alignment
            n_checked += 1
    assert n_checked > 15


@needs_data
def test_arm26_maps_fully_onto_myoelbow_2dof():
    m = read_opensim(DATA / "arm26_InverseKinematics.mot")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MotionWarning)
        ref, rep = map_to_model(m, load_model("myoelbow_2dof"), clip=True)
    assert rep.unmatched_file == () and rep.unmatched_model == () and rep.negated == ()
    assert dict(rep.matched) == {"r_shoulder_elev": "r_shoulder_elev", "r_elbow_flex": "r_elbow_flex"}
    assert ref.joint_mask.all() and ref.qpos.shape == (121, 2)
    assert ref.qpos[:, 1] == pytest.approx(np.clip(m.coord("r_elbow_flex"), 0, 2.26893))
    # Central-difference velocity check against a hand computation.
    t = 60
    assert ref.qvel[t, 1] == pytest.approx((ref.qpos[t + 1, 1] - ref.qpos[t - 1, 1]) / (2 * ref.dt))


def test_out_of_range_counted_and_clipped():
    t = np.arange(5) / 10
    elbow = np.array([-0.2, 0.5, 1.0, 2.5, 3.0])  # two above the 2.27 rad limit, one below 0
    m = ReferenceMotion(t, ("r_elbow_flex",), elbow[:, None], [True], meta={"source": "test"})
    lm = load_model("myoelbow_2dof")
    with pytest.raises(InputError, match="60% of frames"):  # mostly out of range: refused by default
        map_to_model(m, lm, auto_sign=False)
    with pytest.warns(MotionWarning, match="r_elbow_flex: 3 frames"):
        ref, rep = map_to_model(m, lm, auto_sign=False, strict=False)
    assert rep.out_of_range == {"r_elbow_flex": 3} and rep.unmatched_model == ("r_shoulder_elev",)
    assert ref.qpos[:, 1] == pytest.approx(elbow)
    with pytest.warns(MotionWarning):
        ref, _ = map_to_model(m, lm, clip=True, auto_sign=False)
    assert ref.qpos[:, 1].max() == pytest.approx(2.26893) and ref.qpos[:, 1].min() == 0.0
    assert not ref.joint_mask[0] and ref.joint_mask[1]


def test_user_mapping_override_and_errors():
    t = np.arange(4) / 10
    m = ReferenceMotion(t, ("elbow", "shoulder"), np.full((4, 2), 0.3), [True, True], meta={"source": "x"})
    lm = load_model("myoelbow_2dof")
    ref, rep = map_to_model(m, lm, mapping={"elbow": "r_elbow_flex", "shoulder": "-r_shoulder_elev"})
    assert ref.qpos[0] == pytest.approx([-0.3, 0.3]) and rep.negated == ("r_shoulder_elev",)
    with pytest.raises(InputError, match="not a hinge/slide joint"):
        map_to_model(m, lm, mapping={"elbow": "nope"})
    with pytest.raises(InputError, match="not a coordinate of the motion"):
        map_to_model(m, lm, mapping={"wrist": "r_elbow_flex"})


def test_pelvis_rotation_order_is_zxy_body_fixed():
    tilt, lst, rot = 0.3, -0.2, 0.5
    r = opensim_pelvis_matrix(tilt, lst, rot)
    # Body-fixed Z-X-Y == extrinsic Y-X-Z: compose elementary rotations by hand.
    cz, sz, cx, sx, cy, sy = np.cos(tilt), np.sin(tilt), np.cos(lst), np.sin(lst), np.cos(rot), np.sin(rot)
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    assert r == pytest.approx(rz @ rx @ ry)
    # OpenSim Y (up) goes to MuJoCo Z, OpenSim Z (right) to MuJoCo -Y.
    assert OPENSIM_TO_MUJOCO @ [0, 1, 0] == pytest.approx([0, 0, 1])
    assert OPENSIM_TO_MUJOCO @ [0, 0, 1] == pytest.approx([0, -1, 0])
    assert np.linalg.det(OPENSIM_TO_MUJOCO) == pytest.approx(1.0)


def _grf_file(tmp_path, labels_prefixes, cop_z):
    """Two plates, vertical load 700 N on each in turn; cop_z (OpenSim +Z = right) per plate."""
    cols = ["time"]
    for p in labels_prefixes:
        cols += [f"{p}ground_force_v{a}" for a in "xyz"] + [f"{p}ground_force_p{a}" for a in "xyz"]
    for p in labels_prefixes:
        cols += [f"{p}ground_torque_{a}" for a in "xyz"]
    rows = []
    for i in range(11):
        t = i * 0.1
        vals = [t]
        for k, _ in enumerate(labels_prefixes):
            load = 700.0 if (i < 6) == (k == 0) else 0.0
            vals += [10.0, load, 0.0, 0.5 + 0.01 * i, 0.0, cop_z[k]]
        vals += [0.0, 5.0, 0.0] * len(labels_prefixes)
        rows.append("\t".join(f"{v:.5f}" for v in vals))
    text = f"grf\nversion=1\nnRows=11\nnColumns={len(cols)}\ninDegrees=yes\nendheader\n" + "\t".join(cols) + "\n" + "\n".join(rows) + "\n"
    p = tmp_path / "grf.mot"
    p.write_text(text)
    return p


def test_grf_side_prefixes(tmp_path):
    g = read_grf(_grf_file(tmp_path, ["L_", "R_"], [0.1, -0.1]))
    # L_ is first in the file but goes to the left foot (index 1).
    assert g.force[0, 1, 2] == pytest.approx(700.0) and g.force[0, 0, 2] == 0.0
    assert g.force[10, 0, 2] == pytest.approx(700.0)


def test_grf_file_order_fallback_is_stated(tmp_path):
    with pytest.warns(MotionWarning, match="ASSUMED from file order"):
        g = read_grf(_grf_file(tmp_path, ["", "1_"], [0.1, -0.1]))
    assert g.force[0, 0, 2] == pytest.approx(700.0)  # first plate -> right


def test_grf_kinematic_assignment(tmp_path):
    """Plate under the pelvis's left side (OpenSim -Z) goes to the left foot even when it comes first."""
    t = np.linspace(0, 1, 11)
    names = ("pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz")
    ik = ReferenceMotion(t, names, np.zeros((11, 6)), [True] * 3 + [False] * 3)
    g = read_grf(_grf_file(tmp_path, ["", "1_"], [-0.1, 0.1]), motion=ik)
    assert g.force[0, 1, 2] == pytest.approx(700.0) and g.force[10, 0, 2] == pytest.approx(700.0)
    assert any("left of the pelvis" in n for n in g.notes)
    # Same file, pelvis turned 180 deg about vertical: the sides swap.
    ik2 = ReferenceMotion(t, names, np.c_[np.zeros((11, 2)), np.full(11, np.pi), np.zeros((11, 3))],
                          [True] * 3 + [False] * 3)
    g2 = read_grf(_grf_file(tmp_path, ["", "1_"], [-0.1, 0.1]), motion=ik2)
    assert g2.force[0, 0, 2] == pytest.approx(700.0)


def test_grf_columns_missing_is_an_error(tmp_path):
    p = tmp_path / "g.mot"
    p.write_text("g\nendheader\ntime\tground_force_vx\tground_force_vy\n0\t1\t2\n0.1\t1\t2\n")
    with pytest.raises(InputError, match="lacks force columns"):
        read_grf(p)


def test_reference_motion_netcdf_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    T = 20
    cop = rng.normal(size=(T, 2, 3))
    cop[:5, 1] = np.nan
    m = ReferenceMotion(np.arange(T) / 50, ("a", "pelvis_tx"), rng.normal(size=(T, 2)), [True, False],
                        grf=GRF(rng.normal(size=(T, 2, 3)), cop, rng.normal(size=(T, 2, 3)), notes=("n1",)),
                        excitation=rng.uniform(size=(T, 3)), activation=rng.uniform(size=(T, 3)),
                        muscle_names=("m1", "m2", "m3"), emg=rng.uniform(size=(T, 1)), emg_names=("m2",),
                        meta={"source": "x.mot", "seed": 3, "nested": {"a": [1, 2]}})
    m.save(tmp_path / "m.nc")
    back = ReferenceMotion.load(tmp_path / "m.nc")
    xr.testing.assert_identical(m.to_dataset(), back.to_dataset())
    assert back.meta == m.meta and back.grf.notes == ("n1",)
    ref = ModelReference(0.02, rng.normal(size=(T, 4)), rng.normal(size=(T, 3)), rng.normal(size=(T, 2, 3)), None,
                         rng.uniform(size=(T, 3)), None, np.array([True, False]), meta={"k": 1}, cop=cop)
    ref.save(tmp_path / "r.nc")
    back = ModelReference.load(tmp_path / "r.nc")
    xr.testing.assert_identical(ref.to_dataset(), back.to_dataset())
    with pytest.raises(InputError, match="expected a msdiversity.ReferenceMotion"):
        ReferenceMotion.load(tmp_path / "r.nc")


@needs_data
def test_cli_inspect_gait_on_myolegs(capsys):
    rc = main(["motion", "inspect", str(DATA / "gait2354_subject01_walk1_ik.mot"), "--model", "myolegs",
               "--grf", str(DATA / "gait2354_subject01_walk1_grf.mot")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "1.2 s at 60 Hz" in out
    assert "root (free root)" in out and "lumbar_extension" in out and "not in the model" in out
    assert "ground_force -> r" in out and "1_ground_force -> l" in out


@needs_data
def test_cli_convert_writes_model_reference(tmp_path, capsys):
    out = tmp_path / "arm.nc"
    rc = main(["motion", "convert", str(DATA / "arm26_InverseKinematics.mot"), "--model", "myoelbow_2dof",
               "-o", str(out), "--rate", "60", "--clip"])
    assert rc == 0
    ref = ModelReference.load(out)
    assert ref.qpos.shape == (61, 2) and 1 / ref.dt == pytest.approx(60.0)
    assert ref.qpos[:, 1].min() >= 0.0
    assert main(["motion", "convert", str(DATA / "arm26_InverseKinematics.mot"), "--model", "myoelbow_2dof",
                 "-o", str(out), "--map", "bad"]) == 2


def test_rounded_times_are_uniform_but_gaps_are_resampled():
    lm = load_model("myoelbow_2dof")
    t = np.round(np.arange(31) / 600, 4)  # printed with 4 decimals: 0.0017, 0.0033, ...
    m = ReferenceMotion(t, ("r_elbow_flex",), np.full((31, 1), 0.5), [True])
    ref, rep = map_to_model(m, lm)
    assert ref.n_frames == 31 and 1 / ref.dt == pytest.approx(600.0) and not rep.notes
    t2 = np.r_[np.arange(10) * 0.01, 0.2 + np.arange(10) * 0.01]  # a 0.1 s gap
    m2 = ReferenceMotion(t2, ("r_elbow_flex",), np.full((20, 1), 0.5), [True])
    ref2, rep2 = map_to_model(m2, lm)
    assert "resampled" in rep2.notes[0] and ref2.n_frames == 20


def test_load_model_reference_accepts_a_motion_in_memory():
    from msdiversity.models import load_model
    from msdiversity.motions import load_model_reference, load_motion

    m = load_model("myoelbow_2dof")
    mot = load_motion("synthetic", model=m, seed=3, duration=0.4)
    ref, report = load_model_reference(mot, m)
    assert ref.qpos.shape == (len(mot.time), m.model.nq) and report.unmatched_file == ()
