import { describe, expect, it } from "vitest";
import contract from "../../../lambdas/contracts/fleet_allow_list.json";
import { allowListKey, newEntry, serialProblem, timestamp, write } from "../src/contract";

describe("the allow-list contract", () => {
  it("accepts thing names and refuses everything else", () => {
    for (const good of ["SN-0001", "a:b_c-d", "x".repeat(96)]) expect(serialProblem(good)).toBeNull();
    for (const bad of ["", "has space", "x".repeat(97), "semi;colon", "SN-1\n", "ünïcode", "../../x"]) {
      expect(serialProblem(bad)).toContain(contract.serial.rule);
    }
    expect(serialProblem("provision-SN-1", "provision-")).toContain("claim client-id prefix");
    expect(serialProblem("provision-SN-1", "claim_")).toBeNull();
  });

  it("keys entries fleet#<serial> and refuses to key a bad serial", () => {
    expect(allowListKey("SN-1")).toBe("fleet#SN-1");
    expect(() => allowListKey("no good")).toThrow(/not a valid serial/);
  });

  it("creates an entry only where none exists, ALLOWED and enabled", () => {
    const entry = newEntry("SN-1", "2026-01-01T00:00:00.000+00:00");
    expect(entry.item).toEqual({ deviceUid: "fleet#SN-1", kind: "FLEET_SERIAL", serialNumber: "SN-1",
      enabled: true, state: "ALLOWED", allowedAt: "2026-01-01T00:00:00.000+00:00" });
    expect(entry.condition).toBe("attribute_not_exists(deviceUid)");
  });

  it("sends only the names and values each write uses (DynamoDB refuses unused ones)", () => {
    const disable = write("disable", "now");
    expect(disable.names).toEqual({ "#kind": "kind" });
    expect(disable.values).toEqual({ ":false": false, ":kind": "FLEET_SERIAL" });
    const reset = write("enableAndReset", "now");
    expect(reset.condition).toContain("#state <> :claimed");
    expect(Object.keys(reset.values).sort()).toEqual([":allowed", ":claimed", ":kind", ":now", ":true"]);
  });

  it("stamps times in the entries' one format", () => {
    expect(timestamp(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)))).toBe("2026-01-02T03:04:05.006+00:00");
  });
});
