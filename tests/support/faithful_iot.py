"""moto's IoT registry made faithful to AWS (see tools/local/faithful_iot.py for the table of
differences), as a context manager and as the `faithful_iot_registry` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tools.local.faithful_iot import INTERNAL_STATUSES, faithful_iot

__all__ = ["INTERNAL_STATUSES", "faithful_iot", "faithful_iot_registry"]


@pytest.fixture
def faithful_iot_registry() -> Iterator[None]:
    with faithful_iot():
        yield
