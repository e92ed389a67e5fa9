// The unmodified @authgear/web SDK's startPromoteAnonymousUser through the
// hosted code page: the Go test runs a node whose project requires the code
// sent to the email before a promotion completes, with no SMTP server, so
// development mode writes the message to OUTBOX_DIR, where this script
// reads the code (as a developer would with `idstream outbox`). Email also
// offers codes as the authenticator, so the last scenario is passwordless.
import { join } from "node:path";
import { readdir, readFile } from "node:fs/promises";
import { artifacts, startPageServer, launch, check, runner, finish } from "./harness.mjs";

const endpoint = (process.env.IDSTREAM_URL || "http://localhost:8080").replace(/\/$/, "");
const clientID = process.env.CLIENT_ID || "idstream-dev";
const outbox = process.env.OUTBOX_DIR;
const { pageURL, server } = await startPageServer();
const browser = await launch();
const { scenario, counts } = runner(browser, pageURL);
const password = "violet-tangerine-42";

async function latestCode(to) {
  for (let i = 0; i < 100; i++) {
    const names = (await readdir(outbox).catch(() => [])).filter((n) => n.endsWith(".txt")).sort();
    if (names.length > 0) {
      const text = await readFile(join(outbox, names[names.length - 1]), "utf8");
      const m = text.match(/\n\s+(\d{6})\n/);
      if (text.includes(`To: ${to}`) && m) return m[1];
    }
    await new Promise((ok) => setTimeout(ok, 100));
  }
  throw new Error(`no code for ${to} in the outbox`);
}

for (const sessionType of ["refresh_token", "cookie"]) {
  const email = `coded-${sessionType}-${Date.now()}@example.com`;
  await scenario(`${sessionType}: promote with the code sent to the email`, async (h) => {
    await h.open();
    await h.call("configure", endpoint, clientID, sessionType);
    const guest = await h.call("signup");
    check(!guest.error && guest.isAnonymous, `signup ${JSON.stringify(guest)}`);
    await Promise.all([h.page.waitForURL(/\/flows\//), h.call("startPromote", pageURL).catch(() => {})]);
    await h.page.getByLabel(/email/i).fill(email);
    await h.page.getByLabel("Password").fill(password);
    await Promise.all([h.page.waitForURL(/\/code$/), h.page.getByRole("button", { name: "Create account", exact: true }).click()]);
    await h.page.getByText(`Enter the code we sent to ${email}`).waitFor();
    await h.page.screenshot({ path: join(artifacts, `hosted-code-${sessionType}.png`) });
    const code = await latestCode(email);
    // A wrong code is refused inline.
    await h.page.getByLabel("Code").fill(code === "000000" ? "111111" : "000000");
    await h.page.getByRole("button", { name: "Create account", exact: true }).click();
    await h.page.getByText("That code is not right").waitFor();
    await h.page.screenshot({ path: join(artifacts, `hosted-code-error-${sessionType}.png`) });
    await h.page.getByLabel("Code").fill(code);
    await Promise.all([h.page.waitForURL((u) => u.href.startsWith(pageURL)), h.page.getByRole("button", { name: "Create account", exact: true }).click()]);
    await h.page.waitForFunction(() => window.t !== undefined);
    await h.call("configure", endpoint, clientID, sessionType);
    if (sessionType === "refresh_token") {
      const fin = await h.call("finishPromote");
      check(fin.ok, `finishPromoteAnonymousUser ${JSON.stringify(fin)}`);
    }
    const promoted = await h.call("userInfo");
    check(promoted.sub === guest.sub && promoted.isAnonymous === false && promoted.isVerified === true,
      `after promotion ${JSON.stringify(promoted)} (guest ${guest.sub})`);
  });
}

// Passwordless: "Create account with a code instead", no password typed;
// the same sub, verified, and no password on the account.
await scenario("refresh_token: passwordless promotion with a code instead", async (h) => {
  const email = `passwordless-${Date.now()}@example.com`;
  await h.open();
  await h.call("configure", endpoint, clientID, "refresh_token");
  const guest = await h.call("signup");
  check(!guest.error && guest.isAnonymous, `signup ${JSON.stringify(guest)}`);
  await Promise.all([h.page.waitForURL(/\/flows\//), h.call("startPromote", pageURL).catch(() => {})]);
  await h.page.getByLabel(/email/i).fill(email);
  await Promise.all([h.page.waitForURL(/\/code$/), h.page.getByRole("button", { name: "Create account with a code instead" }).click()]);
  await h.page.getByText(`Enter the code we sent to ${email}`).waitFor();
  await h.page.getByLabel("Code").fill(await latestCode(email));
  await Promise.all([h.page.waitForURL((u) => u.href.startsWith(pageURL)), h.page.getByRole("button", { name: "Create account", exact: true }).click()]);
  await h.page.waitForFunction(() => window.t !== undefined);
  await h.call("configure", endpoint, clientID, "refresh_token");
  const fin = await h.call("finishPromote");
  check(fin.ok, `finishPromoteAnonymousUser ${JSON.stringify(fin)}`);
  const promoted = await h.call("userInfo");
  check(promoted.sub === guest.sub && promoted.isAnonymous === false && promoted.isVerified === true,
    `after passwordless promotion ${JSON.stringify(promoted)} (guest ${guest.sub})`);
});

await finish(browser, server, counts);
