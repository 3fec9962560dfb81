"""One line for an AWS call that failed in an operator's tool, instead of a traceback: what
went wrong and what to do. Used by the tools' `main` around their AWS work."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

AWS_ERRORS = (BotoCoreError, ClientError)


def describe(error: Exception) -> str:
    """`error` (one of AWS_ERRORS) as one line naming the fix."""
    if isinstance(error, NoCredentialsError):
        return ("no AWS credentials found: sign in (e.g. `aws sso login --profile <p>`) and pass "
                "--profile <p>, or set AWS_PROFILE / AWS_ACCESS_KEY_ID")
    if isinstance(error, ProfileNotFound):
        return (f"the AWS profile {error.kwargs.get('profile')!r} is not configured: pass one of "
                "`aws configure list-profiles` as --profile, or create it (`aws configure sso`)")
    if isinstance(error, NoRegionError):
        return "no AWS region: pass --region or set AWS_REGION"
    if isinstance(error, EndpointConnectionError):
        return f"AWS could not be reached ({error}): check the network or AWS_ENDPOINT_URL"
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "Error")
        message = error.response.get("Error", {}).get("Message", "")
        operation = getattr(error, "operation_name", "the call")
        hint = (": the credentials in use may not do this (check the profile and its role)"
                if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                            "UnrecognizedClientException", "ExpiredTokenException") else "")
        return f"AWS refused {operation}: {code} {message}{hint}".rstrip()
    return f"AWS call failed: {error}"
