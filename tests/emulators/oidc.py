"""OpenID Connect provider emulator: the authorization-code flow `st.login` runs (through Authlib).

Follows OpenID Connect Core 1.0 (https://openid.net/specs/openid-connect-core-1_0.html) and Discovery 1.0:
`GET /.well-known/openid-configuration` (issuer, endpoints, `code_challenge_methods_supported`),
`GET /authorize` (response_type=code, client_id, redirect_uri, scope containing `openid`, state, nonce,
PKCE S256 `code_challenge`) answered at once with a 302 to `redirect_uri?code=...&state=...` for the
signed-in user (no consent screen), `POST /token` (grant_type=authorization_code with client_secret_basic or
client_secret_post, the PKCE `code_verifier` checked; codes are single use) returning an RS256 `id_token`
with iss, aud, sub, email, name, nonce, iat and exp, `GET /jwks` (RFC 7517) and `GET /userinfo`.
Errors use RFC 6749 §5.2 bodies: `{"error": "invalid_grant", "error_description": ...}`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.emulators.base import Emulator, Request, Response


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return Response.json({"error": error, "error_description": description}, status)


@dataclass
class OidcProvider(Emulator):
    client_id: str = "no-touch-dashboard"
    client_secret: str = "oidc-client-secret-5150"
    user: dict[str, str] = field(default_factory=lambda: {"email": "lee@example.com", "name": "Lee Lead"})
    codes: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__()
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def handle(self, request: Request) -> Response:
        if request.path == "/.well-known/openid-configuration":
            return Response.json(
                {
                    "issuer": self.url,
                    "authorization_endpoint": f"{self.url}/authorize",
                    "token_endpoint": f"{self.url}/token",
                    "jwks_uri": f"{self.url}/jwks",
                    "userinfo_endpoint": f"{self.url}/userinfo",
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "scopes_supported": ["openid", "email", "profile"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                    "code_challenge_methods_supported": ["S256"],
                }
            )
        if request.path == "/jwks":
            return Response.json({"keys": [self.key.as_dict(private=False)]})
        if request.path == "/authorize":
            return self._authorize(request)
        if request.path == "/token" and request.method == "POST":
            return self._token(request)
        if request.path == "/userinfo":
            return Response.json({"sub": self._subject(), **self.user})
        return _oauth_error("invalid_request", f"unknown endpoint {request.path}", 404)

    def _subject(self) -> str:
        return hashlib.sha256(self.user["email"].encode()).hexdigest()[:24]

    def _authorize(self, request: Request) -> Response:
        if request.arg("client_id") != self.client_id or request.arg("response_type") != "code":
            return _oauth_error("unauthorized_client", "unknown client or response type")
        if "openid" not in (request.arg("scope") or "").split():
            return _oauth_error("invalid_scope", "scope must include openid")
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "redirect_uri": request.arg("redirect_uri") or "",
            "nonce": request.arg("nonce") or "",
            "challenge": request.arg("code_challenge") or "",
        }
        target = f"{request.arg('redirect_uri')}?{urlencode({'code': code, 'state': request.arg('state') or ''})}"
        return Response(302, b"", {"Location": target})

    def _token(self, request: Request) -> Response:
        form = {key: values[0] for key, values in request.form().items()}
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if (header := request.headers.get("authorization", "")).startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(header[6:]).decode().partition(":")
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            return _oauth_error("invalid_client", "client authentication failed", 401)
        grant = self.codes.pop(form.get("code", ""), None)
        if form.get("grant_type") != "authorization_code" or grant is None:
            return _oauth_error("invalid_grant", "unknown, used or expired code")
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return _oauth_error("invalid_grant", "redirect_uri differs from the authorization request")
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if grant["challenge"] and digest != grant["challenge"]:
            return _oauth_error("invalid_grant", "PKCE verification failed")
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": self.client_id,
            "sub": self._subject(),
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            **self.user,
        }
        id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.key)
        return Response.json(
            {"access_token": secrets.token_urlsafe(24), "token_type": "Bearer", "expires_in": 300, "id_token": id_token}
        )
