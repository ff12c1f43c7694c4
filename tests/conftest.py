"""Shared pytest setup.

MJX on the CPU needs two XLA flags that XLA reads only when JAX creates its CPU backend, so they are
set here, before any test module imports jax (see msdiversity/physics/xla.py).
"""

import os

_FLAGS = ("--xla_cpu_use_fusion_emitters=false", "--xla_cpu_enable_concurrency_optimized_scheduler=false")
_current = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = " ".join([_current, *[f for f in _FLAGS if f.split("=")[0] not in _current]]).strip()
