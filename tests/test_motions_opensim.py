"""OpenSim .mot/.sto parsing: shared real files, self-written variants, and bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from msdiversity.cli import main
from msdiversity.errors import InputError
from msdiversity.motions import MotionWarning, read_grf, read_opensim, read_table

DATA = Path(__file__).parents[2] / "shared" / "data" / "opensim"
needs_data = pytest.mark.skipif(not DATA.exists(), reason=f"shared OpenSim example data absent ({DATA})")

NEW_HEADER = "Coordinates\nversion=1\nnRows={rows}\nnColumns=3\ninDegrees={deg}\n\nUnits are S.I.\nendheader\n"
OLD_HEADER = "name arm\ndatacolumns 3\ndatarows {rows}\nrange 0 0.2\nendheader\n"


def _rows(n=3, elbow_deg=(0.0, 45.0, 90.0)):
    return "".join(f"{0.1 * i:.3f}\t{10.0 * i:.6f}\t{elbow_deg[i]:.6f}\n" for i in range(n))


def _write(tmp_path, name, text, newline="\n"):
    p = tmp_path / name
    p.write_bytes(text.replace("\n", newline).encode())
    return p


# ---------------------------------------------------------------- real files
@needs_data
def test_shared_gait_ik_file():
    m = read_opensim(DATA / "gait2354_subject01_walk1_ik.mot")
    assert m.n_frames == 73
    assert m.duration == pytest.approx(1.2, abs=1e-6) and m.rate == pytest.approx(60.0, rel=1e-4)
    assert len(m.coord_names) == 23 and m.coord_names[0] == "pelvis_tilt"
    # Degrees converted to radians; translations untouched (hand-read first row of the file).
    assert m.coord("pelvis_tilt")[0] == pytest.approx(np.deg2rad(5.18629404))
    assert m.coord("pelvis_ty")[0] == pytest.approx(1.04545552)
    assert not m.coord_is_rotation[m.coord_names.index("pelvis_tx")]
    assert m.coord_is_rotation[m.coord_names.index("knee_angle_r")]


@needs_data
def test_shared_arm26_and_sto_files():
    m = read_opensim(DATA / "arm26_InverseKinematics.mot")
    assert m.coord_names == ("r_shoulder_elev", "r_elbow_flex")
    assert m.n_frames == 121 and m.rate == pytest.approx(120.0, rel=1e-4)
    tab = read_table(DATA / "arm26_StaticOptimization_activation.sto")
    assert tab.in_degrees is False and tab.labels[1:] == ("TRIlong", "TRIlat", "TRImed", "BIClong", "BICshort", "BRA")
    assert tab.data.shape == (121, 7) and np.all((tab.data[:, 1:] >= 0) & (tab.data[:, 1:] <= 1))


@needs_data
def test_shared_grf_file_two_plates_two_feet():
    ik = read_opensim(DATA / "gait2354_subject01_walk1_ik.mot")
    g = read_grf(DATA / "gait2354_subject01_walk1_grf.mot", motion=ik)
    assert g.force.shape == (1501, 2, 3) and g.time[-1] == pytest.approx(2.5, abs=1e-3)
    # First data row, plate 'ground_force' (-> right foot by the COP-lateral rule, which matches
    # the OpenSim example's ExternalLoads: ground_force on calcn_r): vy=745.466 N is vertical.
    assert g.force[0, 0] == pytest.approx([101.5119767, 47.44870554, 745.4661142])  # (x, -z, y)
    assert g.force[0, 1] == pytest.approx([17.26938127, 7.46930128, 20.49185173])
    assert g.cop[0, 0] == pytest.approx([0.37898285, -0.12774652, -0.0075])
    assert g.free_moment[0, 0] == pytest.approx([0.0, 0.0, 13.53783445])
    assert any("ground_force -> r" in n for n in g.notes) and any("1_ground_force -> l" in n for n in g.notes)
    assert np.isnan(g.cop[:, 1]).any()  # unloaded frames of the left plate


# ---------------------------------------------------------------- written variants
@pytest.mark.parametrize("style", ["new", "old"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_header_styles_and_line_endings(tmp_path, style, newline):
    head = NEW_HEADER.format(rows=3, deg="yes") if style == "new" else OLD_HEADER.format(rows=3)
    p = _write(tmp_path, "a.mot", head + "time\tr_shoulder_elev\tr_elbow_flex\n" + _rows(), newline)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MotionWarning)  # old style: units inferred (values > 2 pi)
        m = read_opensim(p)
    assert m.coord_names == ("r_shoulder_elev", "r_elbow_flex")
    assert m.coords[:, 1] == pytest.approx(np.deg2rad([0, 45, 90]))
    assert m.time == pytest.approx([0, 0.1, 0.2])


def test_trailing_tabs_and_padded_labels(tmp_path):
    head = NEW_HEADER.format(rows=3, deg="yes").replace("\n", "\t\t\n")
    body = "".join(line + "\t\t\n" for line in _rows().splitlines())
    p = _write(tmp_path, "a.mot", head + "time\t  r_shoulder_elev \t r_elbow_flex\t\t\n" + body)
    m = read_opensim(p)
    assert m.coord_names == ("r_shoulder_elev", "r_elbow_flex")
    assert m.coords.shape == (3, 2)


def test_radians_kept(tmp_path):
    p = _write(tmp_path, "a.sto", NEW_HEADER.format(rows=3, deg="no") + "time\ta\tb\n" + _rows(elbow_deg=(0.1, 0.2, 0.3)))
    m = read_opensim(p)
    assert m.coords[:, 1] == pytest.approx([0.1, 0.2, 0.3])
    assert m.meta["in_degrees"] is False


def test_wrong_row_count_warns_and_uses_actual_rows(tmp_path):
    p = _write(tmp_path, "a.mot", NEW_HEADER.format(rows=7, deg="yes") + "time\ta\tb\n" + _rows())
    with pytest.warns(MotionWarning, match="nrows=7 but the file has 3 rows"):
        m = read_opensim(p)
    assert m.n_frames == 3


def test_resample_and_velocities(tmp_path):
    t = np.linspace(0, 1, 101)
    from msdiversity.motions import ReferenceMotion

    m = ReferenceMotion(t, ("a",), np.sin(2 * np.pi * t)[:, None], [True])
    assert m.velocities[50, 0] == pytest.approx(2 * np.pi * np.cos(np.pi), rel=1e-3)
    r = m.resample(30.0)
    assert r.n_frames == 31 and r.rate == pytest.approx(30.0)
    assert r.coords[:, 0] == pytest.approx(np.sin(2 * np.pi * r.time), abs=1e-5)


# ---------------------------------------------------------------- bad input
BAD = {
    "truncated": (NEW_HEADER.format(rows=3, deg="yes") + "time\ta\tb\n0\t1\t2\n0.1\t1\n", 11, None, "row has 2 values, expected 3"),
    "non_numeric": (NEW_HEADER.format(rows=2, deg="yes") + "time\ta\tb\n0\t1\t2\n0.1\t1\tabc\n", 11, "b", "non-numeric value 'abc'"),
    "no_endheader": ("Coordinates\nnRows=1\ntime\ta\n0\t1\n", 4, "endheader", "no 'endheader' line"),
    "empty": ("", 1, None, "file is empty"),
    "no_time": (NEW_HEADER.format(rows=1, deg="yes") + "t\ta\tb\n0\t1\t2\n", 9, "time", "expected 'time'"),
    "time_not_increasing": (NEW_HEADER.format(rows=2, deg="yes") + "time\ta\tb\n0.1\t1\t2\n0.1\t1\t2\n", 11, "time",
                            "time does not increase"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_file_line_field(tmp_path, case):
    text, line, field, msg = BAD[case]
    p = _write(tmp_path, f"{case}.mot", text)
    with pytest.raises(InputError) as ei:
        read_opensim(p)
    e = ei.value
    assert Path(e.path) == p and e.line == line and e.field == field
    assert msg in str(e) and str(p) in str(e)


@pytest.mark.parametrize("case", ["truncated", "non_numeric", "no_endheader", "empty"])
def test_cli_bad_file_one_line_exit_2(tmp_path, capsys, case):
    p = _write(tmp_path, f"{case}.mot", BAD[case][0])
    assert main(["motion", "inspect", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(p) in err[0]
    assert "Traceback" not in err[0]


def test_cli_unknown_model_one_line_exit_2(tmp_path, capsys):
    p = _write(tmp_path, "a.mot", NEW_HEADER.format(rows=3, deg="yes") + "time\ta\tb\n" + _rows())
    assert main(["motion", "inspect", str(p), "--model", "no_such_model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [e for e in err if e.startswith("error: ")] and len(err) == 1
    assert "unknown model 'no_such_model'" in err[0]
