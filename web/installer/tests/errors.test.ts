import { describe, expect, it } from "vitest";
import { AwsError } from "../src/aws";
import { NOT_ADMIN, NOT_IN_GROUP, describe as explain } from "../src/errors";

const aws = (code: string, message = "", status = 400) => new AwsError(code, message, status, "eu-west-1");

describe("errors an installer understands", () => {
  it("says a wrong code is wrong, whatever Cognito calls it", () => {
    expect(explain({ code: "CodeMismatchException" }, "totp", "eu-west-1").message).toMatch(/code is not right/);
    expect(explain({ code: "EnableSoftwareTokenMFAException" }, "totpSetup", "eu-west-1").message).toMatch(/code is not right/);
  });

  it("sends an expired sign-in session back to sign-in", () => {
    const problem = explain({ code: "NotAuthorizedException", message: "Invalid session for the user, session is expired." }, "totp", "eu-west-1");
    expect(problem.recovery).toBe("signIn");
    expect(problem.message).toMatch(/3 minutes/);
  });

  it("explains a refusal by the identity pool as not being in the group", () => {
    expect(explain(aws("NotAuthorizedException"), "credentials", "eu-west-1").message).toBe(NOT_IN_GROUP);
    expect(explain(aws("NotAuthorizedException"), "allowList", "eu-west-1").message).toBe(NOT_ADMIN);
  });

  it("offers another region when one does not answer", () => {
    for (const error of [aws("NetworkError", "", 0), aws("Timeout", "", 0), aws("ServiceUnavailableException", "", 503), new TypeError("Failed to fetch")]) {
      const problem = explain(error, "claim", "eu-west-1");
      expect(problem.recovery).toBe("chooseRegion");
      expect(problem.message).toContain("eu-west-1 is not answering");
    }
  });

  it("tells a wrong password apart, and a clock that is off", () => {
    expect(explain({ code: "NotAuthorizedException", message: "Incorrect username or password." }, "signIn", "r").message).toBe("Wrong user name or password.");
    expect(explain(aws("InvalidSignatureException", "Signature expired: 20260101T000000Z is now earlier than ..."), "claim", "r").message).toMatch(/clock/);
  });

  it("never shows a bare error code", () => {
    const problem = explain(aws("SomethingNew", "boom"), "claim", "r");
    expect(problem.message).toMatch(/Try again/);
  });
});
