"""Shared test support: certificate factories, stack helpers, the Step Functions adapter.

Test modules import from here, never from each other.
"""
