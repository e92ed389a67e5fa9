// "Continue with <provider>" (issue 19) in headless Chromium with the
// unmodified @authgear/web SDK: a guest calls startPromoteAnonymousUser,
// picks "Continue with Acme" on the hosted page, goes through the upstream
// OpenID provider the Go test runs (zitadel/oidc's op), comes back, and
// finishPromoteAnonymousUser gives the promoted user with the guest's sub.
// A second guest trying the same identity sees the conflict page and keeps
// its session. IDSTREAM_URL names the server.
import { join } from "node:path";
import { artifacts, startPageServer, launch, check, runner, finish } from "./harness.mjs";

const endpoint = (process.env.IDSTREAM_URL || "http://localhost:8080").replace(/\/$/, "");
const clientID = process.env.CLIENT_ID || "idstream-dev";
const { pageURL, server } = await startPageServer();
const browser = await launch();
const { scenario, counts } = runner(browser, pageURL);

async function promoteWithAcme(h) {
  await h.open();
  await h.call("configure", endpoint, clientID, "refresh_token");
  const guest = await h.call("signup");
  check(!guest.error && guest.isAnonymous, `signup ${JSON.stringify(guest)}`);
  await Promise.all([h.page.waitForURL(/\/flows\//), h.call("startPromote", pageURL).catch(() => {})]);
  await h.page.getByText("Create your account").first().waitFor();
  return guest;
}

await scenario("refresh_token: promote with Continue with Acme", async (h) => {
  const guest = await promoteWithAcme(h);
  await h.page.screenshot({ path: join(artifacts, "upstream-promotion-page.png") });
  // Through the provider (its login page signs the test's user in) and back.
  await Promise.all([h.page.waitForURL((u) => u.href.startsWith(pageURL), { timeout: 20000 }),
    h.page.getByRole("link", { name: "Continue with Acme" }).click()]);
  await h.page.waitForFunction(() => window.t !== undefined);
  await h.call("configure", endpoint, clientID, "refresh_token");
  const fin = await h.call("finishPromote");
  check(fin.ok, `finishPromoteAnonymousUser ${JSON.stringify(fin)}`);
  const promoted = await h.call("userInfo");
  check(promoted.sub === guest.sub && promoted.isAnonymous === false, `after promotion ${JSON.stringify(promoted)} (guest ${guest.sub})`);
});

await scenario("refresh_token: the same identity for another guest is a conflict", async (h) => {
  const guest = await promoteWithAcme(h);
  await h.page.getByRole("link", { name: "Continue with Acme" }).click();
  await h.page.getByText("already linked to another account").waitFor();
  await h.page.screenshot({ path: join(artifacts, "upstream-promotion-conflict.png") });
  await h.page.goto(pageURL);
  await h.page.waitForFunction(() => window.t !== undefined);
  await h.call("configure", endpoint, clientID, "refresh_token");
  const still = await h.call("userInfo");
  check(still.sub === guest.sub && still.isAnonymous === true, `the refused guest ${JSON.stringify(still)} (was ${guest.sub})`);
});

await finish(browser, server, counts);
