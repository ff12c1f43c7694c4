"""Backend selection: 'cpu' | 'mjx' (impl jax) | 'mjx-jax' | 'mjx-warp' | 'auto'."""

from __future__ import annotations

import importlib.util

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
    """Concrete backends usable here: always 'cpu' and 'mjx-jax'; 'mjx-warp' with a GPU and warp."""
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
    if name == "mjx-warp" and "mjx-warp" not in available_backends():
        raise ConfigError("backend 'mjx-warp' needs an NVIDIA GPU visible to JAX and the 'warp-lang' package",
                          field="env.backend")
    return name


def make_backend(loaded, name: str = "auto", body_ids: np.ndarray | None = None, nthread: int = 0):
    """Build a physics backend for `loaded` (LoadedModel or MjModel). See `msdiversity.physics`."""
    kind = resolve_backend(name)
    if kind == "cpu":
        from msdiversity.physics.cpu import CpuBackend

        return CpuBackend(loaded, body_ids=body_ids, nthread=nthread)
    from msdiversity.physics.mjx_backend import MjxBackend

    return MjxBackend(loaded, body_ids=body_ids, impl=kind.split("-")[1])
