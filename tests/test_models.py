"""Model registry: every built-in model loads and summarizes; stripping keeps masses; MS-Human-700."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from msdiversity.cli import main
from msdiversity.errors import ModelError
from msdiversity.models import list_models, load_model, summarize
from msdiversity.models.registry import ModelLoadWarning

MS700 = Path(__file__).parents[2] / "shared" / "data" / "ms_human_700" / "MS-Human-700.xml"


@pytest.mark.parametrize("name", list_models())
def test_every_builtin_model_loads_and_summarizes(name):
    s = summarize(load_model(name))
    assert s.n_muscles > 0 and len(s.muscle_names) == s.n_muscles
    assert s.muscle_peak_force.shape == (s.n_muscles,) and np.all(s.muscle_peak_force > 0)
    assert s.joint_ranges.shape == (len(s.joint_names), 2)
    assert 5.0 < s.total_mass < 120.0
    if name in ("myolegs", "myofullbody"):
        assert s.free_root is not None and s.foot_geoms["r"] and s.foot_geoms["l"]


@pytest.mark.parametrize("name", ["myoelbow_2dof", "myolegs"])
def test_strip_meshes_keeps_masses_and_inertias(name):
    a, b = load_model(name, strip_meshes=True), load_model(name, strip_meshes=False)
    assert a.stripped_geoms > 0 and b.stripped_geoms == 0
    assert a.model.ngeom < b.model.ngeom
    np.testing.assert_array_equal(a.model.body_mass, b.model.body_mass)
    np.testing.assert_array_equal(a.model.body_inertia, b.model.body_inertia)
    np.testing.assert_array_equal(a.model.body_ipos, b.model.body_ipos)


@pytest.mark.skipif(not MS700.exists(), reason=f"MS-Human-700 XML absent ({MS700})")
def test_ms_human_700_loads_with_missing_meshes_and_textures():
    from msdiversity.models import registry

    registry._load_cached.cache_clear()
    with pytest.warns(ModelLoadWarning, match="textures with missing image files"):
        lm = load_model(MS700)
    assert lm.stripped_textures and lm.stripped_meshes and "stripped" in lm.stripped_summary
    s = summarize(lm)
    assert s.n_muscles == 700 and s.nq == 85
    assert s.total_mass == pytest.approx(57.79, abs=0.05)  # documented in ../shared/data/ms_human_700/README.md


def test_unknown_model_is_a_model_error(capsys):
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        load_model("nope")
    with pytest.raises(ModelError, match="model file not found"):
        load_model("/no/such/model.xml")


def test_models_cli_lists_all(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr()
    for name in list_models():
        assert name in out.out


def test_no_mujoco_empty_prefix_noise(tmp_path):
    """myo-sim's builders trigger MuJoCo's C-level 'empty prefix' warning; loading stays quiet
    (nothing on stderr, no MUJOCO_LOG.TXT written)."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", "from msdiversity.models import load_model; load_model('myolegs')"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "empty prefix" not in r.stderr and "empty prefix" not in r.stdout
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
