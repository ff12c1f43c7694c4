"""`msdiversity bench physics` runs end to end (tiny sizes; timing goals live in the benchmark)."""

from msdiversity.cli import main


def test_bench_physics_cli_runs(capsys):
    rc = main(["bench", "physics", "--model", "myoelbow_2dof", "--nsim", "4", "--threads", "1", "--steps", "3",
               "--backends", "cpu", "--repeats", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "raw mujoco.batch" in out and "env (cpu)" in out and "summary:" in out
