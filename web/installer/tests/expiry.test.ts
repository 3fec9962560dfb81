import { describe, expect, it } from "vitest";
import { announce, formatLeft, secondsLeft } from "../src/expiry";

describe("the claim countdown", () => {
  it("counts whole seconds down to zero, never below", () => {
    expect(secondsLeft(300_000, 0)).toBe(300);
    expect(secondsLeft(300_000, 299_001)).toBe(0);
    expect(secondsLeft(300_000, 400_000)).toBe(0);
  });

  it("shows minutes and seconds", () => {
    expect(formatLeft(300)).toBe("5:00");
    expect(formatLeft(61)).toBe("1:01");
    expect(formatLeft(9)).toBe("0:09");
  });

  it("speaks once a minute and in the last ten seconds", () => {
    expect(announce(240)).toBe("4 minutes left.");
    expect(announce(60)).toBe("1 minute left.");
    expect(announce(59)).toBeNull();
    expect(announce(5)).toBe("5 seconds left.");
    expect(announce(0)).toBe("The claim has expired.");
  });
});
