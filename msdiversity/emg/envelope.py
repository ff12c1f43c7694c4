"""Raw EMG -> linear envelope, the classical chain (e.g. Winter; OpenSim's EMG comparison scripts).

Per channel, in this order (every step configurable in `EnvelopeConfig`):
1. offset removal: subtract the channel mean (A/D offset);
2. band-pass `highpass_hz`..`bandpass_high_hz` (or high-pass only when `bandpass_high_hz` is None or
   not below Nyquist): zero-lag Butterworth (`scipy.signal.butter` + `sosfiltfilt`), removes motion
   artefact / baseline drift and high-frequency noise;
3. full-wave rectification |x|;
4. zero-lag low-pass at `lowpass_hz` (Butterworth, `sosfiltfilt`: forward-backward, so the
   envelope is not delayed and the effective order doubles);
5. normalisation: 'max' divides by the channel's maximum over the trial (envelope peaks at 1),
   'mvc' divides by the given MVC value per channel (same units as the envelope of the raw signal,
   i.e. the peak envelope of an MVC trial through this same chain), 'none' leaves units.
Small negative undershoots of the low-pass are clipped to 0.

Files that are already envelopes skip steps 1-4 and only get step 5.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.signal import butter, sosfiltfilt

from msdiversity.emg.io import EmgRecording
from msdiversity.errors import InputError

NORMALISATIONS = ("max", "mvc", "none")


@dataclasses.dataclass(frozen=True)
class EnvelopeConfig:
    """Envelope chain settings (Hz; `order` is the Butterworth order of each pass)."""

    remove_offset: bool = True
    highpass_hz: float = 20.0
    bandpass_high_hz: float | None = 400.0  # None: high-pass only
    lowpass_hz: float = 6.0
    order: int = 4
    normalise: str = "max"  # 'max' | 'mvc' | 'none'
    mvc: dict | None = None  # channel -> MVC envelope value (normalise = 'mvc')

    def describe(self) -> str:
        band = (f"band-pass {self.highpass_hz:g}-{self.bandpass_high_hz:g} Hz" if self.bandpass_high_hz
                else f"high-pass {self.highpass_hz:g} Hz")
        norm = {"max": "normalised to each channel's trial maximum", "mvc": "normalised to the given MVC",
                "none": "not normalised"}[self.normalise]
        return (f"{'offset removed, ' if self.remove_offset else ''}{band} (Butterworth order {self.order}, "
                f"zero-lag), full-wave rectified, zero-lag low-pass {self.lowpass_hz:g} Hz, {norm}")


def _check(cfg: EnvelopeConfig, rate: float) -> None:
    nyq = 0.5 * rate
    if cfg.normalise not in NORMALISATIONS:
        raise InputError(f"expected one of {NORMALISATIONS}, got {cfg.normalise!r}", field="normalise")
    if not 0 < cfg.lowpass_hz < nyq:
        raise InputError(f"low-pass must be in (0, {nyq:g}) Hz at {rate:g} Hz sampling, got {cfg.lowpass_hz}",
                         field="lowpass_hz")
    if not 0 <= cfg.highpass_hz < nyq:
        raise InputError(f"high-pass must be in [0, {nyq:g}) Hz, got {cfg.highpass_hz}", field="highpass_hz")
    if cfg.bandpass_high_hz is not None and not cfg.bandpass_high_hz > cfg.highpass_hz:
        raise InputError(f"band-pass upper edge {cfg.bandpass_high_hz} Hz must exceed the high-pass "
                         f"{cfg.highpass_hz} Hz", field="bandpass_high_hz")
    if cfg.order < 1:
        raise InputError(f"filter order must be >= 1, got {cfg.order}", field="order")


def linear_envelope(x: np.ndarray, rate: float, cfg: EnvelopeConfig = EnvelopeConfig()) -> np.ndarray:
    """Steps 1-4 on raw signals x (T, C) (or (T,)) sampled at `rate` Hz; returns the same shape, >= 0,
    in the signal's units (no normalisation)."""
    _check(cfg, rate)
    x = np.asarray(x, float)
    nyq = 0.5 * rate
    need = 3 * (4 * cfg.order + 1) + 1  # sosfiltfilt's default padding for a band-pass of this order
    if x.shape[0] < need:
        raise InputError(f"too few samples ({x.shape[0]}, need {need}) for order-{cfg.order} zero-lag filtering",
                         field="time")
    y = x - x.mean(axis=0) if cfg.remove_offset else x
    if cfg.highpass_hz > 0:
        if cfg.bandpass_high_hz is not None and cfg.bandpass_high_hz < nyq:
            sos = butter(cfg.order, [cfg.highpass_hz / nyq, cfg.bandpass_high_hz / nyq], btype="bandpass", output="sos")
        else:
            sos = butter(cfg.order, cfg.highpass_hz / nyq, btype="highpass", output="sos")
        y = sosfiltfilt(sos, y, axis=0)
    y = np.abs(y)
    sos = butter(cfg.order, cfg.lowpass_hz / nyq, btype="lowpass", output="sos")
    return np.clip(sosfiltfilt(sos, y, axis=0), 0.0, None)


def normalise(env: np.ndarray, channels, cfg: EnvelopeConfig, source: str = "") -> np.ndarray:
    """Step 5 on envelopes (T, C)."""
    env = np.asarray(env, float)
    if cfg.normalise == "none":
        return env
    if cfg.normalise == "max":
        peak = np.nanmax(env, axis=0)
        if np.any(peak <= 0):
            k = int(np.flatnonzero(peak <= 0)[0])
            raise InputError("channel is flat zero: cannot normalise to its maximum", path=source or None,
                             field=list(channels)[k])
        return env / peak
    mvc = cfg.mvc or {}
    missing = [c for c in channels if c not in mvc]
    if missing:
        raise InputError(f"normalise='mvc' needs an MVC value for every channel; missing {', '.join(missing)}",
                         field="mvc")
    vals = np.array([float(mvc[c]) for c in channels])
    if np.any(vals <= 0):
        raise InputError("MVC values must be > 0", field="mvc")
    return env / vals


def envelope(rec: EmgRecording, cfg: EnvelopeConfig = EnvelopeConfig()) -> EmgRecording:
    """An `EmgRecording` of normalised envelopes (raw files through steps 1-5, envelope files step 5)."""
    if rec.is_envelope:
        env, note = rec.data, "already envelopes: " + {"max": "normalised to each channel's trial maximum",
                                                       "mvc": "normalised to the given MVC",
                                                       "none": "taken as they are"}.get(cfg.normalise, "")
        if cfg.normalise not in NORMALISATIONS:
            raise InputError(f"expected one of {NORMALISATIONS}, got {cfg.normalise!r}", field="normalise")
    else:
        env, note = linear_envelope(rec.data, rec.rate, cfg), cfg.describe()
    env = normalise(env, rec.channels, cfg, rec.source)
    return dataclasses.replace(rec, data=env, is_envelope=True, units="1" if cfg.normalise != "none" else rec.units,
                               notes=rec.notes + (note,))
