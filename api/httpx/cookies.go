package httpx

import (
	"net/http"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
)

// SetSessionCookie sets the session cookie: HttpOnly, SameSite=Lax, Secure
// unless configured off for plain-http development.
func SetSessionCookie(w http.ResponseWriter, cfg *config.Config, iss app.Issued) {
	http.SetCookie(w, &http.Cookie{
		Name:     cfg.Cookie.Name,
		Value:    iss.SessionToken,
		Path:     "/",
		HttpOnly: true,
		Secure:   *cfg.Cookie.Secure,
		SameSite: http.SameSiteLaxMode,
		Expires:  iss.SessionExpiresAt,
	})
}

// ClearSessionCookie removes the session cookie.
func ClearSessionCookie(w http.ResponseWriter, cfg *config.Config) {
	http.SetCookie(w, &http.Cookie{
		Name: cfg.Cookie.Name, Value: "", Path: "/", HttpOnly: true, Secure: *cfg.Cookie.Secure,
		SameSite: http.SameSiteLaxMode, MaxAge: -1,
	})
}
