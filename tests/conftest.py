"""Suite-wide test settings: the tests that start Ray run one after another.

`make test` runs the suite on pytest-xdist workers, one per CPU by default
(``-n auto --dist loadgroup``; the Makefile's ``PYTEST_WORKERS`` changes the count).
Each test that starts a Ray instance (local or a two-node cluster), Ray Tune or RLlib
is put in one xdist group, so that one worker runs them all in turn: two Ray instances
at once would compete for the cores that each one's workers reserve.
"""

from __future__ import annotations

import re

import pytest

RAY_MODULES = frozenset(
    {"test_ray_cluster.py", "test_ray_sampling.py", "test_rllib.py", "test_sweep.py"}
)


def starts_ray(item: pytest.Item) -> bool:
    """A test of a Ray module, or one with the word ``ray`` in its name or parameters."""
    return item.path.name in RAY_MODULES or "ray" in re.split(r"[^a-z]+", item.name.lower())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if starts_ray(item):
            item.add_marker(pytest.mark.xdist_group("ray"))
