"""`msdiversity bench physics`: env throughput per backend next to raw `mujoco.batch`.

Both are measured in one run on the same model, number of simulations, threads and substeps:
- raw: `mujoco.batch.Batch(model, nsim, nthread).step(nstep=substeps)` in a Python loop (constant
  controls), i.e. the physics alone;
Timings are interleaved (raw, env, raw, env, ...) and the best round of each is reported.
- env: a jitted `lax.scan` of `K` steps of `vmap(env.step)` over `nsim` envs (constant action,
  reset when done), i.e. physics + callback + observations, errors and reward.
Rates are env (control) steps per second = nsim * steps / seconds; substeps/s = that * substeps.

Memory per env (MJX backends): `XLA MB/env` is the compiled env program's own device memory
(arguments + outputs + temporaries, from XLA's memory analysis: for MJX this holds every env's MJX
Data and, for mjx-warp, the contact pool) divided by nsim; `peak MB/env` is the device's peak
allocation over the timed runs divided by nsim, where the device reports it (GPUs). mjx-warp's
buffers are sized for exactly `nsim` worlds here (`MSD_MJX_NWORLD`).
"""

from __future__ import annotations

import time

import typer

app = typer.Typer(help="Benchmarks.", no_args_is_help=True, add_completion=False)


def _raw_batch_rate(model, nsim: int, threads: int, substeps: int, steps: int) -> float:
    import numpy as np
    from mujoco import batch as mjbatch

    b = mjbatch.Batch(model, nsim=nsim, nthread=threads)
    if model.nkey:
        b.reset(keyframe=0)
    b.ctrl[:] = 0.2
    b.step(nstep=substeps)  # warm up
    t = time.perf_counter()
    for _ in range(steps):
        b.step(nstep=substeps)
    dt = time.perf_counter() - t
    assert np.isfinite(b.qpos).all()
    return nsim * steps / dt


def _env_runner(env, nsim: int, steps: int):
    """(time_one_run() -> env steps/s, compile seconds, XLA bytes) for a jitted scan of vmapped env steps."""
    import jax
    import jax.numpy as jnp

    reset = jax.jit(jax.vmap(env.reset))
    action = jnp.full((nsim, env.action_size), 0.2, jnp.float32)

    def body(s, _):
        s = jax.vmap(env.step)(s, action)
        return s, s.done.sum()

    s = reset(jax.random.split(jax.random.PRNGKey(0), nsim))
    t = time.perf_counter()
    run = jax.jit(lambda s: jax.lax.scan(body, s, None, length=steps)).lower(s).compile()
    s2, _ = run(s)
    jax.block_until_ready(s2.obs)
    compile_s = time.perf_counter() - t
    mem = run.memory_analysis()
    xla_bytes = (sum(int(getattr(mem, k, 0) or 0) for k in ("argument_size_in_bytes", "output_size_in_bytes",
                                                            "temp_size_in_bytes")) if mem is not None else 0)

    def timed() -> float:
        t = time.perf_counter()
        s2, _ = run(s)
        jax.block_until_ready(s2.obs)
        return nsim * steps / (time.perf_counter() - t)

    return timed, compile_s, xla_bytes


def _peak_bytes() -> int | None:
    """Peak bytes allocated on the default device so far, where the device reports it (GPU)."""
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def _make_raw(model, nsim: int, threads: int, substeps: int, steps: int):
    return lambda: _raw_batch_rate(model, nsim, threads, substeps, steps)


@app.command("physics")
def physics(model: str = typer.Option(..., "--model", help="Model name or MJCF path."),
            nsim: int = typer.Option(64, "--nsim", help="Simulations (envs) stepped together."),
            threads: int = typer.Option(2, "--threads", help="CPU threads of mujoco.batch."),
            substeps: int = typer.Option(10, "--substeps", help="Physics substeps per env step."),
            steps: int = typer.Option(50, "--steps", help="Env steps timed."),
            backends: str = typer.Option("available", "--backends",
                                         help="Comma list of cpu,mjx-jax,mjx-warp or 'available'."),
            repeats: int = typer.Option(3, "--repeats", help="Interleaved timing rounds; the best of each is kept."),
            raw: bool = typer.Option(True, "--raw/--no-raw",
                                     help="Also time raw mujoco.batch (off: GPU-only runs at sizes the CPU cannot match).")):
    """Env steps/s per backend vs raw mujoco.batch steps/s (same model, nsim, threads, substeps)."""
    from rich.table import Table

    from msdiversity.emulator import EnvConfig, make_env
    from msdiversity.emulator.testing import simulated_reference
    from msdiversity.models import load_model
    from msdiversity.physics import available_backends
    from msdiversity.util.progress import console

    loaded = load_model(model)
    dt = loaded.model.opt.timestep
    hz = 1.0 / (substeps * dt)
    # a reference long enough that no env runs off its end during the timed steps
    ref = simulated_reference(0, loaded, n_frames=steps + 3, control_hz=hz, max_excitation=0.2)
    cfg = EnvConfig(control_hz=hz, episode_length=10**6, threads=threads, random_init=False,
                    term_joint_err=1e9, term_body_err=1e9)
    names = available_backends() if backends == "available" else [b.strip() for b in backends.split(",")]
    console.print(f"[bold]{loaded.name}[/]: nsim={nsim} threads={threads} substeps={substeps} "
                  f"(dt={dt} s, control {hz:g} Hz) steps={steps}")
    runners = {}
    compile_s = {}
    xla_mb = {}
    for name in names:
        if backends == "available" and name == "mjx-jax" and loaded.model.nu > 100:
            console.print(f"skipping mjx-jax for {loaded.name} ({loaded.model.nu} muscles: compiling takes many "
                          "minutes on the CPU); ask for it with --backends mjx-jax")
            continue
        from msdiversity.physics.select import nworld_at_least

        with nworld_at_least(nsim):  # mjx-warp: contact buffers for exactly nsim worlds
            env = make_env(loaded, ref, cfg, backend=name)
        runners[name], compile_s[name], xla = _env_runner(env, nsim, steps)
        xla_mb[name] = xla / nsim / 2**20
    # Interleave raw and env timings and keep each one's best round, so that load from other
    # processes on a shared machine biases neither side.
    raw_fn = _make_raw(loaded.model, nsim, threads, substeps, steps) if raw else (lambda: float("nan"))
    best = {"raw": 0.0, **{k: 0.0 for k in runners}}
    for _ in range(max(1, repeats)):
        best["raw"] = max(best["raw"], raw_fn()) if raw else float("nan")
        for k, fn in runners.items():
            best[k] = max(best[k], fn())
    raw = best["raw"]
    table = Table(title=f"physics throughput, {loaded.name} (best of {max(1, repeats)} interleaved rounds)")
    peak = _peak_bytes()
    for col in ("what", "env steps/s", "substeps/s", "vs raw batch", "compile s", "XLA MB/env", "peak MB/env"):
        table.add_column(col, justify="right")
    if raw == raw:  # not NaN (--no-raw)
        table.add_row("raw mujoco.batch", f"{raw:,.0f}", f"{raw * substeps:,.0f}", "1.00", "-", "-", "-")
    for k in runners:
        rate = best[k]
        mjx = k.startswith("mjx")
        table.add_row(f"env ({k})", f"{rate:,.0f}", f"{rate * substeps:,.0f}", f"{rate / raw:.2f}" if raw == raw else "-",
                      f"{compile_s[k]:.1f}", f"{xla_mb[k]:.3f}" if mjx else "-",
                      f"{peak / nsim / 2**20:.3f}" if (mjx and peak) else "-")
    results = best
    from msdiversity.cli import _render

    typer.echo(_render(table))
    summary = ", ".join(f"env ({k}) {v:,.0f}/s" + (f" = {v / raw:.2f}x" if raw == raw else "")
                        + (f" ({xla_mb[k]:.3f} MB/env)" if k.startswith("mjx") else "")
                        for k, v in results.items() if k != "raw")
    typer.echo(f"summary: {loaded.name} nsim={nsim} threads={threads} substeps={substeps}: "
               + (f"raw mujoco.batch {raw:,.0f} env steps/s; " if raw == raw else "") + summary)
    return results
