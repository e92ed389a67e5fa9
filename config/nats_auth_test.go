package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idstream/idstream/config"
)

func TestNATSCredentialSettings(t *testing.T) {
	const url = "nats://nats-1:4222,nats://nats-2:4222"
	for name, want := range map[string]func(*config.Config) string{
		"NATS_CREDS":     func(c *config.Config) string { return c.NATS.Creds },
		"NATS_NKEY_SEED": func(c *config.Config) string { return c.NATS.NkeySeed },
		"NATS_TOKEN":     func(c *config.Config) string { return c.NATS.Token },
	} {
		c, err := config.LoadFrom(env(map[string]string{"NATS_URL": url, name: "value-of-" + name}))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := want(c); got != "value-of-"+name {
			t.Errorf("%s: got %q", name, got)
		}
	}
	c, err := config.LoadFrom(env(map[string]string{"NATS_URL": url, "NATS_USER": "idstream", "NATS_PASSWORD": "pw"}))
	if err != nil || c.NATS.User != "idstream" || c.NATS.Password != "pw" {
		t.Fatalf("NATS_USER, NATS_PASSWORD: %+v %v", c.NATS, err)
	}
	file := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(file, []byte("nats:\n  url: "+url+"\n  user: idstream\n  password: from-file\n"), 0o600)
	c, err = config.LoadFrom(env(map[string]string{"IDSTREAM_CONFIG": file}))
	if err != nil || c.NATS.User != "idstream" || c.NATS.Password != "from-file" {
		t.Fatalf("YAML nats.user, nats.password: %+v %v", c.NATS, err)
	}
	os.WriteFile(file, []byte("nats:\n  url: "+url+"\n  creds: /run/secrets/nats.creds\n"), 0o600)
	if c, err = config.LoadFrom(env(map[string]string{"IDSTREAM_CONFIG": file})); err != nil || c.NATS.Creds != "/run/secrets/nats.creds" {
		t.Fatalf("YAML nats.creds: %+v %v", c.NATS, err)
	}
	os.WriteFile(file, []byte("nats:\n  url: "+url+"\n  nkey_seed: /k.nk\n"), 0o600)
	if c, err = config.LoadFrom(env(map[string]string{"IDSTREAM_CONFIG": file})); err != nil || c.NATS.NkeySeed != "/k.nk" {
		t.Fatalf("YAML nats.nkey_seed: %+v %v", c.NATS, err)
	}
	os.WriteFile(file, []byte("nats:\n  url: "+url+"\n  token: tok-from-file\n"), 0o600)
	if c, err = config.LoadFrom(env(map[string]string{"IDSTREAM_CONFIG": file})); err != nil || c.NATS.Token != "tok-from-file" {
		t.Fatalf("YAML nats.token: %+v %v", c.NATS, err)
	}
	if c.NATSKeyFile() != filepath.Join("data", "nats-user.nk") {
		t.Errorf("key file %q", c.NATSKeyFile())
	}
}

// Credentials that would be ignored or clash are refused, and the error
// does not repeat them.
func TestInvalidNATSCredentials(t *testing.T) {
	const secret = "pw-4e1f0a9c"
	for name, e := range map[string]map[string]string{
		"without NATS_URL":       {"NATS_USER": "u", "NATS_PASSWORD": secret},
		"two kinds":              {"NATS_URL": "nats://n:4222", "NATS_TOKEN": secret, "NATS_CREDS": "/c.creds"},
		"password without user":  {"NATS_URL": "nats://n:4222", "NATS_PASSWORD": secret},
		"user without password":  {"NATS_URL": "nats://n:4222", "NATS_USER": "u"},
		"credentials in the URL": {"NATS_URL": "nats://n:4222,nats://u:" + secret + "@m:4222", "NATS_TOKEN": "t"},
	} {
		_, err := config.LoadFrom(env(e))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error repeats the secret: %v", name, err)
		}
	}
}
