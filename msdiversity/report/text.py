"""Headline numbers and plain-language text generated from the analysis dataset.

`headline(rec, ana)` collects the numbers (with 95 % confidence intervals) that the summary shows;
`conclusion(h)` turns them into careful sentences. Wording rules: say what was measured and on how
many members, give intervals, never claim more than the test supports (a non-significant test is
"not detected", not "absent"), and flag when tracking is too poor for the diversity to mean much.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

POOR_TRACKING_DEG = 5.0  # joint RMSE above which diversity may reflect tracking failure, not redundancy
ALPHA = 0.05


def ci_range(lo: float, hi: float, digits: int = 2) -> str:
    """'1.10–1.40', but '-4.66 to -0.92' when a bound is negative (a dash would read as a minus)."""
    sep = " to " if min(lo, hi) < 0 else "–"
    return f"{lo:.{digits}f}{sep}{hi:.{digits}f}"


@dataclass(frozen=True)
class Estimate:
    """A number with a 95 % interval (`lo`, `hi` NaN when unknown) and its units."""

    value: float
    lo: float = math.nan
    hi: float = math.nan
    units: str = ""
    how: str = ""  # how the interval was obtained

    @property
    def ok(self) -> bool:
        return math.isfinite(self.value)

    def digits(self, minimum: int = 1) -> int:
        """Decimals that resolve the interval (at least `minimum`, at most 4)."""
        half = (self.hi - self.lo) / 2 if math.isfinite(self.lo) and math.isfinite(self.hi) else math.nan
        if not math.isfinite(half) or half <= 0:
            return minimum
        return int(min(4, max(minimum, -math.floor(math.log10(half)))))

    def fmt(self, digits: int = 2, unit_sep: str = " ") -> str:
        """'1.23 unit (95% CI 1.10–1.40)'; `digits` is the minimum number of decimals."""
        if not self.ok:
            return "n/a"
        digits = self.digits(digits)
        u = f"{unit_sep}{self.units}" if self.units and self.units != "1" else ""
        s = f"{self.value:.{digits}f}{u}"
        if math.isfinite(self.lo) and math.isfinite(self.hi):
            s += f" (95% CI {ci_range(self.lo, self.hi, digits)})"
        return s


@dataclass
class Headline:
    n_members: int
    n_trials: int
    model: str
    motion: str
    joint_rmse_deg: Estimate
    body_err_cm: Estimate
    grf_rmse_pct_bw: Estimate
    act_distance: Estimate          # mean pairwise activation RMSE (activation units, 0..1)
    d_int: Estimate
    d_ext: Estimate
    index: Estimate
    test: dict = field(default_factory=dict)  # the act_vs_external row of the statistics table
    synergy_test: dict = field(default_factory=dict)
    k_common: float = math.nan
    synergy_cosine: Estimate = Estimate(math.nan)
    n_families: float = math.nan
    inside_feasible: Estimate = Estimate(math.nan)
    normalisation: str = ""
    n_matched: int = 0               # members compared for diversity (tracking within the match thresholds)
    match_note: str = ""
    has_grf: bool = False
    vaf_threshold: float = 0.9
    null_fraction: Estimate = Estimate(math.nan)  # model-based: share of member differences the torques cannot see
    null_chance: float = math.nan  # what isotropic random differences would give
    refused: str = ""                # why the noise-normalised measures were not computed ("" = they were)
    tracking_failed: bool = False
    family_p: float = math.nan
    test_name: str = ""


def bootstrap_mean(x, seed: int = 0, n_boot: int = 2000) -> Estimate:
    """Mean over independent units (members) with a 95 % percentile-bootstrap interval."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Estimate(math.nan)
    if x.size == 1:
        return Estimate(float(x[0]))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return Estimate(float(x.mean()), float(lo), float(hi), how=f"percentile bootstrap over {x.size} members")


def _boot_var(ana: xr.Dataset, name: str, units: str = "") -> Estimate:
    if ana is None or name not in ana:
        return Estimate(math.nan)
    da = ana[name]
    if "boot" not in da.dims:
        return Estimate(float(da.values), units=units)
    g = {str(b): float(da.sel(boot=b).values) for b in da["boot"].values}
    return Estimate(g.get("estimate", math.nan), g.get("ci_low", math.nan), g.get("ci_high", math.nan), units,
                    "percentile bootstrap over members")


def _test_row(ana: xr.Dataset, name: str) -> dict:
    if ana is None or "test" not in ana.coords or name not in [str(t) for t in ana["test"].values]:
        return {}
    row = {}
    for v in ana.data_vars:
        if v.startswith("stat_") and ana[v].dims == ("test",):
            val = ana[v].sel(test=name).values.item()
            row[v[len("stat_"):]] = val.decode() if isinstance(val, bytes) else val
    return row


def _off_diagonal(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, float)
    return a[~np.eye(a.shape[0], dtype=bool)]


def headline(rec: xr.Dataset, ana: xr.Dataset | None) -> Headline:
    """Collect the summary numbers from the analysis dataset (the recording gives names and counts)."""
    n_mem = int(rec.sizes["member"])
    get = (lambda v: ana[v].values) if ana is not None else (lambda v: np.array([np.nan]))
    has = (lambda v: ana is not None and v in ana)
    jr = bootstrap_mean(get("spec_joint_rmse_deg")) if has("spec_joint_rmse_deg") else Estimate(math.nan)
    be = bootstrap_mean(get("spec_body_err_cm")) if has("spec_body_err_cm") else Estimate(math.nan)
    gr = bootstrap_mean(get("spec_grf_rmse_pct_bw")) if has("spec_grf_rmse_pct_bw") else Estimate(math.nan)
    # pairwise quantities only over the members compared for diversity (the others are NaN there)
    keep = np.asarray(get("spec_matched"), bool) if has("spec_matched") else np.ones(n_mem, bool)
    n_k = int(keep.sum())
    ad = Estimate(math.nan)
    if has("div_act_rmse") and n_k > 1:
        pairs = ana["div_act_rmse"].transpose("member", "member_b").values[keep][:, keep]
        ad = bootstrap_mean(pairs.mean(axis=1) * n_k / (n_k - 1))  # per-member mean distance to the others
    sc = Estimate(math.nan)
    if has("syn_match_cosine") and n_k > 1:
        c = ana["syn_match_cosine"].transpose("member", "member_b").values[keep][:, keep]
        sc = bootstrap_mean((c.sum(axis=1) - np.diag(c)) / (n_k - 1))
    inside = bootstrap_mean(get("base_inside_fraction")) if has("base_inside_fraction") else Estimate(math.nan)
    tname = next((n for n in ("act_vs_external", "act_vs_kinematics") if _test_row(ana, n)), "")
    attrs = ana.attrs if ana is not None else {}
    return Headline(
        n_matched=n_k, match_note=str(ana.attrs.get("match_note", "")) if ana is not None else "",
        n_members=n_mem, n_trials=int(rec.sizes.get("trial", 1)), model=str(rec.attrs.get("model", "?")),
        motion=str(rec.attrs.get("motion", "?")),
        joint_rmse_deg=Estimate(jr.value, jr.lo, jr.hi, "°", jr.how),
        body_err_cm=Estimate(be.value, be.lo, be.hi, "cm", be.how),
        grf_rmse_pct_bw=Estimate(gr.value, gr.lo, gr.hi, "% BW", gr.how),
        act_distance=ad,
        d_int=_boot_var(ana, "div_internal"), d_ext=_boot_var(ana, "div_external"), index=_boot_var(ana, "div_index"),
        test=_test_row(ana, tname) if tname else {}, test_name=tname,
        synergy_test=_test_row(ana, "synergies_differ"),
        k_common=float(get("syn_k_common")) if has("syn_k_common") else math.nan,
        synergy_cosine=sc,
        n_families=float(get("emb_n_families")) if has("emb_n_families") else math.nan,
        inside_feasible=inside,
        normalisation=str(ana.attrs.get("normalisation", "")) if ana is not None else "",
        has_grf=bool(int(ana.attrs.get("has_grf", 0))) if ana is not None else ("grf" in rec),
        vaf_threshold=_vaf_threshold(ana),
        null_fraction=_boot_var(ana, "div_null_fraction"),
        null_chance=float(get("div_null_fraction_chance")) if has("div_null_fraction_chance") else math.nan,
        refused=str(attrs.get("diversity_refused", "")), tracking_failed=bool(int(attrs.get("tracking_failed", 0))),
        family_p=float(get("emb_family_p")) if has("emb_family_p") else math.nan,
    )


def _vaf_threshold(ana: xr.Dataset | None) -> float:
    if ana is not None and "syn_vaf" in ana:
        from msdiversity.report.figures import _vaf_threshold as vt

        return vt(ana)
    return 0.9


def fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _finite_row(t: dict, key: str) -> bool:
    try:
        return math.isfinite(float(t.get(key, math.nan)))
    except (TypeError, ValueError):
        return False


def conclusion(h: Headline) -> list[str]:
    """Plain-language paragraphs (HTML-safe text, no markup) generated from the headline numbers."""
    out = []
    if not h.joint_rmse_deg.ok:
        return ["The analysis dataset is missing, so no conclusion can be drawn; only the recorded trajectories "
                "are shown below."]
    s = (f"Across {h.n_members} ensemble members, the deterministic rollouts reproduce the reference joint angles "
         f"with an RMSE of {h.joint_rmse_deg.fmt(1, '')} (mean over members)")
    if h.tracking_failed:  # an RMSE over the frames before a fall must not read as reproduction
        s = (f"Across {h.n_members} ensemble members, the deterministic rollouts do not reproduce the reference "
             f"motion (joint-angle RMSE {h.joint_rmse_deg.fmt(1, '')}, mean over members, counts only the frames "
             "before each rollout failed)")
    if h.has_grf and h.grf_rmse_pct_bw.ok:
        s += f" and the ground reaction forces with an RMSE of {h.grf_rmse_pct_bw.fmt(1)} (worst force component)"
    out.append(s + ".")
    if h.tracking_failed:
        out.append(f"Tracking failed: {h.refused}. No conclusion about muscle diversity is drawn from this "
                   "ensemble: differences in activations between members that do not perform the movement say "
                   "nothing about redundancy. Train longer or check the reference motion.")
        return out
    if h.joint_rmse_deg.value > POOR_TRACKING_DEG:
        out.append(f"Caution: the tracking error is above {POOR_TRACKING_DEG:g}°, so members do not reproduce the "
                   "movement closely; differences in their muscle activations may reflect different movements "
                   "rather than redundant solutions for the same movement. Train longer or check the reference.")
    if h.match_note:
        out.append(f"Member selection: {h.match_note}. The diversity, synergy, embedding and statistics results "
                   f"below compare the {h.n_matched} members that reproduce the motion; the members table lists "
                   "every member's tracking error.")
    if h.act_distance.ok:
        out.append(f"Their muscle activations differ: the RMSE between one member's activation pattern and "
                   f"another's (activation units, 0–1) is on average {h.act_distance.fmt(3)}.")
    if h.null_fraction.ok:
        chance = (f"; differences in random directions would give {h.null_chance:.2f}"
                  if math.isfinite(h.null_chance) else "")
        out.append(f"Of these differences, a fraction {h.null_fraction.fmt(2)} lies in the null space of the muscles' "
                   "activation-to-joint-torque map (moment arms × force-length-velocity) along the reference motion: "
                   f"that part changes no joint torque, so it is redundancy the motion cannot reveal{chance}. "
                   "The map is evaluated at the reference state, not at each member's own state.")
    if h.refused:
        out.append(f"The noise-normalised diversity index and the activation-vs-movement tests were not computed: "
                   f"{h.refused}. Without a trial-to-trial noise floor there is nothing to compare the size of "
                   "muscle and movement differences against, so no statement is made about which is larger.")
    elif h.d_int.ok and h.d_ext.ok:
        ext = "kinematics and GRF" if h.has_grf else "kinematics"
        out.append(f"Measured in units of each modality's own trial-to-trial variability (in a frequency band matched "
                   f"across modalities, so that the body's smoothing of noise does not bias it), members are "
                   f"{h.d_int.fmt(1)} apart in muscle activations and {h.d_ext.fmt(1)} apart in {ext}; the "
                   f"internal/external diversity index is {h.index.fmt(2)} (0 = identical muscles, 0.5 = muscles "
                   f"differ as much as movement relative to their noise, towards 1 = diverse muscles for the same "
                   "movement).")
    t = h.test
    if t and _finite_row(t, "p"):
        p = float(t["p"])
        eff = (f", effect size {t.get('effect_name', 'd')} = {float(t['effect_size']):.2f}"
               f" (95% CI {ci_range(float(t.get('ci_low', math.nan)), float(t.get('ci_high', math.nan)), 2)})"
               if _finite_row(t, "effect_size") else "")
        n = int(t.get("n", h.n_members))
        vs = "movement (kinematics and GRF)" if h.test_name == "act_vs_external" else "kinematics"
        if p < ALPHA and (not h.d_int.ok or not h.d_ext.ok or h.d_int.value > h.d_ext.value):
            out.append(f"A permutation test over members finds the activation differences larger than the differences "
                       f"in {vs}, each relative to its trial-to-trial noise (p = {fmt_p(p)}, n = {n} members{eff}). "
                       "Under this model and these training settings, members reproduce the movement with "
                       "different muscle activations.")
        else:
            out.append(f"A permutation test over members did not detect activation differences larger than the "
                       f"differences in {vs} (p = {fmt_p(p)}, n = {n} members{eff}); with {n} members this does not "
                       "show that the muscle solution is unique.")
        if str(t.get("note", "")):
            out.append(f"Note: {t['note']}.")
    if math.isfinite(h.k_common) and h.synergy_cosine.ok:
        s = (f"Muscle synergies: the median member needs {int(h.k_common)} synerg{'y' if int(h.k_common) == 1 else 'ies'} "
             f"(global VAF ≥ {100 * h.vaf_threshold:g}% and every active muscle's own VAF ≥ 75%, tonic activity "
             f"removed); matched synergies have a mean cosine similarity of {h.synergy_cosine.fmt(2)} between members")
        st = h.synergy_test
        if st and _finite_row(st, "p"):
            lost = float(st.get("statistic", math.nan))
            if float(st["p"]) < ALPHA:
                s += (f". Members' synergies are not shared: reconstructing a member's held-out data with another "
                      f"member's synergies loses {100 * lost:.1f}% of the variance on average (p = {fmt_p(float(st['p']))})")
            else:
                s += (f". No evidence that the synergies differ between members: another member's synergies lose "
                      f"{100 * lost:.1f}% of held-out variance (p = {fmt_p(float(st['p']))}; shared within 1% VAF "
                      "cannot be rejected, which does not prove sharing)")
        elif st and str(st.get("note", "")):
            s += f"; whether members share them was {st['note']}"
        out.append(s + ".")
    if math.isfinite(h.n_families):
        nf = int(h.n_families)
        pp = f" (p = {fmt_p(h.family_p)} against a unimodal null)" if math.isfinite(h.family_p) else ""
        out.append("Clustering the activation patterns finds " + (
            f"no evidence for more than one solution family{pp}: the members form one group or a continuum."
            if nf <= 1 else f"{nf} solution families{pp}."))
    if h.inside_feasible.ok:
        out.append(f"{100 * h.inside_feasible.value:.0f}% (95% CI {100 * h.inside_feasible.lo:.0f}–"
                   f"{100 * h.inside_feasible.hi:.0f}%) of member activations lie inside the range of activations that "
                   "can produce the reference motion's inverse-dynamics joint torques (feasible band). This checks "
                   "each muscle against its own range only and discriminates poorly (uniform random activations "
                   "score about 94 % on a planted arm); it is not evidence that the members' activation vectors "
                   "produce the torques.")
    out.append(cannot_conclude(h))
    return out


def cannot_conclude(h: Headline) -> str:
    """What this report cannot conclude, whatever the numbers say."""
    items = [f"that the muscle solution is unique or that these {h.n_matched or h.n_members} members span all "
             "possible solutions (they are the solutions this training found)",
             "that people use the same or different activations (the members are simulated controllers)"]
    if not h.null_fraction.ok:
        items.append("how much of the difference is redundancy in physical terms (the model-based null-space "
                     "measure needs the model and was not computed)")
    if h.n_trials < 2 or h.refused:
        items.append("whether muscles differ more than movement (no trial-to-trial noise floor)")
    return "What this report cannot conclude: " + "; ".join(items) + "."


def config_from_attrs(rec: xr.Dataset) -> dict:
    try:
        return json.loads(rec.attrs.get("config", "{}"))
    except (TypeError, ValueError):
        return {}
