"""Issue 21's classes, as a corpus (tests/policy/evasions.py): every evasion is caught by the
guardrail its class names, saying what its fragment says; every secure-but-unusual
counterpart passes the class's guardrails (no false positive)."""

from __future__ import annotations

import pytest

from .evasions import CLASSES, EVASIONS, SECURE, false_positive, messages


@pytest.mark.parametrize("case", EVASIONS, ids=[f"{c.cls}:{c.name}" for c in EVASIONS])
def test_evasion_is_caught_by_its_guardrail(case):
    found = messages(case)[case.guardrails[0]]
    assert any(case.fragment in m for m in found), (case.fragment, found)


@pytest.mark.parametrize("case", SECURE, ids=[f"{c.cls}:{c.name}" for c in SECURE])
def test_secure_counterpart_passes(case):
    assert false_positive(case) == []


def test_every_class_has_evasions_and_secure_counterparts():
    for cls in CLASSES:
        assert sum(c.cls == cls for c in EVASIONS) >= 1, cls
        assert sum(c.cls == cls for c in SECURE) >= 1, cls
