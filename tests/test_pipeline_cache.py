"""Caching logic of `msdiversity run` with small real stage functions (files in a tmp dir)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from msdiversity.config import experiment_from_dict
from msdiversity.errors import ConfigError
from msdiversity.util.io import file_digest
from msdiversity.pipeline import (STAGES_FILE, Context, Stage, override_suffix, parse_seeds,
                                  run_stages)


def _stages(calls: list[str]) -> list[Stage]:
    def a(ctx: Context):
        calls.append("a")
        (ctx.results_dir / "a.txt").write_text(str(ctx.experiment.sections["train"]["x"]))

    def b(ctx: Context):
        calls.append("b")
        x = int((ctx.results_dir / "a.txt").read_text())
        (ctx.results_dir / "b.txt").write_text(str(x * ctx.experiment.sections["analysis"].get("mult", 2)))

    def c(ctx: Context):
        calls.append("c")
        ctx.report_path.parent.mkdir(parents=True, exist_ok=True)
        ctx.report_path.write_text("<html>" + (ctx.results_dir / "b.txt").read_text() + "</html>")

    return [Stage("a", ("train",), (), ("a.txt",), a),
            Stage("b", ("analysis",), ("a.txt",), ("b.txt",), b),
            Stage("c", ("report",), ("b.txt",), ("{report}",), c)]


def _ctx(tmp_path: Path, x: int = 3, mult: int = 2) -> Context:
    exp = experiment_from_dict({"name": "t", "train": {"x": x}, "analysis": {"mult": mult}})
    return Context(experiment=exp, results_dir=tmp_path / "results" / "t", report_path=tmp_path / "reports" / "t.html")


def test_second_run_skips_and_force_reruns(tmp_path):
    calls: list[str] = []
    ctx = _ctx(tmp_path)
    res = run_stages(_stages(calls), ctx)
    assert calls == ["a", "b", "c"] and all(r.ran for r in res)
    assert ctx.report_path.read_text() == "<html>6</html>"
    book = json.loads((ctx.results_dir / STAGES_FILE).read_text())["stages"]
    assert set(book) == {"a", "b", "c"}
    assert book["c"]["outputs"][str(ctx.report_path)] == file_digest(ctx.report_path)

    calls.clear()
    res = run_stages(_stages(calls), ctx)
    assert calls == [] and not any(r.ran for r in res)

    res = run_stages(_stages(calls), ctx, force=True)
    assert calls == ["a", "b", "c"]
    calls.clear()
    run_stages(_stages(calls), ctx, force_stages=("b",))
    assert calls == ["b"]  # b rewrote identical content, so c's inputs are unchanged


def test_changed_section_reruns_that_stage_and_dependents(tmp_path):
    calls: list[str] = []
    run_stages(_stages(calls), _ctx(tmp_path))
    calls.clear()
    run_stages(_stages(calls), _ctx(tmp_path, mult=5))  # only [analysis] changed
    assert calls == ["b", "c"]
    assert (tmp_path / "reports" / "t.html").read_text() == "<html>15</html>"
    calls.clear()
    run_stages(_stages(calls), _ctx(tmp_path, x=4, mult=5))  # [train] changed: everything downstream
    assert calls == ["a", "b", "c"]
    assert (tmp_path / "reports" / "t.html").read_text() == "<html>20</html>"


def test_missing_or_edited_output_reruns(tmp_path):
    calls: list[str] = []
    ctx = _ctx(tmp_path)
    run_stages(_stages(calls), ctx)
    calls.clear()
    ctx.report_path.unlink()
    run_stages(_stages(calls), ctx)
    assert calls == ["c"]
    calls.clear()
    (ctx.results_dir / "a.txt").write_text("10")  # edited by hand: a is stale and is redone ...
    run_stages(_stages(calls), ctx)
    assert calls == ["a"]  # ... which restores the content b was computed from, so b and c stay current
    assert ctx.report_path.read_text() == "<html>6</html>"
    calls.clear()
    (ctx.results_dir / "b.txt").write_text("99")
    run_stages(_stages(calls), ctx)
    assert calls == ["b"]


def test_failed_stage_is_not_recorded(tmp_path):
    calls: list[str] = []
    stages = _stages(calls)

    def boom(ctx):
        calls.append("boom")
        raise RuntimeError("stage failed")

    stages[1] = Stage("b", ("analysis",), ("a.txt",), ("b.txt",), boom)
    ctx = _ctx(tmp_path)
    with pytest.raises(RuntimeError):
        run_stages(stages, ctx)
    book = json.loads((ctx.results_dir / STAGES_FILE).read_text())["stages"]
    assert set(book) == {"a"}
    calls.clear()
    run_stages(_stages(calls), ctx)
    assert calls == ["b", "c"]


def test_stage_that_writes_nothing_is_an_error(tmp_path):
    st = [Stage("lazy", ("train",), (), ("never.txt",), lambda ctx: None)]
    with pytest.raises(RuntimeError, match="did not write"):
        run_stages(st, _ctx(tmp_path))


def test_directory_digest_tracks_contents(tmp_path):
    d = tmp_path / "ckpt"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "w.bin").write_bytes(b"\x00\x01")
    h1 = file_digest(d)
    (d / "sub" / "w.bin").write_bytes(b"\x00\x02")
    assert file_digest(d) != h1
    assert file_digest(tmp_path / "absent") is None


def test_override_suffix_and_seeds():
    assert override_suffix({}) == ""
    s = override_suffix({"model": "myoelbow_2dof", "motion": "../shared/data/opensim/arm26_InverseKinematics.mot",
                         "members": 8})
    assert s == "model_myoelbow_2dof-motion_arm26_InverseKinematics-members8"
    assert parse_seeds("4") == [0, 1, 2, 3]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("2-4") == [2, 3, 4]
    assert parse_seeds(None) is None
    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds("many")
