"""End to end on a planted myolegs recording (msdiversity.analysis.planted_gait: the real Rajagopal
running trial, members = OpenSim CMC activations x member gains): analyze_recording with the CMC
file and the walking EMG -> analysis.nc -> report with the EMG / classical panels, in Chromium."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from msdiversity.report.browser import find_chromium

DATA = __import__("pathlib").Path(__file__).parents[2] / "shared" / "data" / "opensim"
FILES = ("rajagopal_subject01_run_ik.mot", "rajagopal_subject01_run_grf.mot", "rajagopal_subject01_run_cmc_states.sto",
         "rajagopal_walk_emg_raw.anc", "rajagopal_walk_grf.mot")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not all((DATA / f).exists() for f in FILES), reason=f"Rajagopal files not in {DATA}"),
              pytest.mark.skipif(find_chromium() is None, reason="no Chromium found; `apt-get install -y chromium`")]


def test_myolegs_report_members_vs_cmc_and_emg_over_gait_cycle(tmp_path):
    from msdiversity.analysis import AnalysisConfig, analyze_recording
    from msdiversity.analysis.core import save_analysis
    from msdiversity.analysis.planted_gait import planted_myolegs_recording
    from msdiversity.report import ReportInputs, build_report
    from msdiversity.report.browser import check_report

    rec = planted_myolegs_recording(DATA)
    cfg = AnalysisConfig(umap=False, baselines=False, nullspace=False, n_perm=200, n_boot=100, n_null=10,
                         classical=(str(DATA / FILES[2]),), emg=str(DATA / FILES[3]), emg_grf=str(DATA / FILES[4]))
    ana = analyze_recording(rec, cfg)
    path = save_analysis(ana, tmp_path / "analysis.nc")
    back = xr.load_dataset(path, engine="h5netcdf")
    assert back.attrs["phase_normalisation"].startswith("% gait cycle: 1 cycle(s) of the right foot")
    assert back.attrs["cmp_emg_comparison"].startswith("normative")
    assert "80 of 80 muscles mapped" in back.attrs["cmp_classical"]
    assert back["cmp_cls_r"].shape == (1, 4, 80) and back["cmp_emg_r"].shape == (4, 10)
    assert np.nanmedian(back["cmp_cls_r"].values) > 0.8  # planted: members follow CMC in shape
    html_path = build_report(ReportInputs(rec, back, None), tmp_path / "report.html")
    doc = html_path.read_text()
    assert "Normative comparison" in doc and "% gait cycle" in doc
    c = check_report(html_path, tmp_path / "report.png")
    assert {"fig-emg-gait", "fig-classical-r"} <= set(c.rendered_ids), c.rendered_ids
    assert c.missing == [] and c.console_errors == [], (c.missing, c.console_errors)
