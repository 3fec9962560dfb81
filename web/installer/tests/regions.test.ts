import { describe, expect, it } from "vitest";
import { probe } from "../src/aws";
import type { RegionConfig } from "../src/config";
import { checkRegions, nearestHealthy } from "../src/regions";
import { REGION } from "./config.test";

const regions: RegionConfig[] = ["eu-west-1", "us-west-2", "ap-southeast-2"].map((region) => ({
  ...REGION, region, userPoolId: `${region}_x`, identityPoolId: `${region}:1`,
}));

describe("the nearest healthy region", () => {
  it("picks the fastest region that answers", async () => {
    const times: Record<string, number> = { "eu-west-1": 80, "us-west-2": 20, "ap-southeast-2": 200 };
    const health = await checkRegions(regions, async (r) => times[r.region]);
    expect(nearestHealthy(health)).toBe("us-west-2");
  });

  it("skips a region that is down", async () => {
    const health = await checkRegions(regions, async (r) => {
      if (r.region === "us-west-2") throw new Error("down");
      return r.region === "eu-west-1" ? 90 : 150;
    });
    expect(health.find((h) => h.region === "us-west-2")).toEqual({ region: "us-west-2", healthy: false, rttMs: null });
    expect(nearestHealthy(health)).toBe("eu-west-1");
  });

  it("has no answer when nothing answers", async () => {
    const health = await checkRegions(regions, async () => { throw new Error("offline"); });
    expect(nearestHealthy(health)).toBeNull();
  });

  it("counts the identity pool's refusal of a guest as healthy, anything else as not", async () => {
    const answer = (status: number, type: string) => async () =>
      new Response(JSON.stringify({ __type: type, message: "m" }), { status });
    await expect(probe(regions[0], { fetch: answer(400, "NotAuthorizedException"), timeoutMs: 1000 })).resolves.toBeTypeOf("number");
    await expect(probe(regions[0], { fetch: answer(400, "ResourceNotFoundException"), timeoutMs: 1000 })).rejects.toThrow();
    await expect(probe(regions[0], { fetch: answer(503, "ServiceUnavailableException"), timeoutMs: 1000 })).rejects.toThrow();
    const hang: typeof fetch = (_input, init) => new Promise((_, reject) =>
      init?.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))));
    await expect(probe(regions[0], { fetch: hang, timeoutMs: 20 })).rejects.toMatchObject({ code: "Timeout" });
  });
});
