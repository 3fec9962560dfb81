// Sign-in to a region's installer user pool with SRP (the password never leaves the browser),
// then whatever Cognito asks: a new password on the first sign-in, TOTP enrolment when the user
// has no authenticator yet, the TOTP code. amazon-cognito-identity-js does the SRP maths and the
// challenge calls; this module turns its callbacks into one awaited step at a time.
import {
  AuthenticationDetails,
  CognitoUser,
  CognitoUserPool,
  type CognitoUserSession,
  type IAuthenticationCallback,
} from "amazon-cognito-identity-js";
import type { RegionConfig } from "./config";
import { MemoryStorage } from "./storage";

export const TOTP_ISSUER = "IoT installers";

export interface Session {
  username: string;
  idToken: string;
  groups: string[];
  roles: string[];
  expiresAt: number; // epoch ms of the ID token's expiry
}

export type Step =
  | { kind: "newPassword" }
  | { kind: "totpSetup"; secret: string; uri: string }
  | { kind: "totp" }
  | { kind: "signedIn"; session: Session };

export function totpUri(secret: string, username: string, region: string): string {
  const issuer = `${TOTP_ISSUER} (${region})`;
  const label = encodeURIComponent(`${issuer}:${username}`);
  return `otpauth://totp/${label}?secret=${secret}&issuer=${encodeURIComponent(issuer)}`;
}

function claimList(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  if (typeof value === "string" && value) return value.split(",").map((v) => v.trim());
  return [];
}

export function sessionFrom(username: string, session: CognitoUserSession): Session {
  const token = session.getIdToken();
  const payload = token.decodePayload() as Record<string, unknown>;
  return {
    username: String(payload["cognito:username"] ?? username),
    idToken: token.getJwtToken(),
    groups: claimList(payload["cognito:groups"]),
    roles: claimList(payload["cognito:roles"]),
    expiresAt: token.getExpiration() * 1000,
  };
}

export class SignIn {
  readonly storage = new MemoryStorage();
  private user: CognitoUser | null = null;
  private username = "";
  private pending: { resolve: (step: Step) => void; reject: (error: unknown) => void } | null = null;

  constructor(private readonly region: RegionConfig) {}

  private pool(): CognitoUserPool {
    return new CognitoUserPool({
      UserPoolId: this.region.userPoolId,
      ClientId: this.region.userPoolClientId,
      endpoint: `${this.region.endpoints.cognitoIdp}/`,
      Storage: this.storage,
    });
  }

  private wait(action: () => void): Promise<Step> {
    return new Promise<Step>((resolve, reject) => {
      this.pending = { resolve, reject };
      try {
        action();
      } catch (error) {
        reject(error);
      }
    });
  }

  private settle(step: Step): void {
    this.pending?.resolve(step);
  }

  private fail(error: unknown): void {
    this.pending?.reject(error);
  }

  private readonly callbacks: IAuthenticationCallback = {
    onSuccess: (session) => this.settle({ kind: "signedIn", session: sessionFrom(this.username, session) }),
    onFailure: (error) => this.fail(error),
    newPasswordRequired: () => this.settle({ kind: "newPassword" }),
    totpRequired: () => this.settle({ kind: "totp" }),
    mfaRequired: () => this.fail(Object.assign(new Error("SMS codes are not used here"), { code: "UnsupportedChallenge" })),
    mfaSetup: () => {
      this.user!.associateSoftwareToken({
        associateSecretCode: (secret) =>
          this.settle({ kind: "totpSetup", secret, uri: totpUri(secret, this.username, this.region.region) }),
        onFailure: (error) => this.fail(error),
      });
    },
  };

  start(username: string, password: string): Promise<Step> {
    this.username = username.trim();
    this.user = new CognitoUser({ Username: this.username, Pool: this.pool(), Storage: this.storage });
    this.user.setAuthenticationFlowType("USER_SRP_AUTH");
    const details = new AuthenticationDetails({ Username: this.username, Password: password });
    return this.wait(() => this.user!.authenticateUser(details, this.callbacks));
  }

  newPassword(password: string): Promise<Step> {
    return this.wait(() => this.user!.completeNewPasswordChallenge(password, {}, this.callbacks));
  }

  confirmTotpSetup(code: string): Promise<Step> {
    return this.wait(() => this.user!.verifySoftwareToken(code.trim(), "installer-web", {
      onSuccess: (session) => this.settle({ kind: "signedIn", session: sessionFrom(this.username, session) }),
      onFailure: (error) => this.fail(error),
    }));
  }

  totp(code: string): Promise<Step> {
    return this.wait(() => this.user!.sendMFACode(code.trim(), this.callbacks, "SOFTWARE_TOKEN_MFA"));
  }

  // Revokes the refresh token at Cognito (the app client has token revocation on), then
  // forgets every token held in memory.
  async signOut(): Promise<void> {
    const user = this.user;
    this.user = null;
    if (user) {
      await new Promise<void>((resolve) => {
        try {
          user.signOut(() => resolve());
        } catch {
          resolve();
        }
      });
    }
    this.storage.clear();
  }
}
