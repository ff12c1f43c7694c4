"""Plain progress lines where there is no terminal (cluster logs, CI)."""

import io

from msdiversity.util.progress import PlainProgress


def test_plain_progress_prints_rate_eta_and_final_line():
    out = io.StringIO()
    p = PlainProgress(interval_s=0.0, stream=out)
    with p:
        t = p.add_task("train x", total=4, info="compiling...")
        for i in range(1, 5):
            p.update(t, completed=i, info=f"{i * 100} env steps/s")
    lines = out.getvalue().strip().splitlines()
    assert lines[0].startswith("train x: 1/4 (25%) 100 env steps/s elapsed")
    assert "ETA" in lines[0]
    assert lines[-1].startswith("train x: 4/4 (100%) 400 env steps/s")
    assert len(lines) == 4  # one per update at interval 0, none repeated at stop


def test_plain_progress_respects_interval():
    out = io.StringIO()
    p = PlainProgress(interval_s=3600.0, stream=out)
    t = p.add_task("record", total=100)
    for i in range(1, 50):
        p.advance(t)
    assert out.getvalue() == ""  # nothing yet: the interval has not passed and the task is not done
    p.stop()
    assert out.getvalue().startswith("record: 49/100 (49%)")
