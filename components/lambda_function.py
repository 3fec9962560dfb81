"""The one way this project declares a Python Lambda function (a plain builder, no component).

Every function gets the same guard rails: its own KMS-encrypted log group with retention, its
own execution role (`lambda_trust_policy`) with one least-privilege inline policy, the packaged
code zip and its hash, the dependencies layer, the regional CMK for its environment, X-Ray
tracing and JSON logs into that group. A capability passes only what differs.

The resources are children of the caller's component and keep the logical names the
capabilities always used (`<name>-logs`, `<name>-role`, `<name>-policy`, `<name>`): a new
parent component would change their URNs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import lambda_trust_policy
from components.naming import role_name
from components.packaging import ARCHITECTURE, RUNTIME, LambdaLayer, packaged_function


@dataclass(frozen=True)
class PythonFunction:
    log_group: aws.cloudwatch.LogGroup
    role: aws.iam.Role
    role_policy: aws.iam.RolePolicy
    function: aws.lambda_.Function


def dependencies_layer(name: str, *, parent: pulumi.Resource, region: str, layer_name: str,
                       lambda_layer: LambdaLayer) -> aws.lambda_.LayerVersion:
    """The third-party packages (lambdas/requirements.txt) as a layer of the caller."""
    return aws.lambda_.LayerVersion(
        name, region=region, layer_name=layer_name,
        code=pulumi.FileArchive(str(lambda_layer.zip_path)),
        source_code_hash=lambda_layer.source_code_hash,
        compatible_runtimes=[RUNTIME], compatible_architectures=[ARCHITECTURE],
        description="lambdas/requirements.txt for the Lambda platform "
                    "(python -m tools.package_lambda)",
        opts=pulumi.ResourceOptions(parent=parent))


def python_function(
        name: str, *, parent: pulumi.Resource, region: str, account_id: pulumi.Input[str],
        kms_key_arn: pulumi.Input[str], log_retention_days: int, tags: Mapping[str, str],
        function_name: str, package: str, description: str,
        role_policy_name: str, role_policy: Callable[[pulumi.Output[str]], pulumi.Input[str]],
        environment: pulumi.Input[Mapping[str, pulumi.Input[str]]],
        layer: aws.lambda_.LayerVersion, memory_size: int, timeout: int,
        reserved_concurrency: int | None = None) -> PythonFunction:
    """`lambdas/<package>/app.py`'s `handler` as the function `function_name`.

    `role_policy` receives the function's log group ARN and returns the inline policy document
    (it must grant `lambda_basic_statements` on that group, plus the function's own calls).
    """
    child = pulumi.ResourceOptions(parent=parent)
    log_group = aws.cloudwatch.LogGroup(
        f"{name}-logs", region=region, name=f"/aws/lambda/{function_name}",
        retention_in_days=log_retention_days, kms_key_id=kms_key_arn, tags=tags, opts=child)
    role = aws.iam.Role(
        f"{name}-role", name=role_name(f"{function_name}-fn"),
        assume_role_policy=pulumi.Output.from_input(account_id).apply(lambda_trust_policy),
        tags=tags, opts=child)
    policy = aws.iam.RolePolicy(
        f"{name}-policy", role=role.id, name=role_policy_name,
        policy=role_policy(log_group.arn), opts=child)
    code_zip, code_hash = packaged_function(package)
    function = aws.lambda_.Function(
        name, region=region, name=function_name, description=description,
        runtime=RUNTIME, architectures=[ARCHITECTURE], handler=f"{package}.app.handler",
        # The uploaded zip is exactly the one hashed, so the hash never drifts.
        code=pulumi.FileArchive(str(code_zip)), source_code_hash=code_hash,
        layers=[layer.arn], role=role.arn, memory_size=memory_size, timeout=timeout,
        reserved_concurrent_executions=reserved_concurrency,
        kms_key_arn=kms_key_arn,
        environment=aws.lambda_.FunctionEnvironmentArgs(variables=environment),
        tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active"),
        logging_config=aws.lambda_.FunctionLoggingConfigArgs(
            log_format="JSON", log_group=log_group.name),
        tags=tags,
        # The role must be able to log (and make its calls) before the first invocation.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[log_group, policy]))
    return PythonFunction(log_group=log_group, role=role, role_policy=policy, function=function)
