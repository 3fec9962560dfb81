"""One module of guardrails per AWS service; `policy.pack` collects them all."""
