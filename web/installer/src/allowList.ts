// The administrators' allow-list, with the rules of the shared contract (the same ones the
// installer CLI follows): allow (create, or re-enable; optionally re-open a PROVISIONED serial,
// never a CLAIMED one), disable, list.
import { AwsError, dynamodb, type Caller, type Credentials } from "./aws";
import type { RegionConfig } from "./config";
import { INDEX, KEY_ATTRIBUTE, KIND, allowListKey, newEntry, timestamp, write, type WriteName } from "./contract";

type AttributeValue = { S: string } | { BOOL: boolean };
type Item = Record<string, AttributeValue | { N: string } | { NULL: boolean }>;

function typed(value: string | boolean): AttributeValue {
  return typeof value === "boolean" ? { BOOL: value } : { S: value };
}

function typedAll(values: Record<string, string | boolean>): Record<string, AttributeValue> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, typed(v)]));
}

export interface Entry {
  serial: string;
  enabled: boolean;
  state: string;
  allowedAt: string | null;
  claimRegion: string | null;
}

function plain(item: Item): Entry {
  const s = (key: string): string | null => {
    const value = item[key] as { S?: string } | undefined;
    return value?.S ?? null;
  };
  return {
    serial: s("serialNumber") ?? "",
    enabled: (item.enabled as { BOOL?: boolean } | undefined)?.BOOL === true,
    state: s("state") ?? "",
    allowedAt: s("allowedAt"),
    claimRegion: s("claimRegion"),
  };
}

export class AllowList {
  constructor(private readonly region: RegionConfig, private readonly credentials: Credentials,
              private readonly caller?: Caller, private readonly now: () => Date = () => new Date()) {}

  private call(operation: string, body: unknown): Promise<unknown> {
    return dynamodb(this.region, this.credentials, operation, body, this.caller);
  }

  private update(serial: string, name: WriteName): Promise<unknown> {
    const spec = write(name, timestamp(this.now()));
    return this.call("UpdateItem", {
      TableName: this.region.allowListTable,
      Key: { [KEY_ATTRIBUTE]: { S: allowListKey(serial) } },
      UpdateExpression: spec.update,
      ConditionExpression: spec.condition,
      ExpressionAttributeNames: spec.names,
      ExpressionAttributeValues: typedAll(spec.values),
    });
  }

  async allow(serial: string, reset = false): Promise<"created" | "enabled"> {
    const entry = newEntry(serial, timestamp(this.now()));
    try {
      await this.call("PutItem", {
        TableName: this.region.allowListTable,
        Item: typedAll(entry.item),
        ConditionExpression: entry.condition,
      });
      return "created";
    } catch (error) {
      if (!(error instanceof AwsError) || error.code !== "ConditionalCheckFailedException") throw error;
    }
    await this.update(serial, reset ? "enableAndReset" : "enable");
    return "enabled";
  }

  async disable(serial: string): Promise<void> {
    await this.update(serial, "disable");
  }

  async list(limit = 200): Promise<Entry[]> {
    const entries: Entry[] = [];
    let start: unknown = undefined;
    do {
      const page = await this.call("Query", {
        TableName: this.region.allowListTable,
        IndexName: INDEX.name,
        KeyConditionExpression: "#kind = :kind",
        ExpressionAttributeNames: { "#kind": INDEX.partitionKey },
        ExpressionAttributeValues: { ":kind": { S: KIND } },
        ...(start ? { ExclusiveStartKey: start } : {}),
      }) as { Items?: Item[]; LastEvaluatedKey?: unknown };
      entries.push(...(page.Items ?? []).map(plain));
      start = page.LastEvaluatedKey;
    } while (start && entries.length < limit);
    return entries;
  }
}
