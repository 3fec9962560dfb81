// The site's config file (/config.json), written by the stack next to the bundle: which regions
// the system runs in and, per region, the public identifiers of its installer user pool,
// identity pool, roles, provisioning template and allow-list table. Nothing in it is a secret.

export interface Endpoints {
  cognitoIdp: string;
  cognitoIdentity: string;
  iot: string;
  dynamodb: string;
}

export interface RegionConfig {
  region: string;
  userPoolId: string;
  userPoolClientId: string;
  identityPoolId: string;
  templateName: string;
  installerRoleArn: string;
  adminRoleArn: string;
  allowListTable: string;
  // The region's AWS IoT data endpoint: a claim works only in the region that issued it.
  provisioningEndpoint: string;
  endpoints: Endpoints;
}

export interface SiteConfig {
  version: 1;
  stack: string;
  deviceEndpoint: string;
  devicePort: number;
  claimClientIdPrefix: string;
  installersGroup: string;
  adminsGroup: string;
  // Where "Send to device" POSTs the hand-over file (the device's setup network); null: off.
  deviceLocalAddress: string | null;
  regions: RegionConfig[];
}

export class ConfigProblem extends Error {}

type Json = Record<string, unknown>;

function object(value: unknown, where: string): Json {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigProblem(`${where} must be an object`);
  }
  return value as Json;
}

function text(source: Json, key: string, where: string): string {
  const value = source[key];
  if (typeof value !== "string" || value.trim() === "") {
    throw new ConfigProblem(`${where}.${key} must be a non-empty string`);
  }
  return value;
}

function url(source: Json, key: string, where: string): string {
  const value = text(source, key, where);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigProblem(`${where}.${key} is not a URL: ${value}`);
  }
  if (parsed.protocol !== "https:" && !isLoopback(parsed.hostname)) {
    throw new ConfigProblem(`${where}.${key} must be https:// (got ${value})`);
  }
  return value.replace(/\/+$/, "");
}

export function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "127.0.0.1" || hostname === "[::1]";
}

function region(value: unknown, index: number): RegionConfig {
  const where = `regions[${index}]`;
  const source = object(value, where);
  const endpoints = object(source.endpoints, `${where}.endpoints`);
  const name = text(source, "region", where);
  const userPoolId = text(source, "userPoolId", where);
  if (!userPoolId.startsWith(`${name}_`)) {
    throw new ConfigProblem(`${where}.userPoolId ${userPoolId} is not a pool of ${name}`);
  }
  return {
    region: name,
    userPoolId,
    userPoolClientId: text(source, "userPoolClientId", where),
    identityPoolId: text(source, "identityPoolId", where),
    templateName: text(source, "templateName", where),
    installerRoleArn: text(source, "installerRoleArn", where),
    adminRoleArn: text(source, "adminRoleArn", where),
    allowListTable: text(source, "allowListTable", where),
    provisioningEndpoint: text(source, "provisioningEndpoint", where),
    endpoints: {
      cognitoIdp: url(endpoints, "cognitoIdp", `${where}.endpoints`),
      cognitoIdentity: url(endpoints, "cognitoIdentity", `${where}.endpoints`),
      iot: url(endpoints, "iot", `${where}.endpoints`),
      dynamodb: url(endpoints, "dynamodb", `${where}.endpoints`),
    },
  };
}

export function parseConfig(raw: unknown): SiteConfig {
  const source = object(raw, "config");
  if (source.version !== 1) {
    throw new ConfigProblem(`config.version ${String(source.version)} is not supported (expected 1)`);
  }
  if (!Array.isArray(source.regions) || source.regions.length === 0) {
    throw new ConfigProblem("config.regions must list at least one region");
  }
  const port = source.devicePort;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigProblem("config.devicePort must be a port number");
  }
  const local = source.deviceLocalAddress;
  return {
    version: 1,
    stack: text(source, "stack", "config"),
    deviceEndpoint: text(source, "deviceEndpoint", "config"),
    devicePort: port,
    claimClientIdPrefix: text(source, "claimClientIdPrefix", "config"),
    installersGroup: text(source, "installersGroup", "config"),
    adminsGroup: text(source, "adminsGroup", "config"),
    deviceLocalAddress: local === null || local === undefined ? null : url(source, "deviceLocalAddress", "config"),
    regions: source.regions.map(region),
  };
}

export async function loadConfig(fetcher: typeof fetch = fetch): Promise<SiteConfig> {
  const response = await fetcher("/config.json", { cache: "no-store", credentials: "omit" });
  if (!response.ok) {
    throw new ConfigProblem(`the site's config.json answered HTTP ${response.status}`);
  }
  return parseConfig(await response.json());
}
