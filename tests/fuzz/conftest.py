"""The long fuzz profile runs only when asked for with ``-m slow``."""

import pytest


def pytest_collection_modifyitems(config, items):
    if "slow" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="the long fuzz profile: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
