"""Diversity: how different the members' muscle solutions are, relative to how different their
movements are.

All patterns are time-normalised to 101 phase samples and flattened over (phase, channel); NaN
(dead frames) are skipped pairwise. Channels: activations (unitless, 0..1), tracked joint angles
(deg; slide joints in cm), GRF (% body weight).

Definitions
-----------
- Pairwise distance between members a, b (trial 0): RMSE(X_a, X_b) over the features both have, and
  1 - Pearson r of the flattened patterns (NaN, not 0, when a pattern is constant).
- Within-member (trial-to-trial) variability w_m: mean over pairs of trials (i < j, all K+1 trials)
  of RMSE(X_m,i, X_m,j). `div_*_rmse_norm` = D_ab / sqrt((w_a² + w_b²) / 2).
- Modalities, each in one unit: activations (1), hinge angles (deg), slide joints (cm, "trans"),
  GRF (% body weight).
- Band-matched dispersion (the index): a plain ratio of RMSEs depends on how smooth the noise is -
  the body low-pass filters excitation noise, so kinematic trial-to-trial RMSE is small relative
  to between-member differences, and a system whose activations fully determine movement scored
  0.24-0.31 instead of 0.5. Instead, every pattern is transformed along phase by an orthonormal
  DCT-II; per bin f, P_between(f) = mean over pairs a != b of the difference power (summed over
  channels) and P_noise(f) = mean over members of the trial-to-trial difference power. Then
  nu_X = sqrt(median over the band of P_between(f) / P_noise(f)), the band being the lowest bins
  holding 95 % of the activation between-member power (one band for every modality). A linear
  time-invariant filter scales both powers alike in each bin, so nu does not change with it, nor
  with the noise amplitude (planted linear system: 0.46-0.51 for no, first-order alpha = 0.8 and
  0.95 low-pass; the RMSE ratio `div_index_rmse` read 0.28-0.31). It is still a statistical, not a
  physical, measure: the model-based null-space fraction (`msdiversity.analysis.nullspace`) says how
  much of the difference is redundancy.
- Internal diversity D_int = nu_act; external D_ext = mean over the movement modalities. Index =
  D_int / (D_int + D_ext), in [0, 1]: 0 = identical muscle solutions, 0.5 = muscles as diverse as
  movement (relative to their own noise), 1 = members differ only in muscles. Percentile bootstrap
  CIs resample members (pairs of the same resampled member are dropped).
- Refusal: with a single trial per member, or zero trial-to-trial variability in a modality, there
  is no noise floor; the index, D_int, D_ext, the normalised distances and the tests are NaN /
  not computed, attr `normalisation` = "none" and attr `refused` says why. (Dividing each
  quantity by its own amplitude instead made a pure-noise ensemble read 0.86, p = 0.004.)
- Per-member: r_X,m = band-matched ratio of the DCT power of X_m - mean_{j != m} X_j to the pooled
  noise power (median over band bins); used by the permutation tests (members are the independent
  units).
- Muscle CV (Winter 1984): sqrt(mean_t sigma_t²) / mean_t |mu_t|, sigma_t and mu_t the SD and mean
  across members at phase t.
- Effective dimensionality: participation ratio (sum lambda)² / sum lambda² of the eigenvalues of
  the member-by-member covariance of the trial-0 patterns (1 = all members on a line).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import xarray as xr

from msdiversity.analysis.prep import Prepared

NOISE_FLOOR_REL = 1e-12  # noise power below this fraction of the signal's counts as none


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
    # a constant pattern has no correlation (NaN); round-off leaves its variance at ~1e-16 of saa
    va_ok = va > 1e-10 * n * saa
    vb_ok = vb > 1e-10 * n * sbb
    cd = np.where((n >= 2) & va_ok & vb_ok, 1.0 - np.clip(r, -1, 1), np.nan)
    return rmse, cd


def within_member(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean pairwise (RMSE, 1 - r) between the trials of each member. X: (M, K1, F) -> (M,), (M,)."""
    M, K1, _ = X.shape
    if K1 < 2:
        return np.full(M, np.nan), np.full(M, np.nan)
    iu = np.triu_indices(K1, 1)
    w_rmse = np.empty(M)
    w_cd = np.empty(M)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: a member without complete trials
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


def dct_phase(X: np.ndarray) -> np.ndarray:
    """Orthonormal DCT-II along the phase axis (-2) of X (..., P, C): energy-preserving, and suited to
    non-periodic segments (no wrap-around jump, unlike the FFT)."""
    from scipy.fft import dct

    return dct(np.asarray(X, float), type=2, norm="ortho", axis=-2)


def pair_spectra(F0: np.ndarray) -> np.ndarray:
    """Power of each pair's difference per DCT bin, summed over channels. F0 (M, P, C) -> (M, M, P);
    NaN for pairs involving a member with any non-finite sample (dead frames)."""
    ok = np.isfinite(F0).all(axis=(1, 2))
    F = np.where(ok[:, None, None], F0, 0.0)
    sq = np.sum(F ** 2, axis=-1)  # (M, P)
    both = sq[:, None] + sq[None]
    out = np.maximum(both - 2 * np.einsum("apc,bpc->abp", F, F), 0.0)
    out[out <= 1e-13 * both] = 0.0  # Gram-form round-off: below this the rows are equal
    out[~ok] = np.nan
    out[:, ~ok] = np.nan
    return out


def noise_spectra(F: np.ndarray) -> np.ndarray:
    """Mean over pairs of trials (i < j) of the DCT power of their difference, summed over channels.
    F (M, K1, P, C) -> (M, P); NaN for members without a pair of complete trials."""
    M, K1, P = F.shape[:3]
    out = np.full((M, P), np.nan)
    for m in range(M):
        ok = np.flatnonzero(np.isfinite(F[m]).all(axis=(1, 2)))
        if ok.size < 2:
            continue
        i, j = np.triu_indices(ok.size, 1)
        out[m] = np.mean(np.sum((F[m, ok[i]] - F[m, ok[j]]) ** 2, axis=-1), axis=0)
    return out


def band_bins(pair_spec: np.ndarray, frac: float = 0.95) -> np.ndarray:
    """(P,) bool: the lowest DCT bins that hold `frac` of the mean between-member difference power."""
    P = pair_spec.shape[-1]
    M = pair_spec.shape[0]
    off = ~np.eye(M, dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pw = np.nanmean(pair_spec[off], axis=0) if off.any() else np.full(P, np.nan)
    tot = np.nansum(pw)
    if not np.isfinite(tot) or tot <= 0:
        return np.ones(P, bool)
    nb = int(np.searchsorted(np.cumsum(np.nan_to_num(pw)) / tot, frac) + 1)
    return np.arange(P) < max(2, min(nb, P))


def spectral_ratio(num: np.ndarray, den: np.ndarray) -> float:
    """sqrt(median over bins of num / den) over the bins where den > 0 (num, den (B,) powers).

    A linear time-invariant filter (e.g. the body's low-pass from activation to movement) scales
    signal and noise equally in each bin, so this ratio does not depend on how smooth the noise is.
    The median, not the mean: on a finite segment a strong low-pass leaks low-frequency noise into
    the high bins, and a few such bins would otherwise bias the ratio (planted first-order low-pass,
    alpha = 0.95: mean 0.59-0.61, median 0.45-0.48 against the true 0.5)."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    ok = np.isfinite(num) & np.isfinite(den) & (den > NOISE_FLOOR_REL * np.nanmax(np.abs(den), initial=0.0))
    if not ok.any():
        return float("nan")
    return float(np.sqrt(np.median(num[ok] / den[ok])))


@dataclasses.dataclass
class Modality:
    """Per-modality distance summaries (M members, P phase samples)."""

    name: str
    units: str
    D: np.ndarray  # (M, M) RMSE between trial-0 patterns
    C: np.ndarray  # (M, M) 1 - r
    w: np.ndarray  # (M,) within-member RMSE (NaN without trials)
    wc: np.ndarray  # (M,) within-member 1 - r
    pair_spec: np.ndarray  # (M, M, P) DCT power of trial-0 differences, summed over channels
    noise_spec: np.ndarray  # (M, P) DCT power of trial-to-trial differences (NaN without trials)
    loo_spec: np.ndarray  # (M, P) DCT power of the difference to the leave-one-out mean
    pr: float  # participation ratio
    loo: np.ndarray = None  # (M,) spectral ratio to the pooled noise (set by `diversity`)


def modality(name: str, X: np.ndarray, units: str = "1") -> Modality:
    """X: (M, K1, P, C) pattern -> distance summaries."""
    M, K1, P = X.shape[:3]
    X = X.reshape(M, K1, P, -1)
    Xf = X.reshape(M, K1, -1)
    D, C = pairwise_distances(Xf[:, 0])
    w, wc = within_member(Xf)
    F = dct_phase(X)
    F0 = F[:, 0]
    tot, cnt = np.nansum(F0, axis=0), np.isfinite(F0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        loo_mean = (tot[None] - np.nan_to_num(F0)) / (cnt[None] - np.isfinite(F0))
    ok = np.isfinite(F0).all(axis=(1, 2))
    loo_spec = np.sum((F0 - loo_mean) ** 2, axis=-1)
    loo_spec[~ok] = np.nan
    return Modality(name, units, D, C, w, wc, pair_spectra(F0), noise_spectra(F), loo_spec,
                    participation_ratio(Xf[:, 0]))


def nu(D: np.ndarray, w: np.ndarray, idx: np.ndarray | None = None) -> float:
    """RMSE dispersion mean_{a<b} D_ab / mean w over members idx (pairs of equal ids dropped).
    Depends on how smooth the noise is (see the module docstring); kept as `div_index_rmse`."""
    if idx is None:
        idx = np.arange(D.shape[0])
    Ds = D[np.ix_(idx, idx)]
    off = idx[:, None] != idx[None, :]
    if not off.any():
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        num = np.nanmean(Ds[off])
        den = np.nanmean(w[idx])
    return float(num / den) if den > 0 else float("nan")


def nu_spectral(mod: Modality, band: np.ndarray, idx: np.ndarray | None = None) -> float:
    """Band-matched dispersion: sqrt(median over bins of mean_{a != b} P_ab(f) / mean_m P_noise,m(f))."""
    if idx is None:
        idx = np.arange(mod.pair_spec.shape[0])
    off = idx[:, None] != idx[None, :]
    if not off.any():
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pb = np.nanmean(mod.pair_spec[np.ix_(idx, idx)][off][:, band], axis=0)
        pw = np.nanmean(mod.noise_spec[idx][:, band], axis=0)
    return spectral_ratio(pb, pw)


def pair_band_ratio(mod: Modality, band: np.ndarray) -> np.ndarray:
    """(M, M) band-matched distance of each pair in noise floors: sqrt(median over band bins of
    P_ab(f) / mean_m P_noise,m(f)); the pairwise counterpart of `nu_spectral`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pw = np.nanmean(mod.noise_spec[:, band], axis=0)  # (B,)
        ok = np.isfinite(pw) & (pw > NOISE_FLOOR_REL * np.nanmax(np.abs(pw), initial=0.0))
        if not ok.any():
            return np.full(mod.pair_spec.shape[:2], np.nan)
        return np.sqrt(np.nanmedian(mod.pair_spec[:, :, band][..., ok] / pw[ok], axis=-1))


def index_from(d_int: float, d_ext: float) -> float:
    s = d_int + d_ext
    return float(d_int / s) if s > 0 else float("nan")


def refusal(mods: dict[str, Modality]) -> str:
    """Why the noise-normalised measures cannot be computed ("" when they can)."""
    K1_ok = [np.isfinite(m.noise_spec).any() for m in mods.values()]
    if not all(K1_ok):
        return ("each member has a single complete trial, so there is no trial-to-trial variability to "
                "measure distances against (record with trials >= 1)")
    zero = [m.name for m in mods.values()
            if not np.nansum(m.noise_spec) > NOISE_FLOOR_REL * max(np.nansum(m.pair_spec), 1e-300)]
    if zero:
        return ("trial-to-trial variability is zero in " + ", ".join(zero) + " (deterministic repeats), so "
                "distances in units of it are undefined")
    return ""


def diversity_index(seed, act: Modality, ext: list[Modality], band: np.ndarray,
                    n_boot: int = 1000) -> dict[str, np.ndarray]:
    """D_int, D_ext, index (band-matched) and the RMSE index, each [estimate, lo, hi] (95 % CI)."""
    rng = np.random.default_rng(seed)
    M = act.D.shape[0]

    def stats(idx):
        di = nu_spectral(act, band, idx)
        de = float(np.mean([nu_spectral(e, band, idx) for e in ext]))
        ri = index_from(nu(act.D, act.w, idx), float(np.mean([nu(e.D, e.w, idx) for e in ext])))
        return di, de, index_from(di, de), ri

    est = stats(np.arange(M))
    boots = np.array([stats(rng.integers(0, M, M)) for _ in range(n_boot)])  # (boot, 4)
    out = {}
    for j, key in enumerate(("internal", "external", "index", "index_rmse")):
        b = boots[:, j][np.isfinite(boots[:, j])]
        lo, hi = (np.quantile(b, 0.025), np.quantile(b, 0.975)) if b.size else (np.nan, np.nan)
        out[key] = np.array([est[j], lo, hi])
    return out


def external_modalities(prep: Prepared) -> dict[str, Modality]:
    """Movement modalities, each in one unit: hinge angles (deg), slide joints (cm), GRF (% BW)."""
    out = {}
    rot = np.asarray(prep.kin_rot, bool)
    if rot.any():
        out["kin"] = modality("kin", prep.kin[..., rot], "deg")
    if (~rot).any():
        out["trans"] = modality("trans", prep.kin[..., ~rot], "cm")
    if prep.grf is not None:
        out["grf"] = modality("grf", prep.grf, "% body weight")
    return out


def diversity(seed, rec: xr.Dataset, prep: Prepared, n_boot: int = 1000) -> tuple[xr.Dataset, dict]:
    """The `div_` variables and the modalities (for the statistics).

    Attr `normalisation` is "trial" (distances in units of trial-to-trial variability) or "none"
    (refused: attr `refused` says why; the index, D_int, D_ext and the per-member ratios are NaN)."""
    M, K1 = prep.act.shape[:2]
    act = modality("act", prep.act)
    mods = {"act": act, **external_modalities(prep)}
    ext = [m for k, m in mods.items() if k != "act"]
    refused = refusal(mods)
    band = band_bins(act.pair_spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for m in mods.values():
            pooled = np.nanmean(m.noise_spec[:, band], axis=0)
            m.loo = np.array([spectral_ratio(m.loo_spec[i, band], pooled) for i in range(M)])
            if refused:
                m.loo[:] = np.nan
    members = rec["member"].values
    out = xr.Dataset(coords={"member": members, "member_b": members, "phase": prep.phase,
                             "muscle": rec["muscle"].values, "boot": ["estimate", "ci_low", "ci_high"]})
    act0 = prep.act[:, 0]  # (M, P, NM)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out["div_act_mean"] = (("phase", "muscle"), np.nanmean(act0, 0), {"units": "1", "long_name": "ensemble-mean activation"})
        out["div_act_sd"] = (("phase", "muscle"), np.nanstd(act0, 0, ddof=1), {"units": "1", "long_name": "SD across members"})

    def norm_pair(D, w):
        with np.errstate(invalid="ignore", divide="ignore"):
            r = D / np.sqrt((w[:, None] ** 2 + w[None, :] ** 2) / 2)
        return np.full_like(r, np.nan) if refused else r

    mm = ("member", "member_b")
    out["div_act_rmse"] = (mm, act.D, {"units": "1", "long_name": "activation RMSE between members"})
    out["div_act_corr_dist"] = (mm, act.C, {"units": "1", "long_name": "1 - r of activation patterns"})
    out["div_act_rmse_norm"] = (mm, norm_pair(act.D, act.w), {"units": "1", "long_name": "activation RMSE / trial-to-trial RMSE"})
    out["div_act_corr_dist_norm"] = (mm, norm_pair(act.C, act.wc), {"units": "1", "long_name": "(1 - r) / trial-to-trial (1 - r)"})

    def band_pair(m):
        return np.full((M, M), np.nan) if refused else pair_band_ratio(m, band)

    out["div_act_band_norm"] = (mm, band_pair(act), {"units": "1", "long_name": "band-matched activation distance, noise floors"})
    out["div_within_act_rmse"] = ("member", act.w, {"units": "1", "long_name": "within-member activation RMSE"})
    names = {"kin": ("kin", "joint-angle", "deg", "div_within_kin_rmse_deg"),
             "trans": ("trans", "slide-joint", "cm", "div_within_trans_rmse_cm"),
             "grf": ("grf", "GRF", "% body weight", "div_within_grf_rmse_pct_bw")}
    for key, (tag, what, units, within) in names.items():
        if key not in mods:
            continue
        g = mods[key]
        out[f"div_{tag}_rmse"] = (mm, g.D, {"units": units, "long_name": f"{what} RMSE between members"})
        out[f"div_{tag}_rmse_norm"] = (mm, norm_pair(g.D, g.w), {"units": "1", "long_name": f"{what} RMSE / trial-to-trial RMSE"})
        out[f"div_{tag}_band_norm"] = (mm, band_pair(g), {"units": "1", "long_name": f"band-matched {what} distance, noise floors"})
        out[within] = ("member", g.w, {"units": units, "long_name": f"within-member {what} RMSE"})
        out[f"div_effective_dim_{tag}"] = ((), g.pr, {"units": "1", "long_name": f"participation ratio, {what}"})
    out["div_muscle_cv"] = ("muscle", muscle_cv(act0), {"units": "1", "long_name": "CV across members (Winter)"})
    out["div_effective_dim_act"] = ((), act.pr, {"units": "1", "long_name": "participation ratio, activations"})
    nan3 = np.full(3, np.nan)
    idx = ({k: nan3 for k in ("internal", "external", "index", "index_rmse")} if refused
           else diversity_index(seed, act, ext, band, n_boot=n_boot))
    ext_names = "+".join(m.name for m in ext)
    out["div_internal"] = ("boot", idx["internal"], {"units": "1", "long_name": "internal (muscle) band-matched dispersion"})
    out["div_external"] = ("boot", idx["external"], {"units": "1", "long_name": f"external ({ext_names}) band-matched dispersion"})
    out["div_index"] = ("boot", idx["index"], {"units": "1", "long_name": "D_int / (D_int + D_ext), band-matched"})
    out["div_index_rmse"] = ("boot", idx["index_rmse"], {
        "units": "1", "long_name": "RMSE-ratio index (not corrected for noise smoothness; do not read 0.5 as "
                                  "'as diverse as movement')"})
    out["div_band_bins"] = ((), int(band.sum()), {"units": "1", "long_name": "DCT bins in the matched band"})
    out["div_member_internal"] = ("member", act.loo, {"units": "1", "long_name": "band-matched activation distance to LOO mean / noise"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ext_loo = np.mean([e.loo for e in ext], axis=0)
    out["div_member_external"] = ("member", ext_loo, {"units": "1", "long_name": "band-matched external distance to LOO mean / noise"})
    out.attrs["normalisation"] = "none" if refused else "trial"
    out.attrs["refused"] = refused
    return out, mods
