package password

import (
	"encoding/base64"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// Dummy returns a well-formed hash with the parameters p that no password
// matches (its salt and key are zero bytes). Verifying a password against
// it costs exactly what verifying against a real hash made with p costs:
// sign-in checks unknown login IDs against it, so that the answer's timing
// does not tell whether an account exists.
func Dummy(p Params) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Iterations, p.Parallelism,
		b64.EncodeToString(make([]byte, saltLen)), b64.EncodeToString(make([]byte, keyLen)))
}
