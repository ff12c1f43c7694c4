"""EMG channel -> model muscle(s) mapping, and attaching envelopes to a reference motion.

Default table (`DEFAULT_TABLE`): the Rajagopal-family names used by myo-sim's leg models
(`myolegs`, derived from Rajagopal 2016) and by OpenSim's EMG validation scripts. A channel maps to
the table's muscles with the side suffix (`_r` / `_l`): the side is taken from the channel label
when it carries one (`R_SOL`, `LTA`, `SOL_r`, `GAS left` ...), otherwise from `side`. A channel
whose label is itself a model muscle name maps to that muscle. `overrides` win over both:
{"CHANNEL": "muscle_a+muscle_b"} (exact model names), or {"CHANNEL": ""} to drop a channel.

One channel covering several muscles (GAS -> gasmed + gaslat) gives each of them the same envelope;
comparisons use the mean activation of the channel's muscles.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from msdiversity.errors import InputError

DEFAULT_TABLE: dict[str, tuple[str, ...]] = {
    "SOL": ("soleus",), "GAS": ("gasmed", "gaslat"), "TA": ("tibant",), "MH": ("semimem", "semiten"),
    "BF": ("bflh", "bfsh"), "VL": ("vaslat",), "VM": ("vasmed",), "RF": ("recfem",),
    "GMAX": ("glmax1", "glmax2", "glmax3"), "GMED": ("glmed1", "glmed2", "glmed3"),
}
# Common longer labels for the same muscles.
ALIASES = {"SOLEUS": "SOL", "GASTROC": "GAS", "GASTROCNEMIUS": "GAS", "MG": "GAS", "LG": "GAS", "TIBANT": "TA",
           "TIBIALISANTERIOR": "TA", "SEMITEN": "MH", "MEDHAM": "MH", "BFLH": "BF", "BICEPSFEMORIS": "BF",
           "VASLAT": "VL", "VASMED": "VM", "RECFEM": "RF", "RECTUSFEMORIS": "RF", "GLUTMAX": "GMAX",
           "GLMAX": "GMAX", "GLUTMED": "GMED", "GLMED": "GMED"}
SIDES = ("r", "l")
_SIDE_PATTERNS = [(re.compile(r"^(R|L)[_\s-]+(.+)$", re.I), 1, 2), (re.compile(r"^(.+?)[_\s-]+(R|L)$", re.I), 2, 1),
                  (re.compile(r"^(RIGHT|LEFT)[_\s-]*(.+)$", re.I), 1, 2), (re.compile(r"^(.+?)[_\s-]*(RIGHT|LEFT)$", re.I), 2, 1)]


@dataclasses.dataclass(frozen=True)
class EmgMapping:
    """Result of `map_channels`.

    Attributes:
        model: model name.
        matched: ((channel, (muscle, ...)), ...) in file order.
        unmatched: ((channel, reason), ...) channels left out.
        muscles_without_emg: model muscles no channel maps to.
        side: the default side used.
    """

    model: str
    matched: tuple[tuple[str, tuple[str, ...]], ...]
    unmatched: tuple[tuple[str, str], ...]
    muscles_without_emg: tuple[str, ...]
    side: str

    @property
    def channel_muscles(self) -> dict[str, tuple[str, ...]]:
        return dict(self.matched)

    def summary_line(self) -> str:
        n_mus = sum(len(m) for _, m in self.matched)
        return (f"EMG mapping onto {self.model}: {len(self.matched)} of {len(self.matched) + len(self.unmatched)} "
                f"channels matched ({n_mus} muscles, side {self.side} by default); "
                f"{len(self.muscles_without_emg)} model muscles without EMG")


def split_side(label: str) -> tuple[str, str | None]:
    """('SOL', 'r') from 'R_SOL' / 'SOL_r' / 'RIGHT SOL'; (label, None) when no side tag."""
    s = label.strip()
    for pat, gs, gn in _SIDE_PATTERNS:
        m = pat.match(s)
        if m:
            return m.group(gn), m.group(gs)[0].lower()
    return s, None


def _key(name: str) -> str:
    k = re.sub(r"[^A-Z0-9]", "", name.upper())
    return ALIASES.get(k, k)


def map_channels(channels, model_muscles, side: str = "r", overrides: dict | None = None,
                 model: str = "model", table: dict | None = None) -> EmgMapping:
    """Map EMG channel labels onto model muscle names (see the module docstring).

    Args:
        channels: (C,) channel labels.
        model_muscles: (NM,) the model's muscle (actuator) names.
        side: 'r' or 'l', for labels without a side tag.
        overrides: channel -> 'muscle[+muscle...]' or '' (drop).
        table: channel key -> base muscle names (default `DEFAULT_TABLE`).
    """
    if side not in SIDES:
        raise InputError(f"expected one of {SIDES}, got {side!r}", field="side")
    table = DEFAULT_TABLE if table is None else table
    overrides = dict(overrides or {})
    names = list(model_muscles)
    known = set(names)
    unknown_ov = [c for c in overrides if c not in channels]
    if unknown_ov:
        raise InputError(f"override for channel(s) not in the file: {', '.join(unknown_ov)} "
                         f"(channels: {', '.join(channels)})", field="emg_mapping")
    matched, unmatched = [], []
    for ch in channels:
        if ch in overrides:
            spec = str(overrides[ch]).strip()
            if not spec:
                unmatched.append((ch, "dropped by override"))
                continue
            mus = tuple(m.strip() for m in spec.split("+") if m.strip())
            bad = [m for m in mus if m not in known]
            if bad:
                raise InputError(f"override {ch}={spec}: {', '.join(bad)} not a muscle of {model}", field=ch)
            matched.append((ch, mus))
            continue
        if ch in known:
            matched.append((ch, (ch,)))
            continue
        base, s = split_side(ch)
        s = s or side
        k = _key(base)
        if k not in table:
            unmatched.append((ch, "no entry in the channel table (give an override)"))
            continue
        mus = tuple(f"{m}_{s}" for m in table[k])
        present = tuple(m for m in mus if m in known)
        if not present:
            unmatched.append((ch, f"{', '.join(mus)} not in {model}"))
            continue
        matched.append((ch, present))
    used = {m for _, ms in matched for m in ms}
    dup = [m for m in used if sum(m in ms for _, ms in matched) > 1]
    if dup:
        raise InputError(f"muscle(s) {', '.join(sorted(dup))} mapped from more than one channel", field="emg_mapping")
    return EmgMapping(model=model, matched=tuple(matched), unmatched=tuple(unmatched),
                      muscles_without_emg=tuple(m for m in names if m not in used), side=side)


def per_muscle(env_data: np.ndarray, channels, mapping: EmgMapping) -> tuple[np.ndarray, tuple[str, ...]]:
    """(T, E) envelopes, one column per mapped muscle (a channel's envelope repeated for its muscles),
    and the E muscle names."""
    cols, names = [], []
    ch = list(channels)
    for c, mus in mapping.matched:
        for m in mus:
            cols.append(env_data[:, ch.index(c)])
            names.append(m)
    if not cols:
        raise InputError(f"no EMG channel maps onto a muscle of {mapping.model}", field="emg")
    return np.stack(cols, axis=1), tuple(names)


def resample_onto(time_src: np.ndarray, data: np.ndarray, time_dst: np.ndarray) -> np.ndarray:
    """Linear interpolation of (T_src, E) onto time_dst (T,); NaN outside the source's time span."""
    out = np.stack([np.interp(time_dst, time_src, data[:, e]) for e in range(data.shape[1])], axis=1)
    outside = (time_dst < time_src[0] - 1e-9) | (time_dst > time_src[-1] + 1e-9)
    out[outside] = np.nan
    return out
