"""Command-line overrides of `msdiversity run`: exact meaning of --members/--seeds/--steps/--motion,
result-folder naming, and that overrides change the stage keys (results never mix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from msdiversity.config import experiment_from_dict, load_experiment
from msdiversity.ensemble.config import EnsembleConfig, expand_members, section
from msdiversity.errors import ConfigError
from msdiversity.pipeline import Context, apply_overrides, default_stages

ROOT = Path(__file__).resolve().parents[1]
ARM26 = ROOT.parent / "shared" / "data" / "opensim" / "arm26_InverseKinematics.mot"


def _exp(**ens):
    return experiment_from_dict({"name": "x", "ensemble": {"seeds": [0, 1], "effort_exponent": [2.0, 3.0], **ens},
                                 "train": {"num_envs": 8, "unroll_length": 10},
                                 "motion": {"source": "synthetic", "seed": 3, "duration": 1.0}})


def _members(exp):
    return expand_members(section(EnsembleConfig, exp, "ensemble"))


def test_no_overrides_keep_name_and_sections():
    e = _exp()
    e2, given = apply_overrides(e)
    assert given == {} and e2.name == "x" and e2.sections == e.sections


@pytest.mark.parametrize("n", [1, 3, 4, 7])
def test_members_are_the_first_n_of_the_grid(n):
    e = _exp()
    e2, _ = apply_overrides(e, members=n)
    got = _members(e2)
    assert len(got) == n
    # grid with seeds extended 0, 1, 2, 3 (seeds vary slowest): exponents alternate within a seed
    want = [(s, p) for s in (0, 1, 2, 3) for p in (2.0, 3.0)][:n]
    assert [(m["seed"], m["effort_exponent"]) for m in got] == want
    assert e2.name == f"x-members{n}"


def test_members_in_list_mode_cannot_grow():
    e = _exp(mode="list")
    with pytest.raises(ConfigError, match="cannot make 5"):
        apply_overrides(e, members=5)
    assert len(_members(apply_overrides(e, members=1)[0])) == 1


def test_seeds_steps_backend():
    e2, given = apply_overrides(_exp(), seeds=[5, 9], steps=1000, backend="cpu")
    assert [m["seed"] for m in _members(e2)] == [5, 5, 9, 9]
    assert e2.sections["train"]["iterations"] == 13  # ceil(1000 / (8 envs * 10 steps))
    assert e2.sections["env"]["backend"] == "cpu"
    assert e2.name == "x-seeds5_9-backend_cpu-steps1000"
    with pytest.raises(ConfigError, match="--steps"):
        apply_overrides(_exp(), steps=0)


@pytest.mark.skipif(not ARM26.exists(), reason=f"OpenSim example data not found at {ARM26}")
def test_motion_file_override_drops_synthetic_keys():
    e2, _ = apply_overrides(_exp(), motion=str(ARM26), model="myoelbow_2dof", members=8)
    assert e2.sections["motion"] == {"source": str(ARM26.resolve())}
    assert e2.name == "x-model_myoelbow_2dof-motion_arm26_InverseKinematics-members8"


def test_missing_motion_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="motion file not found"):
        apply_overrides(_exp(), motion=str(tmp_path / "nope.mot"))


def test_overrides_change_train_key_but_not_analysis_key(tmp_path):
    e = _exp()
    stages = {s.name: s for s in default_stages()}

    def key(exp, stage):
        ctx = Context(exp, tmp_path / exp.name, tmp_path / f"{exp.name}.html")
        return stages[stage].key(ctx, "v")

    e_seeds, _ = apply_overrides(e, seeds=[7, 8], name="x")  # same name, different settings
    assert key(e_seeds, "train") != key(e, "train")
    assert key(e_seeds, "analyze") == key(e, "analyze")  # analysis depends on recording.nc content only
    assert key(apply_overrides(e, backend="cpu", name="x")[0], "record") != key(e, "record")


def test_shipped_experiments_parse():
    from msdiversity.analysis.core import AnalysisConfig
    from msdiversity.config import section_to_dataclass
    from msdiversity.emulator import EnvConfig
    from msdiversity.ensemble.config import ModelSection, MotionSection
    from msdiversity.learning.ppo import TrainConfig

    files = sorted((ROOT / "experiments").glob("*.toml"))
    assert any(f.name == "default.toml" for f in files)
    for f in files:
        exp = load_experiment(f)
        for cls, sec in ((ModelSection, "model"), (MotionSection, "motion"), (EnvConfig, "env"),
                         (TrainConfig, "train"), (EnsembleConfig, "ensemble"), (AnalysisConfig, "analysis")):
            section_to_dataclass(cls, exp.section(sec), sec, f)
        TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in exp.section("train").items()}).validate(f)
    default = load_experiment(ROOT / "experiments" / "default.toml")
    assert default.sections["model"]["name"] == "myoelbow_2dof"
    assert default.sections["motion"]["source"] == "synthetic"
    assert len(_members(default)) >= 8
    assert len({m["effort_exponent"] for m in _members(default)}) >= 2
