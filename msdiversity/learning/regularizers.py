"""Per-member regularizer costs. Weights and the effort exponent are traced (vmapped) leaves.

All costs are per control step, averaged over muscles so their scale does not grow with the model:
- effort: mean_m a_m^p (activation a in [0, 1], exponent p >= 1; p = 2 is the usual "sum of squared
  activations", p = 3 approximates fatigue-like criteria of static optimisation (Crowninshield & Brand));
- smoothness: mean_m (x_m - x_prev_m)^2 over excitations x between consecutive control steps;
- emg: mean over muscles *with* EMG of (a_m - emg_m)^2 (NaN columns of the reference are ignored);
- synergy (low rank): over a sliding window X (W, nu) of the last W excitations, the fraction of
  energy outside the best rank-k approximation, sum_{i>k} s_i^2 / sum_i s_i^2 (s = singular values of
  X, uncentred, like NMF synergies), in [0, 1]; 0 when the window is exactly rank <= k.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from msdiversity.learning import linalg


@struct.dataclass
class Regularizers:
    """Per-member numeric hyperparameters (all traced, so members differ inside one program)."""

    effort_exponent: jax.Array  # ()
    effort_weight: jax.Array  # ()
    smoothness_weight: jax.Array  # ()
    emg_weight: jax.Array  # ()
    synergy_weight: jax.Array  # ()

    @staticmethod
    def make(effort_exponent=2.0, effort_weight=0.0, smoothness_weight=0.0, emg_weight=0.0, synergy_weight=0.0):
        f = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
        return Regularizers(f(effort_exponent), f(effort_weight), f(smoothness_weight), f(emg_weight),
                            f(synergy_weight))


FIELDS = ("effort_exponent", "effort_weight", "smoothness_weight", "emg_weight", "synergy_weight")


def effort(activation, exponent):
    """mean_m a^p. activation (..., nu) -> (...,)"""
    return jnp.mean(jnp.power(jnp.clip(activation, 1e-6, 1.0), exponent), axis=-1)


def smoothness(excitation, prev_excitation):
    """mean_m (x - x_prev)^2. (..., nu) -> (...,)"""
    return jnp.mean((excitation - prev_excitation) ** 2, axis=-1)


def emg_tracking(activation, emg_ref):
    """Mean squared difference over muscles with EMG (non-NaN). (..., nu) -> (...,), 0 if none."""
    has = jnp.isfinite(emg_ref)
    d = jnp.where(has, activation - jnp.nan_to_num(emg_ref), 0.0) ** 2
    return jnp.sum(d, axis=-1) / jnp.maximum(jnp.sum(has, axis=-1), 1)


def low_rank_residual(window, rank: int):
    """Energy fraction of the window X (W, nu) outside its best rank-`rank` approximation. -> ()

    The eigenvalues of the smaller Gram matrix (X X^T or X^T X) are s_i^2; the top-`rank` energy is
    found by subspace iteration (`linalg.top_k_energy`: no LAPACK call inside the training program).
    """
    w, n = window.shape
    gram = window @ window.T if w <= n else window.T @ window
    total = jnp.trace(gram)
    kept = linalg.top_k_energy(gram, rank)
    return jnp.where(total > 1e-12, (total - kept) / jnp.maximum(total, 1e-12), 0.0)


def push_window(window, x):
    """Append x (nu,) to the window (W, nu), dropping the oldest row."""
    return jnp.concatenate([window[1:], x[None]], axis=0)
