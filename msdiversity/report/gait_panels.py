"""Report panels for the EMG and classical-solution comparison (`cmp_` variables of analysis.nc).

- `emg_panels`: per EMG channel, over the analysis phase (% gait cycle when the reference has gait
  events): each member's mean activation of the channel's muscles, the ensemble mean, the EMG
  envelope (scaled to the ensemble mean by least squares, since envelopes are normalised to their
  own peak) and, when given, the classical (OpenSim) solution of the same muscles.
- `classical_bars`: r of each member and of the ensemble mean with each classical solution, per muscle.
- `caption`: one sentence saying which comparison is normative.
"""

from __future__ import annotations

import html
import warnings

import numpy as np
import plotly.graph_objects as go
import xarray as xr
from plotly.subplots import make_subplots

from msdiversity.report import style


def _labels(rec: xr.Dataset) -> list[str]:
    from msdiversity.report.figures import member_labels

    return member_labels(rec)


def _x_title(ana: xr.Dataset) -> str:
    return "% gait cycle" if str(ana.attrs.get("cmp_phase", "")).startswith("% gait cycle") else "% of the motion"


def _ls_scale(a: np.ndarray, e: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(e)
    den = float(e[ok] @ e[ok]) if ok.any() else 0.0
    return float(a[ok] @ e[ok] / den) if den > 0 else 1.0


def emg_panels(rec: xr.Dataset, ana: xr.Dataset | None) -> go.Figure | None:
    if ana is None or "cmp_emg_envelope" not in ana:
        return None
    chans = [str(c) for c in ana["emg_channel"].values]
    mus = [str(m) for m in ana["emg_muscles"].values]
    normative = str(ana.attrs.get("cmp_emg_comparison", "")).startswith("normative")
    rows, cols = style.grid_shape(len(chans))
    titles = [f"{c} ({m.replace('+', ', ')})" if c != m else c.replace("+", ", ") for c, m in zip(chans, mus)]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, shared_yaxes=True, horizontal_spacing=0.05,
                        vertical_spacing=min(0.12, 0.5 / max(rows, 1)))
    x = ana["phase"].values
    act = ana["cmp_emg_activation"].transpose("member", "phase", "emg_channel").values
    env = ana["cmp_emg_envelope"].transpose("phase", "emg_channel").values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ens = np.nanmean(act, axis=0)  # (P, E)
    labels = _labels(rec)
    has_cls = "cmp_cls_activation" in ana
    muscles = [str(m) for m in ana["muscle"].values] if has_cls else []
    emg_name = "EMG envelope" + (" (normative: another trial)" if normative else "")
    for k in range(len(chans)):
        r, c = divmod(k, cols)
        first = k == 0
        for m in range(act.shape[0]):
            fig.add_trace(go.Scatter(x=x, y=act[m, :, k], mode="lines", name=labels[m], legendgroup=labels[m],
                                     showlegend=first, line=dict(color=style.member_color(m), width=1.0),
                                     opacity=0.75), row=r + 1, col=c + 1)
        fig.add_trace(go.Scatter(x=x, y=ens[:, k], mode="lines", name="ensemble mean", legendgroup="ens",
                                 showlegend=first, line=dict(color="#333333", width=2.2)), row=r + 1, col=c + 1)
        s = _ls_scale(ens[:, k], env[:, k])
        fig.add_trace(go.Scatter(x=x, y=s * env[:, k], mode="lines", name=emg_name + " × LS scale",
                                 legendgroup="emg", showlegend=first,
                                 line=dict(color=style.REF_COLOR, width=2.5, dash="dash")), row=r + 1, col=c + 1)
        if has_cls:
            idx = [muscles.index(mm) for mm in mus[k].split("+") if mm in muscles]
            for j, name in enumerate(ana["classical"].values):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    y = np.nanmean(ana["cmp_cls_activation"].values[j][:, idx], axis=1)
                fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=f"classical: {name}", legendgroup=f"cls{j}",
                                         showlegend=first, line=dict(color=style.SO_COLOR, width=2.5,
                                                                     dash=("solid", "dot", "dashdot")[j % 3])),
                              row=r + 1, col=c + 1)
    fig.update_yaxes(col=1, title_text="activation")
    fig.update_xaxes(title_text=_x_title(ana), row=rows)
    fig.update_layout(**style.base_layout(height=150 + 230 * rows))
    return fig


def classical_bars(rec: xr.Dataset, ana: xr.Dataset | None, max_muscles: int = 80) -> go.Figure | None:
    if ana is None or "cmp_cls_r" not in ana:
        return None
    names = [str(n) for n in ana["classical"].values]
    muscles = [str(m) for m in ana["muscle"].values][:max_muscles]
    fig = make_subplots(rows=len(names), cols=1, subplot_titles=[f"r with {n}" for n in names],
                        vertical_spacing=0.12)
    labels = _labels(rec)
    for j in range(len(names)):
        r = ana["cmp_cls_r"].isel(classical=j).transpose("member", "muscle").values[:, :len(muscles)]
        for m in range(r.shape[0]):
            fig.add_trace(go.Scatter(x=muscles, y=r[m], mode="markers", name=labels[m], legendgroup=labels[m],
                                     showlegend=j == 0, marker=dict(color=style.member_color(m), size=6)),
                          row=j + 1, col=1)
        fig.add_trace(go.Bar(x=muscles, y=ana["cmp_cls_r_ensemble"].isel(classical=j).values[:len(muscles)],
                             name="ensemble mean", legendgroup="ens", showlegend=j == 0,
                             marker=dict(color="rgba(120,120,120,0.45)")), row=j + 1, col=1)
    fig.update_yaxes(range=[-1.05, 1.05], title_text="Pearson r")
    fig.update_layout(**style.base_layout(height=220 + 300 * len(names)))
    return fig


def _fmt(v) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.2f}"


def caption(ana: xr.Dataset | None) -> str:
    """HTML caption for the EMG panel (escaped), naming the threshold, the source and normative use."""
    if ana is None:
        return ""
    a = ana.attrs
    thr = float(a.get("cmp_on_threshold", 0.25))
    parts = [f"Over {html.escape(str(a.get('cmp_phase', '')))}. Thin coloured: each member's mean activation of "
             "the channel's muscles (deterministic trial); dark: ensemble mean; dashed black: EMG envelope, "
             "normalised to its peak and then scaled to the ensemble mean by least squares; red: classical "
             "OpenSim solution of the same muscles (NaN where the file does not cover the cycle)."]
    if "cmp_emg_comparison" in a:
        normative = str(a["cmp_emg_comparison"]).startswith("normative")
        parts.append(("<b>Normative comparison</b>: the EMG comes from another trial or subject "
                      f"({html.escape(str(a.get('cmp_emg_phase', '')))}); only the timing over the gait cycle is "
                      "comparable." if normative else "EMG of the same trial as the motion."))
        parts.append(f"EMG: {html.escape(str(a.get('cmp_emg_source', '')))}; {html.escape(str(a.get('cmp_emg_processing', '')))}. "
                     f"{html.escape(str(a.get('cmp_emg_mapping', '')))}.")
    if "cmp_emg_r_ensemble" in ana:
        rows = ", ".join(f"{html.escape(str(c))} {_fmt(r)} / {_fmt(o)}" for c, r, o in
                         zip(ana["emg_channel"].values, ana["cmp_emg_r_ensemble"].values,
                             ana["cmp_emg_onoff_ensemble"].values))
        parts.append(f"Ensemble mean vs EMG, r / on-off agreement (on = above {thr:g} × own maximum): {rows}.")
    if "cmp_classical" in a:
        parts.append(f"Classical: {html.escape(str(a['cmp_classical']))}.")
    return " ".join(parts)
