package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTPOptions shape the test mail server.
type SMTPOptions struct {
	// Implicit: TLS from the first byte; otherwise STARTTLS is offered
	// (and required before AUTH).
	Implicit bool
	// Username and Password, if set, are required (AUTH PLAIN).
	Username, Password string
	// RejectRcpt, if it returns an error for an address, refuses RCPT TO.
	RejectRcpt func(to string) error
	// RejectData refuses every message after DATA.
	RejectData error
}

// SMTPServer is a real SMTP server (github.com/emersion/go-smtp) on
// loopback with a test certificate, keeping what it receives.
type SMTPServer struct {
	Addr  string
	Host  string
	Port  int
	Roots *x509.CertPool
	srv   *smtp.Server
	ln    net.Listener
	mu    sync.Mutex
	mails []Mail
	cond  *sync.Cond
}

// Mail is one received message.
type Mail struct {
	From    string // envelope sender
	To      []string
	Header  mail.Header
	Text    string
	HTML    string
	RawBody string
	TLS     bool
	Authed  bool
}

var sixDigits = regexp.MustCompile(`\b\d{6}\b`)

// Code is the first six-digit number of the plain-text part.
func (m Mail) Code() string { return sixDigits.FindString(m.Text) }

// TestCertificate makes a self-signed certificate for 127.0.0.1 and
// localhost, and a pool that trusts it.
func TestCertificate(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "idstream test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true, DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// StartSMTP runs a mail server on 127.0.0.1 until the test ends.
func StartSMTP(t testing.TB, o SMTPOptions) *SMTPServer {
	t.Helper()
	cert, pool := TestCertificate(t)
	s := &SMTPServer{Roots: pool, Host: "127.0.0.1"}
	s.cond = sync.NewCond(&s.mu)
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smtpSession{s: s, o: o, c: c}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxMessageBytes = 1 << 20
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.EnableSMTPUTF8 = true
	var ln net.Listener
	var err error
	if o.Implicit {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig)
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	s.srv, s.ln = srv, ln
	s.Addr = ln.Addr().String()
	s.Port = ln.Addr().(*net.TCPAddr).Port
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(s.Close)
	return s
}

// Close stops the server (a closed server refuses connections).
func (s *SMTPServer) Close() { _ = s.ln.Close(); _ = s.srv.Close() }

// Mails returns what arrived so far.
func (s *SMTPServer) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// WaitMail waits for the n-th message (1-based) and returns it.
func (s *SMTPServer) WaitMail(t testing.TB, n int) Mail {
	t.Helper()
	var got []Mail
	WaitFor(t, "mail delivered", 10*time.Second, func() bool { got = s.Mails(); return len(got) >= n })
	return got[n-1]
}

type smtpSession struct {
	s      *SMTPServer
	o      SMTPOptions
	c      *smtp.Conn
	authed bool
	from   string
	to     []string
}

func (x *smtpSession) AuthMechanisms() []string {
	if x.o.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (x *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != x.o.Username || pass != x.o.Password {
			return errors.New("invalid credentials")
		}
		x.authed = true
		return nil
	}), nil
}

func (x *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if x.o.Username != "" && !x.authed {
		return smtp.ErrAuthRequired
	}
	x.from = from
	return nil
}

func (x *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if x.o.RejectRcpt != nil {
		if err := x.o.RejectRcpt(to); err != nil {
			return err
		}
	}
	x.to = append(x.to, to)
	return nil
}

func (x *smtpSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if x.o.RejectData != nil {
		return x.o.RejectData
	}
	_, isTLS := x.c.TLSConnectionState()
	m := Mail{From: x.from, To: x.to, TLS: isTLS, Authed: x.authed}
	if msg, err := mail.ReadMessage(strings.NewReader(string(raw))); err == nil {
		m.Header = msg.Header
		body, _ := io.ReadAll(msg.Body)
		m.RawBody = string(body)
		m.Text, m.HTML = mimeParts(msg.Header.Get("Content-Type"), string(body))
	}
	x.s.mu.Lock()
	x.s.mails = append(x.s.mails, m)
	x.s.mu.Unlock()
	return nil
}

func (x *smtpSession) Reset()        { x.from, x.to = "", nil }
func (x *smtpSession) Logout() error { return nil }

// mimeParts finds the plain-text and HTML parts of a (multipart) body.
func mimeParts(contentType, body string) (text, html string) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return body, ""
	}
	if !strings.HasPrefix(mt, "multipart/") {
		return body, ""
	}
	mr := multipart.NewReader(strings.NewReader(body), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			return text, html
		}
		var rd io.Reader = p
		if p.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
			rd = quotedprintable.NewReader(p)
		}
		raw, _ := io.ReadAll(rd)
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch pt {
		case "text/plain":
			text = string(raw)
		case "text/html":
			html = string(raw)
		}
	}
}
