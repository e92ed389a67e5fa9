package sdk

import (
	"net/http"
	"net/url"

	"github.com/idstream/idstream/api/httpx"

	"github.com/idstream/idstream/domain"
)

// clientCredentials reads a token-endpoint request's client authentication
// (RFC 6749 §2.3.1): HTTP Basic (client_secret_basic, id and secret
// form-url-encoded), client_secret in the form (client_secret_post), or a
// bare client_id (none). Presenting two methods is invalid_request.
func clientCredentials(r *http.Request, form url.Values) (clientID, method, secret string, err error) {
	user, pass, basic := r.BasicAuth()
	formID, formSecret := form.Get("client_id"), form.Get("client_secret")
	switch {
	case basic && formSecret != "":
		return "", "", "", httpx.BadRequest("MultipleClientAuthentication", "invalid_request", "use one client authentication method: HTTP Basic or client_secret in the form, not both")
	case basic:
		id, err1 := url.QueryUnescape(user)
		sec, err2 := url.QueryUnescape(pass)
		if err1 != nil || err2 != nil || id == "" || (formID != "" && formID != id) {
			return "", "", "", httpx.ErrInvalidClient
		}
		return id, domain.AuthMethodBasic, sec, nil
	case formSecret != "":
		if formID == "" {
			return "", "", "", httpx.ErrInvalidClient
		}
		return formID, domain.AuthMethodPost, formSecret, nil
	case formID == "":
		return "", "", "", httpx.BadRequest("InvalidRequest", "invalid_request", "client_id is required")
	}
	return formID, domain.AuthMethodNone, "", nil
}

// authenticateClient authenticates the client of a token-endpoint request
// by its token_endpoint_auth_method.
func (s *Server) authenticateClient(r *http.Request, form url.Values) (domain.ClientSettings, error) {
	id, method, secret, err := clientCredentials(r, form)
	if err != nil {
		return domain.ClientSettings{}, err
	}
	return s.Service.AuthenticateClient(r.Context(), id, method, secret)
}
