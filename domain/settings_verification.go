package domain

import (
	"fmt"
	"slices"
	"time"
)

// Verification policies of promotion with an email or phone number.
const (
	// VerifyRequired: promotion completes only when the code sent to the
	// login ID comes back; until then the guest stays a guest and the login
	// ID unclaimed.
	VerifyRequired = "required"
	// VerifyOptional: promotion completes at once, unverified; the user may
	// verify later.
	VerifyOptional = "optional"
	// VerifyOff: no codes for verification at all.
	VerifyOff = "off"
)

// Authenticators a login ID type may offer.
const (
	AuthenticatorPassword = "password"
	// AuthenticatorCode: a one-time code sent to the login ID (email or
	// SMS), Authgear's primary_oob_otp_email / primary_oob_otp_sms.
	AuthenticatorCode = "oob_otp"
)

// Limits of the verification settings.
const (
	MinCodeLifetime     = 5 * time.Minute
	MaxCodeLifetime     = 10 * time.Minute
	DefaultCodeLifetime = 10 * time.Minute
)

// VerificationSettings are the one-time code settings. Their zero value
// (settings written before they existed) means the defaults
// (WithDefaults).
type VerificationSettings struct {
	// Promotion is VerifyRequired, VerifyOptional (default) or VerifyOff.
	Promotion string `json:"promotion,omitempty" yaml:"promotion"`
	// CodeLifetime: 5 to 10 minutes (default 10).
	CodeLifetime Seconds `json:"code_lifetime,omitempty" yaml:"code_lifetime"`
	// Authenticators lists, per login ID type, the ways a person of that
	// type signs in and promotes: "password" and/or "oob_otp" (email and
	// phone only). Default: password for every type.
	Authenticators map[string][]string `json:"authenticators,omitempty" yaml:"authenticators"`
	// SendPerTarget and SendPerIP limit the codes sent to one login ID and
	// asked for from one address (default 10 per hour and 30 per hour).
	SendPerTarget RateLimitSetting `json:"send_per_target,omitzero" yaml:"send_per_target"`
	SendPerIP     RateLimitSetting `json:"send_per_ip,omitzero" yaml:"send_per_ip"`
}

// WithDefaults fills what is unset.
func (v VerificationSettings) WithDefaults() VerificationSettings {
	if v.Promotion == "" {
		v.Promotion = VerifyOptional
	}
	if v.CodeLifetime == 0 {
		v.CodeLifetime = SecondsOf(DefaultCodeLifetime)
	}
	if len(v.Authenticators) == 0 {
		v.Authenticators = map[string][]string{"email": {AuthenticatorPassword}, "phone": {AuthenticatorPassword}, "username": {AuthenticatorPassword}}
	}
	if v.SendPerTarget == (RateLimitSetting{}) {
		v.SendPerTarget = RateLimitSetting{Burst: 10, Per: 3600}
	}
	if v.SendPerIP == (RateLimitSetting{}) {
		v.SendPerIP = RateLimitSetting{Burst: 30, Per: 3600}
	}
	return v
}

// Offers reports whether a login ID type offers an authenticator (with
// the defaults applied).
func (v VerificationSettings) Offers(loginIDType, authenticator string) bool {
	list, ok := v.WithDefaults().Authenticators[loginIDType]
	if !ok {
		return authenticator == AuthenticatorPassword
	}
	return slices.Contains(list, authenticator)
}

// clone deep-copies the map.
func (v VerificationSettings) clone() VerificationSettings {
	if v.Authenticators != nil {
		m := make(map[string][]string, len(v.Authenticators))
		for k, l := range v.Authenticators {
			m[k] = slices.Clone(l)
		}
		v.Authenticators = m
	}
	return v
}

// validate adds what is wrong to bad.
func (v VerificationSettings) validate(bad map[string]string) {
	switch v.Promotion {
	case "", VerifyRequired, VerifyOptional, VerifyOff:
	default:
		bad["verification.promotion"] = `must be "required", "optional" or "off"`
	}
	if d := v.CodeLifetime.Duration(); d != 0 && (d < MinCodeLifetime || d > MaxCodeLifetime) {
		bad["verification.code_lifetime"] = "must be between 5 and 10 minutes"
	}
	for typ, list := range v.Authenticators {
		f := "verification.authenticators." + typ
		switch typ {
		case "email", "phone", "username":
		default:
			bad[f] = "login ID types are email, phone and username"
			continue
		}
		if len(list) == 0 {
			bad[f] = "offer at least one authenticator"
		}
		seen := map[string]bool{}
		for _, a := range list {
			switch {
			case a != AuthenticatorPassword && a != AuthenticatorCode:
				bad[f] = `authenticators are "password" and "oob_otp"`
			case a == AuthenticatorCode && typ == "username":
				bad[f] = "a username cannot receive codes"
			case seen[a]:
				bad[f] = fmt.Sprintf("%q is listed twice", a)
			}
			seen[a] = true
		}
	}
	for name, rl := range map[string]RateLimitSetting{"send_per_target": v.SendPerTarget, "send_per_ip": v.SendPerIP} {
		if rl == (RateLimitSetting{}) {
			continue
		}
		if rl.Burst < 0 {
			bad["verification."+name+".burst"] = "must not be negative (0 turns the limit off)"
		}
		if rl.Per <= 0 {
			bad["verification."+name+".per"] = "must be at least one second"
		}
	}
}
