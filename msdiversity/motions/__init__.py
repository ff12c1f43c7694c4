"""Reference motions: OpenSim readers, GRF, mapping onto a model, synthetic ground-truth motions.

`ReferenceMotion`, `GRF`, `ModelReference` are defined in `reference.py`; the readers, mapping,
gait tools (`gait.py`) and synthesis functions are imported lazily (they pull in MuJoCo / scipy).
"""

from msdiversity.motions.reference import GRF, ModelReference, ReferenceMotion

_LAZY = {
    "read_opensim": "msdiversity.motions.opensim",
    "read_grf": "msdiversity.motions.opensim",
    "map_to_model": "msdiversity.motions.mapping",
    "MappingReport": "msdiversity.motions.mapping",
    "synthesize": "msdiversity.motions.synthetic",
    "load_motion": "msdiversity.motions.loading",
    "load_model_reference": "msdiversity.motions.loading",
    "MotionWarning": "msdiversity.motions.opensim",
    "read_table": "msdiversity.motions.opensim",
    "gait_events": "msdiversity.motions.gait",
    "grf_events": "msdiversity.motions.gait",
    "detect_treadmill": "msdiversity.motions.gait",
    "treadmill_speed": "msdiversity.motions.gait",
    "to_overground": "msdiversity.motions.gait",
    "periodic_cycle": "msdiversity.motions.gait",
}

__all__ = ["GRF", "ModelReference", "ReferenceMotion", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'msdiversity.motions' has no attribute {name!r}")
