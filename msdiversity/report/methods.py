"""Methods section generated from the experiment config stored in the datasets' attrs, plus versions."""

from __future__ import annotations

import html
import json
import platform
from importlib import metadata

import xarray as xr

PACKAGES = ("msdiversity", "jax", "jaxlib", "mujoco", "mujoco-mjx", "myo-sim", "flax", "optax", "orbax-checkpoint",
            "numpy", "scipy", "scikit-learn", "umap-learn", "xarray", "h5netcdf", "plotly")


def versions() -> dict[str, str]:
    """Installed versions of the packages that produced the numbers (at report time)."""
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def _json_attr(ds: xr.Dataset | None, key: str) -> dict:
    if ds is None:
        return {}
    try:
        v = json.loads(ds.attrs.get(key, "{}"))
        return v if isinstance(v, dict) else {}
    except (TypeError, ValueError):
        return {}


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True, default=str)
    return str(v)


def _kv_table(d: dict) -> str:
    rows = "".join(f"<tr><td><code>{html.escape(str(k))}</code></td><td>{html.escape(_fmt(v))}</td></tr>"
                   for k, v in sorted(d.items()))
    return f"<table class='kv'>{rows}</table>"


def _g(d: dict, *keys, default="?"):
    for k in keys:
        if k in d:
            return _fmt(d[k])
    return default


REWARDS = {
    "exp": "a weighted sum of exponentiated tracking-error terms (DeepMimic-style baseline)",
    "adversarial": "adversarial reward aggregation: a discriminator scores the normalised tracking-error vector "
                   "against the zero-error vector (gradient penalty weight {gp_weight}); reward −log(1 − D), "
                   "clipped at {reward_clip}",
}
POLICIES = {
    "gaussian": "a diagonal Gaussian policy over muscle pre-activations mapped into [0, 1] by a {action_map}",
    "flow": "value-guided flow exploration: Gaussian source samples transported by a learned flow "
            "({flow_steps} Euler steps) trained by flow matching toward samples moved up the gradient of a "
            "learned action value (step {flow_guidance})",
}


def _training_paragraph(n_mem: int, grid: str, tr: dict, env: dict, metrics: xr.Dataset | None) -> str:
    """What was actually trained: the effective [train] settings stored with metrics.nc (defaults filled
    in), falling back to the experiment file's [train] section."""
    eff = {**tr, **_json_attr(metrics, "train_config")}
    attrs = metrics.attrs if metrics is not None else {}
    reward, policy = str(eff.get("reward", "exp")), str(eff.get("policy", "gaussian"))
    values = {"action_map": "sigmoid"} | {k: _fmt(v) for k, v in eff.items()}
    try:
        r_txt = REWARDS.get(reward, reward).format_map(values)
        p_txt = POLICIES.get(policy, policy).format_map(values)
    except (KeyError, ValueError):
        r_txt, p_txt = reward, policy
    method = ("the MS-Emulator recipe" if (reward, policy) == ("adversarial", "flow") else
              "PPO with parts of the MS-Emulator recipe" if (reward, policy) != ("exp", "gaussian") else
              "the PPO baseline (not the adversarial reward or flow exploration of MS-Emulator)")
    backend = str(attrs.get("backend", _g(env, "backend", default="auto")))
    it, ne, ul = eff.get("iterations"), eff.get("num_envs"), eff.get("unroll_length")
    length = (f"{it} PPO iterations of {ne} environments × {ul} control steps per member "
              f"({int(it) * int(ne) * int(ul):,} environment steps per member)"
              if all(isinstance(x, (int, float)) for x in (it, ne, ul)) else _g(eff, "iterations"))
    hyper = ", ".join(f"{k} = {_fmt(eff[k])}" for k in ("learning_rate", "discount", "gae_lambda", "clip_eps",
                                                         "update_epochs", "num_minibatches", "entropy_cost",
                                                         "hidden") if k in eff)
    return (f"<p><b>Ensemble training.</b> {n_mem} motion-imitation policies (\"emulators\") were trained on the "
            f"same reference with {html.escape(method)}: reward = {html.escape(r_txt)}; policy = "
            f"{html.escape(p_txt)}. One member per combination of {html.escape(grid) or 'settings'}. Members were "
            "trained together as one vectorised program (JAX <code>vmap</code> over members); regulariser "
            "settings are traced values, so all members share code and differ only in seed and regularisers. "
            f"Training length: {html.escape(length)}{'; ' + html.escape(hyper) if hyper else ''}. Physics backend: "
            f"{html.escape(backend)}.</p>")


def methods_html(rec: xr.Dataset, ana: xr.Dataset | None, metrics: xr.Dataset | None) -> str:
    """Prose describing what was done (from the config) + every config section as a table + versions."""
    cfg = _json_attr(rec, "config")
    acfg = _json_attr(ana, "analysis_config") or cfg.get("analysis", {})
    tr, ens, env = cfg.get("train", {}), cfg.get("ensemble", {}), cfg.get("env", {})
    n_mem = rec.sizes["member"]
    varying = [c for c in ("seed", "effort_exponent", "effort_weight", "smoothness_weight", "synergy_weight",
                           "emg_weight") if c in rec.coords]
    grid = "; ".join(f"{c.replace('_', ' ')} ∈ {{{', '.join(sorted({_fmt(x.item()) for x in rec[c].values}))}}}"
                     for c in varying)
    paras = [
        f"<p><b>Model and motion.</b> The musculoskeletal model <code>{html.escape(str(rec.attrs.get('model', '?')))}"
        f"</code> (MuJoCo, muscle actuators: {rec.sizes.get('muscle', '?')} muscles, {rec.sizes.get('joint', '?')} "
        f"scalar joints) tracked the reference motion <i>{html.escape(str(rec.attrs.get('motion', '?')))}</i> "
        f"sampled every {float(rec.attrs.get('dt', float('nan'))) * 1000:.1f} ms.</p>",
        _training_paragraph(n_mem, grid, tr, env, metrics),
        f"<p><b>Recording.</b> Each member was rolled out deterministically (mean action, trial 0) and "
        f"{max(rec.sizes.get('trial', 1) - 1, 0)} times with its stochastic policy (trials 1…K, different keys); "
        f"the trial-to-trial variability is the noise floor that distances between members are divided by.</p>",
        "<p><b>Analysis.</b> Specificity: RMSE of tracked joint angles (wrapped to ±180°, planar root orientation "
        "included) and body positions, and GRF per force component as % body weight (worst component reported; "
        "target: the reference GRF, else the mean of the other members) against the reference. Members are "
        "compared only when they stay up and track within the match thresholds. Diversity: time-normalised "
        "(101 samples) activation patterns compared between members (RMSE, correlation distance); a "
        "noise-normalised index D_int/(D_int+D_ext) from DCT power spectra of member-to-member and trial-to-trial "
        "differences in a frequency band matched across modalities, so that the body's smoothing of noise does "
        "not bias it (refused when there is no trial-to-trial variability), with percentile-bootstrap CIs over "
        f"members (n_boot = {html.escape(_g(acfg, 'n_boot', 'bootstrap'))}); a model-based null-space fraction: "
        "the share of each member-to-member activation difference that lies in the null space of the "
        "activation-to-joint-torque map (moment arms × force-length-velocity) at the reference state; sign-flip "
        f"permutation tests over members (n_perm = {html.escape(_g(acfg, 'n_perm', 'permutations'))}). Synergies: "
        "non-negative matrix factorisation (scikit-learn NMF) per member after removing each muscle's tonic level, "
        f"k chosen by global VAF ≥ {html.escape(_g(acfg, 'vaf_threshold'))} and per-muscle VAF ≥ "
        f"{html.escape(_g(acfg, 'vaf_muscle_threshold'))} (Torres-Oviedo & Ting), synergies matched between members by "
        "the Hungarian algorithm on cosine similarity; sharing tested by held-out cross-reconstruction. "
        "Embedding: PCA (and UMAP) of every rollout's activation pattern; solution families from Ward clustering "
        "and silhouette, counted only when they beat a unimodal Gaussian null (parametric bootstrap). Classical "
        "baselines: inverse dynamics (MuJoCo <code>mj_inverse</code>) of the reference, static optimisation "
        "min Σ a<sup>p</sup> subject to the joint torques, and the feasible activation range of each muscle "
        "(linear programs).</p>",
    ]
    sections = "".join(f"<details><summary>[{html.escape(k)}]</summary>{_kv_table(v)}</details>"
                       for k, v in cfg.items() if isinstance(v, dict) and v)
    if acfg and "analysis" not in cfg:
        sections += f"<details><summary>analysis settings</summary>{_kv_table(acfg)}</details>"
    if metrics is not None and metrics.attrs:
        sections += ("<details><summary>training run attributes</summary>"
                     f"{_kv_table({k: v for k, v in metrics.attrs.items() if len(str(v)) < 400})}</details>")
    ver = versions()
    rec_ver = {k: v for k, v in rec.attrs.items() if "version" in k}
    ver_html = _kv_table(ver)
    if rec_ver:
        ver_html += "<p class='note'>Versions recorded with the data: " + html.escape(
            ", ".join(f"{k} = {v}" for k, v in rec_ver.items())) + "</p>"
    return ("".join(paras) + "<h3>Configuration</h3>" + (sections or "<p>No configuration stored.</p>")
            + "<h3>Software versions (at report generation)</h3>" + ver_html)
