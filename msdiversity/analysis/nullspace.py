"""Model-based diversity: how much of the member-to-member activation difference is redundancy.

At each frame the muscles map activations to joint torques, tau = A(q, q̇) a + b(q, q̇), with
A = Rᵀ diag(g) (moment arms R times MuJoCo's force-length-velocity gain g, the map static
optimisation uses; built by `msdiversity.analysis.baselines.muscle_problem`). A difference
Δa = a_i − a_j between two members splits uniquely into
- a null-space part N Δa (N = I − V_r V_rᵀ, V_r the right singular vectors of A with singular value
  above `rtol` × the largest): it changes no joint torque, so it is invisible to the motion;
- a range part V_r V_rᵀ Δa: it changes the torques, so it must show up as different movement (or
  be compensated by passive / contact forces the map does not contain).

Null-space fraction = Σ_{pairs, frames} |N Δa|² / Σ |Δa|² (activation units², Euclidean), pooled
over member pairs a < b and the frames nearest the phase samples. It is in [0, 1]; 1 = the members
differ only in ways the torques cannot see (pure redundancy), 0 = every difference changes the
torques. It does not depend on trial-to-trial noise or its smoothness. For reference,
`div_null_fraction_chance` = mean over frames of (muscles − rank A) / muscles is what isotropic random
differences would give. 95 % CI: percentile bootstrap resampling members and frames together.
"""

from __future__ import annotations

import numpy as np
import xarray as xr



def projectors(A: np.ndarray, rtol: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """Null-space projectors per frame and the rank of each map.

    Args:
        A: (F, D, NM) torque per unit activation (N m), D constrained dofs, NM muscles.
    Returns:
        N (F, NM, NM) orthogonal projector onto null(A_f); rank (F,) int.
    """
    A = np.asarray(A, float)
    F, _, NM = A.shape
    N = np.empty((F, NM, NM))
    rank = np.zeros(F, int)
    for f in range(F):
        _, s, Vt = np.linalg.svd(A[f], full_matrices=True)
        r = int(np.sum(s > rtol * s.max())) if s.size and s.max() > 0 else 0
        Vr = Vt[:r]
        N[f] = np.eye(NM) - Vr.T @ Vr
        rank[f] = r
    return N, rank


def pair_energies(act: np.ndarray, N: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared norms of pairwise activation differences and of their null-space parts.

    Args:
        act: (M, F, NM) activations of the members at the frames.
        N: (F, NM, NM) null-space projectors.
    Returns:
        e_null (M, M, F), e_tot (M, M, F); NaN where either member has a non-finite activation.
    """
    act = np.asarray(act, float)
    ok = np.isfinite(act).all(-1)  # (M, F)
    a = np.where(ok[..., None], act, 0.0)
    na = np.einsum("fij,mfj->mfi", N, a)  # null-space part of each member (linear, so of differences too)

    def sqdist(X):
        sq = np.sum(X ** 2, -1)  # (M, F)
        return np.maximum(sq[:, None] + sq[None] - 2 * np.einsum("afi,bfi->abf", X, X), 0.0)

    e_null, e_tot = sqdist(na), sqdist(a)
    bad = ~(ok[:, None] & ok[None])
    e_null[bad] = np.nan
    e_tot[bad] = np.nan
    return e_null, e_tot


def null_fraction(e_null: np.ndarray, e_tot: np.ndarray, wm: np.ndarray | None = None,
                  wf: np.ndarray | None = None) -> float:
    """Σ w_a w_b w_f e_null / Σ w_a w_b w_f e_tot over a != b (weights: bootstrap counts; None = 1)."""
    M, _, F = e_tot.shape
    wm = np.ones(M) if wm is None else np.asarray(wm, float)
    wf = np.ones(F) if wf is None else np.asarray(wf, float)
    w = (wm[:, None] * wm[None] * (1 - np.eye(M)))[..., None] * wf[None, None]
    ok = np.isfinite(e_tot) & np.isfinite(e_null)
    den = np.sum(np.where(ok, w * e_tot, 0.0))
    return float(np.sum(np.where(ok, w * e_null, 0.0)) / den) if den > 0 else float("nan")


def null_fraction_ci(seed, e_null: np.ndarray, e_tot: np.ndarray, n_boot: int = 1000) -> np.ndarray:
    """[estimate, ci_low, ci_high]: percentile bootstrap resampling members and frames together."""
    rng = np.random.default_rng(seed)
    M, _, F = e_tot.shape
    est = null_fraction(e_null, e_tot)
    boots = []
    for _ in range(n_boot):
        wm = np.bincount(rng.integers(0, M, M), minlength=M)
        wf = np.bincount(rng.integers(0, F, F), minlength=F)
        boots.append(null_fraction(e_null, e_tot, wm, wf))
    b = np.asarray(boots)
    b = b[np.isfinite(b)]
    lo, hi = (np.quantile(b, 0.025), np.quantile(b, 0.975)) if b.size else (np.nan, np.nan)
    return np.array([est, lo, hi])


def frame_problem(rec: xr.Dataset, prep, cutoff_hz: float):
    """(FrameProblem over all frames, frame index per phase sample) from the recording's model and
    reference state. Raises InputError when the model or the reference qpos is missing."""
    from msdiversity.analysis.baselines import muscle_problem, recording_state

    model, order, qpos, qvel, qacc, frames = recording_state(rec, prep, cutoff_hz, "the muscle torque map")
    prob = muscle_problem(model, qpos, qvel, qacc, order)
    return prob, frames


def nullspace(seed, rec: xr.Dataset, prep, cutoff_hz: float = 0.0, n_boot: int = 1000) -> xr.Dataset:
    """The `div_null_*` variables: null-space fraction of trial-0 member differences (needs the model)."""
    prob, frames = frame_problem(rec, prep, cutoff_hz)
    N, rank = projectors(prob.A[frames])
    act = prep.act_t[:, 0][:, frames]  # (M, F, NM) trial 0 at the exact frames (not interpolated)
    e_null, e_tot = pair_energies(act, N)
    frac = null_fraction_ci(seed, e_null, e_tot, n_boot)
    M, NM = act.shape[0], act.shape[2]
    off = ~np.eye(M, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_phase = np.nansum(e_null[off], 0) / np.nansum(e_tot[off], 0)
        per_pair = np.nansum(e_null, -1) / np.nansum(e_tot, -1)
    per_pair[~off] = np.nan
    out = xr.Dataset(coords={"boot": ["estimate", "ci_low", "ci_high"], "phase": prep.phase,
                             "member": rec["member"].values, "member_b": rec["member"].values})
    out["div_null_fraction"] = ("boot", frac, {
        "units": "1", "long_name": "fraction of member-to-member activation difference in the null space of the "
                                   "activation-to-torque map (invisible to the motion)",
        "ci": "percentile bootstrap over members and frames"})
    out["div_null_fraction_phase"] = ("phase", per_phase, {"units": "1", "long_name": "null-space fraction per phase"})
    out["div_null_fraction_pair"] = (("member", "member_b"), per_pair,
                                     {"units": "1", "long_name": "null-space fraction per member pair"})
    out["div_null_fraction_chance"] = ((), float(np.mean((NM - rank) / NM)), {
        "units": "1", "long_name": "null-space fraction of isotropic random differences: mean (muscles - rank) / muscles"})
    out["div_null_rank"] = ("phase", rank, {"units": "1", "long_name": "rank of the activation-to-torque map"})
    return out
