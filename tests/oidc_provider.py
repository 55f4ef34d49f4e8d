"""A small but real OpenID Connect provider for tests, served by uvicorn on loopback.

It does what Keycloak or Umbrella ID do for the authorization-code flow: discovery, JWKS
(an RSA key made at start), /authorize (auto-approves ``user``; requires state, nonce and a
PKCE S256 challenge), /token (checks the client secret, the single-use code, the redirect
URI and the PKCE verifier; returns an RS256 ID token) and /userinfo. Tests spoil the ID
token on purpose through ``id_token_overrides`` and ``sign_with_foreign_key``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.conftest import LiveServer


def s256(verifier: str) -> str:
    """RFC 7636: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    nonce: str
    code_challenge: str
    claims: dict[str, Any]


@dataclass
class OidcProvider:
    client_id: str = "beamdesk"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    user: dict[str, Any] = field(
        default_factory=lambda: {
            "sub": "f3c1a2b4-0001",
            "preferred_username": "jdoe",
            "email": "jdoe@example.org",
            "name": "Jane Doe",
        }
    )
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    sign_with_foreign_key: bool = False
    url: str = ""
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        params = {"kid": "test-key-1", "use": "sig", "alg": "RS256"}
        self.key = RSAKey.generate_key(2048, parameters=params)
        # Same kid, different key: a forged token that names our key.
        self.foreign_key = RSAKey.generate_key(2048, parameters=params)
        self.grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/userinfo", self.userinfo),
            ]
        )

    def __enter__(self) -> OidcProvider:
        self._server = LiveServer(self.app)
        self.url = self._server.url
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "userinfo_endpoint": f"{self.url}/userinfo",
                "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "scopes_supported": ["openid", "email", "profile"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != self.client_id:
            return oauth_error("unauthorized_client", "unknown client")
        missing = [p for p in ("redirect_uri", "state", "nonce", "code_challenge") if not q.get(p)]
        if missing:
            return oauth_error("invalid_request", f"missing {', '.join(missing)}")
        if q.get("response_type") != "code" or "openid" not in q.get("scope", "").split():
            return oauth_error("invalid_request", "only the OpenID code flow is offered")
        if q.get("code_challenge_method") != "S256":
            return oauth_error("invalid_request", "PKCE with S256 is required")
        code = secrets.token_urlsafe(24)
        self.grants[code] = Grant(
            self.client_id, q["redirect_uri"], q["nonce"], q["code_challenge"], dict(self.user)
        )
        target = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]})
        return RedirectResponse(target, status_code=302)

    def _client_credentials(self, request: Request, form: dict[str, str]) -> tuple[str, str]:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return user, password
        return form.get("client_id", ""), form.get("client_secret", "")

    async def token(self, request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        self.token_requests.append(form)
        client_id, secret = self._client_credentials(request, form)
        if client_id != self.client_id or not hmac.compare_digest(secret, self.client_secret):
            return oauth_error("invalid_client", "bad client credentials", 401)
        if form.get("grant_type") != "authorization_code":
            return oauth_error("unsupported_grant_type", "only authorization_code")
        grant = self.grants.pop(form.get("code", ""), None)  # single use
        if grant is None or grant.redirect_uri != form.get("redirect_uri"):
            return oauth_error("invalid_grant", "unknown or used code, or other redirect_uri")
        if s256(form.get("code_verifier", "")) != grant.code_challenge:
            return oauth_error("invalid_grant", "PKCE verifier does not match")
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
            "auth_time": now,
            **grant.claims,
        }
        claims.update(self.id_token_overrides)
        key = self.foreign_key if self.sign_with_foreign_key else self.key
        id_token = jwt.encode({"alg": "RS256", "kid": "test-key-1"}, claims, key)
        access_token = secrets.token_urlsafe(24)
        self.access_tokens[access_token] = grant.claims
        return JSONResponse(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
                "scope": "openid email profile",
            }
        )

    async def userinfo(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        claims = (
            self.access_tokens.get(header[7:]) if header.lower().startswith("bearer ") else None
        )
        if claims is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse(claims)
