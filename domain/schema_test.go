package domain_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/idstream/idstream/domain"
)

// compileSchemas compiles every embedded schema, with format assertions on
// (draft 2020-12 treats formats as annotations unless asked).
func compileSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	for _, typ := range domain.SchemaTypes() {
		raw, err := domain.Schema(typ)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if err := c.AddResource(domain.SchemaID(typ), doc); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
	}
	out := make(map[string]*jsonschema.Schema)
	for _, typ := range domain.SchemaTypes() {
		sch, err := c.Compile(domain.SchemaID(typ))
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		out[typ] = sch
	}
	return out
}

// schemaDoc is what the catalogue requires of every schema file.
type schemaDoc struct {
	Schema               string                     `json:"$schema"`
	ID                   string                     `json:"$id"`
	Title                string                     `json:"title"`
	Description          string                     `json:"description"`
	Type                 string                     `json:"type"`
	Required             []string                   `json:"required"`
	Properties           map[string]json.RawMessage `json:"properties"`
	AdditionalProperties *bool                      `json:"additionalProperties"`
}

func readSchemaDoc(t *testing.T, typ string) schemaDoc {
	t.Helper()
	raw, err := domain.Schema(typ)
	if err != nil {
		t.Fatal(err)
	}
	var d schemaDoc
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	return d
}

func validate(sch *jsonschema.Schema, payload []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

// TestSchemaFiles: one schema file per event type, current and retired, and
// no file for a type the domain does not know.
func TestSchemaFiles(t *testing.T) {
	current, retired := domain.EventTypes(), domain.RetiredEventTypes()
	want := append(slices.Clone(current), retired...)
	slices.Sort(want)
	if n := len(slices.Compact(slices.Clone(want))); n != len(want) {
		t.Fatalf("a type is listed twice in EventTypes and RetiredEventTypes: %v", want)
	}
	got := domain.SchemaTypes()
	for _, typ := range want {
		if !slices.Contains(got, typ) {
			t.Errorf("event type %s has no schema file", typ)
		}
	}
	for _, typ := range got {
		if !slices.Contains(want, typ) {
			t.Errorf("schema file %s.json is for no event type", typ)
		}
	}
	compileSchemas(t)
	for _, typ := range got {
		d := readSchemaDoc(t, typ)
		switch {
		case d.Schema != "https://json-schema.org/draft/2020-12/schema":
			t.Errorf("%s: $schema %q", typ, d.Schema)
		case d.ID != domain.SchemaID(typ):
			t.Errorf("%s: $id %q, want %q", typ, d.ID, domain.SchemaID(typ))
		case d.Title == "" || d.Description == "":
			t.Errorf("%s: no title or description", typ)
		case d.Type != "object" || d.AdditionalProperties == nil || *d.AdditionalProperties:
			t.Errorf("%s: not a closed object", typ)
		}
		for _, f := range d.Required {
			if _, ok := d.Properties[f]; !ok {
				t.Errorf("%s: required %q is not a property", typ, f)
			}
		}
	}
	if _, err := domain.Schema("user.promoted.v9"); err == nil {
		t.Error("a schema for an unknown type")
	}
}

// TestEmittedEventsMatchSchemas: every event the domain emits validates
// against its type's schema, every current type is emitted, and between
// them the samples use every property their schema declares (so a field
// renamed in Go but not in the schema, or the other way round, fails).
func TestEmittedEventsMatchSchemas(t *testing.T) {
	schemas := compileSchemas(t)
	seen := make(map[string]map[string]bool)
	for _, ev := range emittedSamples(t) {
		typ := ev.EventType()
		if !slices.Contains(domain.EventTypes(), typ) {
			t.Errorf("emitted %s, which is not in EventTypes", typ)
			continue
		}
		raw, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate(schemas[typ], raw); err != nil {
			t.Errorf("%s does not match its schema: %v\n%s", typ, err, raw)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			t.Fatal(err)
		}
		if seen[typ] == nil {
			seen[typ] = make(map[string]bool)
		}
		for f := range fields {
			seen[typ][f] = true
		}
	}
	for _, typ := range domain.EventTypes() {
		if seen[typ] == nil {
			t.Errorf("no sample of %s: add one to emittedSamples", typ)
			continue
		}
		for f := range readSchemaDoc(t, typ).Properties {
			if !seen[typ][f] {
				t.Errorf("%s: no sample has property %q", typ, f)
			}
		}
	}
}

// TestSchemasRejectBadPayloads: the schemas do constrain: each change to a
// valid payload makes it invalid.
func TestSchemasRejectBadPayloads(t *testing.T) {
	schemas := compileSchemas(t)
	valid := make(map[string][]byte)
	for _, ev := range emittedSamples(t) {
		if _, ok := valid[ev.EventType()]; !ok {
			valid[ev.EventType()], _ = json.Marshal(ev)
		}
	}
	tests := []struct {
		name  string
		typ   string
		field string
		value any // nil removes the field
	}{
		{"required field missing", domain.TypeSessionStarted, "token_hash", nil},
		{"wrong type", domain.TypeAnonymousUserCreated, "user_id", 42},
		{"not a uuid", domain.TypeAnonymousUserCreated, "user_id", "u1"},
		{"not a date-time", domain.TypeAnonymousUserCreated, "created_at", "yesterday"},
		{"unknown field", domain.TypeAnonymousUserCreated, "email", "ada@example.com"},
		{"unknown session kind", domain.TypeSessionStarted, "kind", "jwt"},
		{"unknown sign-in method", domain.TypeSessionStarted, "method", "magic_link"},
		{"zero idle timeout", domain.TypeSessionStarted, "idle_timeout_seconds", 0},
		{"fractional lifetime", domain.TypeSessionStarted, "lifetime_seconds", 1.5},
		{"token instead of its hash", domain.TypeSessionRefreshed, "token_hash", "0b6f1e7a-3c1d-4e55-9a51-2f0c8d1e7b01.secret"},
		{"unknown revoke reason", domain.TypeSessionRevoked, "reason", "bored"},
		{"unknown expiry reason", domain.TypeAnonymousUserExpired, "reason", "old"},
		{"private key in the log", domain.TypeAnonymousKeyClaimed, "jwk", map[string]any{"kty": "EC", "d": "secret"}},
		{"unknown key algorithm", domain.TypeAnonymousKeyRegistered, "alg", "HS256"},
		{"password not hashed", domain.TypePasswordSet, "password_hash", "hunter2"},
		{"unknown login ID type", domain.TypeLoginIDClaimed, "login_id_type", "nickname"},
		{"promotion without guest method", domain.TypeUserPromoted, "guest_method", nil},
		{"promotion with unknown guest method", domain.TypeUserPromoted, "guest_method", domain.GuestMethodUnknown},
		{"external promotion with a login ID", domain.TypeUserPromoted, "method", domain.MethodExternal},
		{"external registration without provider", domain.TypeUserRegistered, "method", domain.MethodExternal},
		{"unknown promotion method", domain.TypeUserPromoted, "method", "magic_link"},
		{"token in an external identity", domain.TypeExternalIdentityClaimed, "id_token", "eyJhbGciOi"},
		{"operator reason too long", domain.TypeUserDisabled, "reason", string(bytes.Repeat([]byte("x"), 501))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(valid[tc.typ], &m); err != nil {
				t.Fatalf("no valid %s sample: %v", tc.typ, err)
			}
			if tc.value == nil {
				delete(m, tc.field)
			} else {
				m[tc.field] = tc.value
			}
			raw, _ := json.Marshal(m)
			if err := validate(schemas[tc.typ], raw); err == nil {
				t.Fatalf("%s accepted: %s", tc.typ, raw)
			}
		})
	}
}

// Sample identifiers: user and session ids are UUIDs, as the app makes them.
const (
	webGuestID   = "5f0b2c1e-8d4a-4c3b-9e21-7a6d5c4b3a01"
	keyGuestID   = "5f0b2c1e-8d4a-4c3b-9e21-7a6d5c4b3a02"
	idleGuestID  = "5f0b2c1e-8d4a-4c3b-9e21-7a6d5c4b3a03"
	mergeGuestID = "5f0b2c1e-8d4a-4c3b-9e21-7a6d5c4b3a04"
	memberID     = "5f0b2c1e-8d4a-4c3b-9e21-7a6d5c4b3a05"
	extGuestID   = "5f0b2c1e-8d4a-4c3b-9e21-7a6d5c4b3a06"
	extMemberID  = "5f0b2c1e-8d4a-4c3b-9e21-7a6d5c4b3a07"
	codeUserID   = "5f0b2c1e-8d4a-4c3b-9e21-7a6d5c4b3a08"
	firstSession = "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c01"
	clientID     = "web-app"
)

func sessionID(i int) string { return fmt.Sprintf("9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c%02d", i) }

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// emittedSamples drives the Decide functions through the life of a few users
// and returns every event they emit, plus the events the app builds itself
// (a sign-in recorded on a key guest, a rehashed password, a revocation by
// the reaper), written as the app writes them.
func emittedSamples(t *testing.T) []domain.Event {
	t.Helper()
	var out []domain.Event
	must := func(evs []domain.Event, err error) []domain.Event {
		t.Helper()
		if err != nil || len(evs) == 0 {
			t.Fatalf("decide: %v %v", evs, err)
		}
		out = append(out, evs...)
		return evs
	}
	fold := func(u domain.User, evs []domain.Event) domain.User {
		for _, e := range evs {
			u = domain.EvolveUser(u, e)
		}
		return u
	}
	now := t0

	// A web guest and its sessions: every kind and sign-in method, a refresh,
	// a reused refresh token and every revocation reason.
	web := fold(domain.User{}, must(domain.DecideCreateAnonymousUser(domain.User{},
		domain.CreateAnonymousUser{UserID: webGuestID, ClientID: clientID, SessionID: firstSession, Now: now})))
	methods := []string{domain.MethodAnonymous, domain.MethodAnonymousKey, domain.MethodPassword, domain.MethodPromotion,
		domain.MethodEmailCode, domain.MethodSMSCode}
	var sess domain.Session
	for i, m := range methods {
		for j, kind := range []domain.SessionKind{domain.SessionKindCookie, domain.SessionKindRefreshToken} {
			c := domain.StartSession{SessionID: sessionID(2*i + j), ClientID: clientID, Kind: kind, Method: m,
				TokenHash: tokenHash("t0"), IdleTimeout: time.Hour, Lifetime: 24 * time.Hour, Now: now}
			if m == domain.MethodAnonymousKey {
				c.KeyID = "device-key-1"
				c.Device = &domain.Device{Model: "iPhone15,2", OS: "iOS 17.4", AppVersion: "2.3.1 (451)"}
				c.DPoPJKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
			}
			if m == domain.MethodPassword {
				// A relying party's session: its scope, and an earlier
				// authentication (prompt=none on a browser session).
				scope := "openid email offline_access"
				c.Scope, c.AuthTime = &scope, now.Add(-time.Hour)
			}
			evs := must(domain.DecideStartSession(web, domain.Session{}, c))
			sess = domain.EvolveSession(domain.Session{}, evs[0])
		}
	}
	refreshed := must(domain.DecideRefreshSession(sess, domain.RefreshSession{ClientID: clientID, PresentedHash: tokenHash("t0"),
		NewHash: tokenHash("t1"), Now: now.Add(time.Minute)}))
	sess = domain.EvolveSession(sess, refreshed[0])
	// A retry of t0 within the client's reuse interval is reissued.
	reissued := must(domain.DecideRefreshSession(sess, domain.RefreshSession{ClientID: clientID, PresentedHash: tokenHash("t0"),
		NewHash: tokenHash("t1b"), Now: now.Add(time.Minute + time.Second), ReuseInterval: 10 * time.Second}))
	out = append(out, reissued...)
	reused, err := domain.DecideRefreshSession(sess, domain.RefreshSession{ClientID: clientID, PresentedHash: tokenHash("t0"),
		NewHash: tokenHash("t2"), Now: now.Add(2 * time.Minute)})
	if len(reused) != 1 || err == nil {
		t.Fatalf("reuse: %v %v", reused, err)
	}
	out = append(out, reused...)
	// An OpenID re-authentication of the (live) session.
	reauth := must(domain.DecideReauthenticateSession(sess, domain.ReauthenticateSession{UserID: sess.UserID(), Method: domain.MethodPassword,
		Now: now.Add(90 * time.Second)}))
	if got := domain.EvolveSession(sess, reauth[0]).AuthTime(); !got.Equal(now.Add(90 * time.Second)) {
		t.Fatalf("auth_time after re-authentication: %v", got)
	}
	for _, reason := range []string{domain.RevokeReasonLogout, domain.RevokeReasonRevoked, domain.RevokeReasonTokenReuse,
		domain.RevokeReasonAdminRevoked, domain.RevokeReasonPromoted, domain.RevokeReasonMerged, domain.RevokeReasonCodeReuse,
		domain.RevokeReasonUserExpired, domain.RevokeReasonUserDisabled, domain.RevokeReasonUserDeleted, domain.RevokeReasonPasswordReset, domain.RevokeReasonPasswordRemoved} {
		must(domain.DecideRevokeSession(sess, domain.RevokeSession{Reason: reason, Now: now.Add(3 * time.Minute)}))
	}

	// Key-pair guests, one per accepted algorithm; the first signs in again.
	var key domain.User
	for i, k := range []struct{ alg, jwk string }{
		{"ES256", `{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","alg":"ES256","kid":"device-key-0"}`},
		{"RS256", `{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256"}`},
		{"EdDSA", `{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","alg":"EdDSA"}`},
	} {
		tp := sha256.Sum256([]byte(k.jwk))
		kid := fmt.Sprintf("device-key-%d", i)
		userEvs, kidClaim, tpClaim, err := domain.DecideRegisterAnonymousKey(domain.User{}, domain.AnonymousKey{}, domain.AnonymousKey{},
			domain.RegisterAnonymousKey{UserID: keyGuestID, ClientID: clientID, KeyID: kid, Algorithm: k.alg, JWK: json.RawMessage(k.jwk),
				Thumbprint: base64.RawURLEncoding.EncodeToString(tp[:]), SessionID: sessionID(20 + i), Now: now})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, userEvs...)
		out = append(out, kidClaim, tpClaim)
		if i == 0 {
			key = fold(domain.User{}, userEvs)
		}
	}
	signedIn := domain.UserSignedIn{UserID: keyGuestID, SessionID: sessionID(30), Method: domain.MethodAnonymousKey, KeyID: "device-key-0",
		SignedInAt: now.Add(time.Hour)} // as app/keypair.go writes it
	out = append(out, signedIn)
	key = domain.EvolveUser(key, signedIn)

	// Promotion of both guests (the key guest loses its key), registration
	// with each login ID type, a merge, and a rehash at sign-in.
	at := now.Add(2 * time.Hour)
	for _, g := range []struct {
		u                domain.User
		loginType, login string
		verified         bool
	}{{web, "email", "ada@example.com", false}, {key, "phone", "+14155550100", true}} {
		p, err := domain.DecidePromote(g.u, domain.LoginID{}, domain.Promote{LoginIDType: g.loginType, LoginID: g.login,
			PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA", Verified: g.verified, Now: at})
		promoted := fold(g.u, must(p.User, err))
		out = append(out, p.Claim)
		if !g.verified {
			// Verified later, then a forgotten password is reset.
			promoted = fold(promoted, must(domain.DecideVerifyLoginID(promoted, g.loginType, g.login, at.Add(time.Minute))))
			must(domain.DecideResetPassword(promoted, domain.ResetPassword{LoginIDType: g.loginType, LoginID: g.login,
				PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$bmV3", Now: at.Add(2 * time.Minute)}))
		}
	}
	reg, err := domain.DecideRegister(domain.User{}, domain.LoginID{}, domain.Register{UserID: memberID, ClientID: clientID,
		LoginIDType: "username", LoginID: "ada", PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA", Now: at})
	member := fold(domain.User{}, must(reg.User, err))
	out = append(out, reg.Claim)
	memberLogin := domain.EvolveLoginID(domain.LoginID{}, reg.Claim)
	out = append(out, domain.PasswordSet{UserID: memberID, PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", Reason: "rehash",
		SetAt: at}) // as app/promotion.go writes it
	// Somebody registers an email with a password, unverified; its holder
	// signs in by a code: the unproven password goes.
	codeReg, err := domain.DecideRegister(domain.User{}, domain.LoginID{}, domain.Register{UserID: codeUserID, ClientID: clientID,
		LoginIDType: "email", LoginID: "grace@example.com", PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA", Now: at})
	codeUser := fold(domain.User{}, must(codeReg.User, err))
	out = append(out, codeReg.Claim)
	fold(codeUser, must(domain.DecideCodeSignIn(codeUser, "email", "grace@example.com", at.Add(time.Minute))))
	mergeGuest := fold(domain.User{}, must(domain.DecideCreateAnonymousUser(domain.User{},
		domain.CreateAnonymousUser{UserID: mergeGuestID, ClientID: clientID, Now: now})))
	must(domain.DecideMerge(mergeGuest, memberID, at))

	// Upstream identity providers (issue 19): a guest promoted with an
	// external identity, a registration with one, a further identity linked
	// and one unlinked, and a session of the method.
	extGuest := fold(domain.User{}, must(domain.DecideCreateAnonymousUser(domain.User{},
		domain.CreateAnonymousUser{UserID: extGuestID, ClientID: clientID, Now: now})))
	gh := domain.ExternalRef{Provider: "github", Subject: "583231"}
	xp, err := domain.DecidePromoteExternal(extGuest, domain.ExternalIdentity{}, domain.ExternalRef{Provider: "google",
		Subject: "109876543210", Email: "grace@example.com"}, at)
	extUser := fold(extGuest, must(xp.User, err))
	out = append(out, xp.Claim)
	xl, err := domain.DecideLinkExternal(extUser, domain.ExternalIdentity{}, gh, at)
	extUser = fold(extUser, must(xl.User, err))
	out = append(out, xl.Claim)
	xu, err := domain.DecideUnlinkExternal(extUser, domain.EvolveExternalIdentity(domain.ExternalIdentity{}, xl.Claim), gh, at)
	must(xu.User, err)
	out = append(out, xu.Claim)
	xr, err := domain.DecideRegisterExternal(domain.User{}, domain.ExternalIdentity{}, extMemberID, clientID,
		domain.ExternalRef{Provider: "apple", Subject: "001234.abcdef"}, at)
	extMember := fold(domain.User{}, must(xr.User, err))
	out = append(out, xr.Claim)
	must(domain.DecideStartSession(extMember, domain.Session{}, domain.StartSession{SessionID: sessionID(40), ClientID: clientID,
		Kind: domain.SessionKindCookie, Method: domain.MethodExternal, TokenHash: tokenHash("t40"), IdleTimeout: time.Hour,
		Lifetime: 24 * time.Hour, Now: at}))

	// The reaper: a web guest without live sessions, a key guest that no
	// longer signs in.
	rules := domain.LifetimeRules{WebGuestGrace: time.Hour, KeyGuestInactivity: 24 * time.Hour}
	idle := fold(domain.User{}, must(domain.DecideCreateAnonymousUser(domain.User{},
		domain.CreateAnonymousUser{UserID: idleGuestID, ClientID: clientID, Now: now})))
	for _, g := range []domain.User{idle, key} {
		x, err := domain.DecideExpire(g, nil, rules, now.Add(72*time.Hour))
		must(x.Events, err)
	}
	// as app/lifetime.go writes it
	out = append(out, domain.SessionRevoked{SessionID: sessionID(30), UserID: keyGuestID, Reason: domain.RevokeReasonUserExpired,
		RevokedAt: now.Add(72 * time.Hour)})

	// Operators: disable (with and without a reason), enable, delete a
	// member (its login ID is released) and a key guest (its key removed).
	later := now.Add(100 * time.Hour)
	disabled := fold(member, must(domain.DecideDisable(member, "", later)))
	must(domain.DecideDisable(member, "chargeback", later))
	must(domain.DecideEnable(disabled, later))
	for _, d := range []struct {
		u domain.User
		l domain.LoginID
	}{{member, memberLogin}, {key, domain.LoginID{}}} {
		del, err := domain.DecideDelete(d.u, d.l, "asked to be forgotten", later)
		must(del.User, err)
		if del.Release != nil {
			out = append(out, del.Release)
		}
	}
	first := must(domain.DecideSettingsChange(domain.ProjectSettings{}, sampleSettings(), "config-file", at))
	next := sampleSettings()
	next.AnonymousEnabled = false
	next.Clients[0].RefreshTokenLifetime = 7 * 24 * 3600
	next.Clients[0].DPoPNonceRequired = true
	must(domain.DecideSettingsChange(domain.EvolveSettings(domain.ProjectSettings{}, first[0]), next, "portal:admin", later))
	return out
}
