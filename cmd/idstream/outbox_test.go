package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/idstream/idstream/app/delivery"
)

func TestOutboxPrintsTheNewestMessage(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("IDSTREAM_CONFIG", "")
	t.Setenv("IDSTREAM_DATA_DIR", dir)
	var out strings.Builder
	if err := printOutbox(&out, 1); err != nil || !strings.Contains(out.String(), "empty") {
		t.Fatalf("empty outbox: %v %q", err, out.String())
	}
	o := &delivery.Outbox{Dir: dir + "/outbox"}
	for _, code := range []string{"111111", "222222"} {
		if err := o.Send(context.Background(), delivery.Message{Channel: delivery.Email, To: "ada@example.com", Kind: delivery.KindVerify,
			AppName: "Acme", Code: code, Lifetime: 10 * time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	out.Reset()
	if err := printOutbox(&out, 1); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), delivery.DevBanner) || !strings.Contains(out.String(), "222222") || strings.Contains(out.String(), "111111") {
		t.Fatalf("newest: %q", out.String())
	}
	out.Reset()
	if err := printOutbox(&out, 2); err != nil || !strings.Contains(out.String(), "111111") {
		t.Fatalf("two: %v %q", err, out.String())
	}
}
