"""Shared pytest setup.

MJX on the CPU needs two XLA flags that XLA reads only when JAX creates its CPU backend, so they are
set here, before any test module imports jax (see msdiversity/physics/xla.py).
"""

import os

_FLAGS = ("--xla_cpu_use_fusion_emitters=false", "--xla_cpu_enable_concurrency_optimized_scheduler=false")
_current = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = " ".join([_current, *[f for f in _FLAGS if f.split("=")[0] not in _current]]).strip()

# Warp (backend mjx-warp) compiles its kernels once per model and caches them; keep that cache next
# to the virtualenv so CI (which keeps .venv between runs) reuses it instead of recompiling.
os.environ.setdefault("WARP_CACHE_PATH", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                      ".venv", "warp-cache"))
