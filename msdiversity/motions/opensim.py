"""OpenSim `.mot` / `.sto` readers: coordinates (IK results) and ground reaction forces.

Header styles accepted (both end with a line `endheader`):

- OpenSim 3/4 style: a title line, then `key=value` lines (`version=1`, `nRows=73`,
  `nColumns=24`, `inDegrees=yes`, `DataType=double`, ...) and free text.
- The older SIMM style: `name <title>`, `datacolumns N`, `datarows N`, `range t0 t1`.

The line after `endheader` holds the column labels (tab- or space-separated; the first is `time`),
then one row per sample. CRLF or LF line endings, trailing tabs and padded labels are fine. A
stated row count (`nRows` / `datarows`) that disagrees with the file gives a warning and the actual
rows are used. Every other problem raises `InputError` naming the file, the 1-based line and the
column.

Frames. OpenSim's ground frame is Y up (X forward, Z to the right of a subject walking along +X);
MuJoCo's is Z up. We use the fixed rotation `OPENSIM_TO_MUJOCO`: x_mj = x_os, y_mj = -z_os,
z_mj = y_os (X forward, Y left, Z up; right-handed, det = +1). Ground reaction forces, points and
torques are rotated on reading; pelvis coordinates are rotated when mapped onto a model
(`msdiversity.motions.mapping`), with the same matrix, so GRF and kinematics stay consistent.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import numpy as np

from msdiversity.errors import InputError
from msdiversity.motions.reference import FEET, GRF, ReferenceMotion

# (3, 3) rotation taking OpenSim ground (Y up) vectors to MuJoCo world (Z up) vectors: v_mj = R @ v_os.
OPENSIM_TO_MUJOCO = np.array([[1.0, 0.0, 0.0],
                              [0.0, 0.0, -1.0],
                              [0.0, 1.0, 0.0]])

# Vertical force (N) below which a plate counts as unloaded (its COP is then meaningless).
UNLOADED_N = 10.0


class MotionWarning(UserWarning):
    """Something in a motion file was accepted with an assumption (wrong row count, units guess...)."""


@dataclasses.dataclass(frozen=True)
class OpenSimTable:
    """The raw contents of an OpenSim table file.

    Attributes:
        path: the file.
        header: key -> value from `key=value` (or old-style `key value`) header lines, lower-cased keys.
        labels: (C,) column labels, the first being 'time'.
        data: (T, C) float values.
        in_degrees: True / False when the header says so (`inDegrees`), None when it does not.
        warnings: the assumptions made while reading.
        first_data_line: 1-based line number of the first data row.
    """

    path: Path
    header: dict
    labels: tuple[str, ...]
    data: np.ndarray
    in_degrees: bool | None
    warnings: tuple[str, ...]
    first_data_line: int

    @property
    def time(self) -> np.ndarray:
        return self.data[:, 0]


def _warn(msgs: list[str], msg: str) -> None:
    msgs.append(msg)
    warnings.warn(msg, MotionWarning, stacklevel=3)


def _split_labels(line: str) -> list[str]:
    parts = line.split("\t") if "\t" in line else line.split()
    labels = [p.strip() for p in parts]
    while labels and labels[-1] == "":  # trailing tabs
        labels.pop()
    return labels


def read_table(path: str | Path) -> OpenSimTable:
    """Read any OpenSim `.mot` / `.sto` table (see the module docstring for what is accepted).

    Raises:
        InputError: missing or empty file, no `endheader`, no column labels, a row with the wrong
            number of values (truncated file), a non-numeric cell, no `time` column, or time that
            does not strictly increase. The message names the file, line and column.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found (expected an OpenSim .mot or .sto file)", path=path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    lines = text.splitlines()  # handles \r\n, \n and \r
    if not any(ln.strip() for ln in lines):
        raise InputError("file is empty (expected an OpenSim header ending with 'endheader', "
                         "then column labels and rows)", path=path, line=1)
    msgs: list[str] = []

    # ---- header ----
    header: dict[str, str] = {}
    end = None
    for i, ln in enumerate(lines):
        s = ln.strip()
        if s.lower() == "endheader":
            end = i
            break
        if "=" in s:
            k, _, v = s.partition("=")
            header[k.strip().lower()] = v.strip()
        elif i == 0:
            header["title"] = s
            if s.lower().startswith("name "):  # old style 'name <title>'
                header["name"] = s[5:].strip()
        else:
            parts = s.split(None, 1)
            if len(parts) == 2 and parts[0].lower() in ("name", "datacolumns", "datarows", "range"):
                header[parts[0].lower()] = parts[1].strip()
    if end is None:
        raise InputError("no 'endheader' line: expected OpenSim header lines (e.g. nRows=, nColumns=, "
                         "inDegrees=) ending with a line 'endheader' before the column labels",
                         path=path, line=len(lines), field="endheader")

    # ---- column labels ----
    li = end + 1
    while li < len(lines) and not lines[li].strip():
        li += 1
    if li >= len(lines):
        raise InputError("file ends after 'endheader': expected a line of column labels and data rows "
                         "(truncated file?)", path=path, line=len(lines))
    labels = _split_labels(lines[li])
    label_line = li + 1
    if not labels or labels[0].lower() != "time":
        raise InputError(f"first column is '{labels[0] if labels else ''}', expected 'time' "
                         "(the line after 'endheader' must be the column labels starting with time)",
                         path=path, line=label_line, field="time")
    if len(set(labels)) != len(labels):
        dup = sorted({lb for lb in labels if labels.count(lb) > 1})
        raise InputError(f"duplicate column labels: {', '.join(dup)}", path=path, line=label_line, field=dup[0])
    labels[0] = "time"

    # ---- rows ----
    n = len(labels)
    rows: list[list[float]] = []
    for j in range(li + 1, len(lines)):
        s = lines[j].strip()
        if not s:
            continue
        cells = s.split()
        if len(cells) != n:
            raise InputError(f"row has {len(cells)} values, expected {n} (one per column label; "
                             "truncated or ragged file?)", path=path, line=j + 1)
        try:
            rows.append([float(c) for c in cells])
        except ValueError:
            k = next(k for k, c in enumerate(cells) if not _is_float(c))
            raise InputError(f"non-numeric value '{cells[k]}', expected a number", path=path, line=j + 1,
                             field=labels[k]) from None
    if not rows:
        raise InputError("no data rows after the column labels (truncated file?)", path=path, line=label_line)
    data = np.asarray(rows, dtype=float)  # (T, C)
    first_data_line = next(j + 1 for j in range(li + 1, len(lines)) if lines[j].strip())

    # ---- checks ----
    t = data[:, 0]
    if not np.all(np.isfinite(t)):
        bad = int(np.flatnonzero(~np.isfinite(t))[0])
        raise InputError("time is not finite", path=path, line=_data_line(lines, li, bad), field="time")
    dt = np.diff(t)
    if np.any(dt <= 0):
        bad = int(np.flatnonzero(dt <= 0)[0]) + 1
        raise InputError(f"time does not increase ({t[bad - 1]:g} then {t[bad]:g}); expected strictly "
                         "increasing time", path=path, line=_data_line(lines, li, bad), field="time")
    for key in ("nrows", "datarows"):
        if key in header:
            try:
                stated = int(float(header[key]))
            except ValueError:
                stated = None
            if stated != len(rows):
                _warn(msgs, f"{path}: header says {key}={header[key]} but the file has {len(rows)} rows; "
                            f"using the {len(rows)} rows found")
    for key in ("ncolumns", "datacolumns"):
        if key in header:
            try:
                stated = int(float(header[key]))
            except ValueError:
                stated = None
            if stated != n:
                _warn(msgs, f"{path}: header says {key}={header[key]} but there are {n} column labels; "
                            f"using the {n} labels found")
    in_deg = None
    if "indegrees" in header:
        v = header["indegrees"].strip().lower()
        if v in ("yes", "true", "1"):
            in_deg = True
        elif v in ("no", "false", "0"):
            in_deg = False
        else:
            raise InputError(f"inDegrees={header['indegrees']!r}, expected yes or no", path=path,
                             field="inDegrees")
    return OpenSimTable(path=path, header=header, labels=tuple(labels), data=data, in_degrees=in_deg,
                        warnings=tuple(msgs), first_data_line=first_data_line)


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _data_line(lines: list[str], label_idx: int, row: int) -> int:
    """1-based line number of data row `row` (0-based, blank lines skipped)."""
    k = -1
    for j in range(label_idx + 1, len(lines)):
        if lines[j].strip():
            k += 1
            if k == row:
                return j + 1
    return len(lines)


_TRANSLATION = re.compile(r"(_t[xyz]$|^t[xyz]$|translation|_tx_|_ty_|_tz_)", re.IGNORECASE)


def is_translation(name: str) -> bool:
    """True for translational coordinates (pelvis_tx/ty/tz, *_tx, *translation*): metres, not angles."""
    return bool(_TRANSLATION.search(name))


def read_opensim(path: str | Path, in_degrees: bool | None = None,
                 translations: tuple[str, ...] | None = None) -> ReferenceMotion:
    """Read an OpenSim coordinates file (IK `.mot`, states `.sto`) as a `ReferenceMotion`.

    Args:
        path: the `.mot` / `.sto` file.
        in_degrees: override the header's `inDegrees`. When neither says, angles are taken as
            degrees if any rotational column exceeds 2*pi in magnitude, else radians (with a warning).
        translations: names of translational columns (metres, never converted); default: names
            matching `pelvis_t[xyz]`, `*_t[xyz]` or containing `translation`.

    Returns:
        ReferenceMotion with angles in radians; meta has source, format, header, in_degrees, warnings.
    """
    tab = read_table(path)
    msgs = list(tab.warnings)
    names = tab.labels[1:]
    coords = tab.data[:, 1:].copy()  # (T, C)
    is_grf = np.array([bool(_GRF_COL.match(n)) for n in names])
    is_rot = np.array([not (n in translations if translations is not None else is_translation(n))
                       for n in names]) & ~is_grf
    if is_grf.any():
        _warn(msgs, f"{tab.path}: {int(is_grf.sum())} ground-reaction-force columns read as plain values "
                    "(not angles); pass this file as the GRF file (--grf / read_grf) to assign plates to feet")
    bad = ~np.isfinite(coords)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputError("coordinate value is not finite (NaN or inf), expected a number", path=tab.path,
                         line=_data_line_from(tab, int(r)), field=names[c])
    deg = in_degrees if in_degrees is not None else tab.in_degrees
    if deg is None:
        big = np.abs(coords[:, is_rot]).max() if is_rot.any() else 0.0
        deg = bool(big > 2 * np.pi)
        _warn(msgs, f"{tab.path}: header has no inDegrees; assuming {'degrees' if deg else 'radians'} "
                    f"(largest rotational value {big:.3g}); pass in_degrees to override")
    if deg:
        coords[:, is_rot] = np.deg2rad(coords[:, is_rot])
    meta = {"source": str(tab.path), "format": "opensim", "header": tab.header, "in_degrees": bool(deg),
            "warnings": msgs, "frame": "opensim (Y up) for pelvis_t*; GRF in mujoco (Z up)"}
    return ReferenceMotion(time=tab.time.copy(), coord_names=names, coords=coords, coord_is_rotation=is_rot,
                           meta=meta)


def _data_line_from(tab: OpenSimTable, row: int) -> int:
    lines = tab.path.read_text(errors="replace").splitlines()
    return _data_line(lines, tab.first_data_line - 2, row)


# ---------------------------------------------------------------------------------------------
# Ground reaction forces
# ---------------------------------------------------------------------------------------------

# e.g. ground_force_vx, 1_ground_force_px, R_ground_torque_z, ground_force_r_vy, l_ground_moment_x
_GRF_COL = re.compile(
    r"^(?P<pre>(?:[A-Za-z0-9]+_)*?)ground_(?P<kind>force|torque|moment)(?P<mid>(?:_[A-Za-z0-9]+)*?)"
    r"_(?P<comp>[vp]?)(?P<axis>[xyz])$")


@dataclasses.dataclass(frozen=True)
class Plate:
    """One force plate's columns (OpenSim Y-up frame, as read)."""

    key: str  # the plate's label, e.g. '' , '1_', 'R_', '_r'
    force: np.ndarray  # (T, 3) N
    point: np.ndarray  # (T, 3) m
    torque: np.ndarray  # (T, 3) N m

    @property
    def label(self) -> str:
        return f"{self.key}ground_force" if not self.key.startswith("_") else f"ground_force{self.key}"


def _check_plate_finite(tab: OpenSimTable, plate: Plate, cols: dict[str, int]) -> None:
    """Refuse NaN/inf in a plate's force or torque, or in its point while it is loaded (a NaN cell
    would otherwise turn the foot's GRF into NaN and silently change what the analysis compares).
    A point that is NaN while the plate is unloaded (some exporters write that) is set to 0: it
    carries no weight in the COP."""
    loaded = plate.force[:, 1] > UNLOADED_N  # OpenSim Y up
    for kind, arr, mask in (("v", plate.force, None), ("t", plate.torque, None), ("p", plate.point, loaded)):
        bad = ~np.isfinite(arr)
        if mask is not None:
            arr[bad & ~mask[:, None]] = 0.0
            bad &= mask[:, None]
        if bad.any():
            r, a = np.argwhere(bad)[0]
            col = cols.get(f"{kind}{'xyz'[a]}")
            raise InputError("ground reaction value is not finite (NaN or inf)" + (" while the plate is loaded"
                             if kind == "p" else "") + ", expected a number", path=tab.path,
                             line=_data_line_from(tab, int(r)), field=tab.labels[col] if col is not None else None)


def _plates(tab: OpenSimTable) -> list[Plate]:
    groups: dict[str, dict[str, int]] = {}
    for ci, lab in enumerate(tab.labels):
        m = _GRF_COL.match(lab)
        if not m:
            continue
        kind = {"force": "v" if m["comp"] != "p" else "p", "torque": "t", "moment": "t"}[m["kind"]]
        if m["kind"] == "force" and m["comp"] == "":
            kind = "v"
        key = m["pre"] + m["mid"]
        groups.setdefault(key, {})[kind + m["axis"]] = ci
    plates = []
    for key, cols in groups.items():
        need = [f"v{a}" for a in "xyz"]
        if not all(c in cols for c in need):
            missing = [c for c in need if c not in cols]
            raise InputError(f"force plate '{key or '(no prefix)'}' lacks force columns "
                             f"{', '.join(missing)} (expected *_vx, *_vy, *_vz)", path=tab.path,
                             field=f"{key}ground_force_{missing[0]}")
        get = lambda p: (np.stack([tab.data[:, cols[f'{p}{a}']] for a in 'xyz'], 1)  # noqa: E731
                         if all(f"{p}{a}" in cols for a in "xyz") else np.zeros((len(tab.time), 3)))
        plate = Plate(key=key, force=get("v"), point=get("p"), torque=get("t"))
        _check_plate_finite(tab, plate, cols)
        plates.append(plate)
    if not plates:
        raise InputError("no ground reaction force columns found (expected names like ground_force_vx, "
                         "1_ground_force_px, R_ground_torque_x)", path=tab.path)
    # Keep file order: plates sorted by the column of their first force label.
    order = {k: min(v.values()) for k, v in groups.items()}
    return sorted(plates, key=lambda p: order[p.key])


def _side_from_key(key: str) -> str | None:
    toks = [t.lower() for t in key.strip("_").split("_") if t]
    for t in toks:
        if t in ("r", "right"):
            return "r"
        if t in ("l", "left"):
            return "l"
    return None


def _pelvis_lateral(plate: Plate, motion: ReferenceMotion, t: np.ndarray) -> float | None:
    """Mean lateral offset (m, + = right) of the plate's COP from the pelvis, over loaded frames.

    Uses only the pelvis coordinates of an IK motion (no model): the COP relative to the pelvis
    origin, projected on the pelvis's right axis (OpenSim +Z of the pelvis frame rotated by
    tilt-list-rotation). None when the plate is never loaded during the motion or pelvis
    coordinates are missing.
    """
    need = ("pelvis_tx", "pelvis_ty", "pelvis_tz", "pelvis_tilt", "pelvis_list", "pelvis_rotation")
    if not all(n in motion.coord_names for n in need):
        return None
    loaded = plate.force[:, 1] > UNLOADED_N
    loaded &= (t >= motion.time[0]) & (t <= motion.time[-1])
    if loaded.sum() < 3:
        return None
    tl = t[loaded]
    c = {n: np.interp(tl, motion.time, motion.coord(n)) for n in need}
    pel = np.stack([c["pelvis_tx"], c["pelvis_ty"], c["pelvis_tz"]], 1)  # (L, 3)
    from msdiversity.motions.mapping import opensim_pelvis_matrix

    rot = opensim_pelvis_matrix(c["pelvis_tilt"], c["pelvis_list"], c["pelvis_rotation"])  # (L, 3, 3)
    right = rot[:, :, 2]  # pelvis +Z axis in ground
    rel = plate.point[loaded] - pel
    return float(np.mean(np.sum(rel * right, axis=1)))


def assign_plates(plates: list[Plate], t: np.ndarray, motion: ReferenceMotion | None = None,
                  assign: dict[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """Decide which foot stands on each plate.

    Rule, in order:
      1. an explicit `assign` {plate key or label: 'r'|'l'};
      2. a side tag in the plate's labels (`R_`/`L_`/`right_`/`left_` prefix or `_r`/`_l` infix);
      3. with an IK motion holding the pelvis coordinates: the side of the pelvis on which the
         plate's centre of pressure lies while loaded (right if the mean lateral offset along the
         pelvis's +Z axis is positive). Works for any model since it needs no segment lengths;
      4. otherwise file order: first plate right, second left (stated as an assumption).
    Two plates both assigned to one side by rule 3 fall back to rule 4. Several plates may share
    a foot (forces are summed).

    Returns:
        ({plate key: 'r'|'l'}, notes explaining each decision)
    """
    out: dict[str, str] = {}
    notes: list[str] = []
    assign = assign or {}
    undecided = []
    for p in plates:
        forced = assign.get(p.key, assign.get(p.label))
        if forced is not None:
            if forced not in FEET:
                raise InputError(f"plate assignment must be 'r' or 'l', got {forced!r}", field=p.label)
            out[p.key] = forced
            notes.append(f"{p.label} -> {forced} (given)")
        elif (side := _side_from_key(p.key)) is not None:
            out[p.key] = side
            notes.append(f"{p.label} -> {side} (side tag in the column names)")
        else:
            undecided.append(p)
    if undecided and motion is not None:
        lat = {p.key: _pelvis_lateral(p, motion, t) for p in undecided}
        sides = {k: ("r" if v > 0 else "l") for k, v in lat.items() if v is not None and abs(v) > 0.02}
        if len(sides) == len(undecided) and (len(undecided) == 1 or len(set(sides.values())) == 2):
            for p in undecided:
                out[p.key] = sides[p.key]
                notes.append(f"{p.label} -> {sides[p.key]} (centre of pressure {abs(lat[p.key]) * 100:.1f} cm "
                             f"{'right' if sides[p.key] == 'r' else 'left'} of the pelvis while loaded)")
            undecided = []
        else:
            notes.append("kinematic plate assignment was ambiguous "
                         f"(lateral offsets {', '.join(f'{k or chr(39) * 2}: {v}' for k, v in lat.items())}); "
                         "falling back to file order")
    for i, p in enumerate(undecided):
        side = FEET[i % 2]
        out[p.key] = side
        notes.append(f"{p.label} -> {side} (ASSUMED from file order: first plate right, second left; "
                     "pass the IK motion or an explicit assignment to decide from data)")
    return out, notes


def read_grf(path: str | Path, motion: ReferenceMotion | None = None,
             assign: dict[str, str] | None = None) -> GRF:
    """Read an OpenSim GRF file (any number of plates) as per-foot GRF in the MuJoCo frame.

    Args:
        path: `.mot` / `.sto` with `*ground_force_v[xyz]`, `*ground_force_p[xyz]`,
            `*ground_torque_[xyz]` columns per plate.
        motion: the matching IK motion (used to assign plates to feet, see `assign_plates`).
        assign: explicit {plate key or label: 'r'|'l'}.

    Returns:
        GRF on the file's own clock (`time` set; `ReferenceMotion.with_grf` resamples it), rotated
        by `OPENSIM_TO_MUJOCO`. Per foot: force = sum of its plates; COP = vertical-force-weighted
        mean of plate points (NaN while the foot carries < 10 N); free moment = sum of plate torques
        plus (p_i - cop) x F_i, i.e. the total moment about the combined COP.
    """
    tab = read_table(path)
    plates = _plates(tab)
    t = tab.time
    sides, notes = assign_plates(plates, t, motion, assign)
    T = len(t)
    force = np.zeros((T, 2, 3))
    cop = np.full((T, 2, 3), np.nan)
    moment = np.zeros((T, 2, 3))
    for fi, foot in enumerate(FEET):
        ps = [p for p in plates if sides[p.key] == foot]
        if not ps:
            continue
        f = np.stack([p.force for p in ps])  # (plates, T, 3) OpenSim frame
        pt = np.stack([p.point for p in ps])
        tq = np.stack([p.torque for p in ps])
        fy = np.clip(f[..., 1], 0.0, None)  # vertical (Y up) loads
        tot = fy.sum(0)  # (T,)
        loaded = tot > UNLOADED_N
        w = np.where(loaded, 1.0, 0.0)[None] * fy / np.where(loaded, tot, 1.0)[None]  # (plates, T)
        c = (w[..., None] * pt).sum(0)  # (T, 3)
        m = (tq + np.cross(pt - c[None], f)).sum(0)  # (T, 3) total moment about c
        force[:, fi] = f.sum(0) @ OPENSIM_TO_MUJOCO.T
        cop[loaded, fi] = c[loaded] @ OPENSIM_TO_MUJOCO.T
        moment[:, fi] = m @ OPENSIM_TO_MUJOCO.T
    missing = [f for f in FEET if f not in sides.values()]
    if missing:
        notes.append(f"no plate for foot {', '.join(missing)}: its GRF is zero")
    for n in notes:
        if "ASSUMED" in n:
            warnings.warn(f"{tab.path}: {n}", MotionWarning, stacklevel=2)
    return GRF(force=force, cop=cop, free_moment=moment, feet=FEET, time=t.copy(),
               notes=tuple([f"source {tab.path}"] + notes))
