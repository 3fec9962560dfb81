"""A function's environment as Lambda would set it, for tests that call a handler in-process
(moto credentials, the region, tracing off, and the variables the component declares)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest


def use_function_environment(monkeypatch: pytest.MonkeyPatch, region: str,
                             *declared: Mapping[str, str]) -> None:
    variables: dict[str, str] = {
        "AWS_DEFAULT_REGION": region, "AWS_REGION": region,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true"}
    for variables_of_one in declared:
        variables.update(variables_of_one)
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
