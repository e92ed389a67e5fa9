// The operators' portal in headless Chromium, with the unmodified
// @authgear/web SDK on the app side. IDSTREAM_URL and IDSTREAM_URL_B are two
// nodes on one NATS and one PostgreSQL; PORTAL_USER and PORTAL_PASSWORD sign
// in. Refresh tokens for the Go test to age with its fake clock are written
// to OUT_FILE. Screenshots of every portal page go to artifacts/portal-*.png.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { artifacts, startPageServer, launch, check, runner, finish } from "./harness.mjs";

const nodeA = process.env.IDSTREAM_URL.replace(/\/$/, "");
const nodeB = process.env.IDSTREAM_URL_B.replace(/\/$/, "");
const clientID = process.env.CLIENT_ID || "idstream-dev";
const user = process.env.PORTAL_USER, password = process.env.PORTAL_PASSWORD;
const { pageURL, server } = await startPageServer();
const browser = await launch();
const { scenario, counts } = runner(browser, pageURL);
const out = {};

// signIn signs in with the keyboard only: the username field has focus.
async function signIn(page) {
  await page.goto(`${nodeA}/portal`);
  await page.getByRole("heading", { name: "Sign in to the idstream portal" }).waitFor();
  // The field has autofocus; on a loaded machine the heading can be there
  // before the focus is, and keys typed in between would be lost.
  await page.waitForFunction(() => document.activeElement?.id === "username");
  await page.keyboard.type(user);
  await page.keyboard.press("Tab");
  await page.keyboard.type(password);
  await Promise.all([page.waitForURL(/\/portal\/authentication\/anonymous-users/), page.keyboard.press("Enter")]);
}

// guest signs a new guest up through the SDK against a node, in a fresh
// browser context; it returns the SDK's answer and the refresh token.
async function guest(endpoint) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(pageURL);
    await page.waitForFunction(() => window.t !== undefined);
    await page.evaluate(([e, c]) => window.t.configure(e, c, "refresh_token"), [endpoint, clientID]);
    const u = await page.evaluate(() => window.t.signup());
    const rt = await page.evaluate(() => localStorage.getItem("authgear_default_refreshToken"));
    return { u, rt };
  } finally {
    await context.close();
  }
}

async function eventually(what, fn) {
  const deadline = Date.now() + 3000;
  for (;;) {
    const last = await fn();
    if (last.ok) return last;
    if (Date.now() > deadline) throw new Error(`${what}: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// keyboardReachesEverything tabs through the page from the top and checks
// that every visible control got focus, in document order.
async function keyboardReachesEverything(page, name) {
  const total = await page.evaluate(() => {
    // A radio group is one Tab stop (arrow keys move within it): its
    // checked radio, or its first.
    const els = [...document.querySelectorAll("a[href], button, input:not([type=hidden]), select, textarea")]
      .filter((e) => !e.disabled && e.getClientRects().length > 0)
      .filter((e) => e.type !== "radio" || e === (document.querySelector(`input[type=radio][name="${e.name}"]:checked`)
        || document.querySelector(`input[type=radio][name="${e.name}"]`)));
    els.forEach((e, i) => e.setAttribute("data-k", String(i)));
    document.activeElement?.blur();
    window.scrollTo(0, 0);
    return els.length;
  });
  // Start from the top of the document, as after a fresh page load.
  await page.evaluate(() => { const m = document.createElement("span"); m.tabIndex = -1; document.body.prepend(m); m.focus(); });
  const seen = [];
  for (let i = 0; i < total + 10 && seen.length < total; i++) {
    await page.keyboard.press("Tab");
    const k = await page.evaluate(() => document.activeElement?.getAttribute("data-k"));
    if (k !== null && k !== undefined && !seen.includes(k)) seen.push(k);
  }
  check(seen.length === total, `${name}: the keyboard reached ${seen.length} of ${total} controls`);
  const ordered = seen.every((k, i) => i === 0 || Number(k) > Number(seen[i - 1]));
  check(ordered, `${name}: focus order ${seen.join(",")} is not the reading order`);
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
    .filter((e) => e.labels.length === 0 && !e.getAttribute("aria-label")).map((e) => e.name || e.id));
  check(unlabelled.length === 0, `${name}: controls without a label: ${unlabelled.join(", ")}`);
}

// contrastMeetsAA checks WCAG 2 AA contrast of every visible text against
// the background it is drawn on (4.5:1, or 3:1 for large text).
async function contrastMeetsAA(page, name) {
  const bad = await page.evaluate(() => {
    const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    const out = [];
    for (const el of document.querySelectorAll("body *")) {
      const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!own || el.getClientRects().length === 0) continue;
      const cs = getComputedStyle(el);
      const l1 = lum(rgb(cs.color).slice(0, 3)), l2 = lum(background(el));
      const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
      const size = parseFloat(cs.fontSize), bold = Number(cs.fontWeight) >= 700;
      const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
      if (ratio < need) out.push(`${el.tagName.toLowerCase()} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
    }
    return out;
  });
  check(bad.length === 0, `${name}: text below AA contrast: ${bad.join("; ")}`);
}

await scenario("portal: anonymous users off and on, on both nodes", async (h) => {
  await signIn(h.page);
  const before = await guest(nodeA);
  check(!before.u.error && before.u.isAnonymous, `guest before: ${JSON.stringify(before.u)}`);

  await h.page.getByLabel("Enable anonymous users").uncheck();
  await h.page.getByRole("button", { name: "Save" }).click();
  await h.page.getByText("Saved. Every node applies the change within a second").waitFor();
  check(!(await h.page.getByLabel("Enable anonymous users").isChecked()), "the switch shows on after saving off");
  for (const [name, endpoint] of [["A", nodeA], ["B", nodeB]]) {
    await eventually(`node ${name} still accepts guests`, async () => {
      const g = await guest(endpoint);
      return { ok: !!g.u.error && (g.u.reason === "AnonymousUserDisabled" || /disabled/.test(g.u.error)), u: g.u };
    });
  }
  // The existing guest keeps its session.
  await h.page.getByLabel("Enable anonymous users").check();
  await h.page.getByRole("button", { name: "Save" }).click();
  await h.page.getByText("Saved.").waitFor();
  for (const [name, endpoint] of [["A", nodeA], ["B", nodeB]]) {
    await eventually(`node ${name} refuses guests after they were turned back on`, async () => {
      const g = await guest(endpoint);
      return { ok: !g.u.error && g.u.isAnonymous === true, u: g.u };
    });
  }
  await h.page.goto(`${nodeA}/portal/audit`);
  const audit = await h.page.locator("table").innerText();
  check(/portal:/.test(audit) && /anonymous_enabled: true → false/.test(audit) && /anonymous_enabled: false → true/.test(audit),
    `audit: ${audit}`);
});

await scenario("portal: a refresh-token lifetime applies to new sessions", async (h) => {
  await signIn(h.page);
  const old = await guest(nodeA);
  check(!old.u.error && old.rt, `old guest ${JSON.stringify(old.u)}`);
  await h.page.goto(`${nodeA}/portal/applications`);
  await h.page.getByRole("link", { name: "Development client" }).click();
  await h.page.getByLabel("Idle timeout").first().fill("1h");
  await h.page.getByLabel("Lifetime").first().fill("2h");
  await h.page.getByRole("button", { name: "Save" }).click();
  await h.page.getByText("new lifetimes apply to sessions started from now on").waitFor();
  const fresh = await guest(nodeB);
  check(!fresh.u.error && fresh.rt, `new guest ${JSON.stringify(fresh.u)}`);
  out.oldRefreshToken = old.rt;
  out.newRefreshToken = fresh.rt;
});

await scenario("portal: bad input is refused inline and nothing is saved", async (h) => {
  await signIn(h.page);
  await h.page.goto(`${nodeA}/portal/audit`);
  const rowsBefore = await h.page.locator("tbody tr").count();
  await h.page.goto(`${nodeA}/portal/applications/new`);
  await h.page.getByLabel("Client ID").fill("not valid!");
  await h.page.getByLabel("Name").fill("Broken");
  await h.page.getByLabel("Redirect URIs (one per line)").fill("/relative/path");
  await h.page.getByLabel("Access token lifetime").fill("soon");
  await h.page.getByRole("button", { name: "Create" }).click();
  await h.page.getByRole("alert").filter({ hasText: "Nothing was saved" }).waitFor();
  for (const label of ["Client ID", "Redirect URIs (one per line)", "Access token lifetime"]) {
    check(await h.page.getByLabel(label).getAttribute("aria-invalid") === "true", `${label} is not marked invalid`);
  }
  check(await h.page.getByLabel("Client ID").inputValue() === "not valid!", "the form lost what was typed");
  await h.page.screenshot({ path: join(artifacts, "portal-application-errors.png"), fullPage: true });
  await h.page.goto(`${nodeA}/portal/audit`);
  check(await h.page.locator("tbody tr").count() === rowsBefore, "a refused form changed the settings");
});

await scenario("portal: every page, by keyboard, with screenshots", async (h) => {
  await signIn(h.page);
  await h.page.goto(`${nodeA}/portal/users?kind=anonymous`);
  const first = h.page.locator("tbody a").first();
  const userPath = new URL(await first.getAttribute("href"), nodeA).pathname;
  const pages = [
    ["anonymous-users", "/portal/authentication/anonymous-users"],
    ["rate-limits", "/portal/authentication/rate-limits"],
    ["applications", "/portal/applications"],
    ["application", `/portal/applications/${clientID}`],
    ["application-new", "/portal/applications/new"],
    ["users", "/portal/users"],
    ["user", userPath],
    ["operations", "/portal/operations"],
    ["audit", "/portal/audit"],
    ["webhooks", "/portal/webhooks"],
    ["funnel", "/portal/analytics/funnel"],
  ];
  for (const [name, path] of pages) {
    await h.page.goto(nodeA + path);
    await h.page.screenshot({ path: join(artifacts, `portal-${name}.png`), fullPage: true });
    await keyboardReachesEverything(h.page, name);
    await contrastMeetsAA(h.page, name);
  }
  // The guest funnel: the chart is an image with a name and a description,
  // its numbers also in a table with headers; the guests this walk created
  // are counted (screenshot: artifacts/portal-funnel.png).
  await h.page.goto(`${nodeA}/portal/analytics/funnel`);
  const chart = h.page.locator("svg[role=img]");
  check(await chart.count() === 1, "the funnel page has no chart image");
  check((await h.page.locator("svg #funnel-title").textContent()).startsWith("Guest funnel"), "the chart has no title");
  check((await h.page.locator("svg #funnel-desc").textContent()).includes("created"), "the chart has no description");
  check(await h.page.locator("table thead th[scope=col]").count() === 8, "the funnel table lacks its column headers");
  const created = Number(await h.page.locator("tr:has(th:text-is('Guests created')) td").textContent());
  const promoted = Number(await h.page.locator("tr:has(th:text-is('Promoted')) td").textContent());
  check(created > 2 && promoted >= 1, `the funnel counts ${created} guests, ${promoted} promoted`);
  check(await h.page.locator("tr:has(th:text-is('Time to promotion, median')) td").textContent() === "5m 0s", "the median time to promotion is not the scripted 5 minutes");
  check((await chart.boundingBox()).width > 300, "the chart is not drawn");
  await h.page.screenshot({ path: join(artifacts, "portal-funnel.png"), fullPage: true });
  // A user export started from the Operations page (no worker runs on
  // these nodes, so it stays pending; the Go tests run one to completion).
  await h.page.goto(`${nodeA}/portal/operations`);
  await h.page.getByLabel("CSV (the fields chosen below; none chosen means all)").check();
  await h.page.getByLabel("sub", { exact: true }).check();
  await Promise.all([h.page.waitForURL(/\/portal\/operations\?export=/), h.page.getByRole("button", { name: "Start export" }).click()]);
  check((await h.page.locator("#export [role=status]").textContent()).startsWith("pending"), "the started export is not shown pending");
  check(await h.page.locator("#export progress").count() === 1, "the started export has no progress bar");
  await h.page.screenshot({ path: join(artifacts, "portal-export.png"), fullPage: true });
  // The skip link is the first Tab stop; a change is saved with Enter.
  await h.page.goto(`${nodeA}/portal/authentication/rate-limits`);
  await h.page.evaluate(() => document.activeElement?.blur());
  await h.page.keyboard.press("Tab");
  check(await h.page.evaluate(() => document.activeElement?.textContent) === "Skip to content", "the first Tab stop is not the skip link");
  await h.page.getByLabel("Burst (requests)").first().focus();
  await h.page.keyboard.press("Control+A");
  await h.page.keyboard.type("120");
  await Promise.all([h.page.waitForURL(/saved=1/), h.page.keyboard.press("Enter")]);
  await h.page.getByText("Saved.").waitFor();
  await h.page.goto(`${nodeA}/portal/signin`);
  await h.context.clearCookies();
  await h.page.goto(`${nodeA}/portal/signin`);
  await h.page.screenshot({ path: join(artifacts, "portal-signin.png"), fullPage: true });
});

await writeFile(process.env.OUT_FILE, JSON.stringify(out));
await finish(browser, server, counts);
