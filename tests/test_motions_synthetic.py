"""Synthetic ground-truth motions: determinism, plausibility, recorded truth, GRF."""

from __future__ import annotations

import warnings

import mujoco
import numpy as np
import pytest

from msdiversity.cli import main
from msdiversity.models import load_model
from msdiversity.motions import MotionWarning, ReferenceMotion, map_to_model, synthesize
from msdiversity.motions.synthetic import make_excitation


@pytest.fixture(scope="module")
def elbow():
    return load_model("myoelbow_2dof")


def test_same_seed_identical_different_seed_differs(elbow):
    a, b, c = synthesize(7, elbow), synthesize(7, elbow), synthesize(8, elbow)
    np.testing.assert_array_equal(a.coords, b.coords)
    np.testing.assert_array_equal(a.excitation, b.excitation)
    np.testing.assert_array_equal(a.activation, b.activation)
    assert np.abs(a.coords - c.coords).max() > 0.05
    assert np.abs(a.excitation - c.excitation).max() > 0.05


def test_elbow_motion_is_plausible(elbow):
    m = synthesize(0, elbow, duration=2.0, control_hz=50)
    assert m.n_frames == 101 and m.rate == pytest.approx(50.0)
    lo, hi = elbow.model.jnt_range.T
    assert np.all(m.coords >= lo[None] - 0.02) and np.all(m.coords <= hi[None] + 0.02)
    # Not pinned: the elbow travels > 30 deg and is off its limits most of the time.
    assert np.ptp(np.rad2deg(m.coords[:, 1])) > 30
    assert m.meta["free_fraction"] >= 0.8
    assert m.excitation.min() >= 0.0 and m.excitation.max() <= 0.6 + 1e-12


def test_recorded_truth_replays_in_mujoco(elbow):
    """Re-simulating the recorded excitations from the recorded start reproduces the trajectory."""
    m = synthesize(3, elbow, duration=0.5)
    model = elbow.model
    d = mujoco.MjData(model)
    d.qpos[:] = m.coords[0]
    d.act[:] = m.activation[0]
    n_sub = int(round(0.02 / model.opt.timestep))
    for k in range(m.n_frames - 1):
        d.ctrl[:] = np.clip(m.excitation[k], *model.actuator_ctrlrange.T)
        mujoco.mj_step(model, d, nstep=n_sub)
        np.testing.assert_allclose(d.qpos, m.coords[k + 1], atol=1e-10)
        np.testing.assert_allclose(d.act, m.activation[k + 1], atol=1e-10)


def test_planted_synergies_reconstruct_excitation(elbow):
    m = synthesize(1, elbow, duration=1.0, n_components=2)
    w = np.array(m.meta["synergy_weights"])  # (muscles, k)
    h = np.array(m.meta["synergy_patterns"])  # (k, T)
    assert w.shape == (6, 2) and h.shape == (2, m.n_frames)
    np.testing.assert_allclose(m.excitation, (w @ h).T, atol=1e-12)
    rng = np.random.default_rng(0)
    p = make_excitation(rng, np.linspace(0, 1, 51), 6, n_components=3)
    assert np.linalg.matrix_rank(p.excitation, tol=1e-9) == 3


def test_synthetic_round_trip_and_mapping(elbow, tmp_path):
    m = synthesize(2, elbow, duration=0.4)
    m.save(tmp_path / "s.nc")
    back = ReferenceMotion.load(tmp_path / "s.nc")
    np.testing.assert_array_equal(back.excitation, m.excitation)
    ref, rep = map_to_model(back, elbow)
    assert rep.unmatched_file == () and rep.unmatched_model == ()
    np.testing.assert_array_equal(ref.excitation, m.excitation)  # same actuator order
    assert ref.qpos == pytest.approx(m.coords)


def test_myolegs_welded_root_grf_supports_the_legs():
    """Root welded with the feet on the ground (root_lift=0): with relaxed muscles the feet carry
    part of the legs' weight, so the summed vertical GRF is positive and below the body weight."""
    lm = load_model("myolegs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MotionWarning)
        m = synthesize(0, lm, duration=0.1, control_hz=50, root_lift=0.0, max_attempts=1, max_excitation=0.05)
    assert m.meta["root"] == "welded" and m.grf is not None
    fz = m.grf.force[:, :, 2].sum(1)
    weight = lm.model.body_subtreemass[0] * 9.81
    assert np.all(fz[1:] > 1.0) and np.all(fz < weight)
    loaded = ~np.isnan(m.grf.cop[:, 0, 0])
    assert np.all(np.abs(m.grf.cop[loaded, 0, 2]) < 0.03)  # COP on the ground plane


def test_cli_synth_writes_file(tmp_path, capsys):
    out = tmp_path / "s.nc"
    assert main(["motion", "synth", "--model", "myoelbow_2dof", "-o", str(out), "--seed", "4", "--duration", "0.5"]) == 0
    assert "wrote" in capsys.readouterr().out
    m = ReferenceMotion.load(out)
    assert m.meta["seed"] == 4 and m.n_frames == 26
