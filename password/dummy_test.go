package password

import "testing"

func TestDummyHashHasTheParametersAndMatchesNothing(t *testing.T) {
	p := Params{MemoryKiB: 8 * 1024, Iterations: 3, Parallelism: 1}
	d := Dummy(p)
	got, salt, key, err := parse(d)
	if err != nil || got != p || len(salt) != saltLen || len(key) != keyLen {
		t.Fatalf("Dummy(%v) = %q: parsed %v, %d-byte salt, %d-byte key, %v", p, d, got, len(salt), len(key), err)
	}
	for _, pw := range []string{"", "idstream-dummy-password", "violet-tangerine-42"} {
		if ok, _, err := Verify(d, pw, p); ok || err != nil {
			t.Fatalf("Verify(dummy, %q) = %v, %v", pw, ok, err)
		}
	}
}
