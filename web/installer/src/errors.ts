// What an installer reads when something goes wrong: what happened and what to do, never a
// stack trace or an AWS error code alone.
import { AwsError } from "./aws";

export type Recovery = "retry" | "signIn" | "chooseRegion" | "none";

export interface Problem {
  message: string;
  recovery: Recovery;
}

export type Stage = "signIn" | "newPassword" | "totpSetup" | "totp" | "credentials" | "claim" | "device" | "allowList";

function codeOf(error: unknown): string {
  if (error instanceof AwsError) return error.code;
  if (typeof error === "object" && error !== null) {
    const named = error as { code?: unknown; name?: unknown; __type?: unknown };
    return String(named.code ?? named.__type ?? named.name ?? "");
  }
  return "";
}

function messageOf(error: unknown): string {
  if (typeof error === "string") return error;
  if (typeof error === "object" && error !== null && "message" in error) return String(error.message);
  return "";
}

export const NOT_IN_GROUP = "Your account is not in the installers group, so it may not request claims. Ask your administrator to add you.";
export const NOT_ADMIN = "Your account is not an allow-list administrator here.";

export function describe(error: unknown, stage: Stage, region: string): Problem {
  const code = codeOf(error);
  const message = messageOf(error);
  const unreachable = `${region} is not answering right now. Choose another region, or try again in a minute.`;

  if (code === "NetworkError" || code === "Timeout" || code === "TypeError" || /Failed to fetch|NetworkError|Network error/i.test(message)
      || (error instanceof AwsError && error.status >= 500)) {
    return { message: unreachable, recovery: "chooseRegion" };
  }
  if (/signature expired|Signature not yet current|clock skew|InvalidSignatureException/i.test(`${code} ${message}`)) {
    return { message: "This device's clock is wrong. Set the date and time to automatic, then try again.", recovery: "retry" };
  }
  if (code === "TooManyRequestsException" || code === "LimitExceededException" || code === "ThrottlingException"
      || code === "TooManyFailedAttemptsException") {
    return { message: "Too many attempts. Wait a minute, then try again.", recovery: "retry" };
  }
  if (code === "CodeMismatchException" || code === "EnableSoftwareTokenMFAException"
      || (stage === "totp" || stage === "totpSetup") && code === "InvalidParameterException") {
    return { message: "That code is not right. Enter the 6-digit code your authenticator app shows now.", recovery: "retry" };
  }
  if (code === "ExpiredCodeException" || /session is expired|Invalid session/i.test(message)) {
    return { message: "Sign-in took too long (more than 3 minutes). Please sign in again.", recovery: "signIn" };
  }
  if (code === "InvalidPasswordException") {
    return { message: `That password is not allowed: ${message.replace(/^Password does not conform to policy: /, "")}. Use at least 14 characters with upper- and lower-case letters, a number and a symbol, and not one of your last 5 passwords.`, recovery: "retry" };
  }
  if (code === "PasswordResetRequiredException") {
    return { message: "Your password has to be reset. Ask your administrator.", recovery: "none" };
  }
  if (code === "UserNotConfirmedException" || /User is disabled/i.test(message)) {
    return { message: "This account is disabled. Ask your administrator.", recovery: "none" };
  }
  if (stage === "signIn" && (code === "NotAuthorizedException" || code === "UserNotFoundException")) {
    return { message: "Wrong user name or password.", recovery: "retry" };
  }
  if (stage === "credentials" && (code === "NotAuthorizedException" || code === "AccessDeniedException"
      || code === "InvalidIdentityPoolConfigurationException")) {
    return { message: NOT_IN_GROUP, recovery: "none" };
  }
  if (stage === "allowList" && (code === "NotAuthorizedException" || code === "AccessDeniedException"
      || code === "UnauthorizedException")) {
    return { message: NOT_ADMIN, recovery: "none" };
  }
  if (code === "NotAuthorizedException" || code === "ExpiredTokenException" || (/expired/i.test(message) && stage !== "device")) {
    return { message: "Your session has expired. Please sign in again.", recovery: "signIn" };
  }
  if (stage === "claim" && (code === "AccessDeniedException" || code === "UnauthorizedException" || code === "ForbiddenException")) {
    return { message: `Your account may not request claims in ${region}. Ask your administrator.`, recovery: "none" };
  }
  if (stage === "claim" && code === "ResourceNotFoundException") {
    return { message: `Devices cannot be provisioned in ${region} right now (its provisioning template is missing). Choose another region.`, recovery: "chooseRegion" };
  }
  if (stage === "allowList" && code === "ConditionalCheckFailedException") {
    return { message: "That serial cannot be changed that way: it is not an allow-list entry, or it is being provisioned right now (CLAIMED).", recovery: "retry" };
  }
  if (stage === "allowList" && (code === "AccessDeniedException" || code === "UnauthorizedException")) {
    return { message: NOT_ADMIN, recovery: "none" };
  }
  if (stage === "device") {
    return { message: `The device did not take the file (${message || "no answer"}). Check that this phone is on the device's setup Wi-Fi, or download the file and load it another way.`, recovery: "retry" };
  }
  return { message: `Something went wrong${code ? ` (${code})` : ""}. Try again; if it keeps happening, tell your administrator.`, recovery: "retry" };
}
