"""The exact request AWS IoT sends a pre-provisioning hook and the answer it expects.

AWS IoT developer guide, "Pre-provisioning hooks" (pre-provisioning-hook.html): the input
object carries `claimCertificateId`, `certificateId`, `certificatePem`, `templateArn`,
`clientId` and `parameters` (the RegisterThing request's parameters); the function returns
`allowProvisioning` and `parameterOverrides`, within 5 seconds.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# AWS IoT certificate ids are the hex SHA-256 of the DER certificate (64 characters).
CERTIFICATE_ID_PATTERN = r"^[0-9a-fA-F]{64}$"


class PreProvisioningRequest(BaseModel):
    # Unknown fields are ignored: AWS may add some; what we read is strictly typed.
    model_config = ConfigDict(extra="ignore", frozen=True)

    claimCertificateId: str = Field(min_length=1, max_length=128)
    certificateId: str = Field(pattern=CERTIFICATE_ID_PATTERN)
    certificatePem: str = Field(min_length=1, max_length=65536)
    templateArn: str = Field(min_length=1, max_length=2048)
    clientId: str = Field(min_length=1, max_length=128)
    parameters: dict[str, str] = Field(default_factory=dict)
