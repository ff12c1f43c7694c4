"""Diversity: how different the members' muscle solutions are, relative to how different their
movements are.

All patterns are time-normalised to 101 phase samples and flattened over (phase, channel); NaN
(dead frames) are skipped pairwise. Channels: activations (unitless, 0..1), tracked joint angles
(deg; slide joints in cm), GRF (% body weight).

Definitions
-----------
- Pairwise distance between members a, b (trial 0): RMSE(X_a, X_b) over the features both have, and
  1 - Pearson r of the flattened patterns.
- Within-member (trial-to-trial) variability w_m: mean over pairs of trials (i < j, all K+1 trials)
  of RMSE(X_m,i, X_m,j). Normalised distance: D_ab / sqrt((w_a² + w_b²) / 2).
  When the recording has one trial (normalisation "signal") w is replaced, for every member, by
  the temporal SD of the ensemble-mean pattern pooled over channels.
- Normalised dispersion of modality X: nu_X = mean_{a<b} D_ab / mean_m w_m (0 for identical
  members; ~1 when members differ as much as repeated trials of one member).
- Internal diversity D_int = nu_act; external D_ext = mean(nu_kin, nu_grf) (nu_kin alone without
  GRF). Index = D_int / (D_int + D_ext), in [0, 1]: 0 = identical muscle solutions, 0.5 = muscles
  as diverse as movement, 1 = members differ only in muscles. Percentile bootstrap CIs resample
  members (pairs of the same resampled member are dropped).
- Per-member: r_X,m = RMSE(X_m, mean_{j != m} X_j) / w_m (distance to the leave-one-out mean in
  units of the member's own noise floor); used by the permutation tests (members are the
  independent units).
- Muscle CV (Winter 1984): sqrt(mean_t sigma_t²) / mean_t |mu_t|, sigma_t and mu_t the SD and mean
  across members at phase t.
- Effective dimensionality: participation ratio (sum lambda)² / sum lambda² of the eigenvalues of
  the member-by-member covariance of the trial-0 patterns (1 = all members on a line).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from msdiversity.analysis.prep import Prepared


def _masked(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = np.isfinite(X).astype(float)
    return np.where(m > 0, X, 0.0), m


def pairwise_distances(X: np.ndarray, Y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """RMSE and 1 - Pearson r between rows of X (A, F) and Y (B, F) over jointly finite features.

    Uses only matrix products (sums over jointly valid features), so it is fast for many features.

    Returns:
        rmse (A, B), corr_dist (A, B); NaN where fewer than 2 features are shared.
    """
    Y = X if Y is None else Y
    Xz, Mx = _masked(np.asarray(X, float))
    Yz, My = _masked(np.asarray(Y, float))
    n = Mx @ My.T
    sa = Xz @ My.T
    sb = Mx @ Yz.T
    saa = (Xz ** 2) @ My.T
    sbb = Mx @ (Yz ** 2).T
    sab = Xz @ Yz.T
    with np.errstate(invalid="ignore", divide="ignore"):
        mse = np.maximum(saa + sbb - 2 * sab, 0.0) / n
        # The Gram form loses ~1e-16 relative precision: below that, the rows are equal.
        mse = np.where(mse * n <= 1e-13 * (saa + sbb), 0.0, mse)
        va = n * saa - sa ** 2
        vb = n * sbb - sb ** 2
        r = (n * sab - sa * sb) / np.sqrt(np.maximum(va, 0) * np.maximum(vb, 0))
    rmse = np.where(n >= 2, np.sqrt(mse), np.nan)
    cd = np.where((n >= 2) & (va > 0) & (vb > 0), 1.0 - np.clip(r, -1, 1), np.nan)
    return rmse, cd


def within_member(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean pairwise (RMSE, 1 - r) between the trials of each member. X: (M, K1, F) -> (M,), (M,)."""
    M, K1, _ = X.shape
    if K1 < 2:
        return np.full(M, np.nan), np.full(M, np.nan)
    iu = np.triu_indices(K1, 1)
    w_rmse = np.empty(M)
    w_cd = np.empty(M)
    for m in range(M):
        r, c = pairwise_distances(X[m])
        w_rmse[m] = np.nanmean(r[iu])
        w_cd[m] = np.nanmean(c[iu])
    return w_rmse, w_cd


def participation_ratio(X: np.ndarray) -> float:
    """(sum lambda)^2 / sum lambda^2 of the covariance of rows of X (M, F); NaN filled by column means."""
    X = np.asarray(X, float)
    col = np.nanmean(X, axis=0)
    X = np.where(np.isfinite(X), X, np.where(np.isfinite(col), col, 0.0)[None])
    Xc = X - X.mean(axis=0, keepdims=True)
    lam = np.clip(np.linalg.eigvalsh(Xc @ Xc.T), 0, None)
    s2 = np.sum(lam ** 2)
    return float(np.sum(lam) ** 2 / s2) if s2 > 0 else 0.0


def muscle_cv(act0: np.ndarray) -> np.ndarray:
    """Winter's CV across members per muscle. act0: (M, P, NM) -> (NM,)."""
    sd = np.nanstd(act0, axis=0, ddof=1)  # (P, NM)
    mu = np.nanmean(act0, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.nanmean(sd ** 2, axis=0)) / np.nanmean(np.abs(mu), axis=0)


def loo_distance(X0: np.ndarray) -> np.ndarray:
    """RMSE of each member's pattern to the mean of the others. X0: (M, F) -> (M,)."""
    M = X0.shape[0]
    Xz, Mk = _masked(X0)
    tot, cnt = Xz.sum(0), Mk.sum(0)
    out = np.empty(M)
    for m in range(M):
        with np.errstate(invalid="ignore", divide="ignore"):
            loo = (tot - Xz[m]) / (cnt - Mk[m])
        d = X0[m] - loo
        out[m] = np.sqrt(np.nanmean(d ** 2)) if np.isfinite(d).any() else np.nan
    return out


def signal_scale(X0: np.ndarray, P: int) -> float:
    """Temporal SD of the ensemble-mean pattern pooled over channels. X0: (M, P*C) -> scalar."""
    mean = np.nanmean(X0, axis=0).reshape(P, -1)  # (P, C)
    return float(np.sqrt(np.nanmean(np.nanvar(mean, axis=0)))) if np.isfinite(mean).any() else np.nan


@dataclasses.dataclass
class Modality:
    """Per-modality distance summaries (M members)."""

    name: str
    D: np.ndarray  # (M, M) RMSE between trial-0 patterns
    C: np.ndarray  # (M, M) 1 - r
    w: np.ndarray  # (M,) within-member RMSE (or signal scale)
    wc: np.ndarray  # (M,) within-member 1 - r (NaN under "signal")
    loo: np.ndarray  # (M,) normalised distance to leave-one-out mean
    pr: float  # participation ratio


def modality(name: str, X: np.ndarray, normalisation: str) -> Modality:
    """X: (M, K1, P, ...) pattern -> distance summaries."""
    M, K1, P = X.shape[:3]
    Xf = X.reshape(M, K1, -1)
    D, C = pairwise_distances(Xf[:, 0])
    if normalisation == "trial":
        w, wc = within_member(Xf)
    else:
        w = np.full(M, signal_scale(Xf[:, 0], P))
        wc = np.full(M, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        loo = loo_distance(Xf[:, 0]) / w
    return Modality(name, D, C, w, wc, loo, participation_ratio(Xf[:, 0]))


def nu(D: np.ndarray, w: np.ndarray, idx: np.ndarray | None = None) -> float:
    """Normalised dispersion mean_{a<b} D_ab / mean w over members idx (pairs of equal ids dropped)."""
    if idx is None:
        idx = np.arange(D.shape[0])
    Ds = D[np.ix_(idx, idx)]
    off = idx[:, None] != idx[None, :]
    if not off.any():
        return float("nan")
    num = np.nanmean(Ds[off])
    den = np.nanmean(w[idx])
    return float(num / den) if den > 0 else (0.0 if num == 0 else float("inf"))


def index_from(d_int: float, d_ext: float) -> float:
    s = d_int + d_ext
    return float(d_int / s) if s > 0 else float("nan")


def diversity_index(seed, act: Modality, ext: list[Modality], n_boot: int = 1000) -> dict[str, np.ndarray]:
    """D_int, D_ext and index with percentile-bootstrap 95 % CIs (arrays [estimate, lo, hi])."""
    rng = np.random.default_rng(seed)
    M = act.D.shape[0]

    def stats(idx):
        di = nu(act.D, act.w, idx)
        de = float(np.mean([nu(e.D, e.w, idx) for e in ext]))
        return di, de, index_from(di, de)

    est = stats(np.arange(M))
    boots = np.array([stats(rng.integers(0, M, M)) for _ in range(n_boot)])  # (boot, 3)
    out = {}
    for j, key in enumerate(("internal", "external", "index")):
        b = boots[:, j][np.isfinite(boots[:, j])]
        lo, hi = (np.quantile(b, 0.025), np.quantile(b, 0.975)) if b.size else (np.nan, np.nan)
        out[key] = np.array([est[j], lo, hi])
    return out


def diversity(seed, rec: xr.Dataset, prep: Prepared, n_boot: int = 1000) -> tuple[xr.Dataset, dict]:
    """The `div_` variables and the modalities (for the statistics)."""
    M, K1 = prep.act.shape[:2]
    normalisation = "trial" if K1 >= 2 else "signal"
    act = modality("act", prep.act, normalisation)
    kin = modality("kin", prep.kin, normalisation)
    mods = {"act": act, "kin": kin}
    if prep.grf is not None:
        mods["grf"] = modality("grf", prep.grf, normalisation)
    ext = [m for k, m in mods.items() if k != "act"]
    members = rec["member"].values
    out = xr.Dataset(coords={"member": members, "member_b": members, "phase": prep.phase,
                             "muscle": rec["muscle"].values, "boot": ["estimate", "ci_low", "ci_high"]})
    act0 = prep.act[:, 0]  # (M, P, NM)
    out["div_act_mean"] = (("phase", "muscle"), np.nanmean(act0, 0), {"units": "1", "long_name": "ensemble-mean activation"})
    out["div_act_sd"] = (("phase", "muscle"), np.nanstd(act0, 0, ddof=1), {"units": "1", "long_name": "SD across members"})

    def norm_pair(D, w):
        with np.errstate(invalid="ignore", divide="ignore"):
            return D / np.sqrt((w[:, None] ** 2 + w[None, :] ** 2) / 2)

    mm = ("member", "member_b")
    out["div_act_rmse"] = (mm, act.D, {"units": "1", "long_name": "activation RMSE between members"})
    out["div_act_corr_dist"] = (mm, act.C, {"units": "1", "long_name": "1 - r of activation patterns"})
    out["div_act_rmse_norm"] = (mm, norm_pair(act.D, act.w), {"units": "1", "long_name": "activation RMSE / trial-to-trial RMSE"})
    wc = act.wc if normalisation == "trial" else np.full(M, np.nan)
    out["div_act_corr_dist_norm"] = (mm, norm_pair(act.C, wc), {"units": "1", "long_name": "(1 - r) / trial-to-trial (1 - r)"})
    out["div_kin_rmse"] = (mm, kin.D, {"units": "deg", "long_name": "joint-angle RMSE between members"})
    out["div_kin_rmse_norm"] = (mm, norm_pair(kin.D, kin.w), {"units": "1", "long_name": "kinematic RMSE / trial-to-trial RMSE"})
    out["div_within_act_rmse"] = ("member", act.w, {"units": "1", "long_name": "within-member activation RMSE"})
    out["div_within_kin_rmse_deg"] = ("member", kin.w, {"units": "deg", "long_name": "within-member kinematic RMSE"})
    if "grf" in mods:
        g = mods["grf"]
        out["div_grf_rmse"] = (mm, g.D, {"units": "% body weight", "long_name": "GRF RMSE between members"})
        out["div_grf_rmse_norm"] = (mm, norm_pair(g.D, g.w), {"units": "1", "long_name": "GRF RMSE / trial-to-trial RMSE"})
        out["div_within_grf_rmse_pct_bw"] = ("member", g.w, {"units": "% body weight"})
        out["div_effective_dim_grf"] = ((), g.pr, {"units": "1", "long_name": "participation ratio, GRF"})
    out["div_muscle_cv"] = ("muscle", muscle_cv(act0), {"units": "1", "long_name": "CV across members (Winter)"})
    out["div_effective_dim_act"] = ((), act.pr, {"units": "1", "long_name": "participation ratio, activations"})
    out["div_effective_dim_kin"] = ((), kin.pr, {"units": "1", "long_name": "participation ratio, kinematics"})
    idx = diversity_index(seed, act, ext, n_boot=n_boot)
    out["div_internal"] = ("boot", idx["internal"], {"units": "1", "long_name": "internal (muscle) normalised dispersion"})
    out["div_external"] = ("boot", idx["external"], {"units": "1", "long_name": "external (kinematics+GRF) normalised dispersion"})
    out["div_index"] = ("boot", idx["index"], {"units": "1", "long_name": "D_int / (D_int + D_ext)"})
    out["div_member_internal"] = ("member", act.loo, {"units": "1", "long_name": "normalised activation distance to LOO mean"})
    ext_loo = np.mean([e.loo for e in ext], axis=0)
    out["div_member_external"] = ("member", ext_loo, {"units": "1", "long_name": "normalised external distance to LOO mean"})
    out.attrs["normalisation"] = normalisation
    return out, mods
