"""Facts the program, the offline harness and the policy pack must agree on, in one place.

Standard library only: the policy pack imports this module too (it runs in its own process
and virtual environment), so it must not pull in Pulumi or the AWS SDK.
"""

from __future__ import annotations

# The Pulumi project: every stack config key of the program is `<PROJECT>:<name>`.
PROJECT = "iot-multi-region"


def full_key(name: str) -> str:
    """`iot-multi-region:regions`, how messages name a stack config key; a key of another
    namespace (`aws:allowedAccountIds`) as given."""
    return name if ":" in name else f"{PROJECT}:{name}"


# AWS IoT domain-configuration TLS policies we allow: AWS's exact spelling (capital "IoT"),
# only the 2022 policies, which refuse TLS < 1.2.
TLS_SECURITY_POLICIES: tuple[str, ...] = (
    "IoTSecurityPolicy_TLS13_1_2_2022_10",
    "IoTSecurityPolicy_TLS13_1_3_2022_10",
    "IoTSecurityPolicy_TLS12_1_2_2022_10",
)
DEFAULT_TLS_SECURITY_POLICY = "IoTSecurityPolicy_TLS13_1_2_2022_10"

# AWS IoT policy variables that bind a device policy to the connecting thing.
THING_NAME_VARIABLE = "${iot:Connection.Thing.ThingName}"
THING_IS_ATTACHED_KEY = "iot:Connection.Thing.IsAttached"

# pulumi-aws modules whose resources have no region (v7 gives them no `region` argument).
GLOBAL_AWS_MODULES: frozenset[str] = frozenset(
    {"iam", "route53", "cloudfront", "organizations", "budgets", "shield", "globalaccelerator"})
