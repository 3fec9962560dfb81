// The few AWS calls the app makes, over fetch: the identity pool (unsigned JSON), AWS IoT's
// CreateProvisioningClaim and DynamoDB (SigV4-signed with the identity pool's temporary
// credentials by aws4fetch). Credentials live in memory only.
import { AwsClient } from "aws4fetch";
import type { RegionConfig } from "./config";

export const REQUEST_TIMEOUT_MS = 10_000;

export class AwsError extends Error {
  constructor(
    readonly code: string, // AWS's error type, or "NetworkError" / "Timeout"
    message: string,
    readonly status: number, // 0 when nothing answered
    readonly region: string,
  ) {
    super(message);
  }
}

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: number; // epoch ms
}

export type Fetch = typeof fetch;

async function send(fetcher: Fetch, region: string, request: Request | [string, RequestInit],
                    timeoutMs: number): Promise<Response> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    return Array.isArray(request)
      ? await fetcher(request[0], { ...request[1], signal: controller.signal, credentials: "omit" })
      : await fetcher(new Request(request, { signal: controller.signal, credentials: "omit" }));
  } catch (error) {
    if (controller.signal.aborted) {
      throw new AwsError("Timeout", `no answer from ${region} within ${timeoutMs / 1000} s`, 0, region);
    }
    throw new AwsError("NetworkError", `${region} is not reachable (${String(error)})`, 0, region);
  } finally {
    clearTimeout(timer);
  }
}

async function answer(response: Response, region: string): Promise<unknown> {
  const body = await response.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = body ? JSON.parse(body) : {};
  } catch {
    parsed = {};
  }
  if (response.ok) return parsed;
  // AWS JSON errors: {"__type": "...#Code", "message": ...}; REST APIs also set x-amzn-errortype.
  const rawType = String(parsed.__type ?? response.headers.get("x-amzn-errortype") ?? `HTTP${response.status}`);
  const code = rawType.split("#").pop()!.split(":")[0];
  const message = String(parsed.message ?? parsed.Message ?? body.slice(0, 200));
  throw new AwsError(code, message, response.status, region);
}

export interface Caller {
  fetch: Fetch;
  timeoutMs: number;
}

const defaultCaller: Caller = { fetch: (...args) => fetch(...args), timeoutMs: REQUEST_TIMEOUT_MS };

async function json(endpoint: string, target: string, version: "1.0" | "1.1", body: unknown,
                    region: string, caller: Caller, signer?: AwsClient): Promise<unknown> {
  const init: RequestInit = {
    method: "POST",
    headers: { "content-type": `application/x-amz-json-${version}`, "x-amz-target": target },
    body: JSON.stringify(body),
  };
  const request = signer ? await signer.sign(`${endpoint}/`, init) : [`${endpoint}/`, init] as [string, RequestInit];
  return answer(await send(caller.fetch, region, request, caller.timeoutMs), region);
}

function providerName(region: RegionConfig): string {
  return `cognito-idp.${region.region}.amazonaws.com/${region.userPoolId}`;
}

// Is the region up? Its identity pool must answer an unauthenticated GetId with
// NotAuthorizedException (the pool allows no guests): proof that the regional service runs and
// the pool exists, without signing in. Returns the round-trip time in ms.
export async function probe(region: RegionConfig, caller: Caller = defaultCaller): Promise<number> {
  const started = performance.now();
  try {
    await json(region.endpoints.cognitoIdentity, "AWSCognitoIdentityService.GetId", "1.1",
      { IdentityPoolId: region.identityPoolId }, region.region, caller);
  } catch (error) {
    if (!(error instanceof AwsError) || error.code !== "NotAuthorizedException") throw error;
  }
  return performance.now() - started;
}

// The identity pool's credentials for the signed-in user, for one role of the user's groups
// (the pool's Token mapping checks the role is in the ID token's cognito:roles).
export async function identityCredentials(region: RegionConfig, idToken: string, roleArn: string,
                                          caller: Caller = defaultCaller): Promise<Credentials> {
  const logins = { [providerName(region)]: idToken };
  const identity = await json(region.endpoints.cognitoIdentity, "AWSCognitoIdentityService.GetId", "1.1",
    { IdentityPoolId: region.identityPoolId, Logins: logins }, region.region, caller) as { IdentityId: string };
  const result = await json(region.endpoints.cognitoIdentity,
    "AWSCognitoIdentityService.GetCredentialsForIdentity", "1.1",
    { IdentityId: identity.IdentityId, Logins: logins, CustomRoleArn: roleArn },
    region.region, caller) as { Credentials: { AccessKeyId: string; SecretKey: string; SessionToken: string; Expiration: number } };
  const c = result.Credentials;
  return {
    accessKeyId: c.AccessKeyId,
    secretAccessKey: c.SecretKey,
    sessionToken: c.SessionToken,
    expiration: c.Expiration * 1000,
  };
}

function signer(credentials: Credentials, service: string, region: string): AwsClient {
  return new AwsClient({
    accessKeyId: credentials.accessKeyId,
    secretAccessKey: credentials.secretAccessKey,
    sessionToken: credentials.sessionToken,
    service,
    region,
    retries: 0,
  });
}

export interface ProvisioningClaim {
  certificateId: string;
  certificatePem: string;
  privateKey: string;
  expiresAt: number; // epoch ms
}

export async function createProvisioningClaim(region: RegionConfig, credentials: Credentials,
                                              caller: Caller = defaultCaller): Promise<ProvisioningClaim> {
  const path = `/provisioning-templates/${encodeURIComponent(region.templateName)}/provisioning-claim`;
  const request = await signer(credentials, "iot", region.region).sign(`${region.endpoints.iot}${path}`,
    { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  const result = await answer(await send(caller.fetch, region.region, request, caller.timeoutMs),
    region.region) as { certificateId: string; certificatePem: string; keyPair: { PrivateKey: string }; expiration: number };
  return {
    certificateId: result.certificateId,
    certificatePem: result.certificatePem,
    privateKey: result.keyPair.PrivateKey,
    expiresAt: Math.round(result.expiration * 1000),
  };
}

export async function dynamodb(region: RegionConfig, credentials: Credentials, operation: string,
                               body: unknown, caller: Caller = defaultCaller): Promise<unknown> {
  return json(region.endpoints.dynamodb, `DynamoDB_20120810.${operation}`, "1.0", body, region.region,
    caller, signer(credentials, "dynamodb", region.region));
}
