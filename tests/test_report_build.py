"""The HTML report: content drawn from the datasets, self-contained, honest wording, CLI."""

from __future__ import annotations

import re

import numpy as np
import pytest

from msdiversity.analysis import AnalysisConfig, analyze_recording
from msdiversity.errors import InputError
from msdiversity.report import ReportInputs, build_report, load_inputs, render_report
from msdiversity.report import text as T
from msdiversity.report._synthetic import synthetic_analysis, synthetic_metrics, synthetic_recording
from msdiversity.util.io import save_dataset_atomic

FAST = AnalysisConfig(umap=False, baselines=False, n_perm=500, n_boot=200, n_null=20)


@pytest.fixture(scope="module")
def arm():
    """Planted: 8 members (4 seeds x 2 effort exponents) tracking the reference with 2 deg i.i.d. noise,
    analysed by the real `analyze_recording`."""
    rec = synthetic_recording(trials=3, joint_noise_deg=2.0)
    return ReportInputs(rec, analyze_recording(rec, FAST), synthetic_metrics(rec))


def test_every_section_and_figure_present(arm):
    doc, ids = render_report(arm)
    for sid in ("summary", "kinematics", "muscles", "synergies", "embedding", "statistics", "training", "methods"):
        assert f"<section id='{sid}'>" in doc
    expected = {"fig-spec-vs-div", "fig-kinematics", "fig-spec-bars", "fig-heatmaps", "fig-muscle-overlays",
                "fig-distances", "fig-syn-weights", "fig-syn-activations", "fig-syn-matching", "fig-vaf",
                "fig-embedding", "fig-training"}
    assert expected <= set(ids)
    assert "fig-grf" not in ids and "no feet" in doc  # arm model: GRF explained as absent
    assert doc.count("Plotly.newPlot(") == len(ids)
    for name in ("TRIlong", "BRA", "r_elbow_flex"):
        assert name in doc


def test_self_contained_offline(arm):
    import plotly.offline

    doc, _ = render_report(arm)
    js = plotly.offline.get_plotlyjs()
    assert doc.count(js) == 1  # plotly.js inline, exactly once (~4.8 MB)
    # The library itself names URLs (topojson/map tiles, unused); the rest of the page must name none.
    rest = doc.replace(js, "")
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", rest)
    assert not re.search(r"https?://", rest) and "@import" not in rest and "@font-face" not in rest
    assert "<meta charset='utf-8'>" in doc


def test_headline_numbers_match_planted_and_analysis(arm):
    h = T.headline(arm.recording, arm.analysis)
    # planted i.i.d. joint noise of 2 deg -> RMSE ~ 2 deg (8 members x 100 frames x 2 joints)
    assert h.joint_rmse_deg.value == pytest.approx(2.0, abs=0.15)
    assert h.joint_rmse_deg.value == pytest.approx(float(arm.analysis["spec_joint_rmse_deg"].mean()))
    assert h.joint_rmse_deg.lo < h.joint_rmse_deg.value < h.joint_rmse_deg.hi
    est = arm.analysis["div_index"].sel(boot="estimate").item()
    assert h.index.value == pytest.approx(est)
    doc, _ = render_report(arm)
    assert f"{h.joint_rmse_deg.value:.{h.joint_rmse_deg.digits(1)}f}°" in doc
    assert f"{est:.2f}" in doc
    assert h.test_name == "act_vs_kinematics"  # no GRF: the external test would repeat the kinematic one
    assert T.fmt_p(float(arm.analysis["stat_p"].sel(test=h.test_name))) in doc


def test_bootstrap_mean_interval():
    rng = np.random.default_rng(1)
    x = rng.normal(10.0, 1.0, 400)
    e = T.bootstrap_mean(x)
    se = x.std(ddof=1) / np.sqrt(x.size)
    assert e.lo == pytest.approx(x.mean() - 1.96 * se, abs=0.03)
    assert e.hi == pytest.approx(x.mean() + 1.96 * se, abs=0.03)
    assert not T.bootstrap_mean([np.nan]).ok


def test_conclusion_wording_follows_the_numbers(arm):
    h = T.headline(arm.recording, arm.analysis)
    text = " ".join(T.conclusion(h))
    assert "finds the activation differences larger" in text and "p = 0.00" in text
    h.test = dict(h.test, p=0.31)
    text = " ".join(T.conclusion(h))
    assert "did not detect" in text and "does not show that the muscle solution is unique" in text
    h.joint_rmse_deg = T.Estimate(12.0, 10.0, 14.0, "°")
    assert "Caution" in " ".join(T.conclusion(h))
    no = T.headline(arm.recording, None)
    assert "missing" in T.conclusion(no)[0]


def test_grf_model_and_many_muscles():
    rec = synthetic_recording(feet=True, n_muscles=20)
    doc, ids = render_report(ReportInputs(rec, synthetic_analysis(rec), None))
    assert "fig-grf" in ids and "GRF RMSE" in doc
    assert "metrics.nc was not found" in doc


def test_without_analysis_only_recording_figures():
    rec = synthetic_recording()
    doc, ids = render_report(ReportInputs(rec, None, None))
    assert set(ids) == {"fig-kinematics", "fig-heatmaps", "fig-muscle-overlays"}
    assert "analysis.nc was not found" in doc


def test_methods_lists_versions_and_config(arm):
    doc, _ = render_report(arm)
    m = doc[doc.index("<section id='methods'>"):]
    for pkg in ("jax", "mujoco", "numpy", "scikit-learn", "plotly", "msdiversity"):
        assert f"<code>{pkg}</code>" in m
    assert "effort exponent ∈ {2, 3}" in m and "seed ∈ {0, 1, 2, 3}" in m
    assert "n_perm = 500" in m and "VAF ≥ 0.9" in m


def test_load_inputs_and_cli(tmp_path, arm):
    res = tmp_path / "results" / "exp1"
    with pytest.raises(InputError, match="recording.nc"):
        load_inputs(res)
    save_dataset_atomic(arm.recording, res / "recording.nc")
    with pytest.raises(InputError, match="analysis.nc"):
        load_inputs(res)
    save_dataset_atomic(arm.analysis, res / "analysis.nc")
    inp = load_inputs(res)
    assert inp.metrics is None and inp.analysis["spec_joint_rmse_deg"].shape == (8,)

    from msdiversity.cli import main

    out = tmp_path / "out" / "r.html"
    assert main(["report", str(res), "--out", str(out)]) == 0
    assert out.exists() and out.stat().st_size > 4_000_000
    assert not list(out.parent.glob(".*.tmp"))  # atomic write left nothing behind
    assert main(["report", str(tmp_path / "nothing.txt")]) == 2


def test_build_report_atomic(tmp_path, arm):
    p = build_report(arm, tmp_path / "a" / "b.html")
    assert p.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [q.name for q in p.parent.iterdir()] == ["b.html"]
