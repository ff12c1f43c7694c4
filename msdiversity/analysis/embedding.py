"""Embedding of activation patterns and solution families.

Each (member, trial) activation pattern (101 phase samples × muscles, flattened; dead frames filled
with the feature's mean) is one point. PCA (scikit-learn, centred, not scaled: all features are
activations on the same 0..1 scale) gives `emb_pca`; UMAP (umap-learn) on the first ≤ 20 PCA scores
gives `emb_umap` (NaN when there are fewer than 6 points or UMAP is disabled).

Solution families: agglomerative clustering (Ward) of the members' trial-0 PCA scores for
2..max_clusters clusters, scored by silhouette. Silhouette cannot score a single cluster, and any
point cloud - clustered or not - has a best silhouette, so the count is calibrated against a
unimodal null by parametric bootstrap: `n_null` Gaussian ensembles of the same size with the same
covariance as the observed scores (X* = Z Xc / sqrt(M - 1), Z standard normal (M, M)) are clustered
the same way; p = (1 + #{best silhouette* >= best silhouette}) / (1 + n_null). The number of families
is the silhouette argmax when p <= alpha, otherwise 1 (no evidence for more than one family; a
continuum of solutions is one family). `emb_family_p` is that p.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from sklearn.decomposition import PCA


def _fill(X: np.ndarray) -> np.ndarray:
    col = np.nanmean(X, axis=0)
    col = np.where(np.isfinite(col), col, 0.0)
    return np.where(np.isfinite(X), X, col[None])


def ward_silhouettes(X: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, dict]:
    """Silhouette of Ward clustering of rows of X (M, d) into each candidate number of clusters.

    One Ward tree (scipy), cut at every candidate count: the same partitions as scikit-learn's
    AgglomerativeClustering(linkage="ward"), built once instead of once per count (the null needs
    hundreds of them)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist, squareform

    M = X.shape[0]
    sil = np.full(len(cand), np.nan)
    labels_by = {}
    if M < 3:
        return sil, labels_by
    d = pdist(X)
    Z = linkage(d, method="ward")
    D = squareform(d)
    for i, c in enumerate(cand):
        if c >= M:
            continue
        lab = fcluster(Z, t=int(c), criterion="maxclust") - 1
        labels_by[int(c)] = lab
        if 1 < len(np.unique(lab)) < M:
            sil[i] = silhouette(D, lab)
    return sil, labels_by


def silhouette(D: np.ndarray, lab: np.ndarray) -> float:
    """Mean silhouette (Rousseeuw 1987) from a distance matrix D (M, M) and labels (M,); points in
    singleton clusters score 0 (as scikit-learn's `silhouette_score`, without its per-call overhead)."""
    _, lab = np.unique(lab, return_inverse=True)
    onehot = (lab[:, None] == np.arange(lab.max() + 1)[None]).astype(float)  # (M, C)
    size = onehot.sum(0)
    tot = D @ onehot  # (M, C) summed distance to each cluster
    own = onehot.astype(bool)
    n_own = size[lab] - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        a = tot[own] / n_own
        b = np.min(np.where(own, np.inf, tot / size[None]), axis=1)
        s = (b - a) / np.maximum(a, b)
    return float(np.mean(np.where(n_own > 0, np.nan_to_num(s), 0.0)))


def family_count(seed: int, X: np.ndarray, cand: np.ndarray, sil: np.ndarray, labels_by: dict, n_null: int = 199,
                 alpha: float = 0.05) -> tuple[int, np.ndarray, float, float]:
    """(n_families, labels, p, null 95th percentile of the best silhouette): parametric bootstrap
    against a Gaussian with the covariance of X (M, d); see the module docstring."""
    M = X.shape[0]
    if not np.isfinite(sil).any() or M < 4:
        return 1, np.zeros(M, int), float("nan"), float("nan")
    obs = float(np.nanmax(sil))
    rng = np.random.default_rng(seed)
    Xc = (X - X.mean(0)) / np.sqrt(max(M - 1, 1))
    null = np.empty(n_null)
    for i in range(n_null):
        s_null, _ = ward_silhouettes(rng.standard_normal((M, M)) @ Xc, cand)
        null[i] = np.nanmax(s_null) if np.isfinite(s_null).any() else -1.0
    p = float((1 + np.sum(null >= obs - 1e-12)) / (1 + n_null))
    if p <= alpha:
        best = int(cand[np.nanargmax(sil)])
        return best, labels_by[best], p, float(np.quantile(null, 0.95))
    return 1, np.zeros(M, int), p, float(np.quantile(null, 0.95))


def embedding(seed: int, rec: xr.Dataset, act: np.ndarray, n_pca: int = 10, use_umap: bool = True,
              max_clusters: int = 8, n_null: int = 199, alpha: float = 0.05) -> xr.Dataset:
    """act: (M, K1, P, NM) -> emb_ variables."""
    M, K1 = act.shape[:2]
    X = _fill(act.reshape(M * K1, -1))
    nc = int(max(1, min(n_pca, X.shape[0] - 1, X.shape[1])))
    pca = PCA(n_components=nc, svd_solver="full" if X.shape[1] < 2000 else "randomized", random_state=seed)
    scores = pca.fit_transform(X)  # (M*K1, nc)
    um = np.full((M * K1, 2), np.nan)
    if use_umap and X.shape[0] >= 6:
        import umap  # lazy: numba compilation on first use

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reducer = umap.UMAP(n_components=2, n_neighbors=int(min(15, X.shape[0] - 1)), random_state=seed,
                                init="spectral" if X.shape[0] > 10 else "random")
            um = reducer.fit_transform(scores[:, : min(20, nc)])
    # Families from trial-0 scores.
    s0 = scores.reshape(M, K1, nc)[:, 0]
    cand = np.arange(2, max(2, min(max_clusters, M - 1)) + 1)
    sil, labels_by = ward_silhouettes(s0, cand)
    best, labels, p_fam, null_best = family_count(seed, s0, cand, sil, labels_by, n_null, alpha)
    members = rec["member"].values
    out = xr.Dataset(coords={"member": members, "trial": rec["trial"].values, "component": np.arange(nc),
                             "umap_component": [0, 1], "n_clusters": cand})
    out["emb_pca"] = (("member", "trial", "component"), scores.reshape(M, K1, nc), {"units": "1"})
    out["emb_pca_explained"] = ("component", pca.explained_variance_ratio_, {"units": "1"})
    out["emb_umap"] = (("member", "trial", "umap_component"), um.reshape(M, K1, 2), {"units": "1"})
    out["emb_silhouette"] = ("n_clusters", sil, {"units": "1", "long_name": "silhouette of Ward clustering"})
    out["emb_cluster"] = ("member", labels.astype(int), {"units": "1", "long_name": "solution family"})
    out["emb_n_families"] = ((), best, {"units": "1", "alpha": alpha, "long_name": (
        "solution families: silhouette argmax when it beats a unimodal Gaussian null (parametric bootstrap), else 1")})
    out["emb_family_p"] = ((), p_fam, {"units": "1", "long_name": "p of the best silhouette under the unimodal null",
                                       "n_null": n_null})
    out["emb_silhouette_null_p95"] = ((), null_best, {"units": "1", "long_name": "95th percentile of the best "
                                                                                 "silhouette under the unimodal null"})
    return out
