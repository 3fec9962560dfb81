"""Security guardrails for this project as a Pulumi policy pack, plus an offline runner."""
