package delivery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// DevBanner heads every message in the outbox.
const DevBanner = "DEVELOPMENT MODE: this message was NOT sent. idstream has no SMTP server or SMS provider configured, so it wrote the message here instead."

// outboxKeep is how many messages the outbox keeps (the oldest go).
const outboxKeep = 200

// Outbox is the development-mode sender: each message becomes a file
// (mode 0600) in a directory under the data directory, which `idstream
// outbox` prints. The server log never shows a message or its code.
type Outbox struct {
	Dir       string
	Catalogue *Catalogue
	Now       func() time.Time
	mu        sync.Mutex
	seq       int
}

// Send implements Sender.
func (o *Outbox) Send(_ context.Context, m Message) error {
	if m.Channel == SMS && !e164(m.To) {
		return fmt.Errorf("%w: not an E.164 phone number", ErrInvalidRecipient)
	}
	to := m.To
	if m.Channel == Email {
		var err error
		if to, err = EmailAddress(m.To); err != nil {
			return err
		}
	}
	cat := o.Catalogue
	if cat == nil {
		cat = DefaultCatalogue
	}
	r, err := cat.Render(m)
	if err != nil {
		return err
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	at := now().UTC()
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\nChannel: %s\nTo: %s\nKind: %s\nDate: %s\n", DevBanner, m.Channel, to, m.Kind, at.Format(time.RFC3339))
	if m.Channel == Email {
		fmt.Fprintf(&b, "Subject: %s\n\n%s", r.Subject, r.Text)
	} else {
		fmt.Fprintf(&b, "\n%s\n", r.SMS)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fmt.Errorf("%w: outbox: %v", ErrFailed, err)
	}
	o.seq++
	name := fmt.Sprintf("%020d-%04d-%s.txt", at.UnixNano(), o.seq%10000, m.Channel)
	if err := os.WriteFile(filepath.Join(o.Dir, name), []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("%w: outbox: %v", ErrFailed, err)
	}
	o.prune()
	return nil
}

func (o *Outbox) prune() {
	names, _ := outboxFiles(o.Dir)
	for len(names) > outboxKeep {
		_ = os.Remove(filepath.Join(o.Dir, names[0]))
		names = names[1:]
	}
}

func outboxFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".txt") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Latest returns the newest n messages of an outbox, newest first.
func Latest(dir string, n int) ([]string, error) {
	names, err := outboxFiles(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for i := len(names) - 1; i >= 0 && len(out) < n; i-- {
		raw, err := os.ReadFile(filepath.Join(dir, names[i]))
		if err != nil {
			return nil, err
		}
		out = append(out, string(raw))
	}
	return out, nil
}
