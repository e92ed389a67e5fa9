package httpx

import (
	"errors"
	"mime"
	"net/http"
	"net/url"
)

// ParseForm reads an application/x-www-form-urlencoded body.
func ParseForm(r *http.Request) (url.Values, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errFormMediaType
	}
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, errBodyTooLarge
		}
		return nil, BadRequest("InvalidForm", "invalid_request", "the form body is malformed")
	}
	return r.PostForm, nil
}

// NoStore marks an answer that carries a token, a code, a challenge or a
// session as not to be stored by any cache (RFC 6749 §5.1).
func NoStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}
