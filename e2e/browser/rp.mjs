// A server-side relying party built with openid-client 6 (the library most
// Node apps use), driven through idstream's hosted pages by headless
// Chromium. IDSTREAM_URL names the server; RP_PORT is the port the Go test
// registered the callback and post-logout URIs on; RP_BASIC_SECRET and
// RP_POST_SECRET are the secrets of the confidential clients rp-basic
// (client_secret_basic) and rp-post (client_secret_post); LOGIN_ID and
// PASSWORD a regular user's. Prints one line per scenario and ends with
// "N passed, N failed".
import { createServer } from "node:http";
import { createHash } from "node:crypto";
import * as client from "openid-client";
import express from "express";
import session from "express-session";
import passport from "passport";
import OpenIDConnectStrategy from "passport-openidconnect";
import { launch, check, runner, finish } from "./harness.mjs";

const issuer = new URL((process.env.IDSTREAM_URL || "http://localhost:8080").replace(/\/$/, ""));
const port = Number(process.env.RP_PORT);
const rpBase = `http://localhost:${port}`;
const callback = `${rpBase}/callback`;
const loggedOut = `${rpBase}/logged-out`;
const loginID = process.env.LOGIN_ID;
const password = process.env.PASSWORD;

const insecure = { execute: [client.allowInsecureRequests] }; // the test server is plain http on localhost
const rps = {
  "rp-basic": await client.discovery(issuer, "rp-basic", undefined, client.ClientSecretBasic(process.env.RP_BASIC_SECRET), insecure),
  "rp-post": await client.discovery(issuer, "rp-post", undefined, client.ClientSecretPost(process.env.RP_POST_SECRET), insecure),
  // A public client (PKCE only) whose settings require DPoP nonces.
  "rp-dpop": await client.discovery(issuer, "rp-dpop", undefined, client.None(), insecure),
};

// rp-dpop's DPoP key and handle (openid-client keeps the server's latest
// DPoP-Nonce in it and, on use_dpop_nonce, signs again once with it), and
// what idstream answered it: every use_dpop_nonce refusal, by endpoint.
const dpopKeys = await client.randomDPoPKeyPair("ES256");
const dpopHandle = client.getDPoPHandle(rps["rp-dpop"], dpopKeys);
const nonceRefusals = [];
rps["rp-dpop"][client.customFetch] = async (url, options) => {
  const res = await fetch(url, options);
  const www = res.headers.get("www-authenticate") || "";
  let refused = /error="use_dpop_nonce"/.test(www);
  if (!refused && res.status === 400) {
    refused = (await res.clone().json().catch(() => ({}))).error === "use_dpop_nonce";
  }
  if (refused) {
    nonceRefusals.push({ path: new URL(url).pathname, nonceGiven: !!res.headers.get("dpop-nonce") });
  }
  return res;
};

// The RP's pending logins (by state) and results (by state too).
const pending = new Map();
const results = new Map();

async function login(res, rpName, extra) {
  const config = rps[rpName];
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  pending.set(state, { rpName, verifier, nonce, maxAge: extra.max_age !== undefined ? Number(extra.max_age) : undefined });
  if (rpName === "rp-dpop") {
    extra = { ...extra, dpop_jkt: await dpopHandle.calculateThumbprint() }; // binds the code (RFC 9449 §10)
  }
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: callback, scope: "openid email offline_access", state, nonce,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: "S256",
    ui_locales: "fr-CA en", // ignored by idstream, as unknown parameters are
    ...extra,
  });
  res.writeHead(302, { location: url.href }).end();
}

async function finishLogin(req, res) {
  let current = new URL(req.url, rpBase);
  let state = current.searchParams.get("state");
  let request = current;
  if (req.method === "POST") {
    // response_mode=form_post: the answer is the form body.
    const body = await new Promise((ok) => { let b = ""; req.on("data", (c) => (b += c)); req.on("end", () => ok(b)); });
    state = new URLSearchParams(body).get("state");
    request = new Request(current.href, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body });
  }
  const p = pending.get(state);
  pending.delete(state);
  const out = { state };
  try {
    check(p, "unknown state");
    const config = rps[p.rpName];
    if (p.rpName === "rp-dpop") {
      Object.assign(out, await finishDPoPLogin(config, request, p, state));
      results.set(state, out);
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(`<!doctype html><title>done</title><pre id="result">${state}</pre>`);
      return;
    }
    const tokens = await client.authorizationCodeGrant(config, request, {
      pkceCodeVerifier: p.verifier, expectedNonce: p.nonce, expectedState: state, idTokenExpected: true, maxAge: p.maxAge,
    });
    const claims = tokens.claims();
    // at_hash (ES256: the left half of the access token's SHA-256).
    const atHash = createHash("sha256").update(tokens.access_token).digest().subarray(0, 16).toString("base64url");
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    const introspection = await client.tokenIntrospection(config, tokens.access_token);
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
    Object.assign(out, {
      ok: true, rp: p.rpName, claims, atHashOK: claims.at_hash === atHash, userinfo, introspection,
      refreshedClaims: refreshed.claims(), idToken: tokens.id_token, accessToken: tokens.access_token,
    });
  } catch (e) {
    Object.assign(out, { ok: false, error: `${e.name}: ${e.message} ${e.code || ""} ${e.error || ""}` });
  }
  results.set(state, out);
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(`<!doctype html><title>done</title><pre id="result">${state}</pre>`);
}

// finishDPoPLogin exchanges rp-dpop's code with DPoP proofs, then calls
// userinfo and refreshes with them, and tries its bound access token
// without a proof.
async function finishDPoPLogin(config, request, p, state) {
  const opts = { DPoP: dpopHandle };
  const tokens = await client.authorizationCodeGrant(config, request, {
    pkceCodeVerifier: p.verifier, expectedNonce: p.nonce, expectedState: state, idTokenExpected: true,
  }, undefined, opts);
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, opts);
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, opts);
  const again = await client.fetchUserInfo(config, refreshed.access_token, claims.sub, opts);
  let bearer = "accepted";
  try {
    await client.fetchUserInfo(config, refreshed.access_token, claims.sub); // no DPoP: a Bearer request
  } catch (e) {
    bearer = `${e.name}: ${e.code || ""} ${e.error || e.cause?.error || ""}`;
  }
  const cnf = (at) => JSON.parse(Buffer.from(at.split(".")[1], "base64url").toString()).cnf;
  return {
    ok: true, rp: p.rpName, claims, userinfo, again, bearer, jkt: await dpopHandle.calculateThumbprint(),
    tokenTypes: [tokens.token_type, refreshed.token_type], cnfs: [cnf(tokens.access_token), cnf(refreshed.access_token)],
    nonceRefusals: [...nonceRefusals],
  };
}

// A framework login: Express with Passport's OpenID Connect strategy (no
// PKCE, client_secret_post by its OAuth library, nonce and max_age checked
// by the strategy), mounted under /passport on the same server.
passport.use(new OpenIDConnectStrategy({
  issuer: issuer.href.replace(/\/$/, ""), authorizationURL: rps["rp-post"].serverMetadata().authorization_endpoint,
  tokenURL: rps["rp-post"].serverMetadata().token_endpoint, userInfoURL: rps["rp-post"].serverMetadata().userinfo_endpoint,
  clientID: "rp-post", clientSecret: process.env.RP_POST_SECRET, callbackURL: `${rpBase}/passport/callback`,
  scope: ["email"], nonce: true, maxAge: 3600,
}, (iss, profile, context, idToken, accessToken, refreshToken, params, done) => {
  const claims = JSON.parse(Buffer.from(idToken.split(".")[1], "base64url").toString());
  done(null, { sub: profile.id, emails: profile.emails, claims, hasRefreshToken: !!refreshToken });
}));
passport.serializeUser((u, done) => done(null, u));
passport.deserializeUser((u, done) => done(null, u));
const app = express();
app.use(session({ secret: "rp test session secret", resave: false, saveUninitialized: false }));
app.use(passport.initialize());
app.use(passport.session());
app.get("/passport/login", passport.authenticate("openidconnect"));
app.get("/passport/callback", passport.authenticate("openidconnect", { failureRedirect: "/passport/failed", failureMessage: true }),
  (req, res) => res.redirect("/passport/me"));
app.get("/passport/me", (req, res) => res.type("html").send(`<!doctype html><title>me</title><pre id="me">${JSON.stringify(req.user || null)}</pre>`));
app.get("/passport/failed", (req, res) => res.type("html").send(`<!doctype html><title>failed</title><pre id="me">${JSON.stringify({ failed: req.session.messages || true })}</pre>`));

const server = createServer(async (req, res) => {
  const url = new URL(req.url, rpBase);
  try {
    if (url.pathname.startsWith("/passport/")) {
      app(req, res);
    } else if (url.pathname === "/login") {
      await login(res, url.searchParams.get("rp"), Object.fromEntries([...url.searchParams].filter(([k]) => k !== "rp")));
    } else if (url.pathname === "/callback") {
      await finishLogin(req, res);
    } else if (url.pathname === "/logged-out") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(`<!doctype html><title>bye</title><pre id="bye">${url.searchParams.get("state")}</pre>`);
    } else {
      res.writeHead(404).end();
    }
  } catch (e) {
    res.writeHead(500).end(String(e));
  }
});
await new Promise((ok) => server.listen(port, "localhost", ok));

const browser = await launch();
const { scenario, counts } = runner(browser, rpBase);

// signIn opens the RP's login and signs in on the hosted page; it returns
// what the RP's callback made of the answer.
async function signIn(h, query) {
  await h.page.goto(`${rpBase}/login?${new URLSearchParams(query)}`);
  await h.page.getByRole("heading", { name: "Sign in" }).waitFor();
  await h.page.getByLabel(/email/i).fill(loginID);
  await h.page.getByLabel("Password").fill(password);
  await Promise.all([h.page.waitForURL((u) => u.href.startsWith(callback)), h.page.getByRole("button", { name: "Sign in" }).click()]);
  const state = await h.page.locator("#result").textContent();
  const r = results.get(state);
  check(r && r.ok, `the RP's code exchange: ${JSON.stringify(r)}`);
  return r;
}

function checkLogin(r, rpName) {
  const c = r.claims;
  check(c.iss === issuer.href.replace(/\/$/, "") && c.aud === rpName && typeof c.sub === "string", `iss/aud/sub ${JSON.stringify(c)}`);
  check(c.email === loginID && c.email_verified === false, `email claims ${JSON.stringify(c)}`);
  check(typeof c.auth_time === "number" && typeof c.sid === "string" && Array.isArray(c.amr) && c.amr[0] === "pwd", `auth_time/sid/amr ${JSON.stringify(c)}`);
  check(c["https://authgear.com/claims/user/is_anonymous"] === false, `Authgear claims ${JSON.stringify(c)}`);
  check(r.atHashOK, `at_hash ${c.at_hash}`);
  check(r.userinfo.sub === c.sub && r.userinfo.email === loginID, `userinfo ${JSON.stringify(r.userinfo)}`);
  check(r.introspection.active === true && r.introspection.sub === c.sub && r.introspection.client_id === rpName, `introspection ${JSON.stringify(r.introspection)}`);
  check(r.refreshedClaims.sub === c.sub && r.refreshedClaims.sid === c.sid && r.refreshedClaims.nonce === undefined, `refreshed ID token ${JSON.stringify(r.refreshedClaims)}`);
}

await scenario("openid-client, client_secret_basic: code flow, ID token, userinfo, introspection, refresh, RP-initiated logout", async (h) => {
  const r = await signIn(h, { rp: "rp-basic" });
  checkLogin(r, "rp-basic");
  const end = client.buildEndSessionUrl(rps["rp-basic"], { id_token_hint: r.idToken, post_logout_redirect_uri: loggedOut, state: "bye-1" });
  await h.page.goto(end.href);
  await h.page.waitForURL((u) => u.href.startsWith(loggedOut));
  check((await h.page.locator("#bye").textContent()) === "bye-1", "logout state");
  const after = await client.tokenIntrospection(rps["rp-basic"], r.accessToken);
  check(after.active === false, `access token after logout ${JSON.stringify(after)}`);
});

await scenario("openid-client, client_secret_post: prompt=login, max_age=0, response_mode=form_post", async (h) => {
  const r = await signIn(h, { rp: "rp-post", prompt: "login", max_age: "0", response_mode: "form_post" });
  checkLogin(r, "rp-post");
  check(Math.abs(r.claims.auth_time - r.claims.iat) <= 5, `auth_time ${r.claims.auth_time} not the sign-in just made (iat ${r.claims.iat})`);
});

await scenario("openid-client: prompt=none without a session is login_required", async (h) => {
  await h.page.goto(`${rpBase}/login?${new URLSearchParams({ rp: "rp-basic", prompt: "none" })}`);
  await h.page.waitForURL((u) => u.href.startsWith(callback));
  const state = await h.page.locator("#result").textContent();
  const r = results.get(state);
  check(r && !r.ok && /login_required/.test(r.error), `prompt=none: ${JSON.stringify(r)}`);
});

await scenario("openid-client with DPoP (RFC 9449), nonces required: code bound by dpop_jkt, DPoP-bound tokens, use_dpop_nonce answered by the library", async (h) => {
  const r = await signIn(h, { rp: "rp-dpop" });
  check(r.claims.aud === "rp-dpop" && r.userinfo.sub === r.claims.sub && r.again.sub === r.claims.sub, `DPoP login ${JSON.stringify(r)}`);
  check(r.tokenTypes.every((t) => t.toLowerCase() === "dpop"), `token_type ${r.tokenTypes}`);
  check(r.cnfs.every((c) => c && c.jkt === r.jkt), `cnf.jkt ${JSON.stringify(r.cnfs)}, want ${r.jkt}`);
  check(/invalid_dpop_proof|WWWAuthenticateChallengeError/.test(r.bearer), `the bound token without a proof: ${r.bearer}`);
  // The first token request had no nonce yet: refused once, with a nonce,
  // which the library used from then on (userinfo and refresh included).
  check(r.nonceRefusals.length === 1 && r.nonceRefusals[0].path === "/oauth2/token" && r.nonceRefusals[0].nonceGiven,
    `use_dpop_nonce refusals ${JSON.stringify(r.nonceRefusals)}`);
});

await scenario("passport-openidconnect (Express): sign in, ID token checked by the strategy, userinfo profile", async (h) => {
  await h.page.goto(`${rpBase}/passport/login`);
  await h.page.getByRole("heading", { name: "Sign in" }).waitFor();
  await h.page.getByLabel(/email/i).fill(loginID);
  await h.page.getByLabel("Password").fill(password);
  await Promise.all([h.page.waitForURL((u) => u.href.startsWith(`${rpBase}/passport/me`)), h.page.getByRole("button", { name: "Sign in" }).click()]);
  const me = JSON.parse(await h.page.locator("#me").textContent());
  check(me && typeof me.sub === "string" && me.claims.sub === me.sub && me.claims.aud === "rp-post" && typeof me.claims.nonce === "string",
    `passport user ${JSON.stringify(me)}`);
  check(me.claims.email === loginID && me.emails && me.emails[0].value === loginID, `passport profile ${JSON.stringify(me)}`);
});

await finish(browser, server, counts);
