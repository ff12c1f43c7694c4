"""`msdiversity run` end to end with the real stages on a tiny experiment (2 members, 3 iterations):
every output is written, a second run reuses them, --force-stage / --force recompute."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

TINY = """
name = "tiny"
[model]
name = "myoelbow_2dof"
[motion]
source = "synthetic"
seed = 1
duration = 0.5
[env]
episode_length = 25
backend = "cpu"
[train]
iterations = 3
num_envs = 8
unroll_length = 8
num_minibatches = 2
eval_every = 2
eval_envs = 4
eval_steps = 10
[ensemble]
seeds = [0, 1]
effort_exponent = [2.0]
[analysis]
umap = false
n_perm = 200
n_boot = 100
n_null = 10
k_max = 4
"""


@pytest.fixture(scope="module")
def recorder():
    return pytest.importorskip("msdiversity.recording.cli", reason="recorder (msdiversity.recording) not available yet")


@pytest.mark.slow
def test_run_then_reuse_then_force(tmp_path, monkeypatch, recorder, capsys):
    from msdiversity.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(TINY)
    assert main(["run", "tiny.toml"]) == 0
    res = tmp_path / "results" / "tiny"
    for f in ("checkpoints", "metrics.nc", "members.json", "recording.nc", "analysis.nc", "stages.json"):
        assert (res / f).exists(), f
    report = tmp_path / "reports" / "tiny.html"
    assert report.stat().st_size > 4_000_000
    book1 = json.loads((res / "stages.json").read_text())["stages"]
    assert set(book1) == {"train", "record", "analyze", "report"}

    t0 = time.perf_counter()
    assert main(["run", "tiny.toml"]) == 0
    reuse_s = time.perf_counter() - t0
    out = capsys.readouterr().err
    assert "all stages current" in out, out[-2000:]
    assert json.loads((res / "stages.json").read_text())["stages"] == book1  # nothing rewritten
    print(f"second run (all cached): {reuse_s:.2f} s")

    assert main(["run", "tiny.toml", "--force-stage", "analyze"]) == 0
    book2 = json.loads((res / "stages.json").read_text())["stages"]
    assert book2["train"] == book1["train"] and book2["record"] == book1["record"]
    assert book2["analyze"]["finished"] >= book1["analyze"]["finished"]

    # an override goes to its own results folder and leaves the plain experiment untouched
    assert main(["run", "tiny.toml", "--members", "2", "--seeds", "5,6", "--steps", "64"]) == 0
    assert (tmp_path / "reports" / "tiny-members2-seeds5_6-steps64.html").exists()
    assert json.loads((res / "stages.json").read_text())["stages"] == book2

    # more iterations: the train stage continues from the finished run's checkpoint (the first three
    # iterations' metrics are kept bitwise), and --force retrains from scratch (same seed: same numbers)
    import xarray as xr

    with xr.open_dataset(res / "metrics.nc", engine="h5netcdf") as ds:
        before = ds["joint_err_deg"].values[:, :3].copy()
    (tmp_path / "tiny.toml").write_text(TINY.replace("iterations = 3", "iterations = 4"))
    assert main(["run", "tiny.toml"]) == 0
    assert (res / "checkpoints" / "4").is_dir()
    with xr.open_dataset(res / "metrics.nc", engine="h5netcdf") as ds:
        assert ds.sizes["iteration"] == 5
        np.testing.assert_array_equal(ds["joint_err_deg"].values[:, :3], before)
        after = ds["joint_err_deg"].values.copy()
    capsys.readouterr()
    assert main(["run", "tiny.toml", "--force"]) == 0
    out = capsys.readouterr().err
    assert out.count("running (forced)") == 4, out[-2000:]
    with xr.open_dataset(res / "metrics.nc", engine="h5netcdf") as ds:
        np.testing.assert_allclose(ds["joint_err_deg"].values, after, rtol=1e-5)
