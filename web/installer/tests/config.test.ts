import { describe, expect, it } from "vitest";
import { ConfigProblem, parseConfig } from "../src/config";

export const REGION = {
  region: "eu-west-1",
  userPoolId: "eu-west-1_abc",
  userPoolClientId: "client",
  identityPoolId: "eu-west-1:0000",
  templateName: "iotmr-dev-eu-west-1-fleet",
  installerRoleArn: "arn:aws:iam::1:role/installer",
  adminRoleArn: "arn:aws:iam::1:role/admin",
  allowListTable: "iotmr-dev-cvm-provisioning",
  provisioningEndpoint: "abc-ats.iot.eu-west-1.amazonaws.com",
  endpoints: {
    cognitoIdp: "https://cognito-idp.eu-west-1.amazonaws.com",
    cognitoIdentity: "https://cognito-identity.eu-west-1.amazonaws.com",
    iot: "https://iot.eu-west-1.amazonaws.com",
    dynamodb: "https://dynamodb.eu-west-1.amazonaws.com",
  },
};

export const CONFIG = {
  version: 1,
  stack: "dev",
  deviceEndpoint: "iot.example.com",
  devicePort: 8883,
  claimClientIdPrefix: "provision-",
  installersGroup: "installers",
  adminsGroup: "allow-list-admins",
  deviceLocalAddress: null,
  regions: [REGION],
};

describe("parseConfig", () => {
  it("accepts the stack's config.json", () => {
    const config = parseConfig(CONFIG);
    expect(config.regions[0].endpoints.iot).toBe("https://iot.eu-west-1.amazonaws.com");
    expect(config.deviceLocalAddress).toBeNull();
  });

  it("names the field that is wrong", () => {
    expect(() => parseConfig({ ...CONFIG, regions: [] })).toThrow(/regions must list/);
    expect(() => parseConfig({ ...CONFIG, regions: [{ ...REGION, templateName: "" }] }))
      .toThrow(/regions\[0\]\.templateName/);
    expect(() => parseConfig({ ...CONFIG, version: 2 })).toThrow(ConfigProblem);
  });

  it("refuses a pool of another region and plain-http endpoints other than loopback", () => {
    expect(() => parseConfig({ ...CONFIG, regions: [{ ...REGION, userPoolId: "us-west-2_x" }] }))
      .toThrow(/not a pool of eu-west-1/);
    const plain = { ...REGION, endpoints: { ...REGION.endpoints, iot: "http://iot.eu-west-1.amazonaws.com" } };
    expect(() => parseConfig({ ...CONFIG, regions: [plain] })).toThrow(/must be https/);
    const local = { ...REGION, endpoints: { ...REGION.endpoints, iot: "http://127.0.0.1:9000/eu-west-1/iot" } };
    expect(parseConfig({ ...CONFIG, regions: [local] }).regions[0].endpoints.iot).toBe("http://127.0.0.1:9000/eu-west-1/iot");
  });

  it("accepts only an https (or loopback) device address", () => {
    expect(parseConfig({ ...CONFIG, deviceLocalAddress: "https://setup.device.example/provision" }).deviceLocalAddress)
      .toBe("https://setup.device.example/provision");
    expect(() => parseConfig({ ...CONFIG, deviceLocalAddress: "http://192.168.4.1/provision" })).toThrow(/https/);
  });
});
