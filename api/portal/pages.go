package portal

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/idstream/idstream/api/admin"
	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/workers"
)

// saveSettings runs ChangeSettings for a portal form. It returns the
// problems by field (keys as the form names them) and a message for the
// whole form; both empty means saved.
func (s *Server) saveSettings(r *http.Request, version uint64, next domain.Settings, fieldOf func(string) string) (map[string]string, string) {
	_, err := s.Settings.ChangeSettings(r.Context(), version, next, "portal:"+portalSessionOf(r).Operator, operatorMeta(r))
	var se *domain.SettingsError
	switch {
	case err == nil:
		return nil, ""
	case errors.As(err, &se):
		bad := map[string]string{}
		var other []string
		for k, msg := range se.Fields {
			if f := fieldOf(k); f != "" {
				bad[f] = msg
			} else {
				other = append(other, k+": "+msg)
			}
		}
		msg := fixFields
		if len(other) > 0 {
			msg = "Nothing was saved: " + strings.Join(other, "; ")
		}
		return bad, msg
	case errors.Is(err, domain.ErrSettingsUnchanged):
		return nil, "Nothing changed, so nothing was saved."
	case errors.Is(err, app.ErrSettingsStale):
		return nil, "Someone changed the settings since you opened this page; nothing was saved. Reload the page to see the current values, then make your change again."
	default:
		s.Log.Error("portal: settings not saved", "error", err)
		return nil, "The settings could not be saved right now; nothing was changed. Try again in a moment."
	}
}

// portalFormGet renders a form page for a GET, with the saved message
// after a save's redirect (?saved=1); it reports whether it answered.
func (s *Server) portalFormGet(w http.ResponseWriter, r *http.Request, name string, page portalPage, saved string) bool {
	if r.Method != http.MethodGet {
		return false
	}
	if r.URL.Query().Get("saved") == "1" {
		page.Notice = saved
	}
	s.renderPortal(w, r, http.StatusOK, name, page)
	return true
}

const fixFields = "Nothing was saved: correct the fields marked below."

// submitSettings saves a settings form whose fields parsed (bad empty), or
// else adds the settings rules' findings to the parse errors, so every
// problem is shown at once.
func (s *Server) submitSettings(r *http.Request, version uint64, complete bool, next domain.Settings, bad map[string]string, fieldOf func(string) string) (map[string]string, string) {
	if !complete {
		return bad, "The form is incomplete; reload the page and try again."
	}
	if len(bad) == 0 {
		return s.saveSettings(r, version, next, fieldOf)
	}
	var se *domain.SettingsError
	if errors.As(domain.ValidateSettings(next), &se) {
		for k, msg := range se.Fields {
			if f := fieldOf(k); f != "" && bad[f] == "" {
				bad[f] = msg
			}
		}
	}
	return bad, fixFields
}

func formVersion(r *http.Request) (uint64, bool) {
	v, err := strconv.ParseUint(r.PostForm.Get("version"), 10, 64)
	return v, err == nil
}

// anonymousData is the Anonymous Users page.
type anonymousData struct {
	Enabled                    bool
	Version                    uint64
	WebGuestGrace, KeyInactive string
	ConflictPolicy             string
}

func (s *Server) portalAnonymous(w http.ResponseWriter, r *http.Request) {
	cur, version := s.Service.SettingsVersion()
	d := anonymousData{Enabled: cur.AnonymousEnabled, Version: version, WebGuestGrace: formatSeconds(cur.WebGuestGrace),
		KeyInactive: formatSeconds(cur.KeyGuestInactivity), ConflictPolicy: cur.ConflictPolicy}
	page := portalPage{Title: "Anonymous Users", Section: "anonymous", Data: &d}
	if s.portalFormGet(w, r, "anonymous", page, "Saved. Every node applies the change within a second; lifetime rules apply from now on.") {
		return
	}
	f := r.PostForm
	d.Enabled = f.Get("anonymous_enabled") == "on"
	d.WebGuestGrace, d.KeyInactive, d.ConflictPolicy = f.Get("web_guest_grace"), f.Get("key_guest_inactivity"), f.Get("promotion_conflict_policy")
	v, ok := formVersion(r)
	next := cur.Clone()
	next.AnonymousEnabled = d.Enabled
	next.ConflictPolicy = d.ConflictPolicy
	bad := map[string]string{}
	var err error
	if next.WebGuestGrace, err = parseSeconds(d.WebGuestGrace); err != nil {
		bad["web_guest_grace"] = err.Error()
	}
	if next.KeyGuestInactivity, err = parseSeconds(d.KeyInactive); err != nil {
		bad["key_guest_inactivity"] = err.Error()
	}
	bad, page.Error = s.submitSettings(r, v, ok, next, bad, func(k string) string {
		switch k {
		case "web_guest_grace", "key_guest_inactivity", "promotion_conflict_policy":
			return k
		}
		return ""
	})
	if len(bad) == 0 && page.Error == "" {
		http.Redirect(w, r, "/portal/authentication/anonymous-users?saved=1", http.StatusSeeOther)
		return
	}
	page.Errors = bad
	s.renderPortal(w, r, http.StatusBadRequest, "anonymous", page)
}

// rateLimitField is one rate limit on the Rate limits page.
type rateLimitField struct {
	Name, Label, Help string
	Burst, Per        string
	// Unit is what a burst counts ("requests", "codes").
	Unit string
}

type rateLimitsData struct {
	Version uint64
	Limits  []rateLimitField
}

func rateLimitPtrs(rl *domain.RateLimitSettings) []*domain.RateLimitSetting {
	return []*domain.RateLimitSetting{&rl.AnonymousSignup, &rl.Challenge, &rl.SignInPerIP, &rl.SignInPerLoginID, &rl.Authorize, &rl.Refresh, &rl.DPoPProofs}
}

var rateLimitInfo = [][3]string{
	{"anonymous_signup", "Guest sign-up per client IP", "New anonymous users one IP address may create."},
	{"challenge", "Key-pair challenges per client IP", "Challenges one IP address may ask for (key-pair guests)."},
	{"sign_in_per_ip", "Sign-in attempts per client IP", "Password sign-in attempts (users and portal operators) from one IP address."},
	{"sign_in_per_login_id", "Sign-in attempts per login ID", "Password sign-in attempts for one login ID or operator name."},
	{"authorize", "Hosted sign-in pages per client IP", "Sign-in, sign-up and promotion pages (authorization requests) one IP address may open."},
	{"refresh", "Token refreshes per session", "Refresh-token exchanges one session may make (each is an event in the log)."},
	{"dpop_proofs", "DPoP-bound requests per session", "Requests with a DPoP-bound access token one session may make (each proof is remembered for 7 minutes)."},
}

func (s *Server) portalRateLimits(w http.ResponseWriter, r *http.Request) {
	cur, version := s.Service.SettingsVersion()
	d := rateLimitsData{Version: version}
	ptrs := rateLimitPtrs(&cur.RateLimits)
	for i, info := range rateLimitInfo {
		d.Limits = append(d.Limits, rateLimitField{Name: info[0], Label: info[1], Help: info[2], Unit: "requests",
			Burst: strconv.Itoa(ptrs[i].Burst), Per: formatSeconds(ptrs[i].Per)})
	}
	page := portalPage{Title: "Rate limits", Section: "ratelimits", Data: &d}
	if s.portalFormGet(w, r, "ratelimits", page, "Saved. Every node applies the new limits within a second.") {
		return
	}
	next := cur.Clone()
	nptrs := rateLimitPtrs(&next.RateLimits)
	bad := map[string]string{}
	for i := range d.Limits {
		l := &d.Limits[i]
		l.Burst, l.Per = strings.TrimSpace(r.PostForm.Get(l.Name+".burst")), r.PostForm.Get(l.Name+".per")
		n, err := strconv.Atoi(l.Burst)
		if err != nil {
			bad[l.Name+".burst"] = "enter a whole number (0 turns the limit off)"
		}
		nptrs[i].Burst = n
		if nptrs[i].Per, err = parseSeconds(l.Per); err != nil {
			bad[l.Name+".per"] = err.Error()
		}
	}
	v, ok := formVersion(r)
	bad, page.Error = s.submitSettings(r, v, ok, next, bad, func(k string) string { return strings.TrimPrefix(k, "rate_limits.") })
	if len(bad) == 0 && page.Error == "" {
		http.Redirect(w, r, "/portal/authentication/rate-limits?saved=1", http.StatusSeeOther)
		return
	}
	page.Errors = bad
	s.renderPortal(w, r, http.StatusBadRequest, "ratelimits", page)
}

func (s *Server) portalApplications(w http.ResponseWriter, r *http.Request) {
	cur := s.Service.Settings()
	page := portalPage{Title: "Applications", Section: "applications", Data: cur.Clients}
	switch r.URL.Query().Get("saved") {
	case "created":
		page.Notice = "The application was created. Every node accepts it within a second."
	}
	s.renderPortal(w, r, http.StatusOK, "applications", page)
}

// applicationData is the application form.
type applicationData struct {
	New                                           bool
	Version                                       uint64
	ClientID, Name, SessionType                   string
	AllowedOrigins, RedirectURIs                  string
	CookieIdleTimeout, CookieLifetime             string
	RefreshTokenIdleTimeout, RefreshTokenLifetime string
	RefreshTokenReuseInterval                     string
	AccessTokenLifetime                           string
	DPoPNonceRequired                             bool
	// OpenID Connect: how the client authenticates, where logout may return
	// to, and its secrets (never their values).
	TokenEndpointAuthMethod, PostLogoutRedirectURIs string
	Secrets                                         []admin.SecretView
}

func applicationForm(c domain.ClientSettings) applicationData {
	return applicationData{ClientID: c.ClientID, Name: c.Name, SessionType: c.SessionType,
		AllowedOrigins: strings.Join(c.AllowedOrigins, "\n"), RedirectURIs: strings.Join(c.RedirectURIs, "\n"),
		CookieIdleTimeout: formatSeconds(c.CookieIdleTimeout), CookieLifetime: formatSeconds(c.CookieLifetime),
		RefreshTokenIdleTimeout: formatSeconds(c.RefreshTokenIdleTimeout), RefreshTokenLifetime: formatSeconds(c.RefreshTokenLifetime),
		RefreshTokenReuseInterval: formatSeconds(c.RefreshTokenReuseInterval), AccessTokenLifetime: formatSeconds(c.AccessTokenLifetime),
		TokenEndpointAuthMethod: c.AuthMethod(), PostLogoutRedirectURIs: strings.Join(c.PostLogoutRedirectURIs, "\n"),
		DPoPNonceRequired: c.DPoPNonceRequired}
}

func lines(v string) []string {
	var out []string
	for _, l := range strings.Split(v, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

var clientIndexField = regexp.MustCompile(`^clients\[(\d+)\]\.(.+)$`)

func (s *Server) portalApplication(w http.ResponseWriter, r *http.Request) {
	cur, version := s.Service.SettingsVersion()
	id, isNew := mux.Vars(r)["client_id"], false
	if id == "" {
		isNew = true
	}
	index := -1
	var d applicationData
	if isNew {
		d = applicationForm(domain.ClientSettings{SessionType: domain.SessionTypeRefreshToken,
			CookieIdleTimeout: domain.Seconds(30 * 86400), CookieLifetime: domain.Seconds(52 * 7 * 86400),
			RefreshTokenIdleTimeout: domain.Seconds(30 * 86400), RefreshTokenLifetime: domain.Seconds(52 * 7 * 86400),
			AccessTokenLifetime: domain.Seconds(1800)})
	} else {
		for i, c := range cur.Clients {
			if c.ClientID == id {
				index = i
			}
		}
		if index < 0 {
			s.portalMessage(w, r, http.StatusNotFound, "No such application", "There is no application with this client ID.")
			return
		}
		d = applicationForm(cur.Clients[index])
		d.Secrets = s.portalSecrets(r, id)
	}
	d.New, d.Version = isNew, version
	title := "Create an application"
	if !isNew {
		title = "Application " + d.Name
	}
	page := portalPage{Title: title, Section: "applications", Data: &d}
	if s.portalFormGet(w, r, "application", page, "Saved. Every node applies it within a second; new lifetimes apply to sessions started from now on (existing sessions keep theirs).") {
		return
	}
	f := r.PostForm
	if isNew {
		d.ClientID = strings.TrimSpace(f.Get("client_id"))
	}
	d.Name, d.SessionType = strings.TrimSpace(f.Get("name")), f.Get("session_type")
	d.AllowedOrigins, d.RedirectURIs = f.Get("allowed_origins"), f.Get("redirect_uris")
	d.CookieIdleTimeout, d.CookieLifetime = f.Get("cookie_idle_timeout"), f.Get("cookie_lifetime")
	d.RefreshTokenIdleTimeout, d.RefreshTokenLifetime = f.Get("refresh_token_idle_timeout"), f.Get("refresh_token_lifetime")
	d.AccessTokenLifetime, d.RefreshTokenReuseInterval = f.Get("access_token_lifetime"), f.Get("refresh_token_reuse_interval")
	d.TokenEndpointAuthMethod, d.PostLogoutRedirectURIs = f.Get("token_endpoint_auth_method"), f.Get("post_logout_redirect_uris")
	d.DPoPNonceRequired = f.Get("dpop_nonce_required") != ""
	c := domain.ClientSettings{ClientID: d.ClientID, Name: d.Name, SessionType: d.SessionType,
		AllowedOrigins: lines(d.AllowedOrigins), RedirectURIs: lines(d.RedirectURIs),
		TokenEndpointAuthMethod: d.TokenEndpointAuthMethod, PostLogoutRedirectURIs: lines(d.PostLogoutRedirectURIs),
		DPoPNonceRequired: d.DPoPNonceRequired}
	if c.TokenEndpointAuthMethod == domain.AuthMethodNone {
		c.TokenEndpointAuthMethod = "" // the default, as the configuration file leaves it
	}
	bad := map[string]string{}
	for name, dst := range map[string]struct {
		v   string
		out *domain.Seconds
	}{
		"cookie_idle_timeout": {d.CookieIdleTimeout, &c.CookieIdleTimeout}, "cookie_lifetime": {d.CookieLifetime, &c.CookieLifetime},
		"refresh_token_idle_timeout": {d.RefreshTokenIdleTimeout, &c.RefreshTokenIdleTimeout},
		"refresh_token_lifetime":     {d.RefreshTokenLifetime, &c.RefreshTokenLifetime}, "access_token_lifetime": {d.AccessTokenLifetime, &c.AccessTokenLifetime},
		"refresh_token_reuse_interval": {d.RefreshTokenReuseInterval, &c.RefreshTokenReuseInterval},
	} {
		var err error
		if *dst.out, err = parseSeconds(dst.v); err != nil {
			bad[name] = err.Error()
		}
	}
	next := cur.Clone()
	if isNew {
		index = len(next.Clients)
		next.Clients = append(next.Clients, c)
	} else {
		next.Clients[index] = c
	}
	v, ok := formVersion(r)
	bad, page.Error = s.submitSettings(r, v, ok, next, bad, func(k string) string {
		if m := clientIndexField.FindStringSubmatch(k); m != nil && m[1] == strconv.Itoa(index) {
			return m[2]
		}
		return ""
	})
	if len(bad) == 0 && page.Error == "" {
		if isNew {
			http.Redirect(w, r, "/portal/applications?saved=created", http.StatusSeeOther)
		} else {
			http.Redirect(w, r, "/portal/applications/"+c.ClientID+"?saved=1", http.StatusSeeOther)
		}
		return
	}
	page.Errors = bad
	s.renderPortal(w, r, http.StatusBadRequest, "application", page)
}

// usersData is the Users page.
type usersData struct {
	Query, Kind string
	Users       []projections.UserRow
	Next        string
}

func (s *Server) portalUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := usersData{Query: strings.TrimSpace(q.Get("q")), Kind: q.Get("kind")}
	var f projections.UserFilter
	yes, no := true, false
	switch d.Kind {
	case "anonymous":
		f.IsAnonymous, f.State = &yes, "active"
	case "regular":
		f.IsAnonymous, f.State = &no, "active"
	case "expired":
		f.State = "expired"
	default:
		d.Kind = ""
	}
	page := portalPage{Title: "Users", Section: "users", Data: &d}
	if d.Query != "" {
		if _, err := uuid.Parse(d.Query); err == nil {
			http.Redirect(w, r, "/portal/users/"+d.Query, http.StatusSeeOther)
			return
		}
		f.LoginIDPrefix = strings.ToLower(d.Query)
	}
	users, next, err := s.Reads.ListUsers(r.Context(), f, q.Get("cursor"), 50)
	if errors.Is(err, projections.ErrInvalidCursor) {
		page.Error = "That page link is not valid; showing the first page."
		users, next, err = s.Reads.ListUsers(r.Context(), f, "", 50)
	}
	if err != nil {
		s.Log.Error("portal: list users", "error", err)
		s.portalMessage(w, r, http.StatusServiceUnavailable, "Users are not available", "The user list could not be read right now. Try again in a moment.")
		return
	}
	d.Users, d.Next = users, next
	s.renderPortal(w, r, http.StatusOK, "users", page)
}

// userData is a user's page.
type userData struct {
	User     projections.UserDetails
	Timeline []admin.TimelineEvent
	Now      any
}

func (s *Server) portalUser(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if _, err := uuid.Parse(id); err != nil {
		s.portalMessage(w, r, http.StatusNotFound, "No such user", "A user ID is a UUID, such as the sub claim of the user's tokens.")
		return
	}
	u, err := s.Reads.GetUser(r.Context(), id)
	if errors.Is(err, projections.ErrNotFound) {
		s.portalMessage(w, r, http.StatusNotFound, "No such user", "There is no user with this ID (a user created a moment ago may take a second to appear).")
		return
	}
	if err != nil {
		s.Log.Error("portal: get user", "error", err)
		s.portalMessage(w, r, http.StatusServiceUnavailable, "User not available", "The user could not be read right now. Try again in a moment.")
		return
	}
	tl, err := s.timelines.UserTimeline(r.Context(), id)
	if err != nil && !errors.Is(err, app.ErrNoSuchUser) {
		s.Log.Error("portal: timeline", "error", err)
	}
	page := portalPage{Title: "User " + id, Section: "users", Data: &userData{User: u, Timeline: tl, Now: s.Service.Now()}}
	if r.URL.Query().Get("revoked") == "1" {
		page.Notice = "The session was revoked; its tokens stop working now."
	}
	s.renderPortal(w, r, http.StatusOK, "user", page)
}

func (s *Server) portalRevokeSession(w http.ResponseWriter, r *http.Request) {
	id, sid := mux.Vars(r)["id"], mux.Vars(r)["sid"]
	if _, err := uuid.Parse(id); err != nil {
		s.portalMessage(w, r, http.StatusNotFound, "No such user", "A user ID is a UUID.")
		return
	}
	if _, err := uuid.Parse(sid); err != nil {
		s.portalMessage(w, r, http.StatusNotFound, "No such session", "A session ID is a UUID.")
		return
	}
	err := s.Service.RevokeUserSession(r.Context(), id, sid, operatorMeta(r))
	if err != nil && !errors.Is(err, domain.ErrSessionRevoked) {
		e := httpx.Classify(err)
		s.portalMessage(w, r, e.Status, "The session was not revoked", e.Message)
		return
	}
	http.Redirect(w, r, "/portal/users/"+id+"?revoked=1", http.StatusSeeOther)
}

// operationsData is the Operations page.
type operationsData struct {
	Projections []projections.Status
	Reaper      *workers.ReaperStatus
	Exports     []workers.ExportJob
	// Export is the job the operator started (or asked about with
	// ?export=id); Form the export form's values.
	Export       *workers.ExportJob
	ExportsOn    bool
	ExportFields []string
	Form         exportForm
	Problems     []string
}

// exportForm is the Operations page's export form.
type exportForm struct {
	Format string
	Fields map[string]bool
}

func (s *Server) operationsPage(r *http.Request, d *operationsData) {
	ctx := r.Context()
	var err error
	if d.Projections, err = s.Reads.Statuses(ctx, s.Store, s.Service.Now()); err != nil {
		d.Problems = append(d.Problems, "Projection status is not available: "+err.Error())
	}
	if s.Reaper != nil {
		st, err := s.Reaper.Status(ctx)
		if err != nil {
			d.Problems = append(d.Problems, "Reaper status is not available: "+err.Error())
		} else {
			d.Reaper = &st
		}
	}
	d.ExportFields = projections.UserFields
	if d.Form.Format == "" {
		d.Form.Format = workers.FormatNDJSON
	}
	if s.Exports != nil {
		d.ExportsOn = true
		if d.Exports, err = s.Exports.Recent(ctx, 10); err != nil {
			d.Problems = append(d.Problems, "Export jobs are not available: "+err.Error())
		}
		if id := r.URL.Query().Get("export"); id != "" && d.Export == nil {
			if j, err := s.Exports.Get(ctx, id); err == nil {
				d.Export = &j
			} else {
				d.Problems = append(d.Problems, "That export job does not exist or has expired (jobs are kept 24 hours).")
			}
		}
	}
}

func (s *Server) portalOperations(w http.ResponseWriter, r *http.Request) {
	var d operationsData
	s.operationsPage(r, &d)
	p := portalPage{Title: "Operations", Section: "operations", Data: &d}
	if d.Export != nil && (d.Export.Status == "pending" || d.Export.Status == "running") {
		// No script: the page reloads itself while the job runs.
		p.Refresh = 2
	}
	s.renderPortal(w, r, http.StatusOK, "operations", p)
}

// portalStartExport is the Operations page's export form: it queues a job
// and shows its progress on the Operations page.
func (s *Server) portalStartExport(w http.ResponseWriter, r *http.Request) {
	d := operationsData{Form: exportForm{Format: r.PostForm.Get("format"), Fields: map[string]bool{}}}
	var fields []string
	if d.Form.Format == workers.FormatCSV {
		// In the page's order, whatever order the browser sent them in.
		picked := r.PostForm["fields"]
		for _, f := range picked {
			d.Form.Fields[f] = true
		}
		for _, f := range projections.UserFields {
			if d.Form.Fields[f] {
				fields = append(fields, f)
			}
		}
		if len(fields) != len(d.Form.Fields) {
			fields = picked // an unknown field: let the check name it
		}
	}
	status := http.StatusServiceUnavailable
	if s.Exports != nil {
		j, err := s.Exports.Create(r.Context(), d.Form.Format, fields)
		if err == nil {
			s.Log.Info("portal: export started", "export_id", j.ID, "format", j.Format, "operator", portalSessionOf(r).Operator)
			http.Redirect(w, r, "/portal/operations?export="+j.ID+"#export", http.StatusSeeOther)
			return
		}
		e := httpx.Classify(err)
		status = e.Status
		d.Problems = append(d.Problems, "The export was not started: "+e.Message)
	} else {
		d.Problems = append(d.Problems, "Exports are not available on this node.")
	}
	s.operationsPage(r, &d)
	s.renderPortal(w, r, status, "operations", portalPage{Title: "Operations", Section: "operations", Data: &d})
}

func (s *Server) portalDownloadExport(w http.ResponseWriter, r *http.Request) {
	if s.Exports == nil {
		s.portalMessage(w, r, http.StatusNotFound, "No such export", "Exports are not available on this node.")
		return
	}
	j, body, err := s.Exports.Open(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.portalMessage(w, r, http.StatusNotFound, "No such export", "The export does not exist, is not finished, or has expired (files are kept 24 hours).")
		return
	}
	defer body.Close()
	ext, ctype := "ndjson", "application/x-ndjson"
	if j.Format == "csv" {
		ext, ctype = "csv", "text/csv; charset=utf-8"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="users-%s.%s"`, j.ID, ext))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if _, err := io.Copy(w, body); err != nil {
		s.Log.Warn("portal: export download interrupted", "error", err)
	}
}

func (s *Server) portalAudit(w http.ResponseWriter, r *http.Request) {
	hist, err := s.Settings.SettingsHistory(r.Context())
	if err != nil {
		s.Log.Error("portal: settings history", "error", err)
		s.portalMessage(w, r, http.StatusServiceUnavailable, "Audit log not available", "The settings history could not be read from the log right now.")
		return
	}
	s.renderPortal(w, r, http.StatusOK, "audit", portalPage{Title: "Audit: settings changes", Section: "audit", Data: hist})
}
