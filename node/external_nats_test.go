package node_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/node"
	"github.com/idstream/idstream/testenv"
)

// authServer is a real NATS server (in process) that demands credentials.
func authServer(t *testing.T, configure func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, JetStream: true, StoreDir: t.TempDir()}
	configure(opts)
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server did not start")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func nkeySeed(t *testing.T, kp nkeys.KeyPair) string {
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	return string(seed)
}

// The NATS_URL credential settings reach the server: each connects where
// no credentials, or wrong ones, are refused.
func TestExternalNATSCredentials(t *testing.T) {
	user, _ := nkeys.CreateUser()
	userPub, _ := user.PublicKey()
	stranger, _ := nkeys.CreateUser()
	operator, goodCreds, badCreds := operatorMode(t)
	file := func(name, body string) func(*testing.T) string {
		return func(t *testing.T) string { return writeFile(t, name, body) }
	}
	cases := []struct {
		name      string
		configure func(*testing.T, *server.Options)
		// good and bad credentials: environment variable and value.
		env       string
		good, bad func(*testing.T) string
	}{
		{"user and password", func(t *testing.T, o *server.Options) { o.Username, o.Password = "idstream", "s3cret-nats-password" },
			"NATS_PASSWORD", constant("s3cret-nats-password"), constant("wrong-password")},
		{"token", func(t *testing.T, o *server.Options) { o.Authorization = "s3cret-nats-token" },
			"NATS_TOKEN", constant("s3cret-nats-token"), constant("wrong-token")},
		{"nkey seed", func(t *testing.T, o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: userPub}} },
			"NATS_NKEY_SEED", file("user.nk", nkeySeed(t, user)+"\n"), file("other.nk", nkeySeed(t, stranger)+"\n")},
		{"creds file", operator, "NATS_CREDS", file("user.creds", goodCreds), file("other.creds", badCreds)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := authServer(t, func(o *server.Options) { tc.configure(t, o) })
			connect := func(value func(*testing.T) string) error {
				env := map[string]string{"NATS_URL": s.ClientURL()}
				if value != nil {
					env[tc.env] = value(t)
					if tc.env == "NATS_PASSWORD" {
						env["NATS_USER"] = "idstream"
					}
				}
				nc, ns, err := node.ConnectNATS(devConfig(t, env), slog.New(slog.DiscardHandler))
				if ns != nil {
					t.Error("started an embedded server although NATS_URL is set")
					ns.Shutdown()
				}
				if err == nil {
					nc.Close()
				}
				return err
			}
			if err := connect(nil); !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("without credentials: want an authorization violation, got %v", err)
			}
			if err := connect(tc.bad); !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("with wrong credentials: want an authorization violation, got %v", err)
			}
			if err := connect(tc.good); err != nil {
				t.Errorf("with the credentials: %v", err)
			}
		})
	}
}

func constant(v string) func(*testing.T) string { return func(*testing.T) string { return v } }

// operatorMode configures a server for decentralized auth (operator, one
// account in a memory resolver) and returns a creds file of a user of that
// account and one of a user signed by an account the server does not know.
func operatorMode(t *testing.T) (configure func(*testing.T, *server.Options), good, bad string) {
	t.Helper()
	operator, _ := nkeys.CreateOperator()
	opPub, _ := operator.PublicKey()
	oc := jwt.NewOperatorClaims(opPub)
	account, _ := nkeys.CreateAccount()
	accPub, _ := account.PublicKey()
	accJWT, err := jwt.NewAccountClaims(accPub).Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	creds := func(signer nkeys.KeyPair) string {
		u, _ := nkeys.CreateUser()
		pub, _ := u.PublicKey()
		uj, err := jwt.NewUserClaims(pub).Encode(signer)
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := u.Seed()
		b, err := jwt.FormatUserConfig(uj, seed)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	unknown, _ := nkeys.CreateAccount()
	configure = func(t *testing.T, o *server.Options) {
		resolver := &server.MemAccResolver{}
		if err := resolver.Store(accPub, accJWT); err != nil {
			t.Fatal(err)
		}
		o.TrustedOperators = []*jwt.OperatorClaims{oc}
		o.AccountResolver = resolver
		o.JetStream = false
	}
	return configure, creds(account), creds(unknown)
}

// A node runs on an authenticated NATS (streams, buckets) and its logs
// hold neither the password nor the token.
func TestNodeOnAuthenticatedNATSLogsNoSecret(t *testing.T) {
	for _, tc := range []struct {
		name      string
		server    func(*server.Options)
		configure func(*config.Config)
		secret    string
	}{
		{"password", func(o *server.Options) { o.Username, o.Password = "idstream", "pw-7d1e3c9a5b" },
			func(c *config.Config) { c.NATS.User, c.NATS.Password = "idstream", "pw-7d1e3c9a5b" }, "pw-7d1e3c9a5b"},
		{"token", func(o *server.Options) { o.Authorization = "tok-92be41f07c" },
			func(c *config.Config) { c.NATS.Token = "tok-92be41f07c" }, "tok-92be41f07c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := authServer(t, tc.server)
			n := testenv.StartNode(t, nil, testenv.NodeOptions{NATSURL: s.ClientURL(), Configure: tc.configure})
			if _, err := n.Store.LastSequence(context.Background()); err != nil {
				t.Fatal(err)
			}
			if logs := n.Logs.String(); logs == "" || strings.Contains(logs, tc.secret) {
				t.Fatalf("the logs hold the secret (or are empty):\n%s", logs)
			}
		})
	}
}

// TestNkeySeedNeverInAnError: NATS_NKEY_SEED names a file; an operator who
// puts the seed itself there (or names a file that holds something else)
// gets an error that says so without printing the seed or the path.
func TestNkeySeedNeverInAnError(t *testing.T) {
	user, _ := nkeys.CreateUser()
	seed := nkeySeed(t, user)
	for name, value := range map[string]string{
		"the seed itself":       seed,
		"a file of other stuff": writeFile(t, "not-a-seed.nk", "hello "+seed[:10]+"\n"),
	} {
		cfg, err := config.LoadFrom(func(k string) string {
			return map[string]string{"NATS_URL": "nats://127.0.0.1:1", "NATS_NKEY_SEED": value}[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = node.ConnectNATS(cfg, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), "NATS_NKEY_SEED") {
			t.Fatalf("%s: want an error naming NATS_NKEY_SEED, got %v", name, err)
		}
		if strings.Contains(err.Error(), seed[:10]) || strings.Contains(err.Error(), value) {
			t.Fatalf("%s: the error carries the seed or the path: %v", name, err)
		}
	}
}
