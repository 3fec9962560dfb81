import { describe, expect, it } from "vitest";
import { AllowList } from "../src/allowList";
import { REGION } from "./config.test";

const credentials = { accessKeyId: "ASIAEXAMPLE", secretAccessKey: "secret", sessionToken: "token", expiration: 0 };

function recorder(answers: Array<[number, unknown]>) {
  const sent: Array<{ target: string; body: Record<string, unknown>; authorization: string }> = [];
  const fetcher: typeof fetch = async (input) => {
    const request = input as Request;
    sent.push({ target: request.headers.get("x-amz-target") ?? "", body: JSON.parse(await request.text()),
      authorization: request.headers.get("authorization") ?? "" });
    const [status, body] = answers.shift()!;
    return new Response(JSON.stringify(body), { status });
  };
  return { sent, caller: { fetch: fetcher, timeoutMs: 1000 } };
}

const now = () => new Date(Date.UTC(2026, 0, 1));

describe("the allow-list view's writes", () => {
  it("creates a new entry with a conditional put, signed for DynamoDB in the region", async () => {
    const { sent, caller } = recorder([[200, {}]]);
    expect(await new AllowList(REGION, credentials, caller, now).allow("SN-1")).toBe("created");
    expect(sent[0].target).toBe("DynamoDB_20120810.PutItem");
    expect(sent[0].body.ConditionExpression).toBe("attribute_not_exists(deviceUid)");
    expect((sent[0].body.Item as Record<string, unknown>).allowedAt).toEqual({ S: "2026-01-01T00:00:00.000+00:00" });
    expect(sent[0].authorization).toMatch(/Credential=ASIAEXAMPLE\/20260101\/eu-west-1\/dynamodb\/aws4_request|Credential=ASIAEXAMPLE\/\d{8}\/eu-west-1\/dynamodb\/aws4_request/);
  });

  it("re-enables an existing entry, and re-opens it only when asked, never a CLAIMED one", async () => {
    const conflict = [400, { __type: "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException", message: "no" }] as [number, unknown];
    const { sent, caller } = recorder([conflict, [200, {}], conflict, [200, {}]]);
    const list = new AllowList(REGION, credentials, caller, now);
    expect(await list.allow("SN-1")).toBe("enabled");
    expect(sent[1].body.UpdateExpression).toBe("SET enabled = :true, allowedAt = :now");
    await list.allow("SN-1", true);
    expect(sent[3].body.ConditionExpression).toBe("#kind = :kind AND #state <> :claimed");
  });

  it("disables, and refuses an invalid serial before any call", async () => {
    const { sent, caller } = recorder([[200, {}]]);
    const list = new AllowList(REGION, credentials, caller, now);
    await list.disable("SN-1");
    expect(sent[0].body.UpdateExpression).toBe("SET enabled = :false");
    await expect(list.disable("bad serial")).rejects.toThrow(/not a valid serial/);
    expect(sent).toHaveLength(1);
  });

  it("lists through the allow-list index, page after page", async () => {
    const item = (serial: string) => ({ serialNumber: { S: serial }, enabled: { BOOL: true }, state: { S: "ALLOWED" } });
    const { sent, caller } = recorder([[200, { Items: [item("A")], LastEvaluatedKey: { k: 1 } }], [200, { Items: [item("B")] }]]);
    const entries = await new AllowList(REGION, credentials, caller, now).list();
    expect(entries.map((e) => e.serial)).toEqual(["A", "B"]);
    expect(sent[0].body.IndexName).toBe("kind-serial");
    expect(sent[1].body.ExclusiveStartKey).toEqual({ k: 1 });
  });
});
