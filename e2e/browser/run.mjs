// Drives the unmodified @authgear/web 6.0.0 SDK in headless Chromium against
// an idstream server. IDSTREAM_URL names the server (the Go test starts one on
// http://localhost:<port>); the page is served from another localhost port,
// so every call is cross-origin (CORS) but same-site (cookies work with Lax).
// Prints one line per scenario and ends with "N passed, N failed".
import { join } from "node:path";
import { artifacts, startPageServer, launch, check, runner, finish } from "./harness.mjs";

const endpoint = (process.env.IDSTREAM_URL || "http://localhost:8080").replace(/\/$/, "");
const clientID = process.env.CLIENT_ID || "idstream-dev";
const { pageURL, server } = await startPageServer();
const browser = await launch();
const { scenario, counts } = runner(browser, pageURL);

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

// Promotion through the hosted page, the conflict path, and a later sign-in.
const password = "violet-tangerine-42";
for (const sessionType of ["refresh_token", "cookie"]) {
  const email = `promoted-${sessionType}-${Date.now()}@example.com`;
  await scenario(`${sessionType}: promote on the hosted page, then sign in again`, async (h) => {
    await h.open();
    await h.call("configure", endpoint, clientID, sessionType);
    const guest = await h.call("signup");
    check(!guest.error && guest.isAnonymous, `signup ${JSON.stringify(guest)}`);

    // startPromoteAnonymousUser leaves for the hosted sign-up page.
    await Promise.all([h.page.waitForURL(/\/flows\//), h.call("startPromote", pageURL).catch(() => {})]);
    await h.page.getByText("Create your account").first().waitFor();
    await h.page.getByText("activity so far will be kept").waitFor();
    await h.page.screenshot({ path: join(artifacts, `hosted-promotion-${sessionType}.png`) });
    // A weak password is refused inline.
    await h.page.getByLabel(/email/i).fill(email);
    await h.page.getByLabel("Password").fill("password1");
    await h.page.getByRole("button", { name: "Create account", exact: true }).click();
    await h.page.getByText("most common").waitFor();
    await h.page.screenshot({ path: join(artifacts, `hosted-promotion-error-${sessionType}.png`) });
    await h.page.getByLabel("Password").fill(password);
    await Promise.all([h.page.waitForURL((u) => u.href.startsWith(pageURL)), h.page.getByRole("button", { name: "Create account", exact: true }).click()]);
    await h.page.waitForFunction(() => window.t !== undefined);
    await h.call("configure", endpoint, clientID, sessionType);
    const fin = await h.call("finishPromote");
    check(fin.ok, `finishPromoteAnonymousUser ${JSON.stringify(fin)}`);
    const promoted = await h.call("userInfo");
    check(promoted.sub === guest.sub && promoted.isAnonymous === false, `after promotion ${JSON.stringify(promoted)} (guest ${guest.sub})`);

    // Another guest trying the same email sees the error and keeps its session.
    const other = await browser.newContext();
    const p2 = await other.newPage();
    p2.setDefaultTimeout(15000);
    await p2.goto(pageURL);
    await p2.waitForFunction(() => window.t !== undefined);
    await p2.evaluate(([e, c, s]) => window.t.configure(e, c, s), [endpoint, clientID, sessionType]);
    const guest2 = await p2.evaluate(() => window.t.signup());
    await Promise.all([p2.waitForURL(/\/flows\//), p2.evaluate((u) => window.t.startPromote(u), pageURL).catch(() => {})]);
    await p2.getByLabel(/email/i).fill(email.toUpperCase());
    await p2.getByLabel("Password").fill(password);
    await p2.getByRole("button", { name: "Create account", exact: true }).click();
    await p2.getByText("already belongs to an account").waitFor();
    await p2.screenshot({ path: join(artifacts, `hosted-promotion-conflict-${sessionType}.png`) });
    await p2.goto(pageURL);
    await p2.waitForFunction(() => window.t !== undefined);
    await p2.evaluate(([e, c, s]) => window.t.configure(e, c, s), [endpoint, clientID, sessionType]);
    const still = await p2.evaluate(() => window.t.userInfo());
    check(still.sub === guest2.sub && still.isAnonymous === true, `conflict loser ${JSON.stringify(still)}`);
    await other.close();

    // Sign out, then sign in with the login ID and password: same sub.
    if (sessionType === "refresh_token") {
      const out = await h.call("logout", pageURL);
      check(!out.error, `logout ${JSON.stringify(out)}`);
    } else {
      await Promise.all([
        h.page.waitForURL((u) => u.href.startsWith(pageURL) && !u.href.includes("end_session"), { waitUntil: "load" }),
        h.call("logout", pageURL).catch(() => {}),
      ]);
      await h.page.waitForFunction(() => window.t !== undefined);
      await h.call("configure", endpoint, clientID, sessionType);
    }
    await Promise.all([h.page.waitForURL(/\/flows\//), h.call("startAuth", pageURL).catch(() => {})]);
    await h.page.getByRole("heading", { name: "Sign in" }).waitFor();
    await h.page.screenshot({ path: join(artifacts, `hosted-sign-in-${sessionType}.png`) });
    await h.page.getByLabel(/email/i).fill(email);
    await h.page.getByLabel("Password").fill(password);
    await Promise.all([h.page.waitForURL((u) => u.href.startsWith(pageURL)), h.page.getByRole("button", { name: "Sign in" }).click()]);
    await h.page.waitForFunction(() => window.t !== undefined);
    await h.call("configure", endpoint, clientID, sessionType);
    const fa = await h.call("finishAuth");
    check(fa.ok, `finishAuthentication ${JSON.stringify(fa)}`);
    const back = await h.call("userInfo");
    check(back.sub === guest.sub && back.isAnonymous === false, `after sign-in ${JSON.stringify(back)}`);

    if (sessionType === "refresh_token") {
      // The ID token the sign-in gave lets the user re-authenticate: the
      // SDK sends it as id_token_hint, the person signs in again, and the
      // SDK keeps the new ID token (the server's clock is the test's fake
      // one, which stands still here, so auth_time is checked in Go).
      const before = await h.call("idToken");
      check(before.token && before.canReauthenticate === true && before.authTime > 0, `ID token before reauthentication ${JSON.stringify(before)}`);
      const rtBefore = await h.refreshToken();
      await Promise.all([h.page.waitForURL(/\/flows\//), h.call("startReauth", pageURL).catch(() => {})]);
      await h.page.getByRole("heading", { name: "Sign in" }).waitFor();
      await h.page.getByLabel(/email/i).fill(email);
      await h.page.getByLabel("Password").fill(password);
      await Promise.all([h.page.waitForURL((u) => u.href.startsWith(pageURL)), h.page.getByRole("button", { name: "Sign in" }).click()]);
      await h.page.waitForFunction(() => window.t !== undefined);
      await h.call("configure", endpoint, clientID, sessionType);
      const fr = await h.call("finishReauth");
      check(fr.ok, `finishReauthentication ${JSON.stringify(fr)}`);
      const after = await h.call("idToken");
      check(after.token && after.token !== before.token && after.authTime >= before.authTime && after.canReauthenticate,
        `ID token after reauthentication: auth_time ${after.authTime} (before ${before.authTime}), a new token: ${after.token !== before.token}`);
      check((await h.refreshToken()) === rtBefore, "reauthentication replaced the refresh token");
      const still = await h.call("userInfo");
      check(still.sub === guest.sub, `after reauthentication ${JSON.stringify(still)}`);
    }
  });
}

await finish(browser, server, counts);
