"""The installer web app's hosting and its local-run plumbing: the declared site (mocks),
its config parsing, the admin role, the identity pool's role choice, SigV4 checking, the
localised CSP, the bundle's build. The browser journey itself runs in tests/test_local_run.py."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from components.capabilities import CAPABILITIES
from components.config import ConfigError, parse_stack_config
from components.fleet_provisioning.component import ALLOW_LIST_ADMINS_GROUP, INSTALLERS_GROUP
from components.installer_web.bundle import BUNDLE_FILES, WebBundle
from components.installer_web.headers import regional_endpoints
from components.packaging import PackagingError
from lambdas.contracts import fleet_allow_list as allow_list
from policy.semantics.secrets import secret_shape
from tests.support.stacks import configured_regions
from tests.test_fleet_provisioning_stack import DeclaredFleet
from tools.harness import ACCOUNT_ID, StackGraph
from tools.local.emulation.policy import allowed, allows
from tools.local.installer_web.sigv4 import SignatureRejected, verify
from tools.local.installer_web.site import SiteProblem, localise

DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
HEADERS = "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy"
OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"


def only(graph: StackGraph, type_: str) -> Any:
    [resource] = graph.of_type(type_)
    return resource


def csp_directives(csp: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in csp.split("; ")}


def site_config(graph: StackGraph) -> dict[str, Any]:
    [config] = [o for o in graph.of_type(OBJECT) if o.inputs["key"] == "config.json"]
    return dict(json.loads(config.inputs["content"]))


# --- the declared site -----------------------------------------------------------------------

def test_the_bucket_is_private_encrypted_and_read_only_by_this_distribution(dev_graph: StackGraph) -> None:
    bucket = only(dev_graph, "aws:s3/bucket:Bucket")
    block = only(dev_graph, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy",
                                          "ignorePublicAcls", "restrictPublicBuckets"))
    ownership = only(dev_graph, "aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs
    assert ownership["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    [rule] = only(dev_graph, "aws:s3/bucketServerSideEncryptionConfiguration:"
                             "BucketServerSideEncryptionConfiguration").inputs["rules"]
    key = next(
        k for k in dev_graph.of_type("aws:kms/key:Key") if k.name == "installer-web-key")
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "aws:kms",
                                                          "kmsMasterKeyId": key.outputs["arn"]}
    distribution = only(dev_graph, DISTRIBUTION)
    policy = only(dev_graph, "aws:s3/bucketPolicy:BucketPolicy").inputs["policy"]
    objects = f"arn:aws:s3:::{bucket.inputs['bucket']}/*"
    ours = {"AWS:SourceArn": distribution.outputs["arn"], "aws:SecureTransport": "true"}
    cloudfront = ("Service", "cloudfront.amazonaws.com")
    assert allows([policy], "s3:GetObject", objects, context=ours, principal=cloudfront)
    assert not allows([policy], "s3:GetObject", objects, principal=cloudfront,
                      context={**ours, "AWS:SourceArn": "arn:aws:cloudfront::1:distribution/OTHER"})
    assert not allows([policy], "s3:PutObject", objects, context=ours, principal=cloudfront)
    assert not allows([policy], "s3:GetObject", objects, principal=cloudfront,
                      context={**ours, "aws:SecureTransport": "false"})
    key_policy = only(dev_graph, "aws:kms/keyPolicy:KeyPolicy").inputs["policy"]
    assert allows([key_policy], "kms:Decrypt", "*", principal=cloudfront,
                  context={"AWS:SourceArn": distribution.outputs["arn"]})
    assert not allows([key_policy], "kms:Decrypt", "*", principal=cloudfront,
                      context={"AWS:SourceArn": "arn:aws:cloudfront::1:distribution/OTHER"})


def test_cloudfront_serves_https_only_through_oac_with_the_us_east_1_certificate(
        dev_graph: StackGraph) -> None:
    distribution = only(dev_graph, DISTRIBUTION).inputs
    oac = only(dev_graph, "aws:cloudfront/originAccessControl:OriginAccessControl")
    [origin] = distribution["origins"]
    assert origin["originAccessControlId"] == oac.id and "s3OriginConfig" not in origin
    assert (oac.inputs["signingBehavior"], oac.inputs["signingProtocol"]) == ("always", "sigv4")
    assert distribution["defaultCacheBehavior"]["viewerProtocolPolicy"] == "redirect-to-https"
    assert distribution["defaultCacheBehavior"]["allowedMethods"] == ["GET", "HEAD"]
    certificate = next(
        c for c in dev_graph.of_type("aws:acm/certificate:Certificate") if c.region == "us-east-1")
    assert certificate.inputs["domainName"] == "install.iot.dev.example.com"
    viewer = distribution["viewerCertificate"]
    assert viewer == {"acmCertificateArn": certificate.outputs["arn"], "sslSupportMethod": "sni-only",
                      "minimumProtocolVersion": "TLSv1.2_2021"}
    assert distribution["aliases"] == ["install.iot.dev.example.com"]
    assert distribution["defaultCacheBehavior"]["responseHeadersPolicyId"] == only(dev_graph, HEADERS).id


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_csp_allows_exactly_this_stacks_endpoints(stack: str, request: pytest.FixtureRequest) -> None:
    graph: StackGraph = request.getfixturevalue(f"{stack}_graph")
    headers = only(graph, HEADERS).inputs["securityHeadersConfig"]
    directives = csp_directives(headers["contentSecurityPolicy"]["contentSecurityPolicy"])
    expected = {url for region in configured_regions(stack) for url in regional_endpoints(region).values()}
    assert set(directives["connect-src"]) == {"'self'", *expected}
    assert directives["default-src"] == ["'none'"] and directives["script-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"] and directives["object-src"] == ["'none'"]
    assert headers["strictTransportSecurity"]["accessControlMaxAgeSec"] >= 31_536_000
    assert headers["frameOptions"]["frameOption"] == "DENY"
    config = site_config(graph)
    assert {u for r in config["regions"] for u in r["endpoints"].values()} == expected


def test_config_json_names_each_regions_declared_identifiers_and_no_secret(dev_graph: StackGraph) -> None:
    config = site_config(dev_graph)
    assert [r["region"] for r in config["regions"]] == configured_regions("dev")
    for entry in config["regions"]:
        fleet = DeclaredFleet(dev_graph, entry["region"])
        assert entry["userPoolId"] == fleet.user_pool.id
        assert entry["userPoolClientId"] == fleet.user_pool_client.id
        assert entry["identityPoolId"] == fleet.identity_pool.id
        assert entry["templateName"] == fleet.template_name
        groups = {g.inputs["name"]: g.inputs["roleArn"] for g in fleet.groups}
        assert groups == {INSTALLERS_GROUP: entry["installerRoleArn"],
                          ALLOW_LIST_ADMINS_GROUP: entry["adminRoleArn"]}
        assert entry["provisioningEndpoint"].endswith(f"iot.{entry['region']}.amazonaws.com")
    text = json.dumps(config)
    assert secret_shape(text) is None and "PRIVATE" not in text
    assert (config["installersGroup"], config["adminsGroup"]) == (INSTALLERS_GROUP, ALLOW_LIST_ADMINS_GROUP)


def test_the_app_client_names_the_sites_origin(dev_graph: StackGraph) -> None:
    for region in configured_regions("dev"):
        client = DeclaredFleet(dev_graph, region).user_pool_client.inputs
        assert client["callbackUrls"] == client["logoutUrls"] == ["https://install.iot.dev.example.com/"]


def test_the_bundle_objects_are_the_fixed_files_revalidated_on_every_load(dev_graph: StackGraph) -> None:
    objects = {o.inputs["key"]: o.inputs for o in dev_graph.of_type(OBJECT)}
    assert set(objects) == {*BUNDLE_FILES, "config.json"}
    assert all(o["cacheControl"] == "no-cache" for o in objects.values())
    assert objects["index.html"]["contentType"] == BUNDLE_FILES["index.html"]


# --- the allow-list administrators -----------------------------------------------------------

def test_the_admin_role_touches_only_allow_list_entries(dev_graph: StackGraph) -> None:
    for region in configured_regions("dev"):
        fleet = DeclaredFleet(dev_graph, region)
        [admins] = [g for g in fleet.groups if g.inputs["name"] == ALLOW_LIST_ADMINS_GROUP]
        policy = fleet.role_policy(admins.inputs["roleArn"])
        table = f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/iotmr-dev-cvm-provisioning"
        entry = {"dynamodb:LeadingKeys": ["fleet#SN-1"]}
        for action in ("dynamodb:PutItem", "dynamodb:UpdateItem"):
            assert allowed(policy, action, table, entry)
            assert not allowed(policy, action, table, {"dynamodb:LeadingKeys": ["device-123"]})
            for holding in (allow_list.certificate_key("a" * 64), allow_list.claim_key("b" * 64)):
                assert not allowed(policy, action, table,  # the hook's records, not entries
                                   {"dynamodb:LeadingKeys": [holding[allow_list.KEY_ATTRIBUTE]]})
        index = f"{table}/index/{allow_list.INDEX_NAME}"
        assert allowed(policy, "dynamodb:Query", index, {"dynamodb:LeadingKeys": [allow_list.KIND]})
        assert not allowed(policy, "dynamodb:Query", index, {"dynamodb:LeadingKeys": ["CVM"]})
        for action in ("dynamodb:Scan", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:Query"):
            assert not allowed(policy, action, table, entry), action
        assert not allowed(policy, "iot:CreateProvisioningClaim", fleet.template_arn)


def test_the_allow_list_index_is_sparse_and_projects_no_certificate(dev_graph: StackGraph) -> None:
    [table] = [t for t in dev_graph.of_type("aws:dynamodb/table:Table")
               if t.inputs["name"].endswith("cvm-provisioning")]
    [index] = table.inputs["globalSecondaryIndexes"]
    assert index["name"] == allow_list.INDEX_NAME and index["projectionType"] == "INCLUDE"
    assert [k["attributeName"] for k in index["keySchemas"]] == [allow_list.INDEX_PARTITION_KEY,
                                                                 allow_list.INDEX_SORT_KEY]
    assert not [a for a in index["nonKeyAttributes"] if "Pem" in a or "certificate" in a.lower()]


# --- config -----------------------------------------------------------------------------------

BASE = {"appName": "iotmr", "environment": "dev", "regions": ["eu-west-1"], "primaryRegion": "eu-west-1",
        "deviceDomain": "iot.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ"}


def parse(installer_web: Any, **extra: Any) -> Any:
    pem = (Path(__file__).resolve().parent.parent / "certs" / "example-intermediate-ca.pem").read_text()
    return parse_stack_config({**BASE, "caCertificatePem": pem, "installerWeb": installer_web, **extra},
                              capabilities=CAPABILITIES)


def test_installer_web_is_off_unless_enabled_and_names_its_origin() -> None:
    assert parse({"enabled": False}).installer_web is None
    config = parse({"enabled": True, "subdomain": "setup"})
    assert config.web_origins == ("https://setup.iot.example.com",)


@pytest.mark.parametrize("section, fragment", [
    ({"enabled": True, "subdomain": "Not A Label"}, "installerWeb.subdomain"),
    ({"enabled": True, "deviceLocalAddress": "http://192.168.4.1/provision"}, "mixed content"),
    ({"enabled": "yes"}, "installerWeb.enabled"),
    ({"enabled": True, "colour": "blue"}, "installerWeb.colour"),
    ({"enabled": True, "priceClass": "PriceClass_1"}, "PriceClass_100"),
])
def test_bad_installer_web_settings_name_the_field(section: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse(section)
    assert any(fragment in problem for problem in error.value.problems), error.value.problems


def test_the_site_needs_fleet_provisioning() -> None:
    with pytest.raises(ConfigError, match="fleet_provisioning"):
        parse({"enabled": True}, capabilities=["jitr"])


def test_deploying_without_the_built_bundle_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match="python -m tools.build_web"):
        WebBundle.from_dir(tmp_path)


# --- the local run's plumbing -------------------------------------------------------------------

def _signed(body: bytes, secret: str = "s" * 40, when: dt.datetime | None = None) -> AWSRequest:
    request = AWSRequest(method="POST", url="http://127.0.0.1:9/eu-west-1/iot/provisioning-templates/t/provisioning-claim",
                         data=body, headers={"Content-Type": "application/json"})
    signer = SigV4Auth(Credentials("ASIAKEY", secret, "token"), "iot", "eu-west-1")
    if when is not None:
        request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    signer.add_auth(request)
    return request


def _verify(request: AWSRequest, body: bytes, now: dt.datetime, secret: str = "s" * 40) -> Any:
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers["host"] = "127.0.0.1:9"
    return verify(method="POST", path="/eu-west-1/iot/provisioning-templates/t/provisioning-claim",
                  query="", headers=headers, body=body, now=now,
                  secret_for=lambda key: secret if key == "ASIAKEY" else None)


def test_sigv4_is_checked_as_aws_checks_it() -> None:
    now = dt.datetime.now(dt.timezone.utc)
    request = _signed(b"{}")
    signed = _verify(request, b"{}", now)
    assert (signed.region, signed.service) == ("eu-west-1", "iot")
    with pytest.raises(SignatureRejected, match="does not match"):
        _verify(request, b'{"x": 1}', now)
    with pytest.raises(SignatureRejected, match="does not match"):
        _verify(request, b"{}", now, secret="t" * 40)
    with pytest.raises(SignatureRejected, match="Signature expired"):
        _verify(request, b"{}", now + dt.timedelta(minutes=6))


def test_sigv4_accepts_the_published_get_vanilla_example() -> None:
    """AWS's Signature Version 4 test suite, `get-vanilla` (its credentials, time and
    signature): an answer computed outside this repository and outside botocore's signer."""
    signature = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    headers = {"host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z",
               "authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                                f"SignedHeaders=host;x-amz-date, Signature={signature}"}
    signed = verify(method="GET", path="/", query="", headers=headers, body=b"",
                    secret_for=lambda key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" if key == "AKIDEXAMPLE" else None,
                    now=dt.datetime(2015, 8, 30, 12, 36, tzinfo=dt.timezone.utc))
    assert (signed.access_key_id, signed.region, signed.service) == ("AKIDEXAMPLE", "us-east-1", "service")
    with pytest.raises(SignatureRejected, match="does not match"):
        verify(method="GET", path="/other", query="", headers=headers, body=b"",
               secret_for=lambda key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
               now=dt.datetime(2015, 8, 30, 12, 36, tzinfo=dt.timezone.utc))


def test_the_local_site_refuses_a_csp_that_would_block_its_own_app(dev_graph: StackGraph) -> None:
    config = site_config(dev_graph)
    csp = only(dev_graph, HEADERS).inputs["securityHeadersConfig"]["contentSecurityPolicy"]["contentSecurityPolicy"]

    def local(region: str, key: str) -> str:
        return f"http://127.0.0.1:9/{region}/{key}"

    localised, local_csp = localise(config, csp, local, "http://127.0.0.1:8/provision")
    assert csp_directives(local_csp)["connect-src"] == ["'self'", "http://127.0.0.1:9"]
    assert localised["regions"][0]["endpoints"]["iot"] == "http://127.0.0.1:9/eu-west-1/iot"
    broken = csp.replace("https://iot.eu-west-1.amazonaws.com ", "")
    with pytest.raises(SiteProblem, match="does not allow https://iot.eu-west-1"):
        localise(config, broken, local, "http://127.0.0.1:8/provision")


# --- the contract and the build ----------------------------------------------------------------

def test_the_allow_list_contract_writes() -> None:
    entry = allow_list.new_entry("SN-1", "2026-01-01T00:00:00.000+00:00")
    assert entry["Item"] == {"deviceUid": "fleet#SN-1", "kind": "FLEET_SERIAL", "serialNumber": "SN-1",
                             "enabled": True, "state": "ALLOWED",
                             "allowedAt": "2026-01-01T00:00:00.000+00:00"}
    reset = allow_list.update("enableAndReset", "SN-1", "now")
    assert set(reset["ExpressionAttributeValues"]) == {":true", ":now", ":kind", ":allowed", ":claimed"}
    assert allow_list.update("disable", "SN-1", "now")["ExpressionAttributeNames"] == {"#kind": "kind"}
    for bad in ("", "a b", "x" * 129, "SN-1\n"):
        with pytest.raises(allow_list.SerialError, match="1 to 96"):
            allow_list.key(bad)


def test_the_build_is_deterministic(tmp_path: Path) -> None:
    """Two builds of the same sources are byte-identical (CI runs `tools.build_web` first)."""
    from tools import build_web

    if shutil.which("npm") is None or not (build_web.APP_DIR / "node_modules" / "vite").is_dir():
        pytest.skip("Node/npm or web/installer/node_modules missing (python -m tools.build_web)")
    build_web.build(tmp_path / "one")
    build_web.build(tmp_path / "two")
    digests = [{key: hashlib.sha256((tmp_path / d / key).read_bytes()).hexdigest()
                for key in BUNDLE_FILES} for d in ("one", "two")]
    assert digests[0] == digests[1]


def test_ci_builds_the_app_from_its_committed_lock_before_the_tests() -> None:
    root = Path(__file__).resolve().parent.parent
    run = [line.strip() for line in (root / ".ci" / "run").read_text().splitlines()
           if line.strip() and not line.lstrip().startswith("#")]
    build = next(i for i, c in enumerate(run) if c == "venv/bin/python -m tools.build_web")
    vitest = next(i for i, c in enumerate(run) if "vitest run" in c)
    tests = max(i for i, c in enumerate(run) if " -m pytest" in c)  # the last: the README's command
    assert build < vitest < tests
    assert any("apt-get install" in c and "chromium" in c for c in run[:build])
    package = json.loads((root / "web" / "installer" / "package.json").read_text())
    lock = json.loads((root / "web" / "installer" / "package-lock.json").read_text())
    pinned = {**package["dependencies"], **package["devDependencies"]}
    assert all(version[0].isdigit() for version in pinned.values()), pinned  # exact versions
    installed = {k: v for k, v in lock["packages"].items() if k.startswith("node_modules/")}
    assert installed and all(v.get("integrity", "").startswith("sha512-") for v in installed.values())
    from tools import build_web

    assert "npm\", \"ci" in Path(build_web.__file__).read_text()  # never `npm install`
