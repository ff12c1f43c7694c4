"""Muscle synergies: NMF per member, VAF curve, matching across members, cross-reconstruction, and a
shared-vs-specific test against a shuffled null.

Model: A ≈ C W with A (samples, muscles) a member's activations (all its trials, time-normalised,
concatenated; activations are already on a common 0..1 scale, so muscles are not re-normalised),
W (k, muscles) synergy vectors of unit norm and C (samples, k) ≥ 0 coefficients. scikit-learn's
`NMF` (coordinate descent, NNDSVDa init) fits it; note sklearn names C `W` and W `components_`.

- VAF(k) = 1 - ‖A - C W‖² / ‖A‖² (uncentred, the usual definition in the synergy literature).
- k chosen = smallest k with VAF ≥ threshold (default 0.90); elbow = k of maximal distance between
  the VAF curve and the chord joining its ends (a check, reported alongside).
- Matching: cosine similarity matrix between two members' synergy vectors, optimal one-to-one
  assignment by `scipy.optimize.linear_sum_assignment`; similarity = mean matched cosine.
- Cross-reconstruction VAF(a -> b): member b's activations with member a's W fixed, C refit by
  non-negative least squares (batched coordinate descent, exact NNLS at convergence).
- Shared-vs-specific test: the observed mean matched cosine over member pairs is compared with a
  null in which every synergy vector's muscle weights are shuffled independently (same weight
  distribution, no muscle correspondence). p = (1 + #{null ≥ obs}) / (1 + N); effect size
  z = (obs - mean null) / SD null. A matched synergy counts as *shared* when its cosine exceeds
  the null's 95th percentile of single matched cosines.
"""

from __future__ import annotations

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


def choose_k(vaf: np.ndarray, threshold: float) -> int:
    """Smallest k (1-based) with VAF ≥ threshold; the largest k tried when none reaches it."""
    ok = np.flatnonzero(np.asarray(vaf) >= threshold)
    return int(ok[0] + 1) if ok.size else len(vaf)


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


def synergies(seed, rec: xr.Dataset, act: np.ndarray, phase: np.ndarray, k_max: int = 8,
              vaf_threshold: float = 0.90, n_null: int = 200, max_null_pairs: int = 300,
              progress=None) -> tuple[xr.Dataset, TestResult]:
    """All synergy outputs. act: (M, K1, P, NM) time-normalised activations (NaN = dead frames)."""
    rng = np.random.default_rng(seed)
    M, K1, P, NM = act.shape
    k_max = int(max(1, min(k_max, NM, K1 * P)))
    A = np.clip(np.nan_to_num(act.reshape(M, K1 * P, NM)), 0, None)  # dead frames -> 0 rows (no effect)
    vaf = np.full((M, k_max), np.nan)
    fits: list[dict[int, tuple]] = []
    # Single-threaded BLAS: these matrices are small, and threading them was 4x slower here (measured).
    with threadpool_limits(limits=1, user_api="blas"):
        for m in range(M):
            fm = {}
            for k in range(1, k_max + 1):
                W, C, v = nmf_fit(A[m], k, seed=int(seed) + m)
                vaf[m, k - 1] = v
                fm[k] = (W, C)
            fits.append(fm)
            if progress is not None:
                progress(m + 1, M)
    k_chosen = np.array([choose_k(vaf[m], vaf_threshold) for m in range(M)])
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
    B = np.matmul(A[None], Ws.transpose(0, 2, 1)[:, None])  # (M_a, M_b, n, k) = A_b W_a^T
    G = np.matmul(Ws, Ws.transpose(0, 2, 1))[:, None]  # (M_a, 1, k, k)
    H = nnls_batched(B, G)
    tot = np.sum(A ** 2, axis=(1, 2))  # (M,)
    # ||A_b - H W_a||^2 = ||A_b||^2 - 2 <H, B> + <H G, H>
    resid = tot[None, :] - 2 * np.sum(H * B, axis=(2, 3)) + np.sum(np.matmul(H, G) * H, axis=(2, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        cross = 1.0 - resid / tot[None, :]

    # Shuffled null for shared-vs-specific.
    obs = float(cosm[iu[:, 0], iu[:, 1]].mean()) if len(iu) else float("nan")
    null_means = np.empty(n_null)
    null_single = []
    for i in range(n_null):
        sh = np.take_along_axis(Ws, np.argsort(rng.random(Ws.shape), axis=-1), axis=-1)
        pairs = iu if len(iu) <= max_null_pairs else iu[rng.choice(len(iu), max_null_pairs, replace=False)]
        c = mean_matched_cosines(sh, pairs)
        null_means[i] = c.mean()
        null_single.append(c.ravel())
    null_single = np.concatenate(null_single)
    p95 = float(np.quantile(null_single, 0.95))
    p = (1 + np.sum(null_means >= obs)) / (1 + n_null)
    sd = null_means.std(ddof=1)
    z = (obs - null_means.mean()) / sd if sd > 0 else float("inf")
    boots = []
    for _ in range(1000):
        idx = rng.integers(0, M, M)
        sub = cosm[np.ix_(idx, idx)][idx[:, None] != idx[None, :]]
        if sub.size:
            boots.append((sub.mean() - null_means.mean()) / sd if sd > 0 else np.nan)
    boots = np.asarray(boots)
    boots = boots[np.isfinite(boots)]
    lo, hi = (float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))) if boots.size else (np.nan, np.nan)
    test = TestResult("synergies_shared", M, obs, float(p), float(z), lo, hi, "mean matched cosine",
                      "z vs shuffled null",
                      f"mean matched synergy cosine across member pairs vs {n_null} muscle-shuffled nulls")

    members = rec["member"].values
    out = xr.Dataset(coords={"member": members, "member_b": members, "k": np.arange(1, k_max + 1),
                             "synergy": np.arange(kc), "muscle": rec["muscle"].values, "phase": phase})
    out["syn_vaf"] = (("member", "k"), vaf, {"units": "1", "long_name": "VAF of NMF with k synergies"})
    out["syn_k_chosen"] = ("member", k_chosen, {"units": "1", "vaf_threshold": vaf_threshold})
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
