"""OpenID Connect, the relying party's half: the authorization code flow with PKCE (S256)
against the provider named by ``CZ_OIDC_ISSUER``.

1. :func:`begin` reads the provider's discovery document, draws ``state``, ``nonce`` and
   the PKCE verifier, and returns the authorization URL and a :class:`PendingSignIn` that the
   page keeps in a short-lived signed cookie (:func:`seal` / :func:`unseal`).
2. :func:`finish` checks ``state``, trades the code (with the verifier) for tokens at the
   token endpoint and verifies the ID token: signature against the provider's JWKS, ``iss``,
   ``aud``, ``exp``, ``nonce``; it returns the verified claims.

Mapping the claims to an account is :func:`chuangzheng.services.sign_in.sign_in_with_identity`.
The HTTP calls are blocking: callers run them in the threadpool, as every page route does.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from chuangzheng.services.errors import ServiceError
from chuangzheng.settings import Settings

#: How long a person may spend at the provider between leaving and coming back.
PENDING_LIFETIME = timedelta(minutes=10)
#: Discovery documents are re-read after this long (a provider may rotate its endpoints).
DISCOVERY_TTL_SECONDS = 600.0
#: Clock skew tolerated on ``exp``/``iat``/``nbf`` of ID tokens.
LEEWAY = timedelta(seconds=30)
HTTP_TIMEOUT = 10.0
# Signature algorithms accepted from a provider: asymmetric only (HS256 would make the
# client secret a signing key, and "none" is never acceptable).
_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
_PENDING_AUDIENCE = "chuangzheng:oidc-pending"


class SingleSignOnFailed(ServiceError):
    """The sign-in at the provider did not complete or did not verify (``message`` says why
    in Chinese; the English detail stays in ``errors`` for the log)."""

    def __init__(self, message: str, detail: str = "") -> None:
        errors = [{"field": "oidc", "reason": detail}] if detail else []
        super().__init__("sso_failed", message, errors)


@dataclass(frozen=True)
class ProviderMetadata:
    """What the discovery document says about the provider."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]


@dataclass(frozen=True)
class PendingSignIn:
    """What the relying party must remember while the person is at the provider."""

    state: str
    nonce: str
    code_verifier: str
    next_path: str


_discovered: dict[str, tuple[float, ProviderMetadata]] = {}
_jwks_clients: dict[str, jwt.PyJWKClient] = {}
_lock = threading.Lock()


def _same_issuer(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def discover(issuer: str) -> ProviderMetadata:
    """The provider's metadata from ``{issuer}/.well-known/openid-configuration`` (cached
    for :data:`DISCOVERY_TTL_SECONDS`); its ``issuer`` must be the configured one."""
    now = time.monotonic()
    with _lock:
        cached = _discovered.get(issuer)
    if cached and now - cached[0] < DISCOVERY_TTL_SECONDS:
        return cached[1]
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = httpx.get(url, timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SingleSignOnFailed("统一身份认证服务暂时无法访问，请稍后再试", str(exc)) from exc
    try:
        metadata = ProviderMetadata(
            issuer=str(document["issuer"]),
            authorization_endpoint=str(document["authorization_endpoint"]),
            token_endpoint=str(document["token_endpoint"]),
            jwks_uri=str(document["jwks_uri"]),
            algorithms=tuple(
                a
                for a in document.get("id_token_signing_alg_values_supported", ["RS256"])
                if a in _ALGORITHMS
            ),
        )
    except (KeyError, TypeError) as exc:
        raise SingleSignOnFailed("统一身份认证服务配置有误", f"discovery: {exc!r}") from exc
    if not _same_issuer(metadata.issuer, issuer):
        raise SingleSignOnFailed(
            "统一身份认证服务配置有误", f"issuer {metadata.issuer!r} is not {issuer!r}"
        )
    if not metadata.algorithms:
        raise SingleSignOnFailed("统一身份认证服务配置有误", "no supported signing algorithm")
    with _lock:
        _discovered[issuer] = (now, metadata)
    return metadata


def code_challenge(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def callback_url(settings: Settings) -> str:
    """Where the provider sends the person back (register it at the provider)."""
    return settings.public_base_url.rstrip("/") + "/ui/login/oidc/callback"


def begin(settings: Settings, next_path: str) -> tuple[str, PendingSignIn]:
    """The provider's authorization URL to send the person to, and what to remember."""
    metadata = discover(settings.oidc_issuer)
    pending = PendingSignIn(
        state=secrets.token_urlsafe(24),
        nonce=secrets.token_urlsafe(24),
        code_verifier=secrets.token_urlsafe(48),
        next_path=next_path,
    )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": settings.oidc_client_id,
            "redirect_uri": callback_url(settings),
            "scope": settings.oidc_scopes,
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": code_challenge(pending.code_verifier),
            "code_challenge_method": "S256",
        }
    )
    joiner = "&" if "?" in metadata.authorization_endpoint else "?"
    return f"{metadata.authorization_endpoint}{joiner}{query}", pending


def seal(pending: PendingSignIn, settings: Settings, *, now: datetime | None = None) -> str:
    """``pending`` signed with the service's key, valid for :data:`PENDING_LIFETIME` (for
    a cookie: the browser keeps it, nobody can forge or extend it)."""
    now = now or datetime.now(UTC)
    claims = {
        "aud": _PENDING_AUDIENCE,
        "state": pending.state,
        "nonce": pending.nonce,
        "cv": pending.code_verifier,
        "next": pending.next_path,
        "iat": now,
        "exp": now + PENDING_LIFETIME,
    }
    return jwt.encode(claims, settings.secret_key, algorithm="HS256")


def unseal(sealed: str | None, settings: Settings) -> PendingSignIn:
    """The :class:`PendingSignIn` of a cookie made by :func:`seal`."""
    if not sealed:
        raise SingleSignOnFailed("统一身份认证登录已失效，请重新登录", "no pending sign-in cookie")
    try:
        claims = jwt.decode(
            sealed, settings.secret_key, algorithms=["HS256"], audience=_PENDING_AUDIENCE
        )
        return PendingSignIn(
            state=str(claims["state"]),
            nonce=str(claims["nonce"]),
            code_verifier=str(claims["cv"]),
            next_path=str(claims["next"]),
        )
    except (jwt.InvalidTokenError, KeyError) as exc:
        raise SingleSignOnFailed("统一身份认证登录已失效，请重新登录", repr(exc)) from exc


def _jwks_client(jwks_uri: str) -> jwt.PyJWKClient:
    with _lock:
        client = _jwks_clients.get(jwks_uri)
        if client is None:
            client = jwt.PyJWKClient(jwks_uri, cache_keys=True, timeout=int(HTTP_TIMEOUT))
            _jwks_clients[jwks_uri] = client
        return client


def _candidate_keys(id_token: str, metadata: ProviderMetadata) -> list[jwt.PyJWK]:
    """The provider's keys that may have signed ``id_token``: the one its ``kid`` names, or
    (a provider that names none, with one key or during a rotation) every signing key."""
    client = _jwks_client(metadata.jwks_uri)
    kid = jwt.get_unverified_header(id_token).get("kid")
    if kid:
        return [client.get_signing_key(str(kid))]
    return list(client.get_signing_keys())


def _exchange(settings: Settings, metadata: ProviderMetadata, code: str, verifier: str) -> str:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": callback_url(settings),
        "code_verifier": verifier,
        "client_id": settings.oidc_client_id,
    }
    auth = (settings.oidc_client_id, settings.oidc_client_secret)
    try:
        response = httpx.post(
            metadata.token_endpoint,
            data=data,
            auth=auth if settings.oidc_client_secret else None,
            timeout=HTTP_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        raise SingleSignOnFailed("统一身份认证服务暂时无法访问，请稍后再试", str(exc)) from exc
    if response.status_code != 200:
        raise SingleSignOnFailed(
            "统一身份认证服务拒绝了本次登录，请重新登录",
            f"token endpoint {response.status_code}: {response.text[:300]}",
        )
    try:
        id_token = response.json()["id_token"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SingleSignOnFailed("统一身份认证服务未返回身份令牌", repr(exc)) from exc
    return str(id_token)


def verify_id_token(
    id_token: str, settings: Settings, metadata: ProviderMetadata, nonce: str
) -> dict[str, Any]:
    """The claims of ``id_token`` once its signature (the provider's JWKS), issuer,
    audience, expiry and nonce are checked."""
    try:
        claims: dict[str, Any] | None = None
        for key in _candidate_keys(id_token, metadata):
            try:
                claims = jwt.decode(
                    id_token,
                    key.key,
                    algorithms=list(metadata.algorithms),
                    audience=settings.oidc_client_id,
                    issuer=metadata.issuer,
                    leeway=LEEWAY,
                    options={"require": ["iss", "sub", "aud", "exp", "iat"]},
                )
                break
            except jwt.InvalidSignatureError:
                continue  # another of the provider's keys may have signed it
        if claims is None:
            raise jwt.InvalidSignatureError("no key of the provider verifies the signature")
    except jwt.PyJWKClientConnectionError as exc:
        raise SingleSignOnFailed("统一身份认证服务暂时无法访问，请稍后再试", str(exc)) from exc
    except (jwt.InvalidTokenError, jwt.PyJWKClientError) as exc:
        raise SingleSignOnFailed("身份令牌校验失败，请重新登录", repr(exc)) from exc
    if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
        raise SingleSignOnFailed("身份令牌校验失败，请重新登录", "nonce mismatch")
    audience = claims["aud"]
    if (
        isinstance(audience, list)
        and len(audience) > 1
        and claims.get("azp") != (settings.oidc_client_id)
    ):
        raise SingleSignOnFailed("身份令牌校验失败，请重新登录", "azp is not this client")
    return claims


def finish(settings: Settings, pending: PendingSignIn, *, code: str, state: str) -> dict[str, Any]:
    """The verified ID token claims for the code the provider sent back with ``state``."""
    if not state or not secrets.compare_digest(state, pending.state):
        raise SingleSignOnFailed("统一身份认证登录已失效，请重新登录", "state mismatch")
    if not code:
        raise SingleSignOnFailed("统一身份认证服务未返回授权码，请重新登录", "no code")
    metadata = discover(settings.oidc_issuer)
    id_token = _exchange(settings, metadata, code, pending.code_verifier)
    return verify_id_token(id_token, settings, metadata, pending.nonce)
