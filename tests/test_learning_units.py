"""Unit tests of the learning components on planted problems (hand-derived numbers or planted optima).

The emulator itself is exercised by tests/test_ensemble_training.py; here a tiny planted bandit
(`PlantedTarget`: reach a random target excitation, errors = squared distance) checks that PPO, the
adversarial reward and the flow policy optimise what they claim to, in seconds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from msdiversity.learning import adversarial, distributions, flow, losses, regularizers
from msdiversity.learning.networks import FlowNet, QNet, RunningStats, ScalarNet
from msdiversity.learning.ppo import TrainConfig, train


def test_gae_matches_hand_loop():
    rng = np.random.default_rng(0)
    T, E = 7, 3
    r = rng.normal(size=(T, E))
    v = rng.normal(size=(T, E))
    boot = rng.normal(size=E)
    term = (rng.random((T, E)) < 0.2).astype(float)
    trunc = np.zeros((T, E))
    trunc[3, 1] = 1.0
    gam, lam = 0.9, 0.8
    tgt, adv = losses.compute_gae(jnp.asarray(trunc), jnp.asarray(term), jnp.asarray(r), jnp.asarray(v),
                                  jnp.asarray(boot), lam, gam)
    # reference: plain backward recursion
    ref = np.zeros((T, E))
    for e in range(E):
        acc = 0.0
        for t in reversed(range(T)):
            vn = boot[e] if t == T - 1 else v[t + 1, e]
            delta = (r[t, e] + gam * (1 - term[t, e]) * vn - v[t, e]) * (1 - trunc[t, e])
            acc = delta + gam * (1 - term[t, e]) * (1 - trunc[t, e]) * lam * acc
            ref[t, e] = acc
    np.testing.assert_allclose(adv, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tgt, ref + v, rtol=1e-5, atol=1e-5)


def test_ppo_surrogate_at_ratio_one_and_clipping():
    adv = jnp.array([1.0, -2.0, 0.5])
    lp = jnp.array([-1.0, -0.3, -2.0])
    loss, kl, cf = losses.ppo_policy_loss(lp, lp, adv, 0.2)
    assert float(loss) == pytest.approx(-float(adv.mean()))
    assert float(kl) == pytest.approx(0.0, abs=1e-7) and float(cf) == 0.0
    # ratio 2 with positive advantage is clipped at 1.2
    loss2, _, cf2 = losses.ppo_policy_loss(jnp.log(2.0) + lp[:1], lp[:1], adv[:1], 0.2)
    assert float(loss2) == pytest.approx(-1.2) and float(cf2) == 1.0


def test_sigmoid_logprob_is_change_of_variables():
    # density of a = sigmoid(u), u ~ N(m, s): integrate exp(log p(a)) over a grid of a -> 1
    m, ls = jnp.array([0.7]), jnp.array([np.log(0.8)])
    a = jnp.linspace(1e-4, 1 - 1e-4, 20001)[:, None]
    u = distributions.from_excitation(a, "sigmoid")
    p = jnp.exp(distributions.excitation_log_prob(u, m, ls, "sigmoid"))
    assert float(jnp.trapezoid(p, a[:, 0])) == pytest.approx(1.0, abs=2e-3)
    # and the PPO ratio is the same in u- and a-space
    m2 = jnp.array([0.2])
    r_u = distributions.gaussian_log_prob(u, m2, ls) - distributions.gaussian_log_prob(u, m, ls)
    r_a = distributions.excitation_log_prob(u, m2, ls, "sigmoid") - distributions.excitation_log_prob(u, m, ls, "sigmoid")
    np.testing.assert_allclose(r_u, r_a, atol=1e-4)
    assert float(distributions.to_excitation(jnp.array(5.0), "clip")) == 1.0


def test_running_stats_match_numpy():
    rng = np.random.default_rng(1)
    xs = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (5, 17, 40)]
    s = RunningStats.init(4)
    for x in xs:
        s = s.update(jnp.asarray(x, jnp.float32))
    allx = np.concatenate(xs)
    np.testing.assert_allclose(s.mean, allx.mean(0), rtol=1e-5)
    np.testing.assert_allclose(s.m2 / s.count, allx.var(0), rtol=1e-4)


def test_regularizers_on_known_values():
    a = jnp.array([[0.5, 0.2, 0.0]])
    assert float(regularizers.effort(a, 2.0)[0]) == pytest.approx((0.25 + 0.04) / 3, rel=1e-5)
    assert float(regularizers.effort(a, 3.0)[0]) == pytest.approx((0.125 + 0.008) / 3, rel=1e-4)
    assert float(regularizers.smoothness(a, jnp.zeros_like(a))[0]) == pytest.approx(0.29 / 3, rel=1e-5)
    emg = jnp.array([[0.5, jnp.nan, 0.3]])
    assert float(regularizers.emg_tracking(a, emg)[0]) == pytest.approx(0.09 / 2, rel=1e-5)
    rng = np.random.default_rng(2)
    low = rng.random((16, 2)) @ rng.random((2, 6))  # exact rank 2 window
    assert float(regularizers.low_rank_residual(jnp.asarray(low, jnp.float32), 2)) < 1e-4
    full = rng.random((16, 6))
    s = np.linalg.svd(full, compute_uv=False)
    expect = (s[2:] ** 2).sum() / (s**2).sum()
    assert float(regularizers.low_rank_residual(jnp.asarray(full, jnp.float32), 2)) == pytest.approx(expect, rel=1e-3)


def test_discriminator_learns_zero_vs_errors_and_reward_is_monotone():
    import optax

    net = ScalarNet((32, 32))
    key = jax.random.PRNGKey(0)
    params = net.init(key, jnp.zeros((1, 3)))
    opt = optax.adam(3e-3)
    st = opt.init(params)

    @jax.jit
    def step(params, st, k):
        e = jnp.abs(1.0 + 0.3 * jax.random.normal(k, (256, 3)))  # planted negatives around 1
        (l, m), g = jax.value_and_grad(adversarial.discriminator_loss, argnums=1, has_aux=True)(net.apply, params, e, 0.1)
        u, st = opt.update(g, st)
        return optax.apply_updates(params, u), st, m

    for i in range(300):
        params, st, m = step(params, st, jax.random.fold_in(key, i))
    assert float(m["disc/D_pos"]) > 0.8 and float(m["disc/D_neg"]) < 0.2
    scales = jnp.linspace(0.0, 1.0, 6)[:, None] * jnp.ones((1, 3))
    r = adversarial.adversarial_reward(net.apply(params, scales), 5.0)
    assert bool(jnp.all(jnp.diff(r) < 0)), r  # less error -> more reward
    assert float(r.max()) <= 5.0 and float(r.min()) >= 0.0


def test_flow_guidance_moves_samples_to_planted_optimum():
    """Planted Q = -|u - u*|^2: guided flow matching transports N(0, 1) samples toward u*."""
    import optax

    nu = 2
    ustar = jnp.array([1.5, -1.0])
    qnet, fnet = QNet((32,)), FlowNet((64, 64), nu)
    q_apply = lambda p, o, u: -jnp.sum((u - ustar) ** 2, -1)  # noqa: E731  planted critic
    obs = jnp.zeros((512, 1))
    fp = fnet.init(jax.random.PRNGKey(1), obs, jnp.zeros((512, nu)), 0.0)
    opt = optax.adam(3e-3)
    st = opt.init(fp)
    u_init = flow.transport(fnet.apply, fp, obs, jax.random.normal(jax.random.PRNGKey(9), (512, nu)), 4)
    assert float(jnp.abs(u_init).mean()) == pytest.approx(0.8, abs=0.1)  # zero-init flow = identity

    @jax.jit
    def it(fp, st, k):
        k1, k2 = jax.random.split(k)
        u0 = jax.random.normal(k1, (512, nu))
        u1 = flow.transport(fnet.apply, fp, obs, u0, 4)
        tgt = flow.guided_targets(q_apply, None, obs, u0, u1, 0.3, 3.0)

        def step(carry, kk):
            fp, st = carry
            l, g = jax.value_and_grad(lambda p: flow.flow_matching_loss(fnet.apply, p, kk, obs, u0, tgt))(fp)
            u, st = opt.update(g, st)
            return (optax.apply_updates(fp, u), st), l

        (fp, st), _ = jax.lax.scan(step, (fp, st), jax.random.split(k2, 20))
        return fp, st

    for i in range(40):
        fp, st = it(fp, st, jax.random.PRNGKey(100 + i))
    u1 = flow.transport(fnet.apply, fp, obs, jax.random.normal(jax.random.PRNGKey(7), (512, nu)), 4)
    d0 = float(jnp.mean(jnp.sum((jax.random.normal(jax.random.PRNGKey(7), (512, nu)) - ustar) ** 2, -1)))
    d1 = float(jnp.mean(jnp.sum((u1 - ustar) ** 2, -1)))
    assert d1 < 0.25 * d0, (d0, d1)
    del qnet


def test_lapack_free_orthogonal_init_and_top_k_energy():
    """The training program avoids LAPACK (see msdiversity.learning.linalg): check the replacements
    against numpy, and that many concurrent vmapped initialisations in one jit finish (the LAPACK QR
    version hangs on a 2-core CPU)."""
    from msdiversity.learning import linalg

    for shape in [(128, 128), (40, 6), (6, 40)]:
        w = np.asarray(linalg.orthogonal(2.0)(jax.random.PRNGKey(0), shape))
        small = min(shape)
        g = w.T @ w if shape[0] >= shape[1] else w @ w.T
        np.testing.assert_allclose(g, 4.0 * np.eye(small), atol=2e-4)
    # same Haar distribution as QR with sign fix: the mean of diag entries of Q is ~0, not biased
    qs = jax.vmap(lambda k: linalg.orthogonal(1.0)(k, (8, 8)))(jax.random.split(jax.random.PRNGKey(1), 2000))
    assert abs(float(jnp.mean(qs[:, 0, 0]))) < 0.03
    rng = np.random.default_rng(0)
    for n, k in [(6, 1), (6, 2), (16, 3)]:
        x = rng.random((20, n))
        gram = x.T @ x
        ev = np.sort(np.linalg.eigvalsh(gram))[::-1]
        assert float(linalg.top_k_energy(jnp.asarray(gram, jnp.float32), k)) == pytest.approx(ev[:k].sum(), rel=1e-4)

    init = linalg.orthogonal(1.0)

    @jax.jit
    def many(keys):  # six independent batched initialisations, like policy/value/Q of all members
        return sum(jax.vmap(lambda q: init(jax.random.fold_in(q, i), (128, 128)))(keys).sum() for i in range(6))

    for n in range(300):
        many(jax.random.split(jax.random.PRNGKey(n), 2)).block_until_ready()
