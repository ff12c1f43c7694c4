"""Muscle synergies: NMF per member, VAF curve, matching across members, cross-reconstruction, and a
shared-vs-specific test against a shuffled null.

Model: A ≈ C W with A (samples, muscles) a member's activations (the trials passed in - the analysis
passes the deterministic trial 0 only - time-normalised, concatenated; activations are already on a common 0..1 scale, so muscles are not re-normalised),
W (k, muscles) synergy vectors of unit norm and C (samples, k) ≥ 0 coefficients. scikit-learn's
`NMF` (coordinate descent, NNDSVDa init) fits it; note sklearn names C `W` and W `components_`.

- Tonic activity: a constant level in a muscle is explained by any synergy that includes it and
  inflates the uncentred VAF, so fewer synergies seem to suffice (a true k = 3 read as 2 with a
  tonic level of 0.1). With `remove_tonic` (default) each member's per-muscle tonic level (5th
  percentile over its samples, `syn_tonic`) is subtracted (clipped at 0) before the factorisation.
- VAF(k) = 1 - ‖A - C W‖² / ‖A‖² (uncentred, the usual definition in the synergy literature);
  per-muscle VAF_i(k) = 1 - ‖A_i - (C W)_i‖² / ‖A_i‖².
- k chosen = smallest k with VAF ≥ threshold (default 0.90) *and* VAF_i ≥ `vaf_muscle_threshold`
  (default 0.75, Torres-Oviedo & Ting 2007) for every active muscle (RMS ≥ 5 % of the largest
  muscle's, so a silent muscle's noise does not set k); `syn_k_chosen_global` is the global-only
  criterion. Members without data (all NaN) get k = -1 and NaN elsewhere. Elbow = k of maximal
  distance between the VAF curve and the chord joining its ends (a check, reported alongside).
- Matching: cosine similarity matrix between two members' synergy vectors, optimal one-to-one
  assignment by `scipy.optimize.linear_sum_assignment`; similarity = mean matched cosine.
- Cross-reconstruction VAF(a -> b): member b's activations with member a's W fixed, C refit by
  non-negative least squares (batched coordinate descent, exact NNLS at convergence).
- Sharing test (`synergies_differ`): held-out cross-validation. Each member's synergies (k common)
  are fitted on half of its data (trials 0, 2, ...; with a single trial, the even phase samples)
  and used to reconstruct the other half of its own data (VAF_own) and of every other member's
  (VAF_cross, C refit by NNLS). d_m = VAF_own,m - mean_{a != m} VAF(W_a -> held-out m): the
  reconstruction lost by using another member's synergies. Under shared synergies d_m is about 0
  (both sets were fitted on independent data); a sign-flip test over members of d_m - 0.01
  (H1: members lose more than 1 % VAF with each other's synergies; a 2 % perturbation of the
  weights loses 0.05 %, two families 8 %) tests sharing, not merely structure. A muscle-shuffled null would reject any non-random synergy
  structure, even two families with different synergy sets; it is kept only to flag single
  matched synergies as more similar than chance (`syn_shared`: cosine above the null's 95th
  percentile of single matched cosines).
  With k = number of muscles any synergy set spans every activation, so the test is not computed.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from msdiversity.analysis.stats import TestResult


def nmf_fit(A: np.ndarray, k: int, seed: int = 0, max_iter: int = 400, tol: float = 1e-4):
    """Fit A (samples, muscles) ≈ C W. Returns W (k, muscles) unit rows, C (samples, k), VAF."""
    A = np.clip(np.nan_to_num(np.asarray(A, float)), 0.0, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = NMF(n_components=k, init="nndsvda", solver="cd", tol=tol, max_iter=max_iter, random_state=seed)
        # float32: ~2-4x faster coordinate descent; VAF agrees with float64 to 1e-4 (measured).
        C = model.fit_transform(A.astype(np.float32)).astype(float)
    W = model.components_.astype(float)
    norm = np.linalg.norm(W, axis=1)
    norm[norm == 0] = 1.0
    W = W / norm[:, None]
    C = C * norm[None]
    tot = np.sum(A ** 2)
    vaf = 1.0 - np.sum((A - C @ W) ** 2) / tot if tot > 0 else np.nan
    return W, C, float(vaf)


def choose_k(vaf: np.ndarray, threshold: float, vaf_muscle: np.ndarray | None = None,
             muscle_threshold: float = 0.0) -> int:
    """Smallest k (1-based) with VAF ≥ threshold and (when given) every per-muscle VAF ≥
    muscle_threshold (vaf_muscle (k, active muscles)); the largest k tried when none reaches it;
    -1 when the VAF curve is all NaN (no data)."""
    vaf = np.asarray(vaf, float)
    if not np.isfinite(vaf).any():
        return -1
    ok = vaf >= threshold
    if vaf_muscle is not None and vaf_muscle.size:
        ok &= np.all(np.nan_to_num(vaf_muscle, nan=1.0) >= muscle_threshold, axis=1)
    ok = np.flatnonzero(ok)
    return int(ok[0] + 1) if ok.size else len(vaf)


ACTIVE_MUSCLE_RMS = 0.05  # muscles below this fraction of the largest RMS do not set k


def tonic_level(A: np.ndarray, q: float = 5.0) -> np.ndarray:
    """Per-muscle tonic level: the q-th percentile over samples of A (n, muscles), NaN rows ignored."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        t = np.nanpercentile(A, q, axis=0)
    return np.where(np.isfinite(t), np.clip(t, 0.0, None), 0.0)


def cross_vaf(A: np.ndarray, Ws: np.ndarray) -> np.ndarray:
    """VAF of each member's data A (M_b, n, NM) with each member's synergies Ws (M_a, k, NM) fixed
    and C refit by NNLS -> (M_a, M_b)."""
    B = np.matmul(A[None], Ws.transpose(0, 2, 1)[:, None])  # (M_a, M_b, n, k) = A_b W_a^T
    G = np.matmul(Ws, Ws.transpose(0, 2, 1))[:, None]  # (M_a, 1, k, k)
    H = nnls_batched(B, G)
    tot = np.sum(A ** 2, axis=(1, 2))  # (M,)
    # ||A_b - H W_a||^2 = ||A_b||^2 - 2 <H, B> + <H G, H>
    resid = tot[None, :] - 2 * np.sum(H * B, axis=(2, 3)) + np.sum(np.matmul(H, G) * H, axis=(2, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - resid / tot[None, :]


SHARE_TOLERANCE_VAF = 0.01  # VAF a member may lose with another's synergies and still count as sharing


def sharing_test(seed, A: np.ndarray, K1: int, P: int, k: int, n_perm: int = 10000,
                 tolerance: float = SHARE_TOLERANCE_VAF):
    """Held-out cross-validation test of shared synergies (module docstring). A (M, K1*P, NM)."""
    from msdiversity.analysis.stats import sign_flip_test

    M = A.shape[0]
    rows = np.arange(K1 * P).reshape(K1, P)
    if K1 >= 2:
        fit, test, how = rows[0::2].ravel(), rows[1::2].ravel(), "trials 0, 2, ... vs 1, 3, ..."
    else:
        fit, test, how = rows[:, 0::2].ravel(), rows[:, 1::2].ravel(), "even vs odd phase samples of one trial"
    Wf = np.stack([nmf_fit(A[m, fit], k, seed=int(seed) + m)[0] for m in range(M)])
    cv = cross_vaf(A[:, test], Wf)  # (M_a, M_b)
    own = np.diag(cv)
    others = (cv.sum(0) - own) / max(M - 1, 1)
    d = own - others
    desc = ("sign-flip test over members of d_m - tol, d_m = held-out VAF with own synergies - mean held-out VAF "
            f"with other members' synergies ({how}), tol = {tolerance:g}; H1: synergies differ between members "
            f"by more than tol VAF (H0: shared within tol)")
    r = sign_flip_test(seed, d - tolerance, n_perm, "greater", "synergies_differ", desc, n_boot=1000)
    return dataclasses.replace(r, statistic=float(np.mean(d)),
                               statistic_name="mean VAF lost with another member's synergies"), d


def elbow_k(vaf: np.ndarray) -> int:
    """k (1-based) of the point of the VAF curve farthest from the chord between its end points."""
    v = np.asarray(vaf, float)
    n = len(v)
    if n < 3 or not np.all(np.isfinite(v)):
        return 1
    x = np.arange(n) / (n - 1)
    y = (v - v[0]) / (v[-1] - v[0]) if v[-1] != v[0] else np.zeros(n)
    return int(np.argmax(np.abs(y - x)) + 1)  # distance to the line y = x (up to a constant)


def nnls_batched(B: np.ndarray, G: np.ndarray, n_iter: int = 200, tol: float = 1e-7) -> np.ndarray:
    """Batched NNLS in Gram form: argmin_{h ≥ 0} h G h^T - 2 h·b for each row b of B.

    Args:
        B: (..., n, k) = A W^T (right-hand sides).
        G: (..., k, k) = W W^T, broadcastable against B's leading dims.
    Returns:
        H (..., n, k) ≥ 0 (coordinate descent / HALS, started from the clipped unconstrained solution).
    """
    k = G.shape[-1]
    Gi = np.linalg.pinv(G)
    H = np.clip(B @ Gi, 0.0, None)  # Gi symmetric
    diag = np.maximum(np.diagonal(G, axis1=-2, axis2=-1), 1e-12)  # (..., k)
    for _ in range(n_iter):
        change = 0.0
        for j in range(k):
            grad = B[..., j] - np.matmul(H, G[..., :, j, None])[..., 0]
            new = np.maximum(0.0, H[..., j] + grad / diag[..., None, j])
            change = max(change, float(np.max(np.abs(new - H[..., j])))) if new.size else 0.0
            H[..., j] = new
        if change < tol:
            break
    return H


def match(Wa: np.ndarray, Wb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Optimal matching of rows of Wb to rows of Wa (unit vectors). Returns (perm, cosines):
    Wb[perm[i]] matches Wa[i] with cosine cosines[i]."""
    cos = Wa @ Wb.T
    r, c = linear_sum_assignment(-cos)
    perm = np.empty(len(r), int)
    perm[r] = c
    return perm, cos[np.arange(len(r)), perm]


def mean_matched_cosines(Ws: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Ws (M, k, muscles) unit rows; pairs (P, 2) -> (P, k) matched cosines."""
    cos = np.einsum("pkf,pjf->pkj", Ws[pairs[:, 0]], Ws[pairs[:, 1]])  # (P, k, k)
    out = np.empty(cos.shape[:2])
    for i in range(cos.shape[0]):
        r, c = linear_sum_assignment(-cos[i])
        out[i] = cos[i][r, c]
    return out


def _reindex(ds: xr.Dataset, ids: np.ndarray, ids_all: np.ndarray) -> xr.Dataset:
    """Results computed on members `ids` onto `ids_all` (NaN, False, -1 for the others)."""
    fill = {v: (False if ds[v].dtype == bool else -1 if ds[v].dtype.kind in "iu" else np.nan) for v in ds.data_vars}
    return ds.reindex({d: ids_all for d in ("member", "member_b") if d in ds.dims}, fill_value=fill)


def synergies(seed, rec: xr.Dataset, act: np.ndarray, phase: np.ndarray, k_max: int = 8,
              vaf_threshold: float = 0.90, vaf_muscle_threshold: float = 0.75, remove_tonic: bool = True,
              n_null: int = 200, max_null_pairs: int = 300, n_perm: int = 10000,
              progress=None) -> tuple[xr.Dataset, TestResult]:
    """All synergy outputs. act: (M, K1, P, NM) time-normalised activations (NaN = dead frames)."""
    M, K1, P, NM = act.shape
    has_data = np.array([np.nansum(np.abs(act[m])) > 0 for m in range(M)])
    if not has_data.all():  # members without any data: compute on the others, report -1 / NaN for them
        keep = np.flatnonzero(has_data)
        if keep.size == 0:
            from msdiversity.errors import InputError

            raise InputError("no member has any finite, non-zero activation", field="activation")
        ds, test = synergies(seed, rec.isel(member=keep), act[keep], phase, k_max, vaf_threshold,
                             vaf_muscle_threshold, remove_tonic, n_null, max_null_pairs, n_perm, progress)
        return _reindex(ds, rec["member"].values[keep], rec["member"].values), test
    rng = np.random.default_rng(seed)
    k_max = int(max(1, min(k_max, NM, K1 * P)))
    A = act.reshape(M, K1 * P, NM)
    tonic = np.stack([tonic_level(A[m]) for m in range(M)]) if remove_tonic else np.zeros((M, NM))
    A = np.clip(np.nan_to_num(A - tonic[:, None]), 0, None)  # dead frames -> 0 rows (no effect)
    rms = np.sqrt(np.mean(A ** 2, axis=1))  # (M, NM)
    active = rms >= ACTIVE_MUSCLE_RMS * rms.max(axis=1, keepdims=True)
    vaf = np.full((M, k_max), np.nan)
    vaf_mus = np.full((M, k_max, NM), np.nan)
    fits: list[dict[int, tuple]] = []
    # Single-threaded BLAS: these matrices are small, and threading them was 4x slower here (measured).
    with threadpool_limits(limits=1, user_api="blas"):
        for m in range(M):
            fm = {}
            for k in range(1, k_max + 1):
                W, C, v = nmf_fit(A[m], k, seed=int(seed) + m)
                vaf[m, k - 1] = v
                with np.errstate(invalid="ignore", divide="ignore"):
                    vaf_mus[m, k - 1] = 1.0 - np.sum((A[m] - C @ W) ** 2, 0) / np.sum(A[m] ** 2, 0)
                fm[k] = (W, C)
            fits.append(fm)
            if progress is not None:
                progress(m + 1, M)
    k_chosen = np.array([choose_k(vaf[m], vaf_threshold, vaf_mus[m][:, active[m]], vaf_muscle_threshold)
                         for m in range(M)])
    k_global = np.array([choose_k(vaf[m], vaf_threshold) for m in range(M)])
    k_elbow = np.array([elbow_k(vaf[m]) for m in range(M)])
    kc = int(min(k_max, math.ceil(np.median(k_chosen))))
    Ws = np.stack([fits[m][kc][0] for m in range(M)])  # (M, k, NM)
    Cs = np.stack([fits[m][kc][1] for m in range(M)])  # (M, K1*P, k)

    # Pairwise matching (all pairs), medoid reference, alignment.
    iu = np.array(np.triu_indices(M, 1)).T  # (pairs, 2)
    cosm = np.eye(M)
    if len(iu):
        mc = mean_matched_cosines(Ws, iu).mean(1)
        cosm[iu[:, 0], iu[:, 1]] = mc
        cosm[iu[:, 1], iu[:, 0]] = mc
    ref = int(np.argmax((cosm.sum(1) - 1) / max(M - 1, 1)))
    W_al = np.empty_like(Ws)
    H_al = np.full((M, kc, P), np.nan)
    matched = np.empty((M, kc))
    alive0 = np.isfinite(act[:, 0]).all(-1)  # (M, P)
    for m in range(M):
        perm, c = match(Ws[ref], Ws[m])
        W_al[m] = Ws[m][perm]
        matched[m] = c
        H_al[m] = np.where(alive0[m][None], Cs[m][:P, perm].T, np.nan)

    # Cross-reconstruction VAF (a's W, b's data): batched NNLS.
    cross = cross_vaf(A, Ws)

    # Muscle-shuffled null: only to flag single matched synergies as more similar than chance.
    null_single = []
    for i in range(n_null):
        sh = np.take_along_axis(Ws, np.argsort(rng.random(Ws.shape), axis=-1), axis=-1)
        pairs = iu if len(iu) <= max_null_pairs else iu[rng.choice(len(iu), max_null_pairs, replace=False)]
        null_single.append(mean_matched_cosines(sh, pairs).ravel())
    p95 = float(np.quantile(np.concatenate(null_single), 0.95)) if null_single and len(iu) else float("nan")
    if kc >= NM:  # as many synergies as muscles span every activation: any set reconstructs any data
        from msdiversity.analysis.stats import not_computed

        test = not_computed("synergies_differ", f"k = {kc} equals the number of muscles, so any synergy set "
                            "reconstructs any member's data and sharing cannot be tested",
                            "mean VAF lost with another member's synergies")
    else:
        test, _ = sharing_test(int(seed) + 7, A, K1, P, kc, n_perm)

    members = rec["member"].values
    out = xr.Dataset(coords={"member": members, "member_b": members, "k": np.arange(1, k_max + 1),
                             "synergy": np.arange(kc), "muscle": rec["muscle"].values, "phase": phase})
    out["syn_vaf"] = (("member", "k"), vaf, {"units": "1", "long_name": "VAF of NMF with k synergies"})
    out["syn_vaf_muscle"] = (("member", "k", "muscle"), vaf_mus, {"units": "1", "long_name": "per-muscle VAF"})
    out["syn_muscle_active"] = (("member", "muscle"), active, {
        "units": "1", "long_name": f"muscle RMS >= {ACTIVE_MUSCLE_RMS:g} x the largest (per-muscle VAF applies)"})
    out["syn_tonic"] = (("member", "muscle"), tonic, {"units": "1", "long_name": "tonic level removed before NMF"})
    out["syn_k_chosen"] = ("member", k_chosen, {"units": "1", "vaf_threshold": vaf_threshold,
                                                "vaf_muscle_threshold": vaf_muscle_threshold,
                                                "long_name": "smallest k with VAF and every active muscle's VAF above threshold"})
    out["syn_k_chosen_global"] = ("member", k_global, {"units": "1", "long_name": "smallest k with global VAF >= threshold"})
    out["syn_k_elbow"] = ("member", k_elbow, {"units": "1"})
    out["syn_k_common"] = ((), kc, {"units": "1", "long_name": "k used for matching (median chosen k, rounded up)"})
    out["syn_W"] = (("member", "synergy", "muscle"), W_al, {"units": "1", "long_name": "unit-norm synergy vectors",
                                                            "reference_member": int(members[ref])})
    out["syn_H"] = (("member", "synergy", "phase"), H_al, {"units": "1", "long_name": "trial-0 coefficients"})
    out["syn_match_cosine"] = (("member", "member_b"), cosm, {"units": "1", "long_name": "mean matched cosine"})
    out["syn_matched_cosine"] = (("member", "synergy"), matched, {"units": "1", "long_name": "cosine to reference member's synergy"})
    out["syn_cross_vaf"] = (("member", "member_b"), cross, {"units": "1", "long_name": "VAF of member_b data with member's W"})
    out["syn_shared"] = (("member", "synergy"), matched >= p95, {"units": "1", "long_name": "matched cosine > null p95"})
    out["syn_null_cosine_p95"] = ((), p95, {"units": "1"})
    return out, test
