package config

import "testing"

// TestCookieSecureDefault: cookies are Secure by default in production and,
// in development, whenever the public URL is https; an explicit setting
// wins.
func TestCookieSecureDefault(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"development, http", map[string]string{}, false},
		{"development, https public URL", map[string]string{"IDSTREAM_PUBLIC_URL": "https://id.example.test"}, true},
		{"development, HTTPS public URL", map[string]string{"IDSTREAM_PUBLIC_URL": "HTTPS://id.example.test"}, true},
		{"development, https, explicitly off", map[string]string{"IDSTREAM_PUBLIC_URL": "https://id.example.test", "IDSTREAM_COOKIE_SECURE": "false"}, false},
		{"development, http, explicitly on", map[string]string{"IDSTREAM_COOKIE_SECURE": "true"}, true},
	} {
		c, err := LoadFrom(func(k string) string { return tc.env[k] })
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if *c.Cookie.Secure != tc.want {
			t.Errorf("%s: cookie Secure = %v, want %v", tc.name, *c.Cookie.Secure, tc.want)
		}
	}
}
