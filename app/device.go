package app

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"unicode"

	"github.com/idstream/idstream/domain"
)

// ErrInvalidDeviceInfo: device_info (or x_device_info) is not a JSON object
// of at most maxDeviceInfo bytes (x_device_info: base64url of one).
var ErrInvalidDeviceInfo = errors.New("device_info must be a JSON object (x_device_info: base64url JSON) of at most 8 KiB")

const (
	maxDeviceInfo  = 8 << 10
	maxDeviceField = 128
)

// deviceOf sums up what a mobile SDK says of its device: the JWT's
// device_info, else the form's x_device_info (base64url JSON). The Authgear
// iOS SDK sends {"ios":{"uname":{"machine"},"UIDevice":{"systemName",
// "systemVersion","model"},"NSBundle":{"CFBundleShortVersionString",
// "CFBundleVersion"}}}, the Android one {"android":{"Build":{"MANUFACTURER",
// "MODEL","VERSION":{"RELEASE"}},"PackageInfo":{"versionName"}}}. Anything
// else in it, or a field of another type, is ignored; nothing known gives
// nil.
func deviceOf(payload json.RawMessage, form string) (*domain.Device, error) {
	raw := []byte(payload)
	if len(raw) == 0 && form != "" {
		if len(form) > maxDeviceInfo*4/3+4 {
			return nil, ErrInvalidDeviceInfo
		}
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(form, "="))
		if err != nil {
			return nil, ErrInvalidDeviceInfo
		}
		raw = b
	}
	if len(raw) == 0 {
		return nil, nil
	}
	var m map[string]any
	if len(raw) > maxDeviceInfo || json.Unmarshal(raw, &m) != nil || m == nil {
		return nil, ErrInvalidDeviceInfo
	}
	var d domain.Device
	if ios, ok := m["ios"].(map[string]any); ok {
		ui := object(ios, "UIDevice")
		d.Model = first(text(object(ios, "uname"), "machine"), text(ui, "model"))
		d.OS = join(text(ui, "systemName"), text(ui, "systemVersion"))
		b := object(ios, "NSBundle")
		d.AppVersion = withBuild(text(b, "CFBundleShortVersionString"), text(b, "CFBundleVersion"))
	} else if android, ok := m["android"].(map[string]any); ok {
		build := object(android, "Build")
		d.Model = join(text(build, "MANUFACTURER"), text(build, "MODEL"))
		if r := text(object(build, "VERSION"), "RELEASE"); r != "" {
			d.OS = "Android " + r
		}
		d.AppVersion = text(object(android, "PackageInfo"), "versionName")
	}
	d = domain.Device{Model: bounded(d.Model), OS: bounded(d.OS), AppVersion: bounded(d.AppVersion)}
	if d == (domain.Device{}) {
		return nil, nil
	}
	return &d, nil
}

func object(m map[string]any, k string) map[string]any { o, _ := m[k].(map[string]any); return o }

func text(m map[string]any, k string) string { s, _ := m[k].(string); return strings.TrimSpace(s) }

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func join(a, b string) string { return strings.TrimSpace(a + " " + b) }

func withBuild(version, build string) string {
	if build == "" || build == version {
		return version
	}
	if version == "" {
		return build
	}
	return version + " (" + build + ")"
}

// bounded keeps printable text, at most maxDeviceField characters.
func bounded(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s)
	if r := []rune(s); len(r) > maxDeviceField {
		s = string(r[:maxDeviceField])
	}
	return s
}
