import { describe, expect, it } from "vitest";
import { parseConfig } from "../src/config";
import { FORMAT, fileName, handover, serialise } from "../src/handover";
import { CONFIG, REGION } from "./config.test";

const claim = { certificateId: "ab".repeat(32), certificatePem: "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n",
  privateKey: "-----BEGIN EC PRIVATE KEY-----\nY\n-----END EC PRIVATE KEY-----\n", expiresAt: Date.UTC(2026, 0, 1, 0, 5) };

describe("the hand-over file", () => {
  it("holds what a device needs to provision in the claim's region", () => {
    const bundle = handover(parseConfig(CONFIG), REGION, claim, "SN-1");
    expect(bundle.format).toBe(FORMAT);
    expect(bundle.endpoint).toBe(REGION.provisioningEndpoint);
    expect(bundle.deviceEndpoint).toBe("iot.example.com");
    expect(bundle.clientId).toBe("provision-SN-1");
    expect(bundle.expiresAt).toBe("2026-01-01T00:05:00.000Z");
    expect(bundle.rootCaPem).toContain("BEGIN CERTIFICATE");
    expect(JSON.parse(serialise(bundle)).privateKey).toBe(claim.privateKey);
  });

  it("is named after the serial, or the certificate when no serial was given", () => {
    const config = parseConfig(CONFIG);
    expect(fileName(handover(config, REGION, claim, "SN-1"))).toBe("claim-SN-1-eu-west-1.json");
    const anonymous = handover(config, REGION, claim, null);
    expect(fileName(anonymous)).toBe(`claim-${"ab".repeat(6)}-eu-west-1.json`);
    expect(anonymous.clientId).toBeNull();
  });
});
