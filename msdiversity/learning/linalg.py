"""LAPACK-free linear algebra for code that runs inside the vmapped, jitted training program.

Why: on the CPU, jaxlib's LAPACK kernels (QR, eigh, ...) split a batched call over XLA's intra-op
thread pool and wait for the pieces from inside a pool thread. When two such calls run concurrently
(e.g. the orthogonal initialisation of the policy, value and Q networks of all members in one
program) every pool thread can end up waiting and the program hangs forever (reproduced with jaxlib
0.10.2 on 2 cores: six independent vmapped `nn.initializers.orthogonal` calls in one jit hang within
a few hundred calls, with or without `--xla_cpu_multi_thread_eigen=false`). Matrix products and
element-wise ops do not block, so these routines use only those.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax


def orthonormalize(a):
    """Orthonormal basis of the columns of a (n, k), k <= n, in order (Gram-Schmidt with one
    re-orthogonalisation, "twice is enough"). Equals Q of the QR decomposition with diag(R) > 0. -> (n, k)"""
    k = a.shape[1]
    cols = jnp.arange(k)

    def body(j, q):
        prev = (cols < j).astype(q.dtype)  # project out the already finished columns only
        v = q[:, j]
        v = v - q @ ((q.T @ v) * prev)
        v = v - q @ ((q.T @ v) * prev)
        return q.at[:, j].set(v / jnp.maximum(jnp.sqrt(jnp.sum(v * v)), 1e-30))

    return lax.fori_loop(0, k, body, a)


def orthogonal(scale: float = 1.0):
    """Drop-in for `flax.linen.initializers.orthogonal` (same distribution: Haar-random orthogonal
    rows or columns times `scale`) without LAPACK's QR."""

    def init(key, shape, dtype=jnp.float32):
        n_rows, n_cols = math.prod(shape[:-1]), shape[-1]
        tall = (max(n_rows, n_cols), min(n_rows, n_cols))
        q = orthonormalize(jax.random.normal(key, tall, jnp.float32))
        if n_rows < n_cols:
            q = q.T
        return (scale * q).reshape(shape).astype(dtype)

    return init


def top_k_energy(gram, k: int, iters: int = 60):
    """Sum of the k largest eigenvalues of a symmetric PSD matrix gram (n, n), by subspace iteration
    (error shrinks like (λ_{k+1}/λ_k)^(2 iters)). -> ()"""
    n = gram.shape[0]
    if k >= n:
        return jnp.trace(gram)
    idx = jnp.argsort(-jnp.diag(gram))[:k]  # start in high-energy directions
    start = gram[:, idx] + jnp.eye(n, dtype=gram.dtype)[:, idx] * (1e-3 * jnp.trace(gram) / n + 1e-12)
    q = lax.fori_loop(0, iters, lambda _, q: orthonormalize(gram @ q), orthonormalize(start))
    return jnp.sum(q * (gram @ q))
