// Where the Cognito library keeps tokens: in memory only, gone with the tab or at sign-out.
// Nothing reaches localStorage, sessionStorage, cookies or IndexedDB.
import type { ICognitoStorage } from "amazon-cognito-identity-js";

export class MemoryStorage implements ICognitoStorage {
  private readonly items = new Map<string, string>();

  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }

  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }

  removeItem(key: string): void {
    this.items.delete(key);
  }

  clear(): void {
    this.items.clear();
  }

  get size(): number {
    return this.items.size;
  }
}
