"""The feasible activation set of one frame, sampled uniformly, and where an ensemble sits in it.

At a frame the muscles must produce the inverse-dynamics torques: the feasible set is the polytope
P = {a ∈ [0, 1]^m : A a = b} (A (d, m) N m per unit activation, b (d,) N m; see
`msdiversity.analysis.baselines`). Valero-Cuevas and colleagues sample it to show how much each
muscle may vary while the task is still met; we do the same and then place the learned members
inside it.

Sampler (`sample_polytope`): hit-and-run on the affine slice. Points are a = x0 + N z with N an
orthonormal basis of the null space of A (SVD), so A a = b holds exactly; each step picks a
direction d = N L u (u standard normal, L fixed during a run), finds the chord {t : 0 ≤ a + t d ≤ 1}
and moves to a uniform point on it. Any fixed direction law symmetric under d → −d leaves the
uniform distribution invariant, so L may be chosen for speed: it rounds the (often very elongated)
polytope, first from the covariance of the 2m LP extreme points (per muscle min and max), then
twice from the chains' own covariance. One chain per sample, all run together in JAX, from random
convex combinations of the LP extreme points (inside P); 3k² steps (k = dimension of P). Muscles
whose LP range is empty (min = max) are held at that value.

Tested against polytopes whose marginals are known in closed form (a simplex slice: Beta(1, n−1);
a hypersimplex slice of the cube) in tests/test_analysis_feasible.py.

A maintained sampler was tried first: `hopsy` 1.7.0 installs, but its rounding (PolyRound) took
10 s on one myolegs frame (80 muscles, 14 torque rows) and failed with an LP error on the next, so
it is not used.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from msdiversity.errors import InputError

RANGE_TOL = 1e-7  # activation units: an LP range narrower than this is a fixed muscle


def lp_extremes(A: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per muscle the min and max of a_i over P (2 LPs each) and those 2m vertices.

    Returns (lo (m,), hi (m,), vertices (2m, m)). Raises InputError when P is empty.
    """
    m = A.shape[1]
    lo, hi, pts = np.empty(m), np.empty(m), []
    for i in range(m):
        for sign, out in ((1.0, lo), (-1.0, hi)):
            c = np.zeros(m)
            c[i] = sign
            r = linprog(c, A_eq=A, b_eq=b, bounds=[(0.0, 1.0)] * m, method="highs")
            if not r.success:
                raise InputError(f"the feasible activation set is empty ({r.message}); reserve torques "
                                 "must be removed from b first", field="b")
            out[i] = r.x[i]
            pts.append(r.x)
    return lo, hi, np.asarray(pts)


def _chord(x: np.ndarray, d: np.ndarray, lo: float = 0.0, hi: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """For rows x (C, n) and directions d (C, n): the t-interval keeping lo <= x + t d <= hi."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - x) / d
        t2 = (hi - x) / d
    small = np.abs(d) < 1e-15
    tmin = np.where(small, -np.inf, np.minimum(t1, t2)).max(axis=1)
    tmax = np.where(small, np.inf, np.maximum(t1, t2)).min(axis=1)
    return np.minimum(tmin, 0.0), np.maximum(tmax, 0.0)  # x is inside: 0 is always allowed


def _har_fn():
    """The jitted hit-and-run kernel (built on first use: JAX is imported lazily)."""
    global _HAR
    if _HAR is None:
        import jax
        import jax.numpy as jnp

        @jax.jit
        def run(key, x, NL, steps):
            C, k = x.shape[0], NL.shape[1]

            def body(_, carry):
                x, key = carry
                key, k1, k2 = jax.random.split(key, 3)
                d = jax.random.normal(k1, (C, k), x.dtype) @ NL.T  # (C, m), in the null space of A
                small = jnp.abs(d) < 1e-12
                safe = jnp.where(small, 1.0, d)
                t1, t2 = -x / safe, (1.0 - x) / safe
                tmin = jnp.minimum(jnp.where(small, -jnp.inf, jnp.minimum(t1, t2)).max(1), 0.0)
                tmax = jnp.maximum(jnp.where(small, jnp.inf, jnp.maximum(t1, t2)).min(1), 0.0)
                t = tmin + (tmax - tmin) * jax.random.uniform(k2, (C,), x.dtype)
                return jnp.clip(x + t[:, None] * d, 0.0, 1.0), key

            return jax.lax.fori_loop(0, steps, body, (x, key))[0]

        _HAR = run
    return _HAR


_HAR = None


def _har(seed: int, x: np.ndarray, N: np.ndarray, L: np.ndarray, steps: int) -> np.ndarray:
    """`steps` hit-and-run steps of every chain (rows of x (C, m), inside the box), directions N L u
    (u standard normal). Returns the final states (C, m). float32 (JAX): see `sample_polytope`."""
    import jax

    run = _har_fn()
    out = run(jax.random.PRNGKey(seed), np.asarray(x, np.float32), np.asarray(N @ L, np.float32), int(steps))
    return np.asarray(out, float)


def _round(x: np.ndarray, c: np.ndarray, N: np.ndarray) -> np.ndarray:
    """Cholesky factor of the covariance of points x (P, m) in null-space coordinates (k, k)."""
    z = (x - c) @ N
    k = N.shape[1]
    cov = np.atleast_2d(np.cov(z, rowvar=False))
    return np.linalg.cholesky(cov + (1e-6 * np.trace(cov) / k + 1e-300) * np.eye(k))


def sample_polytope(rng: np.random.Generator, A: np.ndarray, b: np.ndarray, n_samples: int = 200,
                    steps: int | None = None, info: dict | None = None) -> np.ndarray:
    """Uniform samples of P = {a ∈ [0, 1]^m : A a = b} by rounded hit-and-run (module docstring).

    One chain per sample, all run together; each returns its final state. Rounding: the LP
    vertices' covariance, then twice the chains' covariance after `steps`/4 steps each; then
    `steps` more. The walk runs in float32 (JAX); the end points are projected back onto A a = b
    in float64 (a − A⁺(A a − b), a correction of order 1e-6).

    Args:
        rng: numpy Generator (seeds the chains' starts and the JAX key).
        A: (d, m); b: (d,) with P non-empty (remove reserve torques first).
        n_samples: samples returned (= chains).
        steps: main-run steps per chain (default max(1000, 3 k²), k = dimension of P: hit-and-run
            mixes in O(k²) steps once rounded).
        info: optional dict receiving 'dim' (k) and 'drift' (mean over muscles of the change of
            the marginal SD over the second half of the main run, relative: small when mixed).

    Returns:
        (n_samples, m) activations; A a = b to ~1e-9 relative and 0 ≤ a ≤ 1.
    """
    A, b = np.atleast_2d(np.asarray(A, float)), np.asarray(b, float).reshape(-1)
    if A.shape[0] != b.shape[0]:
        raise InputError(f"A has {A.shape[0]} rows but b has {b.shape[0]} values", field="b")
    lo, hi, verts = lp_extremes(A, b)
    free = hi - lo > RANGE_TOL
    out = np.tile(np.where(free, verts.mean(0), lo), (n_samples, 1))
    # the free muscles' slice: A_f a_f = b - A_fixed a_fixed; its null space (orthonormal, via SVD)
    Af = A[:, free]
    k = 0
    if free.any():
        _, sv, vt = np.linalg.svd(Af, full_matrices=True)
        rank = int(np.sum(sv > 1e-10 * max(sv.max(initial=0.0), 1e-300)))
        N = vt[rank:].T  # (m_free, k)
        k = N.shape[1]
    if info is not None:
        info.update(dim=k, drift=0.0)
    if k == 0:
        return out
    V = verts[:, free]
    c = V.mean(0)
    steps = int(steps or max(1000, 3 * k * k))
    seeds = rng.integers(0, 2 ** 31 - 1, size=4)
    x = rng.dirichlet(np.full(len(V), 0.5), size=n_samples) @ V  # starts inside P, spread over it
    L = _round(V, c, N)
    for s in seeds[:2]:
        x = _har(int(s), x, N, L, max(1, steps // 4))
        L = _round(x, c, N)
    half = _har(int(seeds[2]), x, N, L, max(1, steps // 2))
    x = _har(int(seeds[3]), half, N, L, steps - steps // 2)
    x = x - np.linalg.lstsq(Af, Af @ x.T - (b - A[:, ~free] @ lo[~free])[:, None], rcond=None)[0].T
    if info is not None:
        sd1, sd2 = half.std(0), x.std(0)
        ok = sd2 > 1e-9
        info["drift"] = float(np.mean(np.abs(sd2[ok] - sd1[ok]) / sd2[ok])) if ok.any() else 0.0
    out[:, free] = np.clip(x, 0.0, 1.0)
    return out


def place_members(samples: np.ndarray, members: np.ndarray) -> dict[str, np.ndarray]:
    """Where members sit in the feasible marginals of one frame.

    Args:
        samples: (S, m) uniform feasible samples; members: (M, m) member activations (NaN allowed).

    Returns dict:
        percentile (M, m): per muscle, the mid-rank fraction of feasible samples below the member
            (0 = at or under the feasible minimum, 1 = at or over the maximum).
        coverage (m,): feasible probability mass inside the ensemble's [min, max] per muscle, F(max) − F(min)
            (members drawn uniformly from P would give (M − 1)/(M + 1) in expectation).
        var_ratio (): trace of the members' covariance over the samples' (spread covered, all muscles).
    """
    s = np.sort(samples, axis=0)
    S = s.shape[0]
    M, m = members.shape
    pct = np.full((M, m), np.nan)
    for i in range(m):
        ok = np.isfinite(members[:, i])
        below = np.searchsorted(s[:, i], members[ok, i], side="left")
        upto = np.searchsorted(s[:, i], members[ok, i], side="right")
        pct[ok, i] = (below + upto) / (2.0 * S)
    with np.errstate(invalid="ignore"):
        cov = np.nanmax(pct, axis=0) - np.nanmin(pct, axis=0) if M else np.full(m, np.nan)
    good = np.all(np.isfinite(members), axis=1)
    vs = np.trace(np.atleast_2d(np.cov(samples, rowvar=False)))
    vr = (np.trace(np.atleast_2d(np.cov(members[good], rowvar=False))) / vs
          if good.sum() >= 2 and vs > 0 else np.nan)
    return {"percentile": pct, "coverage": cov, "var_ratio": np.float64(vr)}
