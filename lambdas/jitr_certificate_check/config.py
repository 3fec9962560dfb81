"""The check's configuration, read from its environment at each invocation (components/jitr
declares it from the same model, lambdas/contracts/environment.py). A missing CA is an
`Errored` result, not a crash: the state machine rolls back."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509

from lambdas.contracts.environment import JitrCheckEnvironment

from .checks import load_ca_certificates


@dataclass(frozen=True)
class Config:
    cas: list[x509.Certificate]  # our CA certificate(s): more than one during a rotation

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Raises EnvironmentProblem (variable missing) or ValueError (unreadable PEM)."""
        env: JitrCheckEnvironment[str] = JitrCheckEnvironment.from_environ(
            os.environ if environ is None else environ)
        return cls(cas=load_ca_certificates(env.ca_certificate_pem))
