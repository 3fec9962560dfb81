"""Policy checks for the fleet-provisioning tests, one document per call: the project's one
evaluator (tools/local/emulation/policy_eval.py, shared with the local run's emulations; its
docstring says what it covers and what not)."""

from __future__ import annotations

from tools.local.emulation.policy_eval import allowed, document, like, trust_allows

__all__ = ["allowed", "document", "like", "trust_allows"]
