"""Open reports in headless Chromium: every figure renders, no console errors, screenshot saved.

Skips (with the reason) when no Chromium is installed: `apt-get install chromium`.
"""

from __future__ import annotations

import pytest

from msdiversity.report import ReportInputs, build_report
from msdiversity.report._synthetic import synthetic_analysis, synthetic_metrics, synthetic_recording
from msdiversity.report.browser import check_report, find_chromium

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(find_chromium() is None,
                                 reason="no Chromium found ($MSD_CHROMIUM, chromium, google-chrome); "
                                        "install with `apt-get install -y chromium`")]


def test_report_renders_in_chromium(tmp_path, record_property):
    from msdiversity.analysis import AnalysisConfig, analyze_recording

    rec = synthetic_recording(trials=3)
    ana = analyze_recording(rec, AnalysisConfig(umap=False, baselines=False, n_perm=200, n_boot=100, n_null=10))
    path = build_report(ReportInputs(rec, ana, synthetic_metrics(rec)), tmp_path / "report.html")
    shot = tmp_path / "report.png"
    c = check_report(path, shot)
    record_property("screenshot", str(shot))
    print(f"screenshot: {shot}")
    assert len(c.figure_ids) >= 12, c.figure_ids
    assert c.missing == [], f"figures not rendered: {c.missing} (screenshot {shot})"
    assert c.console_errors == [], f"{c.console_errors} (screenshot {shot})"
    assert c.external_resources == []
    assert shot.stat().st_size > 50_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert c.page_height > 5000


def test_gait_style_report_with_grf(tmp_path):
    rec = synthetic_recording(feet=True, n_muscles=20)
    path = build_report(ReportInputs(rec, synthetic_analysis(rec), None), tmp_path / "gait.html")
    c = check_report(path, tmp_path / "gait.png")
    print(f"screenshot: {tmp_path / 'gait.png'}")
    assert "fig-grf" in c.rendered_ids and c.ok, (c.missing, c.console_errors)


def test_checker_detects_broken_pages(tmp_path):
    """The check can fail: a script error, a figure that never renders, and a CDN reference."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'>"
                   "<script src='https://cdn.plot.ly/plotly-latest.min.js'></script></head><body>"
                   "<div id='fig-x' class='plotly-graph-div'></div>"
                   "<script>Plotly.newPlot('fig-x', [{y: [1, 2]}]);</script></body></html>")
    c = check_report(bad, None, timeout=10)
    assert not c.ok
    assert c.missing == ["fig-x"]
    assert any("Plotly is not defined" in e for e in c.console_errors), c.console_errors
    assert c.external_resources == ["https://cdn.plot.ly/plotly-latest.min.js"]
