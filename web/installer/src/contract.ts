// The fleet allow-list contract (lambdas/contracts/fleet_allow_list.json), the one the installer
// CLI, the pre-provisioning hook and the recorder follow: the serial rule, the item's key and
// kind, and the conditional writes an administrator makes.
import contract from "../../../lambdas/contracts/fleet_allow_list.json";

export const KIND: string = contract.kind;
export const KEY_ATTRIBUTE: string = contract.table.keyAttribute;
export const INDEX = contract.index;
export const STATES = contract.states;
export const SERIAL_RULE: string = contract.serial.rule;
const SERIAL = new RegExp(`^(?:${contract.serial.pattern})$`);

// The entries' one time format (the CLI's `isoformat(timespec="milliseconds")`): UTC,
// milliseconds, "+00:00", so string order is time order in conditions.
export function timestamp(moment: Date): string {
  return moment.toISOString().replace(/Z$/, "+00:00");
}

// With the stack's claim client-id prefix, a serial that begins with it is refused too: every
// claim holder may connect as <prefix>* (the hook and the CLI's allow-serial refuse it alike).
export function serialProblem(serial: string, claimPrefix?: string): string | null {
  if (!SERIAL.test(serial)) return `"${serial}" is not a valid serial: use ${SERIAL_RULE}.`;
  if (claimPrefix && serial.startsWith(claimPrefix)) {
    return `"${serial}" begins with the claim client-id prefix "${claimPrefix}": choose another serial.`;
  }
  return null;
}

export function allowListKey(serial: string): string {
  const problem = serialProblem(serial);
  if (problem) throw new Error(problem);
  return `${contract.table.keyPrefix}${serial}`;
}

export type WriteName = "enable" | "enableAndReset" | "disable";

export interface Write {
  update: string;
  condition: string;
  names: Record<string, string>;
  values: Record<string, string | boolean>;
}

// Only the names and values an expression uses: DynamoDB rejects unused ones.
function used<T>(all: Record<string, T>, expressions: string): Record<string, T> {
  return Object.fromEntries(Object.entries(all).filter(([token]) =>
    new RegExp(`${token.replace(/[#:]/g, "\\$&")}\\b`).test(expressions)));
}

export function write(name: WriteName, now: string): Write {
  const spec = contract.writes[name];
  const expressions = `${spec.update} ${spec.condition}`;
  return {
    update: spec.update,
    condition: spec.condition,
    names: used(contract.writes.names, expressions),
    values: used({ ...contract.writes.values, ":now": now } as Record<string, string | boolean>, expressions),
  };
}

export function newEntry(serial: string, now: string): { item: Record<string, string | boolean>; condition: string } {
  const values: Record<string, string | boolean> = { ...contract.writes.values, ":now": now, ":serial": serial };
  const item: Record<string, string | boolean> = { [KEY_ATTRIBUTE]: allowListKey(serial) };
  for (const [attribute, token] of Object.entries(contract.writes.create.item)) {
    item[attribute] = values[token];
  }
  return { item, condition: contract.writes.create.condition };
}
