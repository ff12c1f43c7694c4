"""Members vs EMG envelopes and vs classical OpenSim solutions (static optimisation, CMC), over the
phase axis of the analysis (% gait cycle when the reference has gait events, else % of the motion).

Sources:
- EMG: the recording's `emg_ref` (envelopes attached to the reference by `[motion] emg`, so the same
  trial as the motion), or an EMG file `[analysis] emg` (read, enveloped and mapped by
  `msdiversity.emg`). A file is a *normative* comparison (another trial or subject) unless
  `emg_same_trial = true`: it is then normalised over its own gait cycles (events from `emg_grf`,
  the GRF of the EMG trial) or, without events, over its whole span, and labelled so.
- Classical: OpenSim activation files `[analysis] classical = [...]`: a static-optimisation
  `*_activation.sto` (columns = muscle names) or a CMC/forward `states.sto` (columns
  `<muscle>.activation` or `/forceset/<muscle>/activation`). Same trial as the motion by default:
  aligned by time (file time = recording time + attrs `ref_t0`) and normalised like the recording.

Metrics, per member (trial 0) and for the ensemble mean, over the phase samples:
- r: Pearson correlation of the activation with the target.
- RMSE after amplitude scaling: EMG envelopes are normalised (peak 1), so their amplitude is
  arbitrary: the target is scaled by the least-squares factor s = <a, e> / <e, e> before
  RMSE = sqrt(mean (a - s e)^2), in activation units. Classical solutions are activations already:
  RMSE without scaling.
- on/off agreement: fraction of phase samples where both are "on" or both "off", on = above
  `on_threshold` x that curve's own maximum over the cycle.
An EMG channel mapping onto several muscles is compared with the mean activation of those muscles.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from msdiversity.errors import InputError

ON_THRESHOLD = 0.25  # fraction of each curve's maximum that counts as "on"
_ACT_PATTERNS = (re.compile(r"^/forceset/(.+)/activation$"), re.compile(r"^(.+)\.activation$"),
                 re.compile(r"^(.+)/activation$"))


@dataclasses.dataclass(frozen=True)
class ExternalConfig:
    """The comparison settings (`[analysis]` keys of the same names)."""

    emg: str = ""  # EMG file ('' = the recording's emg_ref, if any)
    emg_grf: str = ""  # GRF of the EMG trial (gait events for a normative comparison)
    emg_same_trial: bool = False  # the EMG file is the motion's own trial (time-aligned)
    emg_side: str = "r"
    emg_mapping: dict | None = None  # channel -> 'muscle+muscle' or '' overrides
    emg_lowpass_hz: float = 6.0
    classical: tuple[str, ...] = ()  # OpenSim activation .sto files (SO, CMC)
    on_threshold: float = ON_THRESHOLD


@dataclasses.dataclass(frozen=True)
class ClassicalSolution:
    """Activations of an OpenSim file mapped onto the recording's muscles.

    Attributes:
        name: label (file stem).
        time: (T,) s, the file's clock.
        activation: (T, NM) in the recording's muscle order, NaN for muscles the file lacks.
        matched: muscle names found; unmatched_file: file activation columns not in the model.
    """

    name: str
    time: np.ndarray
    activation: np.ndarray
    matched: tuple[str, ...]
    unmatched_file: tuple[str, ...]
    source: str

    def summary_line(self, n_model: int) -> str:
        extra = f"; {len(self.unmatched_file)} file columns not in the model" if self.unmatched_file else ""
        return f"{self.name}: {len(self.matched)} of {n_model} muscles mapped{extra}"


def activation_columns(labels) -> dict[str, int]:
    """muscle -> column index of its activation in an OpenSim table's labels (time excluded)."""
    out = {}
    for k, lb in enumerate(labels):
        for pat in _ACT_PATTERNS:
            m = pat.match(lb)
            if m:
                out[m.group(1)] = k
                break
    return out


def read_classical(path: str | Path, muscles) -> ClassicalSolution:
    """Read an OpenSim activation file and map it onto `muscles` (exact names).

    A file with `.activation` columns (CMC states) uses those; otherwise (static optimisation's
    `_activation.sto`) every column named like a model muscle is an activation."""
    from msdiversity.motions.opensim import read_table

    tab = read_table(path)
    labels = list(tab.labels[1:])
    cols = activation_columns(labels)
    if not cols:
        cols = {lb: k for k, lb in enumerate(labels) if lb in set(muscles)}
        file_acts = [lb for lb in labels if not lb.endswith(("_reserve", "_residual")) and "reserve" not in lb.lower()]
    else:
        file_acts = list(cols)
    muscles = list(muscles)
    act = np.full((len(tab.time), len(muscles)), np.nan)
    matched = []
    for i, m in enumerate(muscles):
        if m in cols:
            act[:, i] = tab.data[:, 1 + cols[m]]
            matched.append(m)
    if not matched:
        raise InputError(f"no activation column matches a model muscle (columns: {', '.join(labels[:6])}...; "
                         "expected muscle names, '<muscle>.activation' or '/forceset/<muscle>/activation')",
                         path=path)
    return ClassicalSolution(name=Path(path).stem, time=tab.time, activation=act, matched=tuple(matched),
                             unmatched_file=tuple(c for c in file_acts if c not in set(muscles)), source=str(path))


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------

def _ok(a, b):
    return np.isfinite(a) & np.isfinite(b)


def corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r over the samples finite in both (NaN with < 3 samples or a flat curve)."""
    ok = _ok(a, b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def scaled_rmse(a: np.ndarray, e: np.ndarray, scale: bool = True) -> float:
    """RMSE of activation a against target e, e scaled by the least-squares s = <a,e>/<e,e> when `scale`."""
    ok = _ok(a, e)
    if ok.sum() < 1:
        return float("nan")
    x, y = a[ok], e[ok]
    s = float(x @ y / (y @ y)) if scale and y @ y > 0 else 1.0
    return float(np.sqrt(np.mean((x - s * y) ** 2)))


def onoff_agreement(a: np.ndarray, e: np.ndarray, threshold: float = ON_THRESHOLD) -> float:
    """Fraction of samples where a and e are both on or both off (on: > threshold x own max)."""
    ok = _ok(a, e)
    if ok.sum() < 1 or np.max(a[ok]) <= 0 or np.max(e[ok]) <= 0:
        return float("nan")
    x, y = a[ok], e[ok]
    return float(np.mean((x > threshold * x.max()) == (y > threshold * y.max())))


def _metrics(act: np.ndarray, target: np.ndarray, scale: bool, thr: float) -> np.ndarray:
    """act (..., P), target (P,) -> (..., 3) r, RMSE, on/off."""
    flat = act.reshape(-1, act.shape[-1])
    out = np.array([[corr(x, target), scaled_rmse(x, target, scale), onoff_agreement(x, target, thr)] for x in flat])
    return out.reshape(act.shape[:-1] + (3,))


# ---------------------------------------------------------------------------------------------
# Putting external curves on the analysis' phase axis
# ---------------------------------------------------------------------------------------------

def _same_trial_phase(data: np.ndarray, t_file: np.ndarray, t0: float, prep, n: int) -> np.ndarray:
    """(T_file, K) on the file's clock (file time = recording time + t0, s), same trial as the
    recording -> (P, K) on the analysis phase; NaN where the file does not cover the recording."""
    from msdiversity.analysis.gaitcycle import to_gait_cycle
    from msdiversity.analysis.prep import to_phase
    from msdiversity.emg.mapping import resample_onto

    rec_time = prep.time
    on_rec = resample_onto(t_file, data, rec_time + t0)
    if prep.cycles is not None:
        return to_gait_cycle(on_rec, rec_time, 0, prep.cycles.windows, n)
    return to_phase(on_rec, rec_time, 0, n)


def _own_phase(data: np.ndarray, t_file: np.ndarray, grf_path: str, n: int) -> tuple[np.ndarray, str]:
    """(T_file, K) of another trial -> (P, K) over its own gait cycles (events from its GRF), or over
    its whole span when it has no events. Returns (curve, description)."""
    from msdiversity.analysis.gaitcycle import gait_cycles, to_gait_cycle
    from msdiversity.analysis.prep import to_phase

    if grf_path:
        from msdiversity.motions.gait import grf_events
        from msdiversity.motions.opensim import read_grf

        cyc = gait_cycles(grf_events(read_grf(grf_path)))
        if cyc is not None:
            inside = cyc.windows[(cyc.windows[:, 0] >= t_file[0] - 1e-9) & (cyc.windows[:, 1] <= t_file[-1] + 1e-9)]
            if len(inside):
                cyc = dataclasses.replace(cyc, windows=inside)
                return to_gait_cycle(data, t_file, 0, cyc.windows, n), cyc.describe() + f" (events from {Path(grf_path).name})"
    return to_phase(data, t_file, 0, n), "no gait events for this trial: time-normalised over the whole file"


def _emg_source(rec: xr.Dataset, cfg: ExternalConfig, muscles: list[str], prep, n: int):
    """(envelope (P, E), channel names, channel -> muscles, attrs) or None without EMG."""
    from msdiversity import emg as E

    rec_time = prep.time
    if cfg.emg:
        env, mp = E.load_envelopes(cfg.emg, muscles, model=str(rec.attrs.get("model", "")), side=cfg.emg_side,
                                   overrides=cfg.emg_mapping, cfg=E.EnvelopeConfig(lowpass_hz=cfg.emg_lowpass_hz))
        chans = [c for c, _ in mp.matched]
        if not chans:
            raise InputError(f"no EMG channel maps onto a muscle of the recording ({mp.summary_line()})",
                             path=cfg.emg)
        data = np.stack([env.channel(c) for c in chans], axis=1)
        attrs = {"emg_source": str(cfg.emg), "emg_processing": "; ".join(env.notes),
                 "emg_mapping": mp.summary_line(),
                 "emg_unmatched": ", ".join(f"{c} ({why})" for c, why in mp.unmatched)}
        if cfg.emg_same_trial:
            t0 = float(rec.attrs.get("ref_t0", 0.0))
            curve = _same_trial_phase(data, env.time, t0, prep, n)
            attrs.update(emg_comparison="same trial", emg_phase=prep.phase_note)
        else:
            curve, desc = _own_phase(data, env.time, cfg.emg_grf, n)
            attrs.update(emg_comparison="normative (EMG from another trial or subject, compared over % gait cycle)",
                         emg_phase=desc)
        return curve, chans, dict(mp.matched), attrs
    if "emg_ref" in rec:
        e = np.asarray(rec["emg_ref"].values, float)  # (T, NM), NaN = no EMG
        has = np.isfinite(e).any(0)
        if not has.any():
            return None
        # muscles sharing one channel carry identical envelopes: group them back into channels
        groups: dict[bytes, list[int]] = {}
        for i in np.flatnonzero(has):
            groups.setdefault(np.nan_to_num(e[:, i], nan=-1).round(9).tobytes(), []).append(int(i))
        chans, members, cols = [], {}, []
        for idx in groups.values():
            name = "+".join(muscles[i] for i in idx)
            chans.append(name)
            members[name] = tuple(muscles[i] for i in idx)
            cols.append(e[:, idx[0]])
        data = np.stack(cols, axis=1)
        curve = _same_trial_phase(data, rec_time, 0.0, prep, n)
        return curve, chans, members, {"emg_source": "reference (emg_ref, attached by [motion] emg)",
                                       "emg_comparison": "same trial", "emg_phase": prep.phase_note,
                                       "emg_mapping": f"{len(chans)} envelopes on {int(has.sum())} muscles",
                                       "emg_processing": "", "emg_unmatched": ""}
    return None


def compare_external(rec: xr.Dataset, prep, cfg: ExternalConfig) -> xr.Dataset:
    """The `cmp_` variables (see the module docstring); an empty Dataset when there is nothing to compare."""
    muscles = [str(m) for m in rec["muscle"].values]
    members = rec["member"].values
    n = len(prep.phase)
    act = np.moveaxis(prep.act[:, 0], 1, 2)  # (M, NM, P) trial 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        act_ens = np.nanmean(act, axis=0)  # (NM, P)
    out = xr.Dataset(coords={"member": members, "phase": prep.phase, "muscle": muscles})
    attrs: dict = {"cmp_on_threshold": cfg.on_threshold, "cmp_phase": prep.phase_note}
    metric_attrs = {"r": ("1", "Pearson r over the phase samples"),
                    "rmse": ("1", "RMSE (activation units) after least-squares scaling of the target"),
                    "onoff": ("1", f"on/off agreement, on = above {cfg.on_threshold:g} x own maximum")}
    src = _emg_source(rec, cfg, muscles, prep, n)
    if src is not None:
        curve, chans, chan_mus, eattrs = src
        idx = [[muscles.index(m) for m in chan_mus[c]] for c in chans]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            a_ch = np.stack([np.nanmean(act[:, ix], axis=1) for ix in idx], axis=1)  # (M, E, P)
            e_ch = np.stack([np.nanmean(act_ens[ix], axis=0) for ix in idx], axis=0)  # (E, P)
        m_mem = np.stack([_metrics(a_ch[:, k], curve[:, k], True, cfg.on_threshold) for k in range(len(chans))], 1)
        m_ens = np.stack([_metrics(e_ch[k][None], curve[:, k], True, cfg.on_threshold)[0] for k in range(len(chans))])
        out = out.assign_coords(emg_channel=chans, emg_muscles=("emg_channel", ["+".join(chan_mus[c]) for c in chans]))
        out["cmp_emg_envelope"] = (("phase", "emg_channel"), curve, {"units": "1", "long_name": "EMG envelope"})
        out["cmp_emg_activation"] = (("member", "phase", "emg_channel"), np.moveaxis(a_ch, 1, 2),
                                     {"units": "1", "long_name": "mean activation of the channel's muscles (trial 0)"})
        for j, k in enumerate(("r", "rmse", "onoff")):
            u, ln = metric_attrs[k]
            out[f"cmp_emg_{k}"] = (("member", "emg_channel"), m_mem[..., j], {"units": u, "long_name": ln + " vs EMG"})
            out[f"cmp_emg_{k}_ensemble"] = ("emg_channel", m_ens[:, j],
                                            {"units": u, "long_name": ln + " vs EMG, ensemble-mean activation"})
        attrs.update({f"cmp_{k}": v for k, v in eattrs.items()})
    if cfg.classical:
        t0 = float(rec.attrs.get("ref_t0", 0.0))
        names, curves, notes = [], [], []
        for path in cfg.classical:
            sol = read_classical(path, muscles)
            t_rec = prep.time + t0
            if sol.time[-1] < t_rec[0] or sol.time[0] > t_rec[-1]:
                curve, how = _own_phase(sol.activation, sol.time, "", n)[0], "other trial: over its whole span"
            else:
                curve, how = _same_trial_phase(sol.activation, sol.time, t0, prep, n), "same trial, time-aligned"
            names.append(sol.name)
            curves.append(curve)
            notes.append(f"{sol.summary_line(len(muscles))} ({how})")
        cur = np.stack(curves)  # (S, P, NM)
        m_mem = np.stack([[_metrics(act[:, i], cur[s, :, i], False, cfg.on_threshold) for i in range(len(muscles))]
                          for s in range(len(names))])  # (S, NM, M, 3)
        m_ens = np.stack([[_metrics(act_ens[i][None], cur[s, :, i], False, cfg.on_threshold)[0]
                           for i in range(len(muscles))] for s in range(len(names))])  # (S, NM, 3)
        out = out.assign_coords(classical=names)
        out["cmp_cls_activation"] = (("classical", "phase", "muscle"), cur,
                                     {"units": "1", "long_name": "classical (OpenSim) activation"})
        out["cmp_cls_mapped"] = (("classical", "muscle"), np.isfinite(cur).any(1),
                                 {"units": "1", "long_name": "muscle found in the classical file"})
        for j, k in enumerate(("r", "rmse", "onoff")):
            u, ln = metric_attrs[k]
            ln = ln.replace(" after least-squares scaling of the target", "") + " vs classical"
            out[f"cmp_cls_{k}"] = (("classical", "member", "muscle"), np.moveaxis(m_mem[..., j], 1, 2),
                                   {"units": u, "long_name": ln})
            out[f"cmp_cls_{k}_ensemble"] = (("classical", "muscle"), m_ens[..., j],
                                            {"units": u, "long_name": ln + ", ensemble-mean activation"})
        attrs["cmp_classical"] = "; ".join(notes)
    out.attrs = {k: (v if isinstance(v, (str, int, float)) else str(v)) for k, v in attrs.items()}
    return out


def external_config(cfg) -> ExternalConfig:
    """ExternalConfig from an AnalysisConfig (fields of the same names)."""
    names = {f.name for f in dataclasses.fields(ExternalConfig)}
    return ExternalConfig(**{k: getattr(cfg, k) for k in names if hasattr(cfg, k)})
