// Shared by the browser scripts: the SDK test page served from its own
// localhost port, headless Chromium (Debian's, through playwright-core), and
// a scenario runner that screenshots every scenario into artifacts/.
import { createServer } from "node:http";
import { readFile, mkdir } from "node:fs/promises";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const here = dirname(fileURLToPath(import.meta.url));
export const artifacts = join(here, "artifacts");
await mkdir(artifacts, { recursive: true });

const files = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/sdk/authgear-web.iife.js": ["node_modules/@authgear/web/dist/authgear-web.iife.js", "text/javascript; charset=utf-8"],
};

// startPageServer serves the SDK test page; it returns the page's URL and
// the server.
export async function startPageServer() {
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    const f = files[path];
    if (!f) { res.writeHead(404).end(); return; }
    res.writeHead(200, { "content-type": f[1], "cache-control": "no-store" });
    res.end(await readFile(join(here, f[0])));
  });
  await new Promise((ok) => server.listen(0, "localhost", ok));
  return { pageURL: `http://localhost:${server.address().port}/`, server };
}

// Playwright gives each launch a fresh, empty profile directory.
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
}

export function check(cond, msg) { if (!cond) throw new Error(msg); }

// runner returns scenario(name, fn) and a summary: each scenario gets a
// fresh browser context and page, and a helper h with the SDK test page.
export function runner(browser, pageURL) {
  const counts = { passed: 0, failed: 0 };
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
      context,
      async open() { await page.goto(pageURL); await page.waitForFunction(() => window.t !== undefined); },
      call: (fnName, ...args) => page.evaluate(([f, a]) => window.t[f](...a), [fnName, args]),
      refreshToken: () => page.evaluate(() => localStorage.getItem("authgear_default_refreshToken")),
    };
    try {
      await fn(h);
      counts.passed++;
      console.log(`PASS ${name}`);
    } catch (e) {
      counts.failed++;
      console.log(`FAIL ${name}: ${e.message}\n  ${log.join("\n  ")}`);
    } finally {
      await page.screenshot({ path: join(artifacts, name.replace(/[^a-z0-9]+/gi, "-") + ".png") }).catch(() => {});
      await context.close();
    }
  }
  return { scenario, counts };
}

// finish closes everything and exits non-zero unless every scenario passed.
export async function finish(browser, server, counts) {
  await browser.close();
  server.close();
  console.log(`${counts.passed} passed, ${counts.failed} failed`);
  process.exit(counts.failed === 0 && counts.passed > 0 ? 0 : 1);
}
