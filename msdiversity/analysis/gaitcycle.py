"""% gait cycle normalisation: time series between consecutive heel strikes of one foot -> 0..100 %.

A gait cycle runs from a heel strike to the next heel strike of the same foot (events from the
vertical GRF: `msdiversity.motions.gait.gait_events`, threshold with minimum stance/swing durations).
Each cycle is linearly resampled onto `n` samples (0 % = the first heel strike, 100 % = the next) and
the cycles are averaged (NaN-aware: a frame where a member was not alive is left out of that
cycle's sample). The foot with the most complete cycles is used (ties: right). When the reference
has no GRF or no complete cycle, `phase_normaliser` falls back to time normalisation over the whole
recording (`msdiversity.analysis.prep.to_phase`).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from msdiversity.errors import InputError

MIN_CYCLE_S = 0.2  # shorter "cycles" are detection artefacts, not strides


@dataclasses.dataclass(frozen=True)
class GaitCycles:
    """Complete gait cycles of one foot.

    Attributes:
        foot: 'r' or 'l'.
        windows: (n, 2) s, [heel strike, next heel strike of the same foot].
        events: {foot: {'heel_strike': (k,) s, 'toe_off': (m,) s}} for every foot.
        toe_off_pct: mean toe-off of `foot` within its cycles, % (NaN when none inside).
        t_offset: s added to the times in `describe` (a recording's `ref_t0`: motion-file time).
    """

    foot: str
    windows: np.ndarray
    events: dict
    toe_off_pct: float
    t_offset: float = 0.0

    @property
    def n(self) -> int:
        return len(self.windows)

    def describe(self) -> str:
        o = self.t_offset
        return (f"% gait cycle: {self.n} cycle(s) of the {'right' if self.foot == 'r' else 'left'} foot "
                f"(heel strike to heel strike, {', '.join(f'{a + o:.4g}-{b + o:.4g} s' for a, b in self.windows)}), "
                f"averaged")


def cycle_windows(heel_strikes, min_cycle_s: float = MIN_CYCLE_S) -> np.ndarray:
    """(n, 2) s consecutive heel-strike pairs lasting at least `min_cycle_s`."""
    hs = np.sort(np.asarray(heel_strikes, float))
    w = np.stack([hs[:-1], hs[1:]], axis=1) if len(hs) > 1 else np.zeros((0, 2))
    return w[(w[:, 1] - w[:, 0]) >= min_cycle_s]


def gait_cycles(events: dict, foot: str | None = None) -> GaitCycles | None:
    """The complete cycles of `foot` (default: the foot with most), or None if there are none."""
    feet = [foot] if foot else sorted(events, key=lambda f: (-len(cycle_windows(events[f]["heel_strike"])),
                                                             f != "r"))
    for f in feet:
        if f not in events:
            raise InputError(f"no events for foot '{f}' (have {', '.join(events)})", field="foot")
        w = cycle_windows(events[f]["heel_strike"])
        if len(w):
            to = np.asarray(events[f]["toe_off"], float)
            pct = [100 * (x - a) / (b - a) for a, b in w for x in to if a < x < b]
            return GaitCycles(foot=f, windows=w, events=events, toe_off_pct=float(np.mean(pct)) if pct else np.nan)
    return None


def to_gait_cycle(a: np.ndarray, time: np.ndarray, axis: int, windows: np.ndarray, n: int = 101) -> np.ndarray:
    """Resample `a` along `axis` (on `time`, s) onto n samples per cycle window and average the cycles.

    Returns `a`'s shape with the time axis replaced by n (the mean over cycles; NaN-aware)."""
    a = np.moveaxis(np.asarray(a, float), axis, 0)  # (T, ...)
    flat = a.reshape(a.shape[0], -1)
    pct = np.linspace(0.0, 1.0, n)
    per = []
    for t0, t1 in windows:
        tt = t0 + (t1 - t0) * pct
        i0 = np.clip(np.searchsorted(time, tt, side="right") - 1, 0, len(time) - 2)
        w = np.clip((tt - time[i0]) / (time[i0 + 1] - time[i0]), 0.0, 1.0)[:, None]
        per.append(flat[i0] * (1 - w) + flat[i0 + 1] * w)  # NaN neighbours stay NaN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN samples stay NaN
        mean = np.nanmean(np.stack(per), axis=0)
    return np.moveaxis(mean.reshape((n,) + a.shape[1:]), 0, axis)


def recording_cycles(rec, threshold_n: float = 20.0) -> GaitCycles | None:
    """Cycles from a recording's reference GRF `grf_ref` (time, foot, axis) N, or None without one."""
    if "grf_ref" not in rec or not np.all(np.isfinite(rec["grf_ref"].values)):
        return None
    from msdiversity.motions.gait import grf_events
    from msdiversity.motions.reference import GRF

    g = np.asarray(rec["grf_ref"].values, float)
    time = np.asarray(rec["time"].values, float)
    feet = tuple(str(f) for f in rec["foot"].values) if "foot" in rec.coords else ("r", "l")
    grf = GRF(force=g, cop=np.zeros_like(g), free_moment=np.zeros_like(g), feet=feet, time=time)
    cyc = gait_cycles(grf_events(grf, threshold_n=threshold_n))
    return None if cyc is None else dataclasses.replace(cyc, t_offset=float(rec.attrs.get("ref_t0", 0.0)))


def phase_normaliser(rec, time: np.ndarray, n: int):
    """(normalise(a, axis) -> (..., n, ...), description, GaitCycles | None) for a recording: % gait
    cycle when its reference GRF has complete cycles, else time normalisation (prep.to_phase)."""
    from msdiversity.analysis.prep import to_phase

    try:
        cyc = recording_cycles(rec)
    except InputError:
        cyc = None
    if cyc is None:
        return (lambda a, axis: to_phase(a, time, axis, n)), "time-normalised over the recording (0-100 %)", None
    return (lambda a, axis: to_gait_cycle(a, time, axis, cyc.windows, n)), cyc.describe(), cyc
