"""XLA flags that MJX needs on the CPU.

With jaxlib 0.10.2, MJX (impl='jax') on the CPU crawls or hangs unless two XLA CPU passes are off
(measured in DESIGN.md: whole-body kinematics ~109 s a step, myolegs at batch 256 never returns).
XLA reads `XLA_FLAGS` once, when JAX first creates its CPU backend, so the flags must be in the
environment before the first JAX computation. `ensure_cpu_xla_flags()` adds them (keeping any flags
the user set) and is called when `msdiversity.physics` is imported; if JAX is already initialised it
only warns. Users can also export the variable themselves:

    XLA_FLAGS="--xla_cpu_use_fusion_emitters=false --xla_cpu_enable_concurrency_optimized_scheduler=false"
"""

from __future__ import annotations

import os
import warnings

MJX_CPU_FLAGS = (
    "--xla_cpu_use_fusion_emitters=false",
    "--xla_cpu_enable_concurrency_optimized_scheduler=false",
)


def _jax_initialised() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(getattr(xla_bridge, "_backends", {}))
    except Exception:  # private API moved: assume not initialised
        return False


def ensure_cpu_xla_flags() -> bool:
    """Add the MJX CPU flags to XLA_FLAGS unless present. Returns True if they are in effect."""
    current = os.environ.get("XLA_FLAGS", "")
    missing = [f for f in MJX_CPU_FLAGS if f.split("=")[0] not in current]
    if not missing:
        return True
    if _jax_initialised():
        warnings.warn("JAX was initialised before msdiversity.physics set XLA_FLAGS "
                      f"{' '.join(missing)}; MJX on the CPU may be very slow. Export them before starting Python.",
                      stacklevel=2)
        return False
    os.environ["XLA_FLAGS"] = " ".join([current, *missing]).strip()
    return True
