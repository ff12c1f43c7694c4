"""Backend selection: 'cpu' | 'mjx' (impl jax) | 'mjx-jax' | 'mjx-warp' | 'auto'."""

from __future__ import annotations

import contextlib
import importlib.util
import os

import numpy as np

from msdiversity.errors import ConfigError

BACKENDS = ("auto", "cpu", "mjx", "mjx-jax", "mjx-warp")


def _has_gpu() -> bool:
    import jax

    try:
        return any(d.platform == "gpu" for d in jax.devices())
    except RuntimeError:
        return False


def _has_warp() -> bool:
    return importlib.util.find_spec("warp") is not None


def available_backends() -> list[str]:
    """Backends worth running here: always 'cpu' and 'mjx-jax'; 'mjx-warp' with a GPU and warp.

    ('mjx-warp' also runs on a CPU when warp is installed, through Warp's CPU device, but far slower
    than 'cpu'; it is there to test the GPU code path, so it is only used when asked for by name.)
    """
    out = ["cpu", "mjx-jax"]
    if _has_gpu() and _has_warp():
        out.append("mjx-warp")
    return out


def resolve_backend(name: str) -> str:
    """Map a requested backend name to a concrete one ('cpu', 'mjx-jax', 'mjx-warp')."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; expected one of {list(BACKENDS)}", field="env.backend")
    if name == "auto":
        return "mjx-warp" if "mjx-warp" in available_backends() else "cpu"
    if name == "mjx":
        return "mjx-jax"
    if name == "mjx-warp" and not _has_warp():
        raise ConfigError("backend 'mjx-warp' needs the 'warp-lang' package: pip install 'mujoco-mjx[warp]' "
                          "(same version as mujoco), or the gpu extra: pip install -e '.[gpu]'",
                          field="env.backend")
    return name


@contextlib.contextmanager
def nworld_at_least(n: int):
    """Within the block, mjx-warp backends are sized for `n` worlds (MSD_MJX_NWORLD), unless the user
    set MSD_MJX_NWORLD. Used by the trainer (members x envs) and `bench physics` (nsim)."""
    if os.environ.get("MSD_MJX_NWORLD"):
        yield
        return
    os.environ["MSD_MJX_NWORLD"] = str(int(n))
    try:
        yield
    finally:
        os.environ.pop("MSD_MJX_NWORLD", None)


def make_backend(loaded, name: str = "auto", body_ids: np.ndarray | None = None, nthread: int = 0,
                 nworld: int | None = None):
    """Build a physics backend for `loaded` (LoadedModel or MjModel). See `msdiversity.physics`.

    `nthread`: cpu backend threads (0 = all CPUs); `nworld`: mjx-warp buffer capacity, the most
    simulations stepped in one call (default `mjx_backend.default_nworld()`)."""
    kind = resolve_backend(name)
    if kind == "cpu":
        from msdiversity.physics.cpu import CpuBackend

        return CpuBackend(loaded, body_ids=body_ids, nthread=nthread)
    from msdiversity.physics.mjx_backend import MjxBackend

    impl = kind.split("-")[1]
    return MjxBackend(loaded, body_ids=body_ids, impl=impl, **({"nworld": nworld} if impl == "warp" else {}))
