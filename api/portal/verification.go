package portal

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/idstream/idstream/api/httpx"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/domain"
)

// The portal's Verification page (issue 20): the verification and
// authenticator settings, the delivery configuration with its secrets
// masked, and "send a test message".

type authenticatorRow struct {
	Type, Label      string
	Password, Code   bool
	CodeOK           bool // the type can receive codes
	PasswordField    string
	CodeField, Error string
}

type verificationData struct {
	Version        uint64
	Promotion      string
	CodeLifetime   string
	Authenticators []authenticatorRow
	Limits         []rateLimitField
	Delivery       app.DeliveryStatus
	TestTo         string
	TestError      string
	TestNotice     string
}

var verificationLimitInfo = [][3]string{
	{"send_per_target", "Codes sent to one login ID", "Codes (verification, promotion, sign-in, reset) one email address or phone number may receive."},
	{"send_per_ip", "Codes asked for per client IP", "Codes one IP address may ask for."},
}

func (s *Server) verificationData(cur domain.Settings, version uint64) verificationData {
	v := cur.Verification.WithDefaults()
	d := verificationData{Version: version, Promotion: v.Promotion, CodeLifetime: formatSeconds(v.CodeLifetime), Delivery: s.Service.DeliveryStatus()}
	for _, t := range [][2]string{{"email", "Email address"}, {"phone", "Phone number"}, {"username", "Username"}} {
		list := v.Authenticators[t[0]]
		d.Authenticators = append(d.Authenticators, authenticatorRow{Type: t[0], Label: t[1], CodeOK: t[0] != "username",
			Password: slices.Contains(list, domain.AuthenticatorPassword), Code: slices.Contains(list, domain.AuthenticatorCode)})
	}
	for i, rl := range []domain.RateLimitSetting{v.SendPerTarget, v.SendPerIP} {
		info := verificationLimitInfo[i]
		d.Limits = append(d.Limits, rateLimitField{Name: info[0], Label: info[1], Help: info[2], Unit: "codes", Burst: strconv.Itoa(rl.Burst), Per: formatSeconds(rl.Per)})
	}
	return d
}

func (s *Server) portalVerification(w http.ResponseWriter, r *http.Request) {
	cur, version := s.Service.SettingsVersion()
	d := s.verificationData(cur, version)
	page := portalPage{Title: "Verification and one-time codes", Section: "verification", Data: &d}
	if s.portalFormGet(w, r, "verification", page, "Saved. Every node applies the change within a second.") {
		return
	}
	f := r.PostForm
	if f.Get("action") == "test" {
		d.TestTo = strings.TrimSpace(f.Get("test_to"))
		channel, err := s.Service.SendTestMessage(r.Context(), d.TestTo, s.ClientIP(r), operatorMeta(r))
		status := http.StatusOK
		if err != nil {
			e := s.LogError(r, err)
			status = e.Status
			d.TestError = httpx.PageText(e, httpx.AudienceFlow, d.TestTo)
		} else if d.Delivery.Dev && ((channel == "email" && d.Delivery.SMTPHost == "") || (channel == "sms" && d.Delivery.SMSProvider == "")) {
			d.TestNotice = "Development mode: the message was written to the outbox (" + d.Delivery.OutboxDir + "); print it with idstream outbox."
		} else {
			d.TestNotice = "Sent to " + d.TestTo + ". If it does not arrive, check the mail server's or SMS provider's logs."
		}
		s.renderPortal(w, r, status, "verification", page)
		return
	}
	next := cur.Clone()
	v := next.Verification.WithDefaults()
	d.Promotion, d.CodeLifetime = f.Get("promotion"), f.Get("code_lifetime")
	v.Promotion = d.Promotion
	bad := map[string]string{}
	var err error
	if v.CodeLifetime, err = parseSeconds(d.CodeLifetime); err != nil {
		bad["code_lifetime"] = err.Error()
	}
	v.Authenticators = map[string][]string{}
	for i := range d.Authenticators {
		a := &d.Authenticators[i]
		a.Password = f.Get(a.Type+".password") == "on"
		a.Code = a.CodeOK && f.Get(a.Type+".oob_otp") == "on"
		var list []string
		if a.Password {
			list = append(list, domain.AuthenticatorPassword)
		}
		if a.Code {
			list = append(list, domain.AuthenticatorCode)
		}
		v.Authenticators[a.Type] = list
	}
	for i, dst := range []*domain.RateLimitSetting{&v.SendPerTarget, &v.SendPerIP} {
		l := &d.Limits[i]
		l.Burst, l.Per = strings.TrimSpace(f.Get(l.Name+".burst")), f.Get(l.Name+".per")
		n, err := strconv.Atoi(l.Burst)
		if err != nil {
			bad[l.Name+".burst"] = "enter a whole number (0 turns the limit off)"
		}
		dst.Burst = n
		if dst.Per, err = parseSeconds(l.Per); err != nil {
			bad[l.Name+".per"] = err.Error()
		}
	}
	next.Verification = v
	ver, ok := formVersion(r)
	bad, page.Error = s.submitSettings(r, ver, ok, next, bad, func(k string) string {
		k = strings.TrimPrefix(k, "verification.")
		if t, ok := strings.CutPrefix(k, "authenticators."); ok {
			return "authenticators." + t
		}
		return k
	})
	if len(bad) == 0 && page.Error == "" {
		http.Redirect(w, r, "/portal/authentication/verification?saved=1", http.StatusSeeOther)
		return
	}
	for i := range d.Authenticators {
		d.Authenticators[i].Error = bad["authenticators."+d.Authenticators[i].Type]
	}
	page.Errors = bad
	s.renderPortal(w, r, http.StatusBadRequest, "verification", page)
}
