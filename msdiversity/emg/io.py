"""EMG file readers: Motion Analysis `.anc`, OpenSim `.sto`/`.mot`, CSV, C3D (analog channels, via ezc3d).

Every reader returns an `EmgRecording`: one uniform time axis, one column per channel, the rate,
and whether the columns are raw signals or already envelopes.

- `.anc` (Motion Analysis ASCII analog): free header lines, then a `Name` row of channel labels, a
  `Rate` row (Hz per channel) and a `Range` row (mV per channel), then one row per sample whose
  first cell is the time in s. Values are A/D counts. Force-plate channels (`F1X` ... `M3Z`) are
  kept apart in `analog` and are not EMG.
- `.sto`/`.mot`: any OpenSim table (`msdiversity.motions.opensim.read_table`); every column but
  time is a channel.
- `.csv`: a header row whose first label is `time` (s), then numeric rows; comma, semicolon or tab
  separated.
- `.c3d`: the analog channels of the file (needs the optional `ezc3d`, `pip install -e .[c3d]`);
  time = first frame / point rate + sample / analog rate.

Kind: `kind="auto"` takes a file as already enveloped when none of its EMG values is negative (raw
surface EMG is bipolar, so a raw file has negative samples; an envelope never has), and as raw
otherwise; pass `kind="raw"` or `kind="envelope"` to say so explicitly.

Bad files (missing, empty, truncated or ragged rows, non-numeric cells, channels at different rates,
a stated rate that disagrees with the time column, non-uniform sampling) raise one `InputError`
naming the file, the line and the column.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from msdiversity.errors import InputError

KINDS = ("auto", "raw", "envelope")
FORMATS = (".anc", ".sto", ".mot", ".csv", ".c3d")
FORCE_PLATE = re.compile(r"^[FM]\d*[XYZ]$", re.IGNORECASE)  # F1X, M2Z, FX ...
RATE_RTOL = 0.01  # stated rate vs time column: relative tolerance


@dataclasses.dataclass(frozen=True)
class EmgRecording:
    """EMG channels on one uniform time axis.

    Attributes:
        time: (T,) s, uniform.
        data: (T, C) raw signal (file units, e.g. A/D counts or V) or envelope (>= 0).
        channels: (C,) channel labels as in the file.
        rate: Hz.
        is_envelope: True when `data` are envelopes (read as such, or after `envelope`).
        source: the file.
        units: of `data` ("A/D counts", "1" after normalisation, "file units" when unknown).
        analog: non-EMG channels (force plates) as {label: (T,) values}; not processed.
        notes: processing steps and assumptions, in order.
    """

    time: np.ndarray
    data: np.ndarray
    channels: tuple[str, ...]
    rate: float
    is_envelope: bool
    source: str = ""
    units: str = "file units"
    analog: dict = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        return float(self.time[-1] - self.time[0])

    def channel(self, name: str) -> np.ndarray:
        try:
            return self.data[:, self.channels.index(name)]
        except ValueError:
            raise InputError(f"no EMG channel '{name}' (have: {', '.join(self.channels)})", path=self.source,
                             field=name) from None


def _uniform_rate(t: np.ndarray, path, stated: float | None, line_of=lambda i: None) -> float:
    """Hz from a time column, checking uniform sampling and agreement with a stated rate."""
    dt = np.diff(t)
    if len(t) < 2:
        raise InputError("need at least 2 samples (truncated file?)", path=path, field="time")
    if np.any(dt <= 0):
        i = int(np.flatnonzero(dt <= 0)[0]) + 1
        raise InputError(f"time does not increase ({t[i - 1]:g} then {t[i]:g}); expected strictly increasing "
                         "time in s", path=path, line=line_of(i), field="time")
    med = float(np.median(dt))
    bad = np.abs(dt - med) > 0.5 * med  # a skipped or doubled sample, not print rounding
    if bad.any():
        i = int(np.flatnonzero(bad)[0]) + 1
        raise InputError(f"non-uniform sampling: step {dt[i - 1]:g} s at t = {t[i]:g} s, expected {med:g} s "
                         "(missing rows?)", path=path, line=line_of(i), field="time")
    rate = (len(t) - 1) / (t[-1] - t[0])
    if stated is not None and abs(rate - stated) > RATE_RTOL * stated:
        raise InputError(f"stated rate {stated:g} Hz disagrees with the time column ({rate:.6g} Hz)",
                         path=path, field="rate")
    return float(stated if stated is not None else rate)


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _numeric_rows(lines: list[str], start: int, n: int, path, labels, sep=None) -> np.ndarray:
    rows = []
    for j in range(start, len(lines)):
        s = lines[j].strip()
        if not s:
            continue
        cells = [c.strip() for c in (s.split(sep) if sep else s.split())]
        if sep and cells and cells[-1] == "":
            cells = cells[:-1]  # trailing separator
        if len(cells) != n:
            raise InputError(f"row has {len(cells)} values, expected {n} (one per channel label; truncated or "
                             "ragged file?)", path=path, line=j + 1)
        try:
            rows.append([float(c) for c in cells])
        except ValueError:
            k = next(k for k, c in enumerate(cells) if not _is_float(c))
            raise InputError(f"non-numeric value '{cells[k]}', expected a number", path=path, line=j + 1,
                             field=labels[k] if k < len(labels) else None) from None
    if not rows:
        raise InputError("no data rows after the channel labels (truncated file?)", path=path, line=start)
    data = np.asarray(rows, float)
    if not np.all(np.isfinite(data)):
        i, k = np.argwhere(~np.isfinite(data))[0]
        raise InputError("value is not finite (nan/inf)", path=path, field=labels[k])
    return data


def _line_index(lines: list[str], start: int):
    """Map data-row index -> 1-based file line (skipping blank lines)."""
    idx = [j + 1 for j in range(start, len(lines)) if lines[j].strip()]
    return lambda i: idx[i] if 0 <= i < len(idx) else None


def _read_text(path: Path) -> list[str]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    lines = text.splitlines()
    if not any(ln.strip() for ln in lines):
        raise InputError("file is empty", path=path, line=1)
    return lines


def read_anc(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str], float, dict]:
    """Motion Analysis `.anc`: (time (T,) s, data (T, C) A/D counts, labels, rate Hz, header)."""
    path = Path(path)
    lines = _read_text(path)
    header: dict[str, str] = {}
    rows: dict[str, tuple[int, list[str]]] = {}
    for i, ln in enumerate(lines):
        cells = [c.strip() for c in ln.rstrip().split("\t")]
        key = cells[0].lower() if cells else ""
        if key in ("name", "rate", "range"):
            rows[key] = (i, [c for c in cells[1:] if c != ""])
            if key == "range":
                break
        else:
            for k in range(0, len(cells) - 1, 2):  # 'Key:<tab>value' pairs
                if cells[k].endswith(":"):
                    header[cells[k][:-1].lower()] = cells[k + 1]
    for key in ("name", "rate", "range"):
        if key not in rows:
            raise InputError(f"no '{key.capitalize()}' row: a Motion Analysis .anc file has 'Name', 'Rate' and "
                             "'Range' rows (tab-separated, one cell per channel) before the samples",
                             path=path, field=key.capitalize())
    li, labels = rows["name"]
    ri, rates_s = rows["rate"]
    gi, _ = rows["range"]
    if len(rates_s) != len(labels):
        raise InputError(f"'Rate' row has {len(rates_s)} cells for {len(labels)} channels", path=path, line=ri + 1,
                         field="Rate")
    try:
        rates = np.array([float(r) for r in rates_s])
    except ValueError:
        raise InputError("non-numeric 'Rate' cell, expected Hz per channel", path=path, line=ri + 1,
                         field="Rate") from None
    vals, counts = np.unique(rates, return_counts=True)
    common = float(vals[np.argmax(counts)])  # the odd channel out is the one named
    if np.any(rates != common):
        k = int(np.flatnonzero(rates != common)[0])
        raise InputError(f"channel '{labels[k]}' is sampled at {rates[k]:g} Hz, the others at {common:g} Hz: "
                         "mixed rates are not supported (resample the file to one rate)", path=path, line=ri + 1,
                         field=labels[k])
    pr = header.get("preciserate", "")
    stated = float(pr) if _is_float(pr) else float(rates[0])
    if abs(stated - rates[0]) > RATE_RTOL * rates[0]:
        raise InputError(f"header PreciseRate {stated:g} Hz disagrees with the channels' Rate {rates[0]:g} Hz",
                         path=path, field="PreciseRate")
    data = _numeric_rows(lines, gi + 1, len(labels) + 1, path, ["time"] + labels, sep="\t")
    t = data[:, 0]
    rate = _uniform_rate(t, path, float(rates[0]), _line_index(lines, gi + 1))
    if "#channels" in header and header["#channels"].strip().isdigit() and int(header["#channels"]) != len(labels):
        raise InputError(f"header says #Channels {header['#channels']} but the Name row has {len(labels)} labels",
                         path=path, line=li + 1, field="#Channels")
    return t, data[:, 1:], labels, rate, header


def read_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str], float]:
    """CSV with a `time` first column (s): (time, data, labels, rate)."""
    path = Path(path)
    lines = _read_text(path)
    li = next(i for i, ln in enumerate(lines) if ln.strip())
    head = lines[li]
    sep = "," if "," in head else (";" if ";" in head else "\t")
    labels = [c.strip().strip('"') for c in head.split(sep)]
    if labels and labels[-1] == "":
        labels = labels[:-1]
    if not labels or labels[0].lower() not in ("time", "time_s", "t"):
        raise InputError(f"first column is '{labels[0] if labels else ''}', expected 'time' (s): the first line of "
                         "an EMG CSV holds the labels, time first, then one column per channel", path=path,
                         line=li + 1, field="time")
    data = _numeric_rows(lines, li + 1, len(labels), path, labels, sep=sep)
    rate = _uniform_rate(data[:, 0], path, None, _line_index(lines, li + 1))
    return data[:, 0], data[:, 1:], labels[1:], rate


def read_sto(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str], float]:
    from msdiversity.motions.opensim import read_table

    tab = read_table(path)
    stated = None
    for k in ("datarate", "rate", "samplerate"):
        if k in tab.header and _is_float(tab.header[k]):
            stated = float(tab.header[k])
    rate = _uniform_rate(tab.time, Path(path), stated, lambda i: tab.first_data_line + i)
    return tab.time, tab.data[:, 1:], list(tab.labels[1:]), rate


def read_c3d(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str], float]:
    try:
        import ezc3d
    except ImportError:
        raise InputError("reading .c3d needs the optional package ezc3d (pip install -e .[c3d])", path=path) from None
    try:
        c = ezc3d.c3d(str(path))
    except Exception as e:  # ezc3d raises RuntimeError/ValueError with its own text
        raise InputError(f"cannot read C3D: {e}", path=path) from None
    an = np.asarray(c["data"]["analogs"], float)  # (1, C, N)
    labels = list(c["parameters"]["ANALOG"]["LABELS"]["value"])
    rate = float(c["header"]["analogs"]["frame_rate"])
    if an.size == 0 or not labels:
        raise InputError("the C3D file has no analog channels", path=path)
    data = an[0].T
    t0 = float(c["header"]["points"]["first_frame"]) / float(c["header"]["points"]["frame_rate"] or rate)
    return t0 + np.arange(data.shape[0]) / rate, data, [str(s).strip() for s in labels], rate


def read_emg(path: str | Path, kind: str = "auto", channels: list[str] | None = None) -> EmgRecording:
    """Read an EMG file (see the module docstring for formats and the `kind` rule).

    Args:
        path: `.anc`, `.sto`, `.mot`, `.csv` or `.c3d`.
        kind: 'auto', 'raw' or 'envelope'.
        channels: keep only these EMG channels (default: every channel that is not a force-plate channel).
    """
    path = Path(path)
    if kind not in KINDS:
        raise InputError(f"expected one of {KINDS}, got {kind!r}", field="kind")
    if not path.exists():
        raise InputError(f"EMG file not found (expected one of {', '.join(FORMATS)})", path=path)
    suf = path.suffix.lower()
    units = "file units"
    if suf == ".anc":
        t, data, labels, rate, _ = read_anc(path)
        units = "A/D counts"
    elif suf in (".sto", ".mot"):
        t, data, labels, rate = read_sto(path)
    elif suf == ".csv":
        t, data, labels, rate = read_csv(path)
    elif suf == ".c3d":
        t, data, labels, rate = read_c3d(path)
    else:
        raise InputError(f"unknown EMG format '{suf}' (expected one of {', '.join(FORMATS)})", path=path)
    if len(set(labels)) != len(labels):
        dup = sorted({lb for lb in labels if labels.count(lb) > 1})
        raise InputError(f"duplicate channel labels: {', '.join(dup)}", path=path, field=dup[0])
    plate = [i for i, n in enumerate(labels) if FORCE_PLATE.match(n)]
    analog = {labels[i]: data[:, i] for i in plate}
    keep = [i for i in range(len(labels)) if i not in plate]
    if channels is not None:
        missing = [c for c in channels if c not in labels]
        if missing:
            raise InputError(f"no channel(s) {', '.join(missing)} (have: {', '.join(labels)})", path=path,
                             field=missing[0])
        keep = [labels.index(c) for c in channels]
    if not keep:
        raise InputError("no EMG channels (only force-plate channels F#X..M#Z)", path=path)
    emg = data[:, keep]
    notes = [f"read {len(keep)} EMG channels at {rate:g} Hz from {path.name}"]
    if analog:
        notes.append(f"{len(analog)} force-plate channels kept apart ({', '.join(list(analog)[:3])}, ...)")
    if kind == "auto":
        is_env = bool(np.all(emg >= 0))
        notes.append("no negative values: taken as envelopes" if is_env else
                     "negative values present: raw EMG, to be enveloped")
    else:
        is_env = kind == "envelope"
        if is_env and np.any(emg < 0):
            k = int(np.flatnonzero((emg < 0).any(0))[0])
            raise InputError("kind='envelope' but the channel has negative values (raw EMG? use kind='raw')",
                             path=path, field=labels[keep[k]])
    return EmgRecording(time=t, data=emg, channels=tuple(labels[i] for i in keep), rate=rate, is_envelope=is_env,
                        source=str(path), units=units, analog=analog, notes=tuple(notes))
