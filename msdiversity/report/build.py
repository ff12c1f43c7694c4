"""Assemble the self-contained HTML diversity report from the recording / analysis / metrics datasets.

The page embeds plotly.js once, inline, and uses only system fonts, so it opens offline and can be
e-mailed as one file. Every number and figure comes from the datasets passed in.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from msdiversity.errors import InputError
from msdiversity.report import figures as F
from msdiversity.report import methods, style, text
from msdiversity.util.io import write_text_atomic

PLOT_CONFIG = {"displaylogo": False, "responsive": True,
               "toImageButtonOptions": {"format": "svg", "scale": 1}}


@dataclass
class ReportInputs:
    recording: xr.Dataset
    analysis: xr.Dataset | None = None
    metrics: xr.Dataset | None = None


def _open(path: Path) -> xr.Dataset:
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read netCDF dataset: {e}", path=path) from None


def load_inputs(results_dir: str | Path, require_analysis: bool = True) -> ReportInputs:
    """Read `recording.nc`, `analysis.nc` and (optional) `metrics.nc` from a results directory."""
    d = Path(results_dir)
    rec_p, ana_p, met_p = d / "recording.nc", d / "analysis.nc", d / "metrics.nc"
    if not rec_p.exists():
        raise InputError("no recording.nc here; run `msdiversity record` (or `msdiversity run`) first", path=d)
    if require_analysis and not ana_p.exists():
        raise InputError("no analysis.nc here; run `msdiversity analyze` (or `msdiversity run`) first", path=d)
    rec = _open(rec_p)
    for v in ("activation", "qpos", "qpos_ref"):
        if v not in rec:
            raise InputError(f"recording has no variable '{v}' (see docs/CONTRACTS.md)", path=rec_p, field=v)
    return ReportInputs(rec, _open(ana_p) if ana_p.exists() else None, _open(met_p) if met_p.exists() else None)


CSS = f"""
:root {{ --fg:#1b1f24; --muted:#5a6370; --line:#dde1e6; --accent:#0b5cad; --bg:#fff; --card:#f6f8fa; }}
* {{ box-sizing:border-box; }}
body {{ margin:0; font-family:{style.FONT}; color:var(--fg); background:var(--bg); line-height:1.5; }}
header {{ padding:24px 32px 12px; border-bottom:1px solid var(--line); }}
header h1 {{ margin:0 0 4px; font-size:1.6rem; }}
header .sub {{ color:var(--muted); font-size:.95rem; }}
nav {{ position:sticky; top:0; z-index:10; background:#fff; border-bottom:1px solid var(--line); padding:6px 32px; }}
nav a {{ margin-right:16px; color:var(--accent); text-decoration:none; font-size:.92rem; white-space:nowrap; }}
main {{ padding:8px 32px 48px; max-width:1400px; }}
section {{ margin-top:28px; }}
h2 {{ border-bottom:2px solid var(--line); padding-bottom:4px; font-size:1.3rem; }}
h3 {{ font-size:1.05rem; margin:20px 0 6px; }}
.cards {{ display:flex; flex-wrap:wrap; gap:12px; margin:12px 0; }}
.card {{ background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px 14px; min-width:190px; }}
.card .k {{ color:var(--muted); font-size:.8rem; text-transform:uppercase; letter-spacing:.04em; }}
.card .v {{ font-size:1.35rem; font-weight:600; }}
.card .ci {{ color:var(--muted); font-size:.82rem; }}
.conclusion p {{ margin:6px 0; max-width:1000px; }}
.caption {{ color:var(--muted); font-size:.9rem; max-width:1000px; margin:2px 0 6px; }}
.fig {{ border:1px solid var(--line); border-radius:6px; margin:6px 0 16px; padding:4px; }}
table.data, table.kv {{ border-collapse:collapse; font-size:.88rem; margin:8px 0; }}
table.data th, table.data td, table.kv td {{ border:1px solid var(--line); padding:4px 8px; text-align:right; }}
table.data th {{ background:var(--card); }}
table.data td:first-child, table.kv td:first-child, table.data th:first-child {{ text-align:left; }}
table.kv td:last-child {{ text-align:left; font-family:ui-monospace, monospace; font-size:.82rem; }}
details {{ margin:4px 0; }} summary {{ cursor:pointer; font-family:ui-monospace, monospace; }}
.note {{ color:var(--muted); font-size:.88rem; }}
.warn {{ background:#fff4e5; border:1px solid #f0c36d; padding:8px 12px; border-radius:6px; }}
code {{ font-family:ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:.9em; }}
"""


def _fig_html(fig, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOT_CONFIG,
                       default_width="100%", default_height=f"{int(fig.layout.height or 450)}px")


class _Page:
    """Collects sections; figures get stable ids `fig-<name>`."""

    def __init__(self):
        self.sections: list[tuple[str, str, list[str]]] = []  # (id, title, html parts)
        self.figure_ids: list[str] = []

    def section(self, sid: str, title: str) -> list[str]:
        parts: list[str] = []
        self.sections.append((sid, title, parts))
        return parts

    def figure(self, parts: list[str], name: str, fig, title: str, caption: str, missing: str | None = None):
        parts.append(f"<h3>{html.escape(title)}</h3>")
        if fig is None:
            parts.append(f"<p class='note'>{html.escape(missing or 'Not available for this experiment.')}</p>")
            return
        parts.append(f"<p class='caption'>{caption}</p>")
        div_id = f"fig-{name}"
        self.figure_ids.append(div_id)
        parts.append(f"<div class='fig'>{_fig_html(fig, div_id)}</div>")


def _card(k: str, v: str, ci: str = "") -> str:
    return (f"<div class='card'><div class='k'>{html.escape(k)}</div><div class='v'>{html.escape(v)}</div>"
            f"<div class='ci'>{html.escape(ci)}</div></div>")


def _est_card(k: str, e: text.Estimate, digits: int = 2) -> str:
    if not e.ok:
        return _card(k, "n/a")
    u = f" {e.units}" if e.units and e.units not in ("1", "°") else e.units if e.units == "°" else ""
    digits = e.digits(digits)
    ci = f"95% CI {text.ci_range(e.lo, e.hi, digits)}" if math.isfinite(e.lo) else ""
    return _card(k, f"{e.value:.{digits}f}{u}", ci)


def _stats_table(ana: xr.Dataset | None) -> str:
    if ana is None or "test" not in ana.coords:
        return "<p class='note'>No statistics in the analysis dataset.</p>"
    cols = [("description", "test"), ("n", "n (members)"), ("statistic_name", "statistic"), ("statistic", "value"),
            ("p", "p (permutation)"), ("effect_name", "effect size"), ("effect_size", "estimate"),
            ("ci_low", "95% CI low"), ("ci_high", "95% CI high"), ("note", "note")]
    head = "<tr><th>name</th>" + "".join(f"<th>{html.escape(h)}</th>" for _, h in cols) + "</tr>"
    rows = []
    for t in ana["test"].values:
        row = text._test_row(ana, str(t))
        cells = []
        for key, _ in cols:
            v = row.get(key, "")
            if key == "p" and v != "":
                v = text.fmt_p(float(v))
            elif isinstance(v, (float, np.floating)):
                v = f"{v:.3g}"
            cells.append(f"<td>{html.escape(str(v))}</td>")
        rows.append(f"<tr><td><code>{html.escape(str(t))}</code></td>{''.join(cells)}</tr>")
    return f"<table class='data'>{head}{''.join(rows)}</table>"


def _member_table(rec: xr.Dataset, ana: xr.Dataset | None) -> str:
    cols = []
    for c in ("seed", "effort_exponent", "effort_weight", "smoothness_weight", "synergy_weight", "emg_weight"):
        if c in rec.coords and (np.unique(rec[c].values).size > 1 or np.any(rec[c].values != 0) or c == "seed"):
            cols.append((c.replace("_", " "), [f"{x:g}" if isinstance(x, float) else str(x) for x in rec[c].values.tolist()]))
    for v, h, scale, d in (("spec_joint_rmse_deg", "joint RMSE (°)", 1, 2), ("spec_body_err_cm", "body error (cm)", 1, 2),
                           ("spec_grf_rmse_pct_bw", "GRF RMSE (% BW)", 1, 1),
                           ("div_member_internal", "muscle distance", 1, 2),
                           ("div_member_external", "movement distance", 1, 2),
                           ("base_inside_fraction", "inside feasible band (%)", 100, 0),
                           ("emb_cluster", "solution family", 1, 0)):
        if ana is not None and v in ana and F._finite(ana[v].values):
            vals = ana[v].values * scale + (1 if v == "emb_cluster" else 0)
            cols.append((h, [f"{x:.{d}f}" for x in vals]))
    if ana is not None and "spec_matched" in ana:
        cols.append(("compared for diversity", ["yes" if x else "no (tracking)" for x in ana["spec_matched"].values]))
    if "alive" in rec:
        alive = rec["alive"].isel(trial=0).mean("time").values * 100
        cols.append(("alive, trial 0 (%)", [f"{x:.0f}" for x in alive]))
    head = "<tr><th>member</th>" + "".join(f"<th>{html.escape(h)}</th>" for h, _ in cols) + "</tr>"
    rows = "".join("<tr><td>m%d</td>%s</tr>" % (int(m), "".join(f"<td>{html.escape(c[1][i])}</td>" for c in cols))
                   for i, m in enumerate(rec["member"].values))
    return f"<table class='data'>{head}{rows}</table>"


def render_report(inputs: ReportInputs, title: str | None = None) -> tuple[str, list[str]]:
    """The report as one HTML string, and the ids of the figure divs it contains."""
    rec, ana, met = inputs.recording, inputs.analysis, inputs.metrics
    exp = str(rec.attrs.get("experiment", "experiment"))
    title = title or f"Diversity report: {exp}"
    h = text.headline(rec, ana)
    page = _Page()

    # --- summary
    s = page.section("summary", "Summary")
    s.append("<div class='cards'>" + _card("model", h.model) + _card("members × trials", f"{h.n_members} × {h.n_trials}",
                                                  f"{h.n_matched} compared for diversity" if h.match_note else "")
             + _est_card("joint-angle RMSE", h.joint_rmse_deg, 1)
             + (_est_card("GRF RMSE", h.grf_rmse_pct_bw, 1) if h.has_grf else "")
             + _est_card("muscle diversity D_int", h.d_int, 1) + _est_card("movement diversity D_ext", h.d_ext, 1)
             + _est_card("diversity index", h.index, 2)
             + (_est_card("null-space fraction", h.null_fraction, 2) if h.null_fraction.ok else "")
             + (_card("permutation test p", text.fmt_p(float(h.test["p"])), "activation vs movement distance")
                if h.test.get("p") is not None else "") + "</div>")
    s.append(f"<p class='note'>Motion: {html.escape(h.motion)}</p>")
    if ana is None:
        s.append("<p class='warn'>analysis.nc was not found: only the recorded trajectories are shown.</p>")
    s.append("<div class='conclusion'>" + "".join(f"<p>{html.escape(p)}</p>" for p in text.conclusion(h)) + "</div>")
    page.figure(s, "spec-vs-div", F.specificity_vs_diversity(ana, rec) if ana is not None else None,
                "Muscles vs movement, per member",
                "Each dot is one member: its distance from the rest of the ensemble (leave-one-out mean) in muscle "
                "activations (vertical) and in movement (horizontal), both in units of trial-to-trial noise. Dots "
                "above the dotted diagonal differ more in their muscles than in their movement.")

    # --- specificity
    s = page.section("kinematics", "Specificity: kinematics and GRF")
    page.figure(s, "kinematics", F.kinematics(rec), "Joint angles: reference vs members",
                "Dashed black: the reference motion. Coloured: each member's deterministic rollout (trial 0). "
                "Rotations in degrees, translations in cm.")
    page.figure(s, "grf", F.grf(rec), "Ground reaction forces",
                "Dashed black: reference GRF (when known). Coloured: each member. Newtons, world frame, z vertical.",
                missing="This model has no feet in contact with the ground, so there is no GRF to compare.")
    page.figure(s, "spec-bars", F.specificity_bars(ana, rec) if ana is not None else None,
                "Tracking error per member", "Joint-angle RMSE of each member over the tracked joints (diamonds) "
                "and per joint (bars).")

    # --- muscles
    s = page.section("muscles", "Diversity: muscle activations")
    page.figure(s, "heatmaps", F.activation_heatmaps(rec), "Activation heatmaps, one per member",
                "Each panel is one member's activation (0 = silent, 1 = maximal) of every muscle over time, "
                "deterministic rollout. Differences between panels with matching kinematics are the diversity this "
                "report is about.")
    page.figure(s, "muscle-overlays", F.muscle_overlays(rec, ana), "Per-muscle activations vs classical solutions",
                "Coloured: members. Red: static optimisation (min Σ a<sup>p</sup> subject to the reference's "
                "inverse-dynamics torques; solid p = 2). Grey band: the range of activation each muscle can take "
                "while the others still produce those torques (feasible band).")
    page.figure(s, "feasible-set", F.feasible_set(ana, rec), "Where members sit in the feasible activation set",
                F.feasible_set_caption(ana), missing="The feasible set was not sampled (no baselines, or "
                "[analysis] feasible_frames = 0).")
    from msdiversity.report import gait_panels as GP  # EMG / classical (OpenSim) comparison, when analysed

    if GP.emg_panels(rec, ana) is not None:
        page.figure(s, "emg-gait", GP.emg_panels(rec, ana), "Members vs EMG and classical solutions over the gait cycle",
                    GP.caption(ana))
    if GP.classical_bars(rec, ana) is not None:
        page.figure(s, "classical-r", GP.classical_bars(rec, ana), "Members vs classical (OpenSim) activations",
                    "Pearson r over the phase samples the classical file covers, per muscle: dots = members "
                    "(deterministic trial), bars = ensemble mean. " + GP.html.escape(str(ana.attrs.get("cmp_classical", ""))))
    if ana is not None and F.null_space_phase(ana) is not None:
        page.figure(s, "null-space", F.null_space_phase(ana), "How much of the difference is redundancy",
                    "Share of the member-to-member activation differences (all pairs) at each phase that lies in the "
                    "null space of the muscles' activation-to-joint-torque map at the reference state: it changes "
                    "no joint torque. Dotted: what differences in random directions would give.")
    page.figure(s, "distances", F.distance_matrices(ana, rec) if ana is not None else None,
                "Pairwise distances between members",
                "Distance between every pair of members in units of their trial-to-trial variability, measured "
                "per frequency bin in a band matched across modalities (as the diversity index; 1 ≈ as different "
                "as two rollouts of the same member), so the body's smoothing of noise does not favour movement. "
                "Compare the muscle panel with the movement panels on the same colour scale.")

    # --- synergies
    s = page.section("synergies", "Muscle synergies")
    page.figure(s, "syn-weights", F.synergy_weights(ana, rec) if ana is not None else None, "Synergy weights",
                "Non-negative synergy vectors (unit norm) of every member at the common number of synergies, "
                "aligned to a reference member by optimal matching.")
    page.figure(s, "syn-activations", F.synergy_activations(ana, rec) if ana is not None else None,
                "Synergy activation coefficients", "Time course of each aligned synergy's activation, per member.")
    page.figure(s, "syn-matching", F.synergy_matching(ana) if ana is not None else None, "Synergy matching",
                "Left: mean cosine similarity of optimally matched synergies between two members (1 = identical). "
                "Right: variance of the column member's activations explained by the row member's synergies.")
    page.figure(s, "vaf", F.vaf_curves(ana, rec) if ana is not None else None, "Variance accounted for (VAF)",
                "VAF of the non-negative factorisation against the number of synergies, per member.")

    # --- embedding
    s = page.section("embedding", "Solution space")
    page.figure(s, "embedding", F.embedding(ana, rec) if ana is not None else None, "Embedding of activation patterns",
                "Each point is one rollout's whole activation pattern projected to two dimensions (diamonds: "
                "deterministic rollout; circles: stochastic rollouts of the same member). Separated groups of "
                "members suggest distinct solution families; a continuum suggests graded redundancy.")

    # --- statistics
    s = page.section("statistics", "Statistics")
    s.append("<h3>Tests</h3><p class='caption'>Independent units are members. p-values from permutation tests "
             "(one-sided); effect sizes with 95% bootstrap CIs.</p>" + _stats_table(ana))
    s.append("<h3>Members</h3>" + _member_table(rec, ana))

    # --- training
    s = page.section("training", "Training")
    page.figure(s, "training", F.training_curves(met), "Training curves",
                "Learning curves of every member (from metrics.nc): the deterministic policy's tracking error, "
                "evaluated from random reference phases every few iterations, and means over the training rollouts.",
                missing="metrics.nc was not found.")

    # --- methods
    s = page.section("methods", "Methods")
    s.append(methods.methods_html(rec, ana, met))

    import plotly.offline

    nav = "".join(f"<a href='#{sid}'>{html.escape(t)}</a>" for sid, t, _ in page.sections)
    body = "".join(f"<section id='{sid}'><h2>{html.escape(t)}</h2>{''.join(parts)}</section>"
                   for sid, t, parts in page.sections)
    when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    doc = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
           f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
           f"<meta name='generator' content='msdiversity {html.escape(methods.versions()['msdiversity'])}'>"
           f"<title>{html.escape(title)}</title><style>{CSS}</style>"
           f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script></head><body>"
           f"<header><h1>{html.escape(title)}</h1><div class='sub'>{html.escape(h.model)} · {h.n_members} members · "
           f"generated {html.escape(when)} by msdiversity</div></header><nav>{nav}</nav><main>{body}</main>"
           f"</body></html>")
    return doc, page.figure_ids


def build_report(inputs: ReportInputs, out_path: str | Path, title: str | None = None) -> Path:
    """Render and write the report atomically; returns the path."""
    doc, _ = render_report(inputs, title)
    return write_text_atomic(out_path, doc)
