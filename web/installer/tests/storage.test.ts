import { describe, expect, it } from "vitest";
import { MemoryStorage } from "../src/storage";

describe("token storage", () => {
  it("keeps tokens in memory and forgets them all at sign-out", () => {
    const storage = new MemoryStorage();
    storage.setItem("CognitoIdentityServiceProvider.client.alice.idToken", "jwt");
    expect(storage.getItem("CognitoIdentityServiceProvider.client.alice.idToken")).toBe("jwt");
    storage.clear();
    expect(storage.size).toBe(0);
    expect(storage.getItem("CognitoIdentityServiceProvider.client.alice.idToken")).toBeNull();
  });
});
