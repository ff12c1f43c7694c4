"""Model-based diversity (issue 12, deliverable 2): null-space fraction of member differences on
myoelbow_2dof (6 muscles, 2 dofs: a 4-dimensional null space at each frame)."""

import numpy as np
import pytest

from msdiversity.analysis import AnalysisConfig, analyze_recording
from msdiversity.analysis.nullspace import frame_problem, null_fraction, pair_energies, projectors
from msdiversity.analysis.prep import prepare
from msdiversity.analysis.synthetic import synthetic_recording


def test_projector_and_fraction_by_hand():
    A = np.array([[[1.0, 0.0, 0.0]]])  # one frame, one dof, 3 muscles: null space = span(e2, e3)
    N, rank = projectors(A)
    np.testing.assert_allclose(N[0], np.diag([0.0, 1.0, 1.0]), atol=1e-12)
    assert rank.tolist() == [1]
    act = np.array([[[0.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]])  # difference (1, 1, 0): half its energy in null
    e_null, e_tot = pair_energies(act, N)
    assert null_fraction(e_null, e_tot) == pytest.approx(0.5)


@pytest.fixture(scope="module")
def elbow():
    T = 60
    rec = synthetic_recording(1, n_members=6, n_trials=2, n_time=T, n_muscles=6, n_joints=2, k_true=2,
                              n_families=1, with_grf=False, dt=0.02)
    from msdiversity.models import load_model, summarize

    s = summarize(load_model("myoelbow_2dof"))
    rec = rec.assign_coords(muscle=list(s.muscle_names), joint=list(s.joint_names))
    t = rec["time"].values
    qref = np.stack([0.1 * np.sin(2 * np.pi * t / t[-1]), 0.3 + 1.2 * (1 - np.cos(np.pi * t / t[-1])) / 2], 1)
    rec["qpos_ref"] = (("time", "joint"), qref)
    rec["ref_qpos_full"] = (("time", "qpos_index"), qref)
    rng = np.random.default_rng(0)
    rec["qpos"][:] = qref[None, None] + np.deg2rad(0.5) * rng.standard_normal(rec["qpos"].shape)
    rec.attrs["model"] = "myoelbow_2dof"
    prob, _ = frame_problem(rec, prepare(rec), cutoff_hz=AnalysisConfig().id_lowpass_hz)
    return rec, prob


def _planted(rec, prob, space: str, seed: int = 0):
    """Members = 0.4 + smooth member-specific combinations of the null (or range) basis of each frame's
    activation-to-torque map, plus 0.002 white noise per trial."""
    rng = np.random.default_rng(seed)
    M, K1, T, NM = rec["activation"].shape
    t = np.linspace(0, 1, T)
    act = np.full((M, K1, T, NM), 0.4)
    phases = rng.uniform(0, 2 * np.pi, (M, 1, NM))  # member-specific, fixed over time: smooth differences
    for f in range(T):
        _, s, Vt = np.linalg.svd(prob.A[f], full_matrices=True)
        r = int(np.sum(s > 1e-8 * s.max()))
        basis = Vt[r:] if space == "null" else Vt[:r]  # (dims, NM) orthonormal rows
        coef = 0.1 * np.sin(2 * np.pi * t[f] + phases[..., :len(basis)])  # (M, 1, dims)
        act[:, :, f] += coef @ basis
    act += 0.002 * np.random.default_rng(seed + 1).standard_normal(act.shape)
    out = rec.copy(deep=True)
    out["activation"] = (rec["activation"].dims, act)
    return out


def test_null_only_and_range_only_ensembles(elbow):
    rec, prob = elbow
    cfg = AnalysisConfig(baselines=False, umap=False, n_null=5, n_perm=200, n_boot=200, n_family_null=19)
    null = analyze_recording(_planted(rec, prob, "null"), cfg)
    rng_ = analyze_recording(_planted(rec, prob, "range"), cfg)
    fn, fr = null["div_null_fraction"].values, rng_["div_null_fraction"].values
    print("null-only:", fn, "range-only:", fr, "chance:", float(null["div_null_fraction_chance"]))
    assert null.attrs["has_nullspace"] == 1 and null["div_null_fraction"].dims == ("boot",)
    assert fn[0] >= 0.95 and fn[1] >= 0.9 and fn[1] <= fn[0] <= fn[2]
    assert fr[0] <= 0.05 and fr[2] <= 0.1
    assert float(null["div_null_fraction_chance"]) == pytest.approx(4 / 6)
    assert np.all(null["div_null_rank"].values == 2)
