// A browser robot for the local run's installer-web journey (tools/local/journeys/installer_web.py).
// It drives Debian's Chromium through playwright-core and answers one JSON command per line on
// stdin with one JSON line on stdout: {"id": n, "ok": true, "value": ...} or {"ok": false, "error": ...}.
// The journey decides what to do and checks the results; the robot only acts and reports.
import { createInterface } from "node:readline";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";
import * as OTPAuth from "otpauth";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let browser = null;
let version = "";
let context = null;
let page = null;
const requests = [];
const violations = [];
const consoleErrors = [];

const TOTP_PERIOD_SECONDS = 30;
const TOTP_MARGIN_SECONDS = 2; // the click that sends the code follows at once (the Python installer's margin too)

function totp(secret, offset = 0) {
  const generator = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret.replace(/\s+/g, "")),
    digits: 6, period: TOTP_PERIOD_SECONDS, algorithm: "SHA1" });
  const code = generator.generate();
  return offset ? String((Number(code) + offset) % 1_000_000).padStart(6, "0") : code;
}

const commands = {
  // One Chromium; each session is a fresh browser context (its own cookies, storage, IndexedDB
  // and caches, nothing shared with the others), like a new phone. Starting a Chromium per
  // session cost 0.6 s each.
  async launch({ executablePath = "/usr/bin/chromium" }) {
    browser = await chromium.launch({ executablePath, args: CHROMIUM_FLAGS, headless: true, timeout: 60_000 });
    version = browser.version();
    return "ready";
  },
  async context({ width, height, mobile = false }) {
    if (context) await context.close();
    context = await browser.newContext({
      viewport: { width, height }, isMobile: mobile, hasTouch: mobile, acceptDownloads: true,
      deviceScaleFactor: 1, locale: "en-GB", timezoneId: "UTC" });
    context.on("request", (request) => requests.push({ url: request.url(), method: request.method() }));
    // The page's timers and Date run on Playwright's clock: it keeps real time, and
    // `fastForward` moves it on at once (a countdown's next tick without waiting a second).
    await context.clock.install();
    page = await context.newPage();
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    await page.exposeFunction("__reportViolation", (text) => violations.push(text));
    await page.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (event) =>
        window.__reportViolation(`${event.violatedDirective} blocked ${event.blockedURI}`));
    });
    return version;
  },
  async goto({ url }) {
    await page.goto(url, { waitUntil: "load" });
    await page.waitForFunction(() => document.querySelector("main h2") !== null, null, { timeout: 20_000 });
    return page.locator("main h2").innerText();
  },
  async heading({ text, timeout = 15_000 }) {
    try {
      await page.waitForFunction((wanted) => document.querySelector("main h2")?.textContent === wanted
        && !document.querySelector("form[aria-busy]"), text, { timeout });
    } catch {
      const found = await page.locator("main h2").innerText().catch(() => "(none)");
      const alerts = await page.getByRole("alert").allInnerTexts().catch(() => []);
      throw new Error(`expected screen "${text}", found "${found}"${alerts.length ? `; alerts: ${alerts.join(" | ")}` : ""}`);
    }
    return text;
  },
  async fill({ label, value }) {
    await page.getByLabel(label, { exact: true }).fill(value);
    return true;
  },
  async fillTotp({ label = "6-digit code", secret, offset = 0 }) {
    // A code typed in the last seconds of its 30 s step can reach the verifier in the next
    // one (the emulated pool accepts only the current step): wait for a fresh step, as a
    // person does when the authenticator's timer is about to run out.
    const left = TOTP_PERIOD_SECONDS - (Date.now() / 1000) % TOTP_PERIOD_SECONDS;
    if (left < TOTP_MARGIN_SECONDS) await new Promise((resolve) => setTimeout(resolve, left * 1000 + 50));
    await page.getByLabel(label, { exact: true }).fill(totp(secret, offset));
    return true;
  },
  async click({ name, role = "button" }) {
    await page.getByRole(role, { name, exact: true }).click();
    return true;
  },
  async select({ label, value }) {
    await page.getByLabel(label, { exact: true }).selectOption(value);
    return page.getByLabel(label, { exact: true }).inputValue();
  },
  async check({ label }) {
    await page.getByLabel(label, { exact: true }).check();
    return true;
  },
  async keys({ keys }) {
    for (const key of keys) {
      if (key.type) await page.keyboard.type(key.type);
      else await page.keyboard.press(key.press);
    }
    return page.evaluate(() => document.activeElement?.getAttribute("name") || document.activeElement?.textContent || "");
  },
  async texts({ selector }) {
    return page.locator(selector).allInnerTexts();
  },
  async waitText({ selector, pattern, timeout = 15_000 }) {
    const regex = new RegExp(pattern);
    await page.waitForFunction(([s, p]) => [...document.querySelectorAll(s)].some((e) => new RegExp(p).test(e.textContent || "")),
      [selector, regex.source], { timeout }).catch(async () => {
      const found = await page.locator(selector).allInnerTexts();
      throw new Error(`no ${selector} matching /${pattern}/; found ${JSON.stringify(found)}`);
    });
    return page.locator(selector).allInnerTexts();
  },
  async fastForward({ ms }) {
    await page.clock.fastForward(ms);
    return true;
  },
  async regionOptions() {
    return page.locator("#region option").evaluateAll((options) =>
      options.map((o) => ({ value: o.value, text: o.textContent, selected: o.selected })));
  },
  async download({ name, dir }) {
    const [download] = await Promise.all([page.waitForEvent("download"), commands.click({ name })]);
    const path = join(dir, download.suggestedFilename());
    await download.saveAs(path);
    return path;
  },
  async screenshot({ path, fullPage = true }) {
    await page.screenshot({ path, fullPage, animations: "disabled" });
    return path;
  },
  async storage() {
    return page.evaluate(async () => ({
      localStorage: localStorage.length,
      sessionStorage: sessionStorage.length,
      cookies: document.cookie,
      indexedDB: (await indexedDB.databases()).map((d) => d.name),
      caches: "caches" in window ? (await caches.keys()).length : 0,
    }));
  },
  async layout() {
    return page.evaluate(() => ({
      viewport: window.innerWidth,
      scrollWidth: document.documentElement.scrollWidth,
      smallTargets: [...document.querySelectorAll("button, input, select")].filter((e) => {
        const r = e.getBoundingClientRect();
        return r.width > 0 && r.height > 0 && r.height < 24;
      }).length,
    }));
  },
  async axe() {
    // axe-core, injected through the DevTools protocol (the page's CSP allows no injected script).
    await page.evaluate(AXE);
    const result = await page.evaluate(() => window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }));
    return result.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.length} node(s), e.g. ${v.nodes[0]?.target?.join(" ")}`);
  },
  async observed() {
    return { requests, violations, consoleErrors };
  },
  async close() {
    if (context) await context.close();
    context = null;
    if (browser) await browser.close();
    browser = null;
    return true;
  },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const { id, command, args = {} } = JSON.parse(line);
  let reply;
  try {
    if (!(command in commands)) throw new Error(`no command ${command}`);
    reply = { id, ok: true, value: await commands[command](args) };
  } catch (error) {
    reply = { id, ok: false, error: String(error?.message || error).split("\n").slice(0, 6).join("\n") };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
  if (command === "close") break;
}
// The open stdin would keep Node alive after "close" (the caller waited 10 s, then killed it).
lines.close();
if (context) await context.close();
if (browser) await browser.close();
process.exit(0);
