package load

import (
	"slices"
	"testing"
)

func TestMixedWeights(t *testing.T) {
	cum, err := parseWeights("bench mixed", "signup=50,refresh=45,promote=5", mixOps)
	if err != nil || !slices.Equal(cum, []int{50, 95, 100}) {
		t.Fatalf("cumulative weights %v, %v", cum, err)
	}
	for _, bad := range []string{"signup=1,keypair=2", "signup=0", "refresh=-1", "signup"} {
		if _, err := parseWeights("bench mixed", bad, mixOps); err == nil {
			t.Errorf("--mix %q accepted", bad)
		}
	}
}
