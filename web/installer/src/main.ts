// The installer app: one page, one screen at a time. State lives in memory only.
import "./styles.css";
import { createProvisioningClaim, identityCredentials, type Credentials } from "./aws";
import { AllowList, type Entry } from "./allowList";
import { SignIn, type Session, type Step } from "./auth";
import { ConfigProblem, loadConfig, type RegionConfig, type SiteConfig } from "./config";
import { SERIAL_RULE, serialProblem } from "./contract";
import { sendToDevice } from "./device";
import { field, h } from "./dom";
import { describe, type Stage } from "./errors";
import { announce, formatLeft, secondsLeft } from "./expiry";
import { fileName, handover, serialise, type Handover } from "./handover";
import { qrSvg } from "./qr";
import { checkRegions, defaultProber, nearestHealthy, type Health } from "./regions";

function present(...nodes: (Node | null)[]): Node[] {
  return nodes.filter((n): n is Node => n !== null);
}

interface ClaimState {
  bundle: Handover;
  expiresAt: number;
}

class App {
  private config!: SiteConfig;
  private health: Health[] = [];
  private regionName: string | null = null;
  private chosenByHand = false;
  private signIn: SignIn | null = null;
  private session: Session | null = null;
  private credentials = new Map<string, Credentials>();
  private claim: ClaimState | null = null;
  private timer: number | undefined;
  private readonly main = document.getElementById("main")!;
  private readonly regionBar = document.getElementById("region-bar")!;
  private readonly accountBar = document.getElementById("account-bar")!;

  async start(): Promise<void> {
    try {
      this.config = await loadConfig();
    } catch (error) {
      const detail = error instanceof ConfigProblem ? error.message : String(error);
      this.show("This installer is not set up correctly", [
        h("p", { role: "alert", class: "error" }, `The site's configuration could not be read (${detail}). Tell your administrator.`)]);
      return;
    }
    await this.checkRegions();
    this.showSignIn();
  }

  // --- regions ------------------------------------------------------------------------------

  private get region(): RegionConfig | null {
    return this.config.regions.find((r) => r.region === this.regionName) ?? null;
  }

  private async checkRegions(): Promise<void> {
    this.regionBar.replaceChildren(h("span", { class: "muted" }, "Finding the nearest region…"));
    this.health = await checkRegions(this.config.regions, defaultProber());
    if (!this.chosenByHand || !this.health.find((x) => x.region === this.regionName)?.healthy) {
      this.regionName = nearestHealthy(this.health);
      this.chosenByHand = false;
    }
    this.renderRegionBar();
  }

  private renderRegionBar(): void {
    const signedIn = this.session !== null || this.signIn !== null && this.main.dataset.screen !== "signIn";
    const select = h("select", { id: "region", disabled: signedIn, onchange: (event: Event) => {
      this.regionName = (event.target as HTMLSelectElement).value;
      this.chosenByHand = true;
      this.renderRegionBar();
      if (this.main.dataset.screen === "signIn") this.showSignIn();
    } });
    for (const item of this.health) {
      const state = item.healthy ? `${item.rttMs} ms` : "not answering";
      const nearest = item.region === nearestHealthy(this.health) ? ", nearest" : "";
      select.append(h("option", { value: item.region, selected: item.region === this.regionName },
        `${item.region} (${state}${nearest})`));
    }
    if (this.regionName === null) {
      select.prepend(h("option", { value: "", selected: true, disabled: true }, "no region answers"));
    }
    this.regionBar.replaceChildren(...present(
      h("label", { for: "region" }, "Region"), select,
      h("button", { type: "button", class: "link", disabled: signedIn, onclick: () => void this.checkRegions() }, "Check again"),
      signedIn ? h("span", { class: "hint" }, "Sign out to change region.") : null));
  }

  // --- screens ------------------------------------------------------------------------------

  private show(title: string, content: (Node | null)[], screen = "other"): void {
    window.clearInterval(this.timer);
    const heading = h("h2", { tabindex: "-1" }, title);
    this.main.dataset.screen = screen;
    this.main.replaceChildren(heading, ...present(...content));
    this.renderAccountBar();
    this.renderRegionBar();
    heading.focus();
  }

  private renderAccountBar(): void {
    this.accountBar.replaceChildren(...(this.session ? [
      h("span", {}, `Signed in as ${this.session.username}`),
      h("button", { type: "button", class: "secondary", onclick: () => void this.signOut() }, "Sign out"),
    ] : []));
  }

  private alert(text: string): HTMLElement {
    return h("p", { role: "alert", class: "error" }, text);
  }

  private status(text: string): HTMLElement {
    return h("p", { role: "status", class: "ok" }, text);
  }

  private form(onSubmit: (form: HTMLFormElement) => Promise<void>, ...children: Node[]): HTMLFormElement {
    const form = h("form", { novalidate: true }, ...children);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const buttons = [...form.querySelectorAll("button")];
      buttons.forEach((b) => { b.disabled = true; });
      form.setAttribute("aria-busy", "true");
      void onSubmit(form).finally(() => {
        buttons.forEach((b) => { b.disabled = false; });
        form.removeAttribute("aria-busy");
      });
    });
    return form;
  }

  private fail(error: unknown, stage: Stage, place: HTMLElement): void {
    const problem = describe(error, stage, this.regionName ?? "this region");
    place.replaceChildren(this.alert(problem.message));
    if (problem.recovery === "signIn") {
      void this.resetSignIn().then(() => this.showSignIn(problem.message));
    } else if (problem.recovery === "chooseRegion" && this.session === null) {
      void this.checkRegions();
    }
  }

  showSignIn(message?: string): void {
    const region = this.region;
    if (!region) {
      this.show("No region is answering", [this.alert("None of the system's regions answers right now. Check this device's internet connection, then choose Check again.")], "signIn");
      return;
    }
    const user = field("User name", { name: "username", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" });
    const password = field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true });
    const errors = h("div", { class: "messages" }, message ? this.alert(message) : null);
    this.show("Sign in", [
      h("p", {}, `Sign in with your installer account for ${region.region}.`),
      this.form(async () => {
        if (!user.input.value.trim() || !password.input.value) {
          errors.replaceChildren(this.alert("Enter your user name and password."));
          return;
        }
        this.signIn = new SignIn(region);
        try {
          await this.next(await this.signIn.start(user.input.value, password.input.value));
        } catch (error) {
          this.signIn = null;
          this.fail(error, "signIn", errors);
        }
      }, user.wrapper, password.wrapper, errors, h("button", { type: "submit" }, "Sign in")),
    ], "signIn");
    user.input.focus();
  }

  private async next(step: Step): Promise<void> {
    switch (step.kind) {
      case "newPassword": return this.showNewPassword();
      case "totpSetup": return this.showTotpSetup(step.secret, step.uri);
      case "totp": return this.showTotp();
      case "signedIn":
        this.session = step.session;
        return this.showHome();
    }
  }

  private showNewPassword(): void {
    const first = field("New password", { type: "password", autocomplete: "new-password", required: true },
      "At least 14 characters, with upper- and lower-case letters, a number and a symbol.");
    const second = field("Repeat the new password", { type: "password", autocomplete: "new-password", required: true });
    const errors = h("div", { class: "messages" });
    this.show("Choose your password", [
      h("p", {}, "This is your first sign-in: replace the temporary password you were sent."),
      this.form(async () => {
        if (first.input.value !== second.input.value) {
          errors.replaceChildren(this.alert("The two passwords are not the same."));
          return;
        }
        try {
          await this.next(await this.signIn!.newPassword(first.input.value));
        } catch (error) {
          this.fail(error, "newPassword", errors);
        }
      }, first.wrapper, second.wrapper, errors, h("button", { type: "submit" }, "Set password")),
    ]);
    first.input.focus();
  }

  private codeField(): { wrapper: HTMLElement; input: HTMLInputElement } {
    return field("6-digit code", { inputmode: "numeric", autocomplete: "one-time-code", pattern: "[0-9]{6}", maxlength: 6, required: true });
  }

  private showTotpSetup(secret: string, uri: string): void {
    const code = this.codeField();
    const errors = h("div", { class: "messages" });
    const grouped = secret.replace(/(.{4})/g, "$1 ").trim();
    this.show("Set up your authenticator app", [
      h("p", {}, "Every sign-in needs a code from an authenticator app. Scan this code with the app, or type the key into it:"),
      h("figure", { class: "qr-box" }, qrSvg(uri, "QR code to add this account to an authenticator app"),
        h("figcaption", {}, "Key: ", h("code", { class: "secret" }, grouped))),
      this.form(async () => {
        try {
          await this.next(await this.signIn!.confirmTotpSetup(code.input.value));
        } catch (error) {
          this.fail(error, "totpSetup", errors);
        }
      }, code.wrapper, errors, h("button", { type: "submit" }, "Confirm")),
    ]);
  }

  private showTotp(): void {
    const code = this.codeField();
    const errors = h("div", { class: "messages" });
    this.show("Enter your code", [
      h("p", {}, "Open your authenticator app and enter the code it shows for this account."),
      this.form(async () => {
        try {
          await this.next(await this.signIn!.totp(code.input.value));
        } catch (error) {
          this.fail(error, "totp", errors);
        }
      }, code.wrapper, errors, h("button", { type: "submit" }, "Sign in")),
    ]);
    code.input.focus();
  }

  private isAdmin(): boolean {
    return this.session?.groups.includes(this.config.adminsGroup) ?? false;
  }

  private showHome(message?: Node): void {
    // Whether the account may request claims is the identity pool's decision (its role
    // mapping), not this page's: everyone gets the button, a refusal is explained.
    const admin = this.isAdmin() ? h("p", {}, h("button", { type: "button", class: "secondary", onclick: () => void this.showAdmin() }, "Manage the allow-list")) : null;
    const serial = field("Device serial number (optional)", { name: "serial", autocomplete: "off", autocapitalize: "characters", spellcheck: "false" },
      "Names the file after the device. The device still proves its serial when it provisions.");
    const errors = h("div", { class: "messages" }, message ?? null);
    this.show("Provision a device", [
      h("p", {}, `A claim lets one device provision itself in ${this.regionName}. It expires after 5 minutes, so request it when the device is ready.`),
      this.form(async () => {
        const wanted = serial.input.value.trim() || null;
        const problem = wanted ? serialProblem(wanted, this.config.claimClientIdPrefix) : null;
        if (problem) {
          errors.replaceChildren(this.alert(problem));
          return;
        }
        await this.requestClaim(wanted, errors);
      }, serial.wrapper, errors, h("button", { type: "submit" }, "Request claim")),
      admin,
    ], "home");
  }

  private async credentialsFor(roleArn: string): Promise<Credentials> {
    const cached = this.credentials.get(roleArn);
    if (cached && cached.expiration - Date.now() > 60_000) return cached;
    const session = this.session!;
    const fresh = await identityCredentials(this.region!, session.idToken, roleArn);
    this.credentials.set(roleArn, fresh);
    return fresh;
  }

  private async requestClaim(serial: string | null, errors: HTMLElement): Promise<void> {
    const region = this.region!;
    let credentials: Credentials;
    try {
      credentials = await this.credentialsFor(region.installerRoleArn);
    } catch (error) {
      this.fail(error, "credentials", errors);
      return;
    }
    try {
      const claim = await createProvisioningClaim(region, credentials);
      this.claim = { bundle: handover(this.config, region, claim, serial), expiresAt: claim.expiresAt };
      this.showClaim();
    } catch (error) {
      this.fail(error, "claim", errors);
    }
  }

  private showClaim(): void {
    const claim = this.claim!;
    const countdown = h("strong", { id: "countdown" }, formatLeft(secondsLeft(claim.expiresAt, Date.now())));
    const spoken = h("p", { class: "sr-only", "aria-live": "polite" });
    const messages = h("div", { class: "messages" });
    const download = h("button", { type: "button", onclick: () => this.download() }, "Download hand-over file");
    const local = this.config.deviceLocalAddress;
    const send = local ? h("button", { type: "button", class: "secondary", onclick: async () => {
      send!.disabled = true;
      messages.replaceChildren(h("p", { class: "muted" }, "Sending to the device…"));
      try {
        await sendToDevice(local, serialise(claim.bundle));
        messages.replaceChildren(this.status("The device accepted the file. It will now provision itself."));
      } catch (error) {
        this.fail(error, "device", messages);
      } finally {
        send!.disabled = secondsLeft(claim.expiresAt, Date.now()) === 0;
      }
    } }, "Send to device") : null;
    const who = claim.bundle.serial ? `device ${claim.bundle.serial}` : "a device";
    this.show("Claim ready", [
      h("p", {}, `A claim for ${who} in ${claim.bundle.region}. Expires in `, countdown, "."),
      spoken,
      h("div", { class: "actions" }, download, send),
      local ? h("p", { class: "hint" }, `Send to device posts the file to ${local} (the device's setup network).`) : null,
      messages,
      h("p", {}, h("button", { type: "button", class: "link", onclick: () => { this.claim = null; this.showHome(); } }, "Done: discard this claim")),
    ], "claim");
    this.timer = window.setInterval(() => {
      const left = secondsLeft(claim.expiresAt, Date.now());
      countdown.textContent = formatLeft(left);
      const said = announce(left);
      if (said) spoken.textContent = said;
      if (left === 0) {
        window.clearInterval(this.timer);
        download.disabled = true;
        if (send) send.disabled = true;
        messages.replaceChildren(this.alert("This claim has expired. Request a new one when the device is ready."));
      }
    }, 1000);
  }

  private download(): void {
    const bundle = this.claim!.bundle;
    const url = URL.createObjectURL(new Blob([serialise(bundle)], { type: "application/json" }));
    const link = h("a", { href: url, download: fileName(bundle), class: "sr-only" }, "download");
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  // --- administrators: the allow-list -------------------------------------------------------

  private async showAdmin(message?: HTMLElement): Promise<void> {
    const region = this.region!;
    const messages = h("div", { class: "messages" }, message ?? null);
    const serial = field("Serial number", { name: "admin-serial", autocomplete: "off", autocapitalize: "characters", spellcheck: "false" }, SERIAL_RULE);
    const reset = h("input", { type: "checkbox", id: "reset" });
    const table = h("div", { class: "entries" }, h("p", { class: "muted" }, "Loading…"));
    let action: "allow" | "disable" = "allow";
    const form = this.form(async () => {
      const value = serial.input.value.trim();
      const problem = serialProblem(value, this.config.claimClientIdPrefix);
      if (problem) {
        messages.replaceChildren(this.alert(problem));
        return;
      }
      try {
        const list = new AllowList(region, await this.credentialsFor(region.adminRoleArn));
        if (action === "allow") {
          const done = await list.allow(value, reset.checked);
          messages.replaceChildren(this.status(done === "created" ? `${value} is allowed.` : `${value} is allowed again.`));
        } else {
          await list.disable(value);
          messages.replaceChildren(this.status(`${value} is disabled: it cannot provision.`));
        }
        await this.fillEntries(table);
      } catch (error) {
        this.fail(error, "allowList", messages);
      }
    }, serial.wrapper,
    h("div", { class: "check" }, reset, h("label", { for: "reset" }, "Re-open a serial that was already provisioned")),
    messages,
    h("div", { class: "actions" },
      h("button", { type: "submit", onclick: () => { action = "allow"; } }, "Allow"),
      h("button", { type: "submit", class: "danger", onclick: () => { action = "disable"; } }, "Disable")));
    this.show(`Allow-list (${region.region})`, [
      h("p", {}, "Only allowed serials can provision. Changes reach every region within seconds."),
      form,
      h("h3", {}, "Serials"),
      table,
      h("p", {}, h("button", { type: "button", class: "link", onclick: () => this.showHome() }, "Back")),
    ], "admin");
    await this.fillEntries(table);
  }

  private async fillEntries(table: HTMLElement): Promise<void> {
    const region = this.region!;
    let entries: Entry[];
    try {
      entries = await new AllowList(region, await this.credentialsFor(region.adminRoleArn)).list();
    } catch (error) {
      const problem = describe(error, "allowList", region.region);
      table.replaceChildren(this.alert(problem.message));
      return;
    }
    if (!entries.length) {
      table.replaceChildren(h("p", { class: "muted" }, "No serials yet."));
      return;
    }
    table.replaceChildren(h("table", {},
      h("caption", { class: "sr-only" }, "Allow-listed serials"),
      h("thead", {}, h("tr", {}, ...["Serial", "State", "Enabled", "Allowed at"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, ...entries.map((e) => h("tr", {},
        h("td", {}, e.serial), h("td", {}, e.state), h("td", {}, e.enabled ? "yes" : "no"),
        h("td", {}, e.allowedAt ? e.allowedAt.replace("T", " ").slice(0, 19) : ""))))));
  }

  // --- sign-out -----------------------------------------------------------------------------

  private async resetSignIn(): Promise<void> {
    const signIn = this.signIn;
    this.signIn = null;
    this.session = null;
    this.claim = null;
    this.credentials.clear();
    await signIn?.signOut();
  }

  private async signOut(): Promise<void> {
    await this.resetSignIn();
    this.showSignIn();
    this.main.querySelector(".messages")?.replaceChildren(this.status("You are signed out. Nothing is kept on this device."));
  }
}

void new App().start();
