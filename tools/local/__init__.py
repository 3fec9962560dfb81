"""`python -m tools.local`: the dev stack's system, run locally across its regions.

Evaluates the stack offline (tools.harness), enforces the policy pack (tools.policy_check), starts
a moto server, materialises the declared resource graph in it, emulates what moto lacks
from the declared resources, drives the device journeys and reports each step. See
docs/local-run.md. Command-line only: the program never imports this package.
"""

from tools.local.moto_imports import defer_packages

defer_packages()  # before anything here imports moto's Step Functions interpreter
