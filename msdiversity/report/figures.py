"""Report figures drawn only from the recording / metrics / analysis datasets.

Every function takes xarray Datasets and returns a `plotly.graph_objects.Figure`, or None when the
data it needs is absent (e.g. GRF for a model without feet). Angles are shown in degrees, time in s.
Only the deterministic trial (trial 0, mean action) is drawn unless a figure says otherwise.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import xarray as xr
from plotly.subplots import make_subplots

from msdiversity.report import style

MAX_POINTS = 400  # time samples per trace; longer recordings are strided (plots only, not statistics)


def _stride(n: int, max_points: int = MAX_POINTS) -> slice:
    return slice(None, None, max(1, int(np.ceil(n / max_points))))


def member_labels(rec: xr.Dataset) -> list[str]:
    """'m0 · seed 0 · p=2' style labels from the per-member coords that vary across members."""
    labels = []
    varying = [c for c in ("seed", "effort_exponent", "effort_weight", "smoothness_weight", "synergy_weight",
                           "emg_weight") if c in rec.coords and np.unique(rec[c].values).size > 1]
    short = {"seed": "seed ", "effort_exponent": "p=", "effort_weight": "w_eff=", "smoothness_weight": "w_sm=",
             "synergy_weight": "w_syn=", "emg_weight": "w_emg="}
    for i, m in enumerate(rec["member"].values):
        parts = [f"m{int(m)}"]
        for c in varying:
            v = rec[c].values[i]
            parts.append(f"{short[c]}{v:g}" if isinstance(v, (float, np.floating)) else f"{short[c]}{v}")
        labels.append(" · ".join(parts))
    return labels


def joint_is_rotation(rec: xr.Dataset) -> np.ndarray:
    """(joint,) bool. Uses a `joint_is_rotation` coord when the recorder provides one; otherwise
    OpenSim naming (translations end in _tx/_ty/_tz)."""
    if "joint_is_rotation" in rec.coords or "joint_is_rotation" in rec:
        return np.asarray(rec["joint_is_rotation"].values, bool)
    names = [str(j) for j in rec["joint"].values]
    return np.array([not n.endswith(("_tx", "_ty", "_tz")) for n in names])


def _joint_display(values: np.ndarray, is_rot: bool) -> tuple[np.ndarray, str]:
    return (np.rad2deg(values), "deg") if is_rot else (values * 100.0, "cm")


def _first_trial(da: xr.DataArray) -> xr.DataArray:
    return da.isel(trial=0) if "trial" in da.dims else da


def kinematics(rec: xr.Dataset, max_joints: int = 24) -> go.Figure:
    """Reference vs member joint trajectories (trial 0), one panel per tracked joint."""
    joints = [str(j) for j in rec["joint"].values]
    tracked = (np.asarray(rec["tracked_joint"].values, bool) if "tracked_joint" in rec.coords
               else np.ones(len(joints), bool))
    idx = [i for i in range(len(joints)) if tracked[i]][:max_joints]
    is_rot = joint_is_rotation(rec)
    rows, cols = style.grid_shape(len(idx))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[joints[i] for i in idx],
                        horizontal_spacing=0.07, vertical_spacing=min(0.12, 0.5 / max(rows, 1)))
    t = rec["time"].values
    sl = _stride(t.size)
    labels = member_labels(rec)
    q = _first_trial(rec["qpos"]).values  # (member, time, joint)
    for k, j in enumerate(idx):
        r, c = divmod(k, cols)
        ref, unit = _joint_display(rec["qpos_ref"].values[:, j], is_rot[j])
        for m in range(q.shape[0]):
            y, _ = _joint_display(q[m, :, j], is_rot[j])
            fig.add_trace(go.Scatter(x=t[sl], y=y[sl], mode="lines", name=labels[m], legendgroup=labels[m],
                                     showlegend=k == 0, line=dict(color=style.member_color(m), width=1.3),
                                     opacity=0.85), row=r + 1, col=c + 1)
        fig.add_trace(go.Scatter(x=t[sl], y=ref[sl], mode="lines", name="reference", legendgroup="reference",
                                 showlegend=k == 0, line=dict(color=style.REF_COLOR, width=2.5, dash="dash")),
                      row=r + 1, col=c + 1)
        fig.update_yaxes(title_text=unit, row=r + 1, col=c + 1)
    fig.update_xaxes(title_text="time (s)", row=rows)
    fig.update_layout(**style.base_layout(height=150 + 230 * rows))
    return fig


def grf(rec: xr.Dataset) -> go.Figure | None:
    """Ground reaction force per foot and axis: reference vs members (trial 0), N."""
    if "grf" not in rec:
        return None
    feet = [str(f) for f in rec["foot"].values]
    axes = [str(a) for a in rec["axis"].values]
    titles = [f"{'right' if f == 'r' else 'left' if f == 'l' else f} foot, {a}" + (" (vertical)" if a == "z" else "")
              for f in feet for a in axes]
    fig = make_subplots(rows=len(feet), cols=len(axes), subplot_titles=titles, horizontal_spacing=0.07)
    t = rec["time"].values
    sl = _stride(t.size)
    labels = member_labels(rec)
    g = _first_trial(rec["grf"]).values  # (member, time, foot, axis)
    for fi in range(len(feet)):
        for ai in range(len(axes)):
            first = fi == 0 and ai == 0
            for m in range(g.shape[0]):
                fig.add_trace(go.Scatter(x=t[sl], y=g[m, sl, fi, ai], mode="lines", name=labels[m],
                                         legendgroup=labels[m], showlegend=first,
                                         line=dict(color=style.member_color(m), width=1.2), opacity=0.85),
                              row=fi + 1, col=ai + 1)
            if "grf_ref" in rec:
                fig.add_trace(go.Scatter(x=t[sl], y=rec["grf_ref"].values[sl, fi, ai], mode="lines",
                                         name="reference", legendgroup="reference", showlegend=first,
                                         line=dict(color=style.REF_COLOR, width=2.5, dash="dash")),
                              row=fi + 1, col=ai + 1)
    fig.update_yaxes(title_text="N", col=1)
    fig.update_xaxes(title_text="time (s)", row=len(feet))
    fig.update_layout(**style.base_layout(height=180 + 240 * len(feet)))
    return fig


def activation_heatmaps(rec: xr.Dataset, max_members: int = 16) -> go.Figure:
    """One muscle x time heatmap of activation per member (trial 0), shared 0..1 colour scale."""
    act = _first_trial(rec["activation"])  # (member, time, muscle)
    n = min(act.sizes["member"], max_members)
    labels = member_labels(rec)
    rows, cols = style.grid_shape(n, max_cols=4)
    muscles = [str(m) for m in rec["muscle"].values]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=labels[:n], shared_yaxes=True,
                        horizontal_spacing=0.03, vertical_spacing=min(0.1, 0.4 / max(rows, 1)))
    t = rec["time"].values
    sl = _stride(t.size, 200)
    for k in range(n):
        r, c = divmod(k, cols)
        fig.add_trace(go.Heatmap(z=act.values[k, sl, :].T, x=t[sl], y=muscles, zmin=0, zmax=1,
                                 colorscale=style.HEAT, showscale=k == 0,
                                 colorbar=dict(title="activation", len=0.6),
                                 hovertemplate="t=%{x:.3f} s<br>%{y}<br>a=%{z:.2f}<extra></extra>"),
                      row=r + 1, col=c + 1)
    fig.update_yaxes(autorange="reversed")  # first muscle on top
    fig.update_xaxes(title_text="time (s)", row=rows)
    per_row = max(180, 14 * len(muscles) + 60)
    fig.update_layout(**style.base_layout(height=100 + per_row * rows))
    return fig


TRAINING_CURVES = (  # (metrics.nc variable, panel title), most informative first
    ("eval_joint_err_deg", "eval joint error (deg)"),
    ("joint_err_deg", "training joint error (deg)"),
    ("reward_task", "tracking reward / step"),
    ("cost_effort", "effort mean aᵖ"),
    ("episode_length", "episode length (steps)"),
    ("reward_total", "total reward / step"),
)


def training_curves(metrics: xr.Dataset | None, max_vars: int = 4) -> go.Figure | None:
    """Per-member learning curves (dims member, iteration) of up to `max_vars` informative metrics;
    metrics that are constant (e.g. a regulariser that is off) are left out."""
    if metrics is None:
        return None

    def informative(v: str) -> bool:
        a = np.asarray(metrics[v].values, float)
        a = a[np.isfinite(a)]
        return a.size > 1 and float(a.max() - a.min()) > 0

    chosen = [(v, t) for v, t in TRAINING_CURVES
              if v in metrics and set(metrics[v].dims) == {"member", "iteration"} and informative(v)][:max_vars]
    if not chosen:
        return None
    names = [v for v, _ in chosen]
    xname = "env_steps" if "env_steps" in metrics.coords else "iteration"
    x = metrics[xname].values
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[t for _, t in chosen], horizontal_spacing=0.08)
    for k, v in enumerate(names):
        y = metrics[v].transpose("member", "iteration").values
        for m in range(y.shape[0]):
            ok = np.isfinite(y[m])  # eval_* exist every eval_every iterations only
            fig.add_trace(go.Scatter(x=x[ok], y=y[m][ok], mode="lines+markers" if ok.sum() < 40 else "lines",
                                     name=f"m{int(metrics['member'].values[m])}",
                                     legendgroup=str(m), showlegend=k == 0,
                                     line=dict(color=style.member_color(m), width=1.2)), row=1, col=k + 1)
        fig.update_xaxes(title_text=xname.replace("_", " "), row=1, col=k + 1)
    fig.update_layout(**style.base_layout(height=360))
    return fig


# ---------------------------------------------------------------------------------------------------
# Figures from the analysis dataset (variable names documented in msdiversity/analysis/__init__.py)
# ---------------------------------------------------------------------------------------------------

def _has(ds: xr.Dataset | None, *names: str) -> bool:
    return ds is not None and all(n in ds for n in names)


def _finite(a) -> bool:
    a = np.asarray(a, float)
    return a.size > 0 and bool(np.isfinite(a).any())


def specificity_vs_diversity(ana: xr.Dataset, rec: xr.Dataset) -> go.Figure | None:
    """Per member: normalised distance to the leave-one-out ensemble mean, muscles (y) vs movement (x)."""
    if not _has(ana, "div_member_internal", "div_member_external"):
        return None
    x = ana["div_member_external"].values
    y = ana["div_member_internal"].values
    if not (_finite(x) and _finite(y)):  # refused: no trial-to-trial noise floor
        return None
    labels = member_labels(rec)
    hi = float(np.nanmax(np.concatenate([x, y, [1.0]]))) * 1.1
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, hi], y=[0, hi], mode="lines", name="muscles = movement",
                             line=dict(color="#999", dash="dot")))
    for m in range(x.size):
        fig.add_trace(go.Scatter(x=[x[m]], y=[y[m]], mode="markers", name=labels[m],
                                 marker=dict(size=12, color=style.member_color(m), line=dict(width=1, color="#333")),
                                 hovertemplate=f"{labels[m]}<br>movement %{{x:.2f}}<br>muscles %{{y:.2f}}<extra></extra>"))
    fig.update_xaxes(title_text="movement distance (kinematics/GRF), noise floors", range=[0, hi])
    fig.update_yaxes(title_text="muscle-activation distance, noise floors", range=[0, hi], scaleanchor="x",
                     scaleratio=1)
    fig.update_layout(**style.base_layout(height=480))
    return fig


def specificity_bars(ana: xr.Dataset, rec: xr.Dataset) -> go.Figure | None:
    """Per-member joint-angle RMSE per joint (stacked by joint is misleading, so grouped bars)."""
    if not _has(ana, "spec_joint_rmse_deg"):
        return None
    labels = member_labels(rec)
    fig = go.Figure()
    if _has(ana, "spec_joint_rmse_per_joint_deg"):
        per = ana["spec_joint_rmse_per_joint_deg"].transpose("member", "joint")
        for j, name in enumerate(per["joint"].values):
            col = per.values[:, j]
            if _finite(col):
                fig.add_trace(go.Bar(x=labels, y=col, name=str(name)))
    fig.add_trace(go.Scatter(x=labels, y=ana["spec_joint_rmse_deg"].values, mode="markers", name="all tracked joints",
                             marker=dict(symbol="diamond", size=12, color=style.REF_COLOR)))
    fig.update_yaxes(title_text="joint-angle RMSE (deg)", rangemode="tozero")
    fig.update_layout(**style.base_layout(height=400, barmode="group"))
    return fig


def distance_matrices(ana: xr.Dataset, rec: xr.Dataset) -> go.Figure | None:
    """Pairwise band-matched distances between members (noise floors, as the diversity index):
    activations vs kinematics vs GRF. Older analysis files: the plain RMSE ratios."""
    tag = "band" if _has(ana, "div_act_band_norm") else "rmse"
    names = [(v, t) for v, t in ((f"div_act_{tag}_norm", "muscle activations"), (f"div_kin_{tag}_norm", "joint angles"),
                                 (f"div_trans_{tag}_norm", "slide joints"), (f"div_grf_{tag}_norm", "GRF"))
             if _has(ana, v) and _finite(ana[v].values)]
    if not names:
        return None
    labels = [f"m{int(m)}" for m in ana["member"].values]
    zmax = float(max(np.nanmax(ana[v].values) for v, _ in names))
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[t for _, t in names], horizontal_spacing=0.06)
    for k, (v, _) in enumerate(names):
        fig.add_trace(go.Heatmap(z=ana[v].transpose("member", "member_b").values, x=labels, y=labels, zmin=0,
                                 zmax=zmax, colorscale=style.HEAT, showscale=k == 0,
                                 colorbar=dict(title="noise floors"),
                                 hovertemplate="%{y} vs %{x}: %{z:.2f}<extra></extra>"), row=1, col=k + 1)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{k + 1 if k else ''}", row=1, col=k + 1)
    fig.update_layout(**style.base_layout(height=420))
    return fig


def muscle_overlays(rec: xr.Dataset, ana: xr.Dataset | None, max_muscles: int = 24) -> go.Figure:
    """Per muscle: member activations (trial 0), the static-optimisation solutions and the feasible band."""
    muscles = [str(m) for m in rec["muscle"].values][:max_muscles]
    rows, cols = style.grid_shape(len(muscles))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=muscles, shared_yaxes=True,
                        horizontal_spacing=0.05, vertical_spacing=min(0.12, 0.5 / max(rows, 1)))
    t = rec["time"].values
    sl = _stride(t.size)
    labels = member_labels(rec)
    act = _first_trial(rec["activation"]).values  # (member, time, muscle)
    band = _has(ana, "base_feasible_min", "base_feasible_max") and _finite(ana["base_feasible_min"].values)
    so = _has(ana, "base_so_activation") and _finite(ana["base_so_activation"].values)
    pt = ana["phase_time"].values if _has(ana) and "phase_time" in ana.coords else None
    for k, name in enumerate(muscles):
        r, c = divmod(k, cols)
        first = k == 0
        if band and pt is not None:
            lo = ana["base_feasible_min"].sel(muscle=name).values
            hi = ana["base_feasible_max"].sel(muscle=name).values
            fig.add_trace(go.Scatter(x=np.concatenate([pt, pt[::-1]]), y=np.concatenate([hi, lo[::-1]]),
                                     fill="toself", fillcolor=style.BAND_COLOR, line=dict(width=0),
                                     name="feasible range (inverse dynamics)", legendgroup="band",
                                     showlegend=first, hoverinfo="skip"), row=r + 1, col=c + 1)
        for m in range(act.shape[0]):
            fig.add_trace(go.Scatter(x=t[sl], y=act[m, sl, k], mode="lines", name=labels[m], legendgroup=labels[m],
                                     showlegend=first, line=dict(color=style.member_color(m), width=1.0),
                                     opacity=0.75), row=r + 1, col=c + 1)
        if "activation_ref" in rec:  # ground truth of a synthetic reference motion
            fig.add_trace(go.Scatter(x=t[sl], y=rec["activation_ref"].sel(muscle=name).values[sl], mode="lines",
                                     name="ground truth (synthetic motion)", legendgroup="truth", showlegend=first,
                                     line=dict(color=style.REF_COLOR, width=2.5, dash="dash")), row=r + 1, col=c + 1)
        if so and pt is not None:
            so_da = ana["base_so_activation"].sel(muscle=name)
            for i, p in enumerate(so_da["p"].values):
                fig.add_trace(go.Scatter(x=pt, y=so_da.values[i], mode="lines", name=f"static optimisation, p={p:g}",
                                         legendgroup=f"so{i}", showlegend=first,
                                         line=dict(color=style.SO_COLOR, width=3.0 if float(p) == 2 else 1.8,
                                                   dash="solid" if float(p) == 2 else ("dash", "dot", "dashdot")[i % 3])),
                              row=r + 1, col=c + 1)
    fig.update_yaxes(range=[-0.02, 1.02], col=1, title_text="activation")
    fig.update_xaxes(title_text="time (s)", row=rows)
    fig.update_layout(**style.base_layout(height=150 + 230 * rows))
    return fig


def synergy_weights(ana: xr.Dataset, rec: xr.Dataset) -> go.Figure | None:
    """Aligned synergy vectors W (unit norm) per member: one panel per synergy, bars per member."""
    if not _has(ana, "syn_W"):
        return None
    W = ana["syn_W"].transpose("member", "synergy", "muscle")
    n_syn = W.sizes["synergy"]
    muscles = [str(m) for m in W["muscle"].values]
    labels = member_labels(rec)
    ref = W.attrs.get("reference_member")
    fig = make_subplots(rows=n_syn, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[f"synergy {s + 1}" for s in range(n_syn)])
    for s in range(n_syn):
        for m in range(W.sizes["member"]):
            fig.add_trace(go.Bar(x=muscles, y=W.values[m, s], name=labels[m], legendgroup=labels[m],
                                 showlegend=s == 0, marker_color=style.member_color(m)), row=s + 1, col=1)
        fig.update_yaxes(title_text="weight", row=s + 1, col=1)
    title = f"aligned to member m{int(ref)}" if ref is not None else None
    fig.update_layout(**style.base_layout(height=120 + 200 * n_syn, barmode="group", bargap=0.25),
                      title=dict(text=title, font=dict(size=12), x=1, xanchor="right"))
    return fig


def synergy_activations(ana: xr.Dataset, rec: xr.Dataset) -> go.Figure | None:
    """Synergy activation coefficients H (trial 0) per member, one panel per synergy."""
    if not _has(ana, "syn_H"):
        return None
    H = ana["syn_H"].transpose("member", "synergy", "phase")
    n_syn = H.sizes["synergy"]
    x = ana["phase_time"].values if "phase_time" in ana.coords else H["phase"].values
    labels = member_labels(rec)
    rows, cols = style.grid_shape(n_syn)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"synergy {s + 1}" for s in range(n_syn)],
                        horizontal_spacing=0.06)
    for s in range(n_syn):
        r, c = divmod(s, cols)
        for m in range(H.sizes["member"]):
            fig.add_trace(go.Scatter(x=x, y=H.values[m, s], mode="lines", name=labels[m], legendgroup=labels[m],
                                     showlegend=s == 0, line=dict(color=style.member_color(m), width=1.3)),
                          row=r + 1, col=c + 1)
    fig.update_xaxes(title_text="time (s)" if "phase_time" in ana.coords else "% of motion", row=rows)
    fig.update_layout(**style.base_layout(height=150 + 240 * rows))
    return fig


def synergy_matching(ana: xr.Dataset) -> go.Figure | None:
    """Member x member mean cosine of optimally matched synergies, and cross-VAF."""
    names = [(v, t) for v, t in (("syn_match_cosine", "matched-synergy cosine"),
                                 ("syn_cross_vaf", "cross-VAF (row's W fits column's data)")) if _has(ana, v)]
    if not names:
        return None
    labels = [f"m{int(m)}" for m in ana["member"].values]
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[t for _, t in names], horizontal_spacing=0.08)
    for k, (v, _) in enumerate(names):
        z = ana[v].transpose("member", "member_b").values
        fig.add_trace(go.Heatmap(z=z, x=labels, y=labels, zmin=0, zmax=1, colorscale=style.HEAT, showscale=k == 0,
                                 colorbar=dict(title="0..1"), text=np.round(z, 2), texttemplate="%{text}" if z.shape[0] <= 12 else None,
                                 hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>"), row=1, col=k + 1)
        fig.update_yaxes(autorange="reversed", row=1, col=k + 1)
    fig.update_layout(**style.base_layout(height=440))
    return fig


def vaf_curves(ana: xr.Dataset, rec: xr.Dataset) -> go.Figure | None:
    """VAF against number of synergies per member, with the threshold used to choose k."""
    if not _has(ana, "syn_vaf"):
        return None
    vaf = ana["syn_vaf"].transpose("member", "k")
    k = vaf["k"].values
    labels = member_labels(rec)
    fig = go.Figure()
    for m in range(vaf.sizes["member"]):
        fig.add_trace(go.Scatter(x=k, y=100 * vaf.values[m], mode="lines+markers", name=labels[m],
                                 line=dict(color=style.member_color(m), width=1.3)))
    thr = _vaf_threshold(ana)
    fig.add_hline(y=100 * thr, line=dict(color="#999", dash="dot"), annotation_text=f"threshold {100 * thr:g}%")
    fig.update_xaxes(title_text="number of synergies k", dtick=1)
    fig.update_yaxes(title_text="VAF (%)")
    fig.update_layout(**style.base_layout(height=380))
    return fig


def _vaf_threshold(ana: xr.Dataset) -> float:
    for where in (ana["syn_vaf"].attrs, ana["syn_k_chosen"].attrs if "syn_k_chosen" in ana else {}):
        if "vaf_threshold" in where:
            return float(where["vaf_threshold"])
    import json

    try:
        return float(json.loads(ana.attrs.get("analysis_config", "{}")).get("vaf_threshold", 0.9))
    except (ValueError, TypeError):
        return 0.9


def embedding(ana: xr.Dataset, rec: xr.Dataset) -> go.Figure | None:
    """Activation patterns of every (member, trial) in PCA (and UMAP when computed) coordinates."""
    if not _has(ana, "emb_pca"):
        return None
    panels = [("emb_pca", "PCA")]
    if _has(ana, "emb_umap") and _finite(ana["emb_umap"].values):
        panels.append(("emb_umap", "UMAP"))
    titles = []
    for v, t in panels:
        if v == "emb_pca" and "emb_pca_explained" in ana:
            ev = ana["emb_pca_explained"].values
            titles.append(f"PCA (PC1 {100 * ev[0]:.0f}%, PC2 {100 * ev[1]:.0f}% of variance)" if ev.size > 1 else t)
        else:
            titles.append(t)
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=titles, horizontal_spacing=0.08)
    labels = member_labels(rec)
    cluster = ana["emb_cluster"].values if "emb_cluster" in ana else None
    for k, (v, _) in enumerate(panels):
        X = ana[v].transpose("member", "trial", ...).values  # (member, trial, component)
        for m in range(X.shape[0]):
            fam = f" · family {int(cluster[m]) + 1}" if cluster is not None else ""
            size = [14] + [8] * (X.shape[1] - 1)
            symbol = ["diamond"] + ["circle"] * (X.shape[1] - 1)
            fig.add_trace(go.Scatter(x=X[m, :, 0], y=X[m, :, 1] if X.shape[2] > 1 else np.zeros(X.shape[1]),
                                     mode="markers", name=labels[m] + fam, legendgroup=labels[m], showlegend=k == 0,
                                     marker=dict(size=size, symbol=symbol, color=style.member_color(m),
                                                 line=dict(width=1, color="#333")),
                                     text=[f"{labels[m]}{fam}, trial {t}" for t in range(X.shape[1])],
                                     hovertemplate="%{text}<extra></extra>"), row=1, col=k + 1)
        fig.update_xaxes(title_text="component 1", row=1, col=k + 1)
        fig.update_yaxes(title_text="component 2", row=1, col=k + 1)
    fig.update_layout(**style.base_layout(height=460))
    return fig


def feasible_set(ana: xr.Dataset | None, rec: xr.Dataset, max_muscles: int = 24) -> go.Figure | None:
    """Valero-Cuevas-style feasible activation distributions: per sampled phase (rows) and muscle,
    the uniform samples of {a : A a = b, 0 ≤ a ≤ 1} as a violin, members (trial 0) as dots, the
    static-optimisation solution (p = 2) and the ground truth (synthetic motions) as markers.
    Muscles: the `max_muscles` with the widest feasible spread, in model order."""
    if not _has(ana, "base_feasible_samples") or not _finite(ana["base_feasible_samples"].values):
        return None
    smp = ana["base_feasible_samples"].transpose("fphase", "fsample", "muscle")
    muscles = [str(m) for m in smp["muscle"].values]
    spread = np.nanmean(np.nanstd(smp.values, axis=1), axis=0)
    keep = np.sort(np.argsort(-np.nan_to_num(spread))[:max_muscles])
    names = [muscles[i] for i in keep]
    fph = smp["fphase"].values
    rows = len(fph)
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=min(0.08, 0.4 / max(rows, 1)),
                        subplot_titles=[f"{p:g} % of the cycle" for p in fph])
    labels = member_labels(rec) if "member" in rec.coords else []
    act = None
    if "activation" in rec and "base_frame" in ana:
        frames = ana["base_frame"].sel(phase=fph).values
        act = _first_trial(rec["activation"]).values[:, frames][:, :, keep]  # (member, fphase, muscle)
        ids = [int(m) for m in rec["member"].values]
        ana_ids = [int(m) for m in ana["member"].values] if "member" in ana.coords else ids
    so = (ana["base_so_activation"].sel(p=2.0) if _has(ana, "base_so_activation") and 2.0 in ana["p"].values
          else None)
    for r, p in enumerate(fph):
        first = r == 0
        for j, i in enumerate(keep):
            fig.add_trace(go.Violin(x=[names[j]] * smp.sizes["fsample"], y=smp.values[r, :, i], name="feasible set",
                                    legendgroup="feas", showlegend=first and j == 0, line=dict(width=0.6, color="#777"),
                                    fillcolor=style.BAND_COLOR, points=False, spanmode="hard", width=0.9,
                                    hoverinfo="skip"), row=r + 1, col=1)
        if act is not None:
            for m in range(act.shape[0]):
                matched = "base_feasible_percentile" not in ana or (
                    ids[m] in ana_ids and np.isfinite(ana["base_feasible_percentile"].values[ana_ids.index(ids[m]), r]).any())
                if not matched:
                    continue
                fig.add_trace(go.Scatter(x=names, y=act[m, r], mode="markers", name=labels[m] if labels else f"m{m}",
                                         legendgroup=f"m{m}", showlegend=first,
                                         marker=dict(color=style.member_color(m), size=6, line=dict(width=0.5, color="white"))),
                              row=r + 1, col=1)
        if so is not None:
            fig.add_trace(go.Scatter(x=names, y=so.sel(phase=p).values[keep], mode="markers",
                                     name="static optimisation, p=2", legendgroup="so", showlegend=first,
                                     marker=dict(color=style.SO_COLOR, symbol="line-ew-open", size=14, line=dict(width=2.5))),
                          row=r + 1, col=1)
        if "activation_ref" in rec:
            t = np.interp(float(ana["phase_time"].sel(phase=p)) if "phase_time" in ana.coords else 0.0,
                          rec["time"].values, np.arange(rec.sizes["time"]))
            y = rec["activation_ref"].isel(time=int(round(t))).sel(muscle=names).values
            fig.add_trace(go.Scatter(x=names, y=y, mode="markers", name="ground truth (synthetic motion)",
                                     legendgroup="truth", showlegend=first,
                                     marker=dict(color=style.REF_COLOR, symbol="diamond-open", size=9, line=dict(width=2))),
                          row=r + 1, col=1)
        fig.update_yaxes(range=[-0.02, 1.02], title_text="activation", row=r + 1, col=1)
    fig.update_layout(**style.base_layout(height=140 + 230 * rows, violinmode="overlay"))
    return fig


def feasible_set_caption(ana: xr.Dataset | None) -> str:
    """Caption for `feasible_set`: what is drawn, the coverage and vector-error numbers, and the
    validity of the inverse dynamics it rests on (HTML-escaped text)."""
    import html

    if ana is None:
        return ""
    parts = ["Grey: the distribution of each muscle's activation over all activation vectors that produce the "
             "reference's inverse-dynamics torques within 0 ≤ a ≤ 1 (uniform samples of the feasible set, "
             "rounded hit-and-run). Dots: members (deterministic trial); red dash: static optimisation (p = 2)."]
    if _has(ana, "base_feasible_coverage"):
        cov = ana["base_feasible_coverage"]
        exp = cov.attrs.get("uniform_expectation", np.nan)
        vr = np.nanmean(ana["base_feasible_var_ratio"].values) if "base_feasible_var_ratio" in ana else np.nan
        parts.append(f"The ensemble's range covers on average {100 * np.nanmean(cov.values):.0f} % of each muscle's "
                     f"feasible distribution (members drawn uniformly from the feasible set would cover "
                     f"{100 * float(exp):.0f} %); its total variance is {100 * vr:.0f} % of the feasible set's.")
    if _has(ana, "base_torque_error_rel") and _finite(ana["base_torque_error_rel"].values):
        e = ana["base_torque_error_rel"].values
        parts.append(f"Members' activation vectors miss the torques by {np.nanmin(e):.2f}-{np.nanmax(e):.2f} "
                     "(relative torque error; 0 = produced exactly, 1 = no better than all muscles off): members "
                     "are not exactly inside the set, and percentiles place each muscle separately.")
    if _has(ana, "base_root_fz_mean_pct_bw"):
        parts.append(f"Root residual vertical force {float(ana['base_root_fz_mean_pct_bw']):.1f} % body weight on "
                     f"average (max {float(ana['base_root_fz_max_pct_bw']):.1f} %).")
    if _has(ana, "base_id_valid") and int(ana["base_id_valid"]) == 0:
        parts.append("NOT VALID FOR GAIT: " + str(ana["base_id_valid"].attrs.get("long_name", "")) + ".")
    return html.escape(" ".join(parts))


def null_space_phase(ana: xr.Dataset) -> go.Figure | None:
    """Null-space fraction of member-to-member activation differences over the motion, with chance."""
    if not _has(ana, "div_null_fraction_phase") or not _finite(ana["div_null_fraction_phase"].values):
        return None
    ph = ana["phase"].values
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ph, y=ana["div_null_fraction_phase"].values, mode="lines", name="members",
                             line=dict(color=style.member_color(0), width=2)))
    if _has(ana, "div_null_fraction_chance"):
        c = float(ana["div_null_fraction_chance"].values)
        fig.add_trace(go.Scatter(x=[ph[0], ph[-1]], y=[c, c], mode="lines", name="random differences",
                                 line=dict(color="#999", dash="dot")))
    fig.update_xaxes(title_text="phase (%)")
    fig.update_yaxes(title_text="null-space fraction", range=[0, 1.02])
    fig.update_layout(**style.base_layout(height=340))
    return fig
