"""`analyze_recording`: recording.nc -> analysis.nc (layout documented in `msdiversity.analysis`)."""

from __future__ import annotations

import dataclasses
import json
import time as _time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from msdiversity.analysis.diversity import diversity
from msdiversity.analysis.embedding import embedding
from msdiversity.analysis.prep import N_PHASE, prepare
from msdiversity.analysis.specificity import specificity
from msdiversity.analysis.stats import not_computed, results_to_dataset, sign_flip_test
from msdiversity.analysis.synergies import synergies
from msdiversity.errors import InputError
from msdiversity.util.io import save_dataset_atomic


@dataclasses.dataclass
class AnalysisConfig:
    """`[analysis]` section of an experiment file."""

    seed: int = 0
    n_phase: int = N_PHASE  # time-normalisation samples
    vaf_threshold: float = 0.90
    vaf_muscle_threshold: float = 0.75  # and every active muscle's own VAF >= this (Torres-Oviedo & Ting 2007)
    remove_tonic: bool = True  # subtract each muscle's tonic (minimum) level before NMF
    k_max: int = 8  # largest number of synergies in the VAF curve
    n_null: int = 200  # shuffled-synergy null draws
    n_perm: int = 10000  # permutation-test draws (exact enumeration for <= 14 members)
    n_boot: int = 1000  # bootstrap draws for CIs
    n_pca: int = 10
    umap: bool = True
    max_clusters: int = 8
    n_family_null: int = 199  # parametric-bootstrap draws of the unimodal (Gaussian) null for families
    family_alpha: float = 0.05  # families > 1 only when the clustering beats the unimodal null at this level
    nullspace: bool = True  # model-based null-space fraction of member differences (needs the model)
    baselines: bool = True  # inverse dynamics / static optimisation / feasible ranges (needs the model)
    so_exponents: tuple[float, ...] = (1.0, 2.0, 3.0)
    band_tolerance: float = 0.02  # activation units: slack when placing activations in the feasible band
    feasible_frames: int = 4  # phases at which the feasible activation set is sampled uniformly (0 = off)
    feasible_samples: int = 200  # samples per phase (rounded hit-and-run, msdiversity.analysis.feasible)
    id_lowpass_hz: float = 6.0  # low-pass the reference coordinates before inverse dynamics (0 = off, use
    #                             the recorded velocities); 6 Hz as OpenSim's tools do for raw IK data, whose
    #                             finite-difference accelerations are otherwise noise (and one-sided at the ends)
    # Members compared for diversity must reproduce the motion: trial-0 joint-angle RMSE (deg) and,
    # with GRF, GRF RMSE (% body weight) at most these. Others are reported (specificity) but left out
    # of diversity, synergies, embedding, baselines placement and statistics. `inf` keeps everyone.
    match_joint_rmse_deg: float = 5.0
    match_grf_rmse_pct_bw: float = 10.0
    # ... and stay up: the fraction of the recording the deterministic trial is alive (not fallen or
    # diverged). Errors are computed over alive frames only, so a member that falls early would
    # otherwise score its short, well-tracked start.
    match_min_alive: float = 1.0
    # Comparison with EMG and classical OpenSim solutions (msdiversity.analysis.external; paths relative
    # to the working directory). emg '' = the recording's emg_ref (attached by [motion] emg), if any.
    emg: str = ""
    emg_grf: str = ""  # GRF of the EMG trial: its gait events (normative comparison over % gait cycle)
    emg_same_trial: bool = False  # the EMG file is the motion's own trial (time-aligned, not normative)
    emg_side: str = "r"
    emg_mapping: dict | None = None  # EMG channel -> 'muscle+muscle' ('' drops the channel)
    emg_lowpass_hz: float = 6.0
    classical: tuple[str, ...] = ()  # OpenSim activation files (static optimisation, CMC states .sto)
    on_threshold: float = 0.25  # on/off agreement: "on" above this fraction of each curve's maximum


def matched_members(spec: xr.Dataset, cfg: AnalysisConfig) -> np.ndarray:
    """(member,) bool: members whose kinematics (and GRF, when known) match the reference."""
    ok = np.asarray(spec["spec_joint_rmse_deg"].values, float) <= cfg.match_joint_rmse_deg
    if "spec_root_rmse_deg" in spec:  # root orientation (planar roots); NaN (none recorded) does not exclude
        ok &= ~(np.asarray(spec["spec_root_rmse_deg"].values, float) > cfg.match_joint_rmse_deg)
    if "spec_alive_fraction" in spec:
        ok &= np.asarray(spec["spec_alive_fraction"].values, float) >= cfg.match_min_alive - 1e-9
    if "spec_grf_rmse_pct_bw" in spec:
        g = np.asarray(spec["spec_grf_rmse_pct_bw"].values, float)  # worst force component, % BW
        ok &= ~(g > cfg.match_grf_rmse_pct_bw)  # NaN (no GRF) does not exclude
    return ok


EXT_LABEL = {"kin": "kinematics", "trans": "trans", "grf": "grf"}


def _stat_tests(seed, div: xr.Dataset, mods: dict, n_perm: int, n_boot: int):
    """Sign-flip tests of activation vs movement distance per member; refused rows when the
    recording has no trial-to-trial variability to measure distances against."""
    ext_names = [k for k in mods if k != "act"]
    names = (["act_vs_external"] if len(ext_names) > 1 else []) + [f"act_vs_{EXT_LABEL[k]}" for k in ext_names]
    if div.attrs.get("refused"):
        return [not_computed(n, div.attrs["refused"]) for n in names]
    rng = np.random.default_rng(seed)
    act = mods["act"].loo
    desc = ("sign-flip permutation over members of d_m = r_act,m - r_ext,m; r = band-matched distance to the "
            "leave-one-out ensemble mean / trial-to-trial noise (H1: members differ more in activations)")
    out = []
    if len(ext_names) > 1:
        with np.errstate(invalid="ignore"):
            ext = np.mean([mods[k].loo for k in ext_names], axis=0)
        out.append(sign_flip_test(rng, act - ext, n_perm, "greater", "act_vs_external",
                                  desc.replace("r_ext", "r_ext (mean of " + "+".join(ext_names) + ")"), n_boot))
    for k in ext_names:
        out.append(sign_flip_test(rng, act - mods[k].loo, n_perm, "greater", f"act_vs_{EXT_LABEL[k]}",
                                  desc.replace("r_ext", f"r_{k}"), n_boot))
    return out


def _to_all_members(part: xr.Dataset, ids: np.ndarray, ids_all: np.ndarray) -> xr.Dataset:
    """Reindex a result computed on a subset of members (`ids`) onto all members (`ids_all`)."""
    dims = [d for d in ("member", "member_b") if d in part.dims]
    if not dims:
        return part
    part = part.drop_vars([c for c in part.coords if c not in part.dims and set(part[c].dims) & set(dims)])
    part = part.assign_coords({d: ids for d in dims})
    fill = {v: (False if part[v].dtype == bool else -1 if part[v].dtype.kind in "iu" else np.nan)
            for v in part.data_vars}
    return part.reindex({d: ids_all for d in dims}, fill_value=fill)


def analyze_recording(rec: xr.Dataset, config: AnalysisConfig | None = None, progress=None) -> xr.Dataset:
    """Run every analysis on a recording Dataset and return the analysis Dataset.

    Args:
        rec: Dataset in the recording layout (docs/CONTRACTS.md).
        config: AnalysisConfig (defaults when None).
        progress: optional callable(stage: str, done: int, total: int) for progress display.

    Returns:
        One flat Dataset (`spec_`, `div_`, `syn_`, `emb_`, `base_`, `stat_` variables), units in attrs.
    """
    cfg = config or AnalysisConfig()
    with warnings.catch_warnings():
        # NaN-aware means over dead frames / left-out members are expected; the results say where
        for msg in ("Mean of empty slice", "All-NaN slice", "Degrees of freedom <= 0", "invalid value encountered"):
            warnings.filterwarnings("ignore", message=msg, category=RuntimeWarning)
        return _analyze(rec, cfg, progress or (lambda *a: None))


def _analyze(rec: xr.Dataset, cfg: AnalysisConfig, say) -> xr.Dataset:
    timings = {}
    t0 = _time.perf_counter()
    prep = prepare(rec, cfg.n_phase)
    say("specificity", 0, 1)
    spec = specificity(rec, prep)
    timings["specificity"] = _time.perf_counter() - t0
    # diversity is only meaningful between members that reproduce the motion
    matched = matched_members(spec, cfg)
    spec["spec_matched"] = ("member", matched)
    spec["spec_matched"].attrs.update(units="1", long_name=(
        f"member reproduces the motion (alive >= {100 * cfg.match_min_alive:g} % of the recording, "
        f"joint RMSE <= {cfg.match_joint_rmse_deg:g} deg"
        + (f", worst GRF component RMSE <= {cfg.match_grf_rmse_pct_bw:g} % BW" if "spec_grf_rmse_pct_bw" in spec else "")
        + ")"))
    n_all, n_ok = rec.sizes["member"], int(matched.sum())
    refused = ""
    if n_ok < 2:
        refused = (f"tracking failed: {n_ok} of {n_all} members reproduce the motion (alive throughout, joint "
                   f"RMSE <= {cfg.match_joint_rmse_deg:g} deg"
                   + (f", GRF <= {cfg.match_grf_rmse_pct_bw:g} % BW" if "spec_grf_rmse_pct_bw" in spec else "")
                   + "); at least 2 are needed to compare muscle solutions for the same movement")
    subset = 2 <= n_ok < n_all  # compare only the matched members
    cmp_rec = rec.isel(member=np.flatnonzero(matched)) if subset else rec  # members compared for diversity
    cmp_prep = prepare(cmp_rec, cfg.n_phase) if subset else prep
    match_note = (f"{n_all - n_ok} of {n_all} members left out of the diversity analyses "
                  "(tracking worse than the match thresholds)") if subset else ""
    parts = [spec]
    tests = []
    div_attrs = {"normalisation": "none", "refused": refused}
    if not refused:
        t = _time.perf_counter()
        say("diversity", 0, 1)
        div, mods = diversity(cfg.seed, cmp_rec, cmp_prep, n_boot=cfg.n_boot)
        div_attrs = dict(div.attrs)
        tests = _stat_tests(cfg.seed + 1, div, mods, cfg.n_perm, cfg.n_boot)
        timings["diversity"] = _time.perf_counter() - t
        t = _time.perf_counter()
        # the deterministic rollout only: exploration noise of the stochastic trials is no synergy structure,
        # but the per-muscle VAF criterion would count it as such (default demo: k = 6 of 6 muscles with all trials)
        syn, syn_test = synergies(cfg.seed + 2, cmp_rec.isel(trial=[0]), cmp_prep.act[:, :1], cmp_prep.phase,
                                  k_max=cfg.k_max,
                                  vaf_threshold=cfg.vaf_threshold, vaf_muscle_threshold=cfg.vaf_muscle_threshold,
                                  remove_tonic=cfg.remove_tonic, n_null=cfg.n_null, n_perm=cfg.n_perm,
                                  progress=lambda d, n: say("synergies", d, n))
        tests.append(syn_test)
        timings["synergies"] = _time.perf_counter() - t
        t = _time.perf_counter()
        say("embedding", 0, 1)
        emb = embedding(cfg.seed + 3, cmp_rec, cmp_prep.act, n_pca=cfg.n_pca, use_umap=cfg.umap,
                        max_clusters=cfg.max_clusters, n_null=cfg.n_family_null, alpha=cfg.family_alpha)
        timings["embedding"] = _time.perf_counter() - t
        parts += [div, syn, emb]
    else:
        tests = [not_computed(n, refused) for n in ("act_vs_external", "synergies_differ")]
    parts.append(results_to_dataset(tests))
    base_note, null_note = "disabled in config", "disabled in config"
    has_base = 0
    if cfg.baselines:
        t = _time.perf_counter()
        try:
            from msdiversity.analysis.baselines import baselines

            base = baselines(cmp_rec, cmp_prep, exponents=cfg.so_exponents, tol=cfg.band_tolerance, cutoff_hz=cfg.id_lowpass_hz,
                             progress=lambda d, n: say("baselines", d, n), feasible_frames=cfg.feasible_frames,
                             feasible_samples=cfg.feasible_samples, seed=cfg.seed + 5)
            if refused:  # placement of members that do not track says nothing
                base = base.drop_vars([v for v in base.data_vars if "member" in base[v].dims])
            parts.append(base)
            has_base, base_note = 1, ""
        except InputError as e:  # no model / no reference qpos: skip, say why
            base_note = str(e)
        timings["baselines"] = _time.perf_counter() - t
    if cfg.nullspace and not refused:
        t = _time.perf_counter()
        try:
            from msdiversity.analysis.nullspace import nullspace

            parts.append(nullspace(cfg.seed + 4, cmp_rec, cmp_prep, cutoff_hz=cfg.id_lowpass_hz, n_boot=cfg.n_boot))
            null_note = ""
        except InputError as e:
            null_note = str(e)
        timings["nullspace"] = _time.perf_counter() - t
    elif refused:
        null_note = refused
    if subset:  # left-out members: NaN / False / -1 in the member-wise results
        ids, ids_all = cmp_rec["member"].values, rec["member"].values
        parts = [parts[0]] + [_to_all_members(p, ids, ids_all) for p in parts[1:]]
    from msdiversity.analysis.external import compare_external, external_config

    t = _time.perf_counter()
    ext = compare_external(rec, prep, external_config(cfg))  # all members, on the analysis phase axis
    parts.append(ext)
    timings["external"] = _time.perf_counter() - t
    out = xr.merge(parts, compat="override", combine_attrs="override")
    out.attrs = {}
    out = out.assign_coords(phase_time=("phase", prep.phase_time))
    out["phase"].attrs["units"] = "%"
    out["phase_time"].attrs["units"] = "s"
    for c in ("seed", "effort_exponent", "effort_weight", "smoothness_weight", "synergy_weight", "emg_weight"):
        if c in rec.coords and rec[c].dims == ("member",):
            out = out.assign_coords({c: ("member", rec[c].values)})
    from msdiversity import __version__

    out.attrs.update(
        experiment=str(rec.attrs.get("experiment", "")), model=str(rec.attrs.get("model", "")),
        analysis_config=json.dumps(dataclasses.asdict(cfg)), msdiversity_version=str(__version__),
        n_members=int(n_all), n_members_matched=int(n_ok if refused else cmp_rec.sizes["member"]),
        match_note=match_note, n_trials=int(rec.sizes["trial"]),
        normalisation=div_attrs["normalisation"], diversity_refused=div_attrs.get("refused", ""),
        tracking_failed=int(bool(refused)), grf_reference=spec.attrs["grf_reference"],
        has_grf=int("grf" in rec), has_baselines=has_base, baselines_skipped=base_note,
        has_nullspace=int("div_null_fraction" in out), nullspace_skipped=null_note,
        timings_s=json.dumps({k: round(v, 3) for k, v in timings.items()}),
        phase_normalisation=prep.phase_note, **ext.attrs,
    )
    return out


def load_recording(path: str | Path) -> xr.Dataset:
    path = Path(path)
    if not path.exists():
        raise InputError("recording not found (run `msdiversity record` first)", path=path)
    try:
        ds = xr.load_dataset(path, engine="h5netcdf")
    except Exception as e:
        raise InputError(f"cannot read netCDF: {e}", path=path) from None
    ds.encoding["source"] = str(path)
    return ds


def save_analysis(ds: xr.Dataset, path: str | Path) -> Path:
    return save_dataset_atomic(ds, path)
