-- Confidential clients' secrets (issue 18). Like the signing keys, they are
-- credentials, so they live here and never in the event log. Only a hash of
-- each secret is kept (see app/clientsecrets.go for why SHA-256); a secret
-- stops working at expires_at (set when a newer one replaces it, after the
-- rotation's overlap window, or at once when revoked).
CREATE TABLE client_secrets (
    secret_id   text        PRIMARY KEY,
    client_id   text        NOT NULL,
    hash        bytea       NOT NULL,
    created_at  timestamptz NOT NULL,
    created_by  text        NOT NULL,
    expires_at  timestamptz
);
CREATE INDEX client_secrets_client ON client_secrets (client_id);
