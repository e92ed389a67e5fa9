// Drives the unmodified @authgear/web 6.0.0 SDK in headless Chromium against
// an idstream server. IDSTREAM_URL names the server (the Go test starts one on
// http://localhost:<port>); the page is served from another localhost port,
// so every call is cross-origin (CORS) but same-site (cookies work with Lax).
// Prints one line per scenario and ends with "N passed, N failed".
import { createServer } from "node:http";
import { readFile, mkdir } from "node:fs/promises";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const endpoint = (process.env.IDSTREAM_URL || "http://localhost:8080").replace(/\/$/, "");
const clientID = process.env.CLIENT_ID || "idstream-dev";
const artifacts = join(here, "artifacts");
await mkdir(artifacts, { recursive: true });

const files = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/sdk/authgear-web.iife.js": ["node_modules/@authgear/web/dist/authgear-web.iife.js", "text/javascript; charset=utf-8"],
};
const server = createServer(async (req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  const f = files[path];
  if (!f) { res.writeHead(404).end(); return; }
  res.writeHead(200, { "content-type": f[1], "cache-control": "no-store" });
  res.end(await readFile(join(here, f[0])));
});
await new Promise((ok) => server.listen(0, "localhost", ok));
const pageURL = `http://localhost:${server.address().port}/`;

// Playwright gives each launch a fresh, empty profile directory.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});

let passed = 0, failed = 0;
function check(cond, msg) { if (!cond) throw new Error(msg); }

async function scenario(name, fn) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const log = [];
  page.on("console", (m) => log.push(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => log.push(`pageerror: ${e.message}`));
  page.on("requestfailed", (r) => log.push(`requestfailed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => { if (r.status() >= 400) log.push(`response ${r.status()}: ${r.request().method()} ${r.url()}`); });
  const h = {
    page,
    async open() { await page.goto(pageURL); await page.waitForFunction(() => window.t !== undefined); },
    call: (fnName, ...args) => page.evaluate(([f, a]) => window.t[f](...a), [fnName, args]),
    refreshToken: () => page.evaluate(() => localStorage.getItem("authgear_default_refreshToken")),
  };
  try {
    await fn(h);
    passed++;
    console.log(`PASS ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message}\n  ${log.join("\n  ")}`);
  } finally {
    await page.screenshot({ path: join(artifacts, name.replace(/[^a-z0-9]+/gi, "-") + ".png") }).catch(() => {});
    await context.close();
  }
}

async function tokenRefresh(refreshToken) {
  const r = await fetch(`${endpoint}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "refresh_token", client_id: clientID, refresh_token: refreshToken }),
  });
  return { status: r.status, body: await r.json() };
}

for (const sessionType of ["refresh_token", "cookie"]) {
  await scenario(`${sessionType}: sign up, reload, refresh, logout`, async (h) => {
    await h.open();
    await h.call("configure", endpoint, clientID, sessionType);
    const u = await h.call("signup");
    check(!u.error, `authenticateAnonymously: ${JSON.stringify(u)}`);
    check(u.isAnonymous === true && typeof u.sub === "string" && u.sub.length > 0, `signup user info ${JSON.stringify(u)}`);
    const info = await h.call("userInfo");
    check(info.sub === u.sub && info.isAnonymous === true, `fetchUserInfo ${JSON.stringify(info)}`);
    // The SDK cannot see an HttpOnly cookie: its state stays UNKNOWN there.
    const state = await h.call("sessionState");
    check(state === (sessionType === "cookie" ? "UNKNOWN" : "AUTHENTICATED"), `session state ${state}`);
    const rt1 = await h.refreshToken();
    check(sessionType === "cookie" ? rt1 === null : !!rt1, `refresh token in storage: ${rt1 ? "present" : "absent"}`);

    // A reload loses the in-memory access token; the same guest comes back
    // (token mode refreshes with the stored refresh token, which rotates).
    await h.page.reload();
    await h.page.waitForFunction(() => window.t !== undefined);
    await h.call("configure", endpoint, clientID, sessionType);
    const again = await h.call("userInfo");
    check(again.sub === u.sub && again.isAnonymous === true, `after reload ${JSON.stringify(again)}`);
    let current = await h.refreshToken();
    if (sessionType === "refresh_token") {
      check(current && current !== rt1, "the refresh token did not rotate on reload");
      const r = await h.call("refresh");
      check(r.ok, `refreshAccessToken ${JSON.stringify(r)}`);
      const rt3 = await h.refreshToken();
      check(rt3 && rt3 !== current, "refreshAccessToken did not rotate the refresh token");
      const afterRefresh = await h.call("userInfo");
      check(afterRefresh.sub === u.sub, `after refresh ${JSON.stringify(afterRefresh)}`);
      current = rt3;

      // Signing up again as the same guest keeps the sub.
      const same = await h.call("signup");
      check(same.sub === u.sub, `second authenticateAnonymously gave ${JSON.stringify(same)}`);
      current = await h.refreshToken();

      const out = await h.call("logout", pageURL);
      check(!out.error && out.sessionState === "NO_SESSION", `logout ${JSON.stringify(out)}`);
      check((await h.refreshToken()) === null, "refresh token still stored after logout");
      const gone = await h.call("userInfo");
      check(gone.error, `fetchUserInfo after logout succeeded: ${JSON.stringify(gone)}`);
      const revoked = await tokenRefresh(current);
      check(revoked.status === 400 && revoked.body.error === "invalid_grant", `old refresh token after logout: ${JSON.stringify(revoked)}`);
    } else {
      // Cookie mode: logout redirects through end_session and back.
      await Promise.all([
        h.page.waitForURL((url) => url.href.startsWith(pageURL) && !url.href.includes("end_session"), { waitUntil: "load" }),
        h.call("logout", pageURL).catch(() => {}),
      ]);
      await h.page.waitForFunction(() => window.t !== undefined);
      await h.call("configure", endpoint, clientID, sessionType);
      const gone = await h.call("userInfo");
      check(gone.error, `fetchUserInfo after cookie logout succeeded: ${JSON.stringify(gone)}`);
      // A fresh sign-up afterwards is a new guest.
      const next = await h.call("signup");
      check(!next.error && next.sub !== u.sub && next.isAnonymous, `sign-up after logout ${JSON.stringify(next)}`);
    }
  });
}

await browser.close();
server.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
