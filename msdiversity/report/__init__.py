"""Self-contained HTML diversity report (`reports/<experiment>.html`) drawn from the recording,
analysis and metrics datasets. `build_report(inputs, out_path)`; `load_inputs(results_dir)`;
`check_in_browser(path)` opens it in headless Chromium (see `browser.py`)."""

from msdiversity.report.build import ReportInputs, build_report, load_inputs, render_report

__all__ = ["ReportInputs", "build_report", "load_inputs", "render_report"]
