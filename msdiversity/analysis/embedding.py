"""Embedding of activation patterns and solution families.

Each (member, trial) activation pattern (101 phase samples × muscles, flattened; dead frames filled
with the feature's mean) is one point. PCA (scikit-learn, centred, not scaled: all features are
activations on the same 0..1 scale) gives `emb_pca`; UMAP (umap-learn) on the first ≤ 20 PCA scores
gives `emb_umap` (NaN when there are fewer than 6 points or UMAP is disabled).

Solution families: agglomerative clustering (Ward) of the members' trial-0 PCA scores for
2..max_clusters clusters; the number with the highest silhouette is kept, unless that silhouette
is below `min_silhouette` (no clear structure), in which case all members form one family.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from sklearn.cluster import AgglomerativeClustering
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score


def _fill(X: np.ndarray) -> np.ndarray:
    col = np.nanmean(X, axis=0)
    col = np.where(np.isfinite(col), col, 0.0)
    return np.where(np.isfinite(X), X, col[None])


def embedding(seed: int, rec: xr.Dataset, act: np.ndarray, n_pca: int = 10, use_umap: bool = True,
              max_clusters: int = 8, min_silhouette: float = 0.25) -> xr.Dataset:
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
    sil = np.full(len(cand), np.nan)
    labels_by = {}
    for i, c in enumerate(cand):
        if c >= M:
            continue
        lab = AgglomerativeClustering(n_clusters=int(c), linkage="ward").fit_predict(s0)
        labels_by[c] = lab
        if len(np.unique(lab)) > 1:
            sil[i] = silhouette_score(s0, lab)
    if np.isfinite(sil).any() and np.nanmax(sil) >= min_silhouette:
        best = int(cand[np.nanargmax(sil)])
        labels = labels_by[best]
    else:
        best, labels = 1, np.zeros(M, int)
    members = rec["member"].values
    out = xr.Dataset(coords={"member": members, "trial": rec["trial"].values, "component": np.arange(nc),
                             "umap_component": [0, 1], "n_clusters": cand})
    out["emb_pca"] = (("member", "trial", "component"), scores.reshape(M, K1, nc), {"units": "1"})
    out["emb_pca_explained"] = ("component", pca.explained_variance_ratio_, {"units": "1"})
    out["emb_umap"] = (("member", "trial", "umap_component"), um.reshape(M, K1, 2), {"units": "1"})
    out["emb_silhouette"] = ("n_clusters", sil, {"units": "1", "long_name": "silhouette of Ward clustering"})
    out["emb_cluster"] = ("member", labels.astype(int), {"units": "1", "long_name": "solution family"})
    out["emb_n_families"] = ((), best, {"units": "1", "min_silhouette": min_silhouette})
    return out
