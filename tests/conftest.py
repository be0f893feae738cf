"""Every test belongs to exactly one tier, or `make test` would never run it."""

import pytest

TIERS = ("unit", "component", "integration")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tiers = [t for t in TIERS if item.get_closest_marker(t)]
        if len(tiers) != 1:
            raise pytest.UsageError(f"{item.nodeid}: needs exactly one tier marker of {TIERS}")
        if tiers == ["component"] and not (
            item.get_closest_marker("flink") or item.get_closest_marker("spark")
        ):
            raise pytest.UsageError(f"{item.nodeid}: a component test names its engine")
