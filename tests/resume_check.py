"""Shared check: an ensemble training interrupted after its 3rd iteration and resumed equals the
uninterrupted run bitwise (policy parameters and the named metrics)."""

from __future__ import annotations

import jax
import numpy as np
import pytest


def assert_resume_bitwise(exp, tmp_path, metrics: tuple[str, ...]) -> None:
    from msdiversity.ensemble import load_trained, train_experiment

    full = train_experiment(exp, results_dir=tmp_path / "a", show_progress=False)

    def interrupt(it, m):
        if it == 2:  # after the 3rd iteration; the last checkpoint is at 2, the interrupt saves 3
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_experiment(exp, results_dir=tmp_path / "b", show_progress=False, on_iteration=interrupt)
    res = train_experiment(exp, results_dir=tmp_path / "b", resume=True, show_progress=False)
    assert res.resumed_from == 3
    _, pa, _, _ = load_trained(tmp_path / "a")
    _, pb, _, _ = load_trained(tmp_path / "b")
    la, lb = jax.tree_util.tree_leaves(pa), jax.tree_util.tree_leaves(pb)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))  # bitwise
    for v in metrics:
        np.testing.assert_array_equal(full.metrics[v].values, res.metrics[v].values)
