"""Gait tools: events from GRF and foot kinematics, treadmill detection/conversion, periodic cycles."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import mujoco
import numpy as np
import pytest

from msdiversity.errors import ConfigError, InputError
from msdiversity.models import load_model
from msdiversity.models.registry import scalar_joint_ids
from msdiversity.motions import GRF, ModelReference, gait

DATA = Path(__file__).parents[2] / "shared" / "data" / "opensim"
needs_data = pytest.mark.skipif(not DATA.exists(), reason=f"shared OpenSim example data absent ({DATA})")


@pytest.fixture(scope="module")
def legs():
    return load_model("myolegs")


@pytest.fixture(scope="module")
def gait2354(legs):
    from msdiversity.motions import load_model_reference

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, rep = load_model_reference(DATA / "gait2354_subject01_walk1_ik.mot", legs,
                                        grf=DATA / "gait2354_subject01_walk1_grf.mot")
    return ref


# ---------------------------------------------------------------------------------------------
# synthetic data
# ---------------------------------------------------------------------------------------------

def _grf_series(strikes, stance_s=0.62, peak=700.0, dt=0.001, duration=3.0, noise=0.0, seed=0):
    """(time (T,), fz (T,)): half-sine stances starting at `strikes` (s), Gaussian noise (N)."""
    t = np.arange(int(round(duration / dt)) + 1) * dt
    fz = np.zeros_like(t)
    for s in strikes:
        inside = (t >= s) & (t < s + stance_s)
        fz[inside] = peak * np.sin(np.pi * (t[inside] - s) / stance_s)
    return t, fz + np.random.default_rng(seed).normal(0, noise, len(t)) if noise else fz


def synthetic_walk(lm, period=1.1, speed=1.2, dt=0.01, duration=3.0, grf=True, hs_r=0.13):
    """A bilaterally symmetric periodic 'walk' of myolegs along +X (left = right half a period later):
    sinusoidal hips/knees/ankles, constant forward speed, lateral sway and pelvis rotation, and (grf)
    half-sine vertical GRF with the right heel striking at hs_r + k * period."""
    from msdiversity.motions.mapping import _fill_coupled, _qvel

    m = lm.model
    t = np.arange(int(round(duration / dt)) + 1) * dt
    ph = 2 * np.pi * (t - hs_r) / period
    q = np.tile(m.key_qpos[0] if m.nkey else m.qpos0, (len(t), 1))
    yaw = np.pi / 2 + 0.06 * np.sin(ph)  # myolegs faces -Y at identity: +90 deg walks along +X
    q[:, 0], q[:, 1] = speed * t, 0.02 * np.sin(ph + 0.5)
    q[:, 2] += 0.01 * np.cos(2 * ph)
    q[:, 3:7] = np.stack([np.cos(yaw / 2), 0 * t, 0 * t, np.sin(yaw / 2)], 1)
    adr = lambda n: m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)]  # noqa: E731
    driven = []
    for side, off in (("r", 0.0), ("l", np.pi)):
        q[:, adr(f"hip_flexion_{side}")] = 0.15 + 0.35 * np.cos(ph + off)
        q[:, adr(f"knee_angle_{side}")] = 0.55 + 0.5 * np.sin(ph + off - 2.0)
        q[:, adr(f"ankle_angle_{side}")] = 0.1 * np.sin(ph + off + 1.0)
        driven += [f"hip_flexion_{side}", f"knee_angle_{side}", f"ankle_angle_{side}"]
    jids = scalar_joint_ids(m)
    mask = np.array([mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) in driven for j in jids])
    _fill_coupled(m, q, {int(j) for j, k in zip(jids, mask) if k})
    g = None
    if grf:
        g = np.zeros((len(t), 2, 3))
        for fi, off in ((0, 0.0), (1, 0.5)):
            phi = (ph / (2 * np.pi) - off) % 1.0
            g[:, fi, 2] = np.where(phi < 0.62, 700 * np.sin(np.pi * np.minimum(phi, 0.62) / 0.62), 0.0)
    return ModelReference(dt=dt, qpos=q, qvel=_qvel(m, q, dt), grf=g, excitation=None, activation=None, emg=None,
                          joint_mask=mask, meta={"source": "synthetic walk", "root_tracked": True})


# ---------------------------------------------------------------------------------------------
# events
# ---------------------------------------------------------------------------------------------

def test_gait_events_noise_spike_and_dip():
    strikes_r, strikes_l = [0.21, 1.31, 2.41], [0.76, 1.86]
    t, fr = _grf_series(strikes_r, noise=3.0, seed=1)
    _, fl = _grf_series(strikes_l, noise=3.0, seed=2)
    spike = (t >= 1.05) & (t < 1.056)  # 6 ms, 150 N, mid-swing of the right foot
    fr[spike] += 150.0
    dip = (t >= 2.1) & (t < 2.12)  # 20 ms unloading inside the left stance from 1.86
    fl[dip] = 0.0
    grf = np.zeros((len(t), 2, 3))
    grf[:, 0, 2], grf[:, 1, 2] = fr, fl
    ev = gait.gait_events(grf, dt=0.001)
    np.testing.assert_allclose(ev["r"]["heel_strike"], strikes_r, atol=0.005)
    np.testing.assert_allclose(ev["r"]["toe_off"], np.array(strikes_r[:-1]) + 0.62, atol=0.005)
    np.testing.assert_allclose(ev["l"]["heel_strike"], strikes_l, atol=0.005)
    np.testing.assert_allclose(ev["l"]["toe_off"], np.array(strikes_l) + 0.62, atol=0.005)
    # the same through a GRF object on its own clock, and as a fraction of body weight
    g = GRF(force=grf, cop=np.full_like(grf, np.nan), free_moment=np.zeros_like(grf), time=t + 0.5)
    ev2 = gait.grf_events(g, threshold_bw=0.05, body_weight_n=700.0)
    np.testing.assert_allclose(ev2["r"]["heel_strike"], np.array(strikes_r) + 0.5, atol=0.005)
    # without minimum durations the spike and the dip are events
    ev3 = gait.gait_events(grf, dt=0.001, min_stance_s=0.0, min_swing_s=0.0)
    assert len(ev3["r"]["heel_strike"]) == 4 and len(ev3["l"]["heel_strike"]) == 3


def test_contact_events_sub_sample_timing_and_edges():
    t = np.arange(11) * 0.1  # 10 Hz
    x = np.array([5, 5, 0, 0, 0, 10, 10, 10, 0, 0, 0], float)
    on, off = gait.contact_events(t, x, on=8.0, off=2.5, min_stance_s=0.05, min_swing_s=0.05)
    # on at t=0 (no onset); off between 0.1 and 0.2; on between 0.4 and 0.5 at 25 %; off 0.7-0.8 at 75 %
    # the first run never reaches `on`, so it is no episode at all
    np.testing.assert_allclose(on, [0.425])
    np.testing.assert_allclose(off, [0.775])
    with pytest.raises(InputError, match="must not exceed"):
        gait.contact_events(t, x, on=1.0, off=2.0)
    with pytest.raises(InputError, match="one value per time sample"):
        gait.contact_events(t, x[:-1], on=1.0)


def test_foot_kinematic_events_on_synthetic_walk(legs):
    ref = synthetic_walk(legs, grf=False)
    ev = gait.foot_kinematic_events(ref, legs)
    hs = ev["r"]["heel_strike"]
    assert len(hs) >= 2
    np.testing.assert_allclose(np.diff(hs), 1.1, atol=0.01)  # one per period
    np.testing.assert_allclose(np.diff(ev["l"]["heel_strike"]), 1.1, atol=0.01)
    # left strikes half a period after the right ones
    assert abs((ev["l"]["heel_strike"][0] - hs[0]) % 1.1 - 0.55) < 0.02


@needs_data
def test_rajagopal_walk_right_heel_strikes():
    from msdiversity.motions import read_grf

    grf = read_grf(DATA / "rajagopal_walk_grf.mot")  # 2000 Hz, no motion needed (plates named _r/_l)
    ev = gait.grf_events(grf)
    # the strikes OpenSim's own EMG comparison uses
    np.testing.assert_allclose(ev["r"]["heel_strike"], [0.248, 1.3925], atol=0.010)
    assert len(ev["l"]["heel_strike"]) == 1 and 0.7 < ev["l"]["heel_strike"][0] < 0.9


@needs_data
def test_foot_kinematic_events_agree_with_grf(gait2354, legs):
    g = gait.gait_events(gait2354.grf, gait2354.dt)
    k = gait.foot_kinematic_events(gait2354, legs)
    for foot in ("r", "l"):
        np.testing.assert_allclose(k[foot]["heel_strike"], g[foot]["heel_strike"], atol=2.5 * gait2354.dt)


# ---------------------------------------------------------------------------------------------
# treadmill
# ---------------------------------------------------------------------------------------------

def test_treadmill_detection_and_conversion_synthetic(legs):
    over = synthetic_walk(legs, grf=False)
    # a treadmill version: the same walk in a frame moving with the subject
    tread = gait.to_overground(over, legs, -1.2, direction=(1.0, 0.0))
    assert np.ptp(tread.qpos[:, 0]) < 1e-9 and np.allclose(tread.qvel[:, 0], over.qvel[:, 0] - 1.2)
    d_over, d_tread = gait.detect_treadmill(over, legs), gait.detect_treadmill(tread, legs)
    assert d_tread.pelvis_speed == pytest.approx(0.0, abs=0.02)
    assert not d_over.is_treadmill
    assert d_tread.speed - d_over.speed == pytest.approx(1.2, abs=0.02)


@needs_data
def test_treadmill_gait2354(gait2354, legs):
    det = gait.detect_treadmill(gait2354, legs)
    assert det.is_treadmill and det.stance_from == "grf", det.summary_line()
    assert 0.8 < det.speed < 1.2 and abs(det.pelvis_speed) < 0.1
    assert gait.treadmill_speed(gait2354, legs) == pytest.approx(det.speed)
    over = gait.to_overground(gait2354, legs, det.speed, det.belt_direction)
    after = gait.detect_treadmill(over, legs)
    assert not after.is_treadmill and abs(after.speed) < 0.1
    assert after.pelvis_speed == pytest.approx(det.speed, abs=0.05)
    loaded = ~np.isnan(over.cop[:, 0, 0])
    # on the belt the right foot's COP travels back with the foot; overground it only rolls heel to toe
    assert np.ptp(over.cop[loaded, 0, 0]) < 0.3 < np.ptp(gait2354.cop[loaded, 0, 0])
    assert over.meta["treadmill"]["converted"] and over.meta["treadmill"]["belt_speed"] == pytest.approx(det.speed)
    np.testing.assert_array_equal(over.qpos[:, 7:], gait2354.qpos[:, 7:])  # joint angles untouched


# ---------------------------------------------------------------------------------------------
# periodic cycle
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("with_grf", [True, False])
def test_periodic_cycle_recovers_period_and_shift(legs, with_grf):
    ref = synthetic_walk(legs, grf=with_grf)
    cyc = gait.periodic_cycle(ref, legs)
    p = cyc.meta["periodic"]
    assert p["mode"] == "stride" and p["events_from"] == ("grf" if with_grf else "foot kinematics")
    assert abs(cyc.n_frames - 110) <= 1
    np.testing.assert_allclose(cyc.cycle_shift, [1.2 * 1.1, 0.0, 0.0], atol=0.01)
    # a periodic motion needs no correction: the cycle is the motion's own frames
    i0 = p["source_frames"][0]
    np.testing.assert_allclose(cyc.qpos, ref.qpos[i0:i0 + cyc.n_frames], atol=1e-6)
    np.testing.assert_allclose(cyc.qvel, ref.qvel[i0:i0 + cyc.n_frames], atol=1e-6)
    two = gait.periodic_cycle(ref, legs, cycles=2)
    assert abs(two.n_frames - 220) <= 1 and two.cycle_shift[0] == pytest.approx(2 * 1.32, abs=0.01)
    with pytest.warns(UserWarning, match="only 2 complete stride"):
        gait.periodic_cycle(ref, legs, cycles=5)


def test_periodic_cycle_by_mirroring_a_half_stride(legs):
    full = synthetic_walk(legs)
    half = synthetic_walk(legs, duration=0.95)  # right strike 0.13, left 0.68, no second right strike
    with pytest.raises(InputError, match="no complete gait cycle"):
        gait.periodic_cycle(half, legs, mode="stride")
    cyc = gait.periodic_cycle(half, legs)
    p = cyc.meta["periodic"]
    assert p["mode"] == "mirror" and abs(cyc.n_frames - 110) <= 1
    np.testing.assert_allclose(cyc.cycle_shift, [1.32, 0.0, 0.0], atol=0.01)
    i0, n = p["source_frames"][0], cyc.n_frames
    np.testing.assert_allclose(cyc.qpos[:, 7:], full.qpos[i0:i0 + n, 7:], atol=1e-6)  # the left half, rebuilt
    np.testing.assert_allclose(cyc.qpos[:, :3], full.qpos[i0:i0 + n, :3], atol=0.005)
    quat_dot = np.abs(np.sum(cyc.qpos[:, 3:7] * full.qpos[i0:i0 + n, 3:7], 1))
    assert np.rad2deg(2 * np.arccos(np.clip(quat_dot, -1, 1))).max() < 0.5
    np.testing.assert_allclose(cyc.grf, full.grf[i0:i0 + n], atol=1e-6)  # feet swapped in the second half


def synthetic_sagittal_walk(lm, period=1.1, speed=1.2, dt=0.01, duration=3.0, hs_r=0.13):
    """The same symmetric walk on a planar root (slides + pelvis tilt): forward speed, pelvis height and
    tilt oscillating twice per stride, sinusoidal hips/knees/ankles, half-sine vertical GRF."""
    from msdiversity.motions.mapping import _fill_coupled, _qvel

    m = lm.model
    root = gait._root(m)
    t = np.arange(int(round(duration / dt)) + 1) * dt
    ph = 2 * np.pi * (t - hs_r) / period
    q = np.tile(m.key_qpos[0] if m.nkey else m.qpos0, (len(t), 1))
    for a, inc in root.translation_to_q(np.stack([speed * t, 0 * t, 0 * t], 1)).items():
        q[:, a] += inc
    vert = [a for a, _, ax in root.slides if abs(ax[2]) > 0.5][0]
    q[:, vert] += 0.01 * np.cos(2 * ph)
    adr = lambda n: m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)]  # noqa: E731
    q[:, adr("pelvis_tilt")] += 0.04 * np.sin(2 * ph)
    driven = []
    for side, off in (("r", 0.0), ("l", np.pi)):
        q[:, adr(f"hip_flexion_{side}")] = 0.15 + 0.35 * np.cos(ph + off)
        q[:, adr(f"knee_angle_{side}")] = 0.55 + 0.5 * np.sin(ph + off - 2.0)
        q[:, adr(f"ankle_angle_{side}")] = 0.1 * np.sin(ph + off + 1.0)
        driven += [f"hip_flexion_{side}", f"knee_angle_{side}", f"ankle_angle_{side}"]
    jids = scalar_joint_ids(m)
    mask = np.array([mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) in driven for j in jids])
    _fill_coupled(m, q, {int(j) for j, k in zip(jids, mask) if k})
    g = np.zeros((len(t), 2, 3))
    for fi, off in ((0, 0.0), (1, 0.5)):
        phi = (ph / (2 * np.pi) - off) % 1.0
        g[:, fi, 2] = np.where(phi < 0.62, 700 * np.sin(np.pi * np.minimum(phi, 0.62) / 0.62), 0.0)
    return ModelReference(dt=dt, qpos=q, qvel=_qvel(m, q, dt), grf=g, excitation=None, activation=None, emg=None,
                          joint_mask=mask, meta={"source": "synthetic sagittal walk", "root_tracked": True})


def test_periodic_cycle_mirrors_a_half_stride_on_a_planar_root():
    """myolegs_sagittal (planar root): a half stride is completed by mirroring, as on the free root."""
    sag = load_model("myolegs_sagittal")
    full = synthetic_sagittal_walk(sag)
    half = synthetic_sagittal_walk(sag, duration=0.95)  # right strike 0.13, left 0.68, no second right strike
    cyc = gait.periodic_cycle(half, sag)
    p = cyc.meta["periodic"]
    assert p["mode"] == "mirror" and abs(cyc.n_frames - 110) <= 1
    np.testing.assert_allclose(cyc.cycle_shift, [1.32, 0.0, 0.0], atol=0.01)
    i0, n = p["source_frames"][0], cyc.n_frames
    np.testing.assert_allclose(cyc.qpos, full.qpos[i0:i0 + n], atol=0.005)  # second half = the left half, rebuilt
    np.testing.assert_allclose(cyc.grf, full.grf[i0:i0 + n], atol=1e-6)  # feet swapped in the second half


def test_periodic_cycle_removes_a_seam_mismatch(legs):
    ref = synthetic_walk(legs)
    q = ref.qpos.copy()
    adr = legs.model.jnt_qposadr[mujoco.mj_name2id(legs.model, mujoco.mjtObj.mjOBJ_JOINT, "hip_flexion_r")]
    q[:, adr] += np.deg2rad(6.0) * ref.time / ref.time[-1] * 2.7  # a drift of ~6 deg per stride
    cyc = gait.periodic_cycle(dataclasses.replace(ref, qpos=q), legs)
    assert cyc.meta["periodic"]["seam_mismatch_before"]["joint_max_deg"] == pytest.approx(6 * 1.1 / 3 * 2.7, abs=0.2)
    jump = gait.seam_jump_deg(legs, cyc.qpos, np.r_[cyc.cycle_shift, np.zeros(legs.model.nq - 3)])
    assert jump["seam"] <= jump["interior"] + 0.05 and jump["step"] < jump["interior_step"]


def test_periodic_cycle_errors(legs):
    ref = synthetic_walk(legs, duration=0.5)  # one right strike only
    with pytest.raises(InputError, match="no complete gait cycle"):
        gait.periodic_cycle(ref, legs)
    with pytest.raises(InputError, match="mode"):
        gait.periodic_cycle(ref, legs, mode="loop")
    with pytest.raises(InputError, match="cycles"):
        gait.periodic_cycle(ref, legs, cycles=0)


def test_cycle_shift_round_trip(tmp_path, legs):
    ref = synthetic_walk(legs, duration=0.3)
    ref.save(tmp_path / "old.nc")  # no cycle_shift: loads as None
    assert ModelReference.load(tmp_path / "old.nc").cycle_shift is None
    per = dataclasses.replace(ref, cycle_shift=np.array([1.3, 0.01, 0.0]))
    per.save(tmp_path / "per.nc")
    back = ModelReference.load(tmp_path / "per.nc")
    np.testing.assert_array_equal(back.cycle_shift, [1.3, 0.01, 0.0])
    with pytest.raises(InputError, match="cycle_shift"):
        dataclasses.replace(ref, cycle_shift=np.zeros(2))


@needs_data
def test_periodic_cycle_gait2354(gait2354, legs):
    ref, notes = gait.apply_gait_options(gait2354, legs, treadmill="auto", periodic=True)
    assert ref.meta["treadmill"]["converted"] and "converted to overground" in notes[0]
    p = ref.meta["periodic"]
    assert 1.1 <= p["period_s"] <= 1.3, p
    assert ref.cycle_shift[0] == pytest.approx(ref.meta["treadmill"]["belt_speed"] * p["period_s"], rel=0.1)
    assert ref.cycle_shift[2] == 0.0
    dq = np.zeros(legs.model.nq)
    dq[:3] = ref.cycle_shift
    jump = gait.seam_jump_deg(legs, ref.qpos, dq)
    assert jump["step"] < 2.0, jump
    src = gait2354.qpos[p["source_frames"][0]:p["source_frames"][1] + 1]
    raw = gait.seam_jump_deg(legs, src)["interior"]  # the data's own roughness
    assert jump["seam"] <= raw + 0.1, (jump, raw)
    # the wrapped frame after N-1 continues the motion: periodic qvel agrees with one-sided steps
    after = ref.qpos[0].copy()
    after[:3] += ref.cycle_shift
    v = np.zeros(legs.model.nv)
    mujoco.mj_differentiatePos(legs.model, v, ref.dt, ref.qpos[-1], after)
    assert np.abs(v[6:] - ref.qvel[-1, 6:]).max() < np.abs(ref.qvel[:, 6:]).max()


# ---------------------------------------------------------------------------------------------
# configuration and CLI
# ---------------------------------------------------------------------------------------------

def test_motion_section_options():
    from msdiversity.config import experiment_from_dict
    from msdiversity.ensemble.build import check_motion_options
    from msdiversity.ensemble.config import MotionSection, section

    for v in ("auto", "off", 1.1, 1):
        exp = experiment_from_dict({"name": "x", "motion": {"treadmill": v, "periodic": True, "cycles": 2}})
        mo = section(MotionSection, exp, "motion")
        check_motion_options(mo, exp)
        assert mo.periodic and mo.cycles == 2
    with pytest.raises(ConfigError, match="motion.periodic"):
        section(MotionSection, experiment_from_dict({"name": "x", "motion": {"periodic": "yes"}}), "motion")
    with pytest.raises(ConfigError, match="motion.treadmill"):
        section(MotionSection, experiment_from_dict({"name": "x", "motion": {"treadmill": True}}), "motion")
    bad = experiment_from_dict({"name": "x", "motion": {"treadmill": "fast"}})
    with pytest.raises(ConfigError, match="motion.treadmill.*belt speed"):
        check_motion_options(section(MotionSection, bad, "motion"), bad)
    bad = experiment_from_dict({"name": "x", "motion": {"cycles": 0}})
    with pytest.raises(ConfigError, match="motion.cycles"):
        check_motion_options(section(MotionSection, bad, "motion"), bad)


def test_apply_gait_options_skips_models_without_a_root():
    from msdiversity.motions import ReferenceMotion, load_model_reference

    lm = load_model("myoelbow_2dof")
    t = np.arange(20) * 0.01
    m = ReferenceMotion(t, ("r_elbow_flex",), 0.5 + 0.1 * np.sin(t)[:, None], [True])
    ref, _ = load_model_reference(m, lm)
    out, notes = gait.apply_gait_options(ref, lm)
    assert out is ref and "not checked" in notes[0]
    with pytest.raises(InputError, match="treadmill"):
        gait.to_overground(ref, lm, 1.0)
    with pytest.raises(InputError, match="no complete gait cycle"):
        gait.apply_gait_options(ref, lm, periodic=True)


@needs_data
def test_build_env_applies_treadmill_and_periodic(monkeypatch):
    import msdiversity.emulator as emulator
    from msdiversity.config import experiment_from_dict
    from msdiversity.ensemble.build import build_env

    monkeypatch.setattr(emulator, "make_env", lambda loaded, ref, cfg, backend=None: ("env", ref))
    exp = experiment_from_dict({"name": "walk", "model": {"name": "myolegs"},
                                "motion": {"source": str(DATA / "gait2354_subject01_walk1_ik.mot"),
                                           "grf": str(DATA / "gait2354_subject01_walk1_grf.mot"), "periodic": True}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = build_env(exp)
    ref = built.reference
    assert ref.cycle_shift is not None and ref.meta["treadmill"]["converted"]
    assert any(n.startswith("periodic:") for n in ref.meta["gait_notes"])


@needs_data
def test_cli_inspect_shows_gait(capsys):
    from msdiversity.cli import main

    rc = main(["motion", "inspect", str(DATA / "gait2354_subject01_walk1_ik.mot"), "--model", "myolegs",
               "--grf", str(DATA / "gait2354_subject01_walk1_grf.mot")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Gait events" in out and "heel strikes" in out
    assert "gait: treadmill trial" in out and "converted to overground" in out
    assert "gait: periodic: half stride" in out
