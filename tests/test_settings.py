"""Settings refuse what must not run: a weak secret key in production, and unknown ``CZ_*``
variables (an error in production, a warning elsewhere)."""

from __future__ import annotations

import asyncio
import os
import secrets
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from chuangzheng.bootstrap import temporal_tls
from chuangzheng.payload_codec import new_key_text
from chuangzheng.settings import (
    DEFAULT_SECRET_KEY,
    Settings,
    UnknownVariableWarning,
    check_environment,
    get_settings,
    unknown_variables,
)

STRONG = secrets.token_urlsafe(48)
#: Production encrypts payloads by default, so it needs a key (chuangzheng.payload_codec).
KEYS = f"k1:{new_key_text()}"


@pytest.fixture(autouse=True)
def standard_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite's cheap hashing (tests/conftest.py) is refused in production: these tests
    build production settings from the process environment."""
    monkeypatch.delenv("CZ_PASSWORD_HASHING", raising=False)


def test_production_refuses_the_test_suites_fast_hashing() -> None:
    with pytest.raises(ValidationError, match="CZ_PASSWORD_HASHING=fast is for test suites"):
        Settings(
            environment="production", secret_key=STRONG, payload_keys=KEYS, password_hashing="fast"
        )
    assert Settings(environment="test", secret_key=STRONG, password_hashing="fast")


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("a", "1 characters"),
        ("x" * 64, "distinct"),
        ("ab" * 32, "distinct"),
        (secrets.token_hex(15), "30 characters"),
        (DEFAULT_SECRET_KEY, "development key"),
    ],
    # Named, not made from the random key: pytest-xdist needs the same ids on every worker.
    ids=["1-character", "one-repeated", "two-repeated", "30-characters", "development-key"],
)
def test_production_refuses_a_weak_secret_key(key: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        Settings(environment="production", secret_key=key)


def test_production_accepts_a_random_key_and_development_any() -> None:
    production = Settings(environment="production", secret_key=STRONG, payload_keys=KEYS)
    assert production.secret_key == STRONG
    assert Settings(environment="development", secret_key="a").secret_key == "a"


def test_unknown_variables_are_reported_and_known_ones_are_not(tmp_path: Path) -> None:
    channels = tmp_path / "channels.yaml"
    channels.write_text("mail:\n  password: env:CZ_MAIL_SECRET\n", "utf-8")
    environ = {
        "CZ_ENV": "production",  # the typo of CZ_ENVIRONMENT
        "CZ_SECRT_KEY": "x",
        "CZ_ENVIRONMENT": "production",
        "CZ_DATABASE_URL": "sqlite://",
        "CZ_WORKERS": "2",
        "CZ_API_URL": "http://127.0.0.1:8000",
        "CZ_API_USER": "county",
        "CZ_API_PASSWORD": "pw",
        "CZ_SIGNIN_ACCOUNT_FAILURES": "5",
        "CZ_OIDC_ISSUER": "",
        "CZ_CHANNELS_FILE": str(channels),
        "CZ_MAIL_SECRET": "pw",
        "PATH": "/usr/bin",
    }
    assert unknown_variables(environ) == ["CZ_ENV", "CZ_SECRT_KEY"]
    production = Settings(environment="production", secret_key=STRONG, payload_keys=KEYS)
    with pytest.raises(ValueError, match="CZ_ENV, CZ_SECRT_KEY"):
        check_environment(production, environ)
    with pytest.warns(UnknownVariableWarning, match="CZ_ENV"):
        check_environment(Settings(environment="development"), environ)
    check_environment(production, {"CZ_WORKERS": "1"})  # nothing unknown: silent


def test_the_process_settings_refuse_to_start_in_production_with_an_unknown_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in [n for n in os.environ if n.startswith("CZ_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    monkeypatch.setenv("CZ_ENVIRONMENT", "production")
    monkeypatch.setenv("CZ_SECRET_KEY", STRONG)
    monkeypatch.setenv("CZ_PAYLOAD_KEYS", KEYS)
    monkeypatch.setenv("CZ_ENV", "production")
    get_settings.cache_clear()
    try:
        with pytest.raises(ValueError, match="CZ_ENV"):
            get_settings()
        monkeypatch.delenv("CZ_ENV")
        monkeypatch.setenv("CZ_SECRET_KEY", "a")
        with pytest.raises(ValidationError, match="too weak"):
            get_settings()
        monkeypatch.setenv("CZ_SECRET_KEY", STRONG)
        assert get_settings().environment == "production"
    finally:
        get_settings.cache_clear()


# ----- production settings (issue 14): payload encryption, the Temporal connection -----


def test_production_encrypts_payloads_and_refuses_to_start_without_a_key() -> None:
    with pytest.raises(ValidationError, match="CZ_ENVIRONMENT=production turns it on"):
        Settings(environment="production", secret_key=STRONG)
    on = Settings(environment="production", secret_key=STRONG, payload_keys=KEYS)
    assert on.payload_encryption_enabled
    # An explicit opt-out is the operator's decision (e.g. a cluster that encrypts at rest).
    off = Settings(environment="production", secret_key=STRONG, payload_encryption=False)
    assert not off.payload_encryption_enabled


def test_development_does_not_encrypt_unless_asked_and_then_needs_a_key() -> None:
    assert not Settings(environment="development").payload_encryption_enabled
    assert not Settings(environment="test", secret_key=STRONG).payload_encryption_enabled
    with pytest.raises(ValidationError, match="CZ_PAYLOAD_ENCRYPTION=true"):
        Settings(environment="development", payload_encryption=True)
    asked = Settings(environment="development", payload_encryption=True, payload_keys=KEYS)
    assert asked.payload_encryption_enabled


def test_a_malformed_key_list_is_refused_even_while_encryption_is_off() -> None:
    with pytest.raises(ValidationError, match="not 'id:base64key'"):
        Settings(environment="development", payload_keys="no-colon-here")


def test_keys_and_the_api_key_stay_out_of_the_settings_repr() -> None:
    settings = Settings(
        environment="development", payload_keys=KEYS, temporal_api_key="cloud-api-key-value"
    )
    assert KEYS.split(":")[1] not in repr(settings)
    assert "cloud-api-key-value" not in repr(settings)


def test_a_client_certificate_needs_its_key_and_excludes_an_api_key(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    with pytest.raises(ValidationError, match="go together"):
        Settings(temporal_tls_cert=cert)
    with pytest.raises(ValidationError, match="not both"):
        Settings(temporal_tls_cert=cert, temporal_tls_key=cert, temporal_api_key="k")


def test_tls_is_off_locally_on_with_an_api_key_and_reads_the_pem_files(tmp_path: Path) -> None:
    assert temporal_tls(Settings()) is False
    assert temporal_tls(Settings(temporal_api_key="k")) is True
    assert temporal_tls(Settings(temporal_tls=True)) is True
    cert, key, ca = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.write_bytes(b"CERT")
    key.write_bytes(b"KEY")
    ca.write_bytes(b"CA")
    config = temporal_tls(
        Settings(
            temporal_tls_cert=cert,
            temporal_tls_key=key,
            temporal_tls_ca=ca,
            temporal_tls_server_name="temporal.internal",
        )
    )
    assert not isinstance(config, bool)
    assert (config.client_cert, config.client_private_key) == (b"CERT", b"KEY")
    assert (config.server_root_ca_cert, config.domain) == (b"CA", "temporal.internal")
    key.unlink()
    with pytest.raises(RuntimeError, match="CZ_TEMPORAL_TLS_KEY: cannot read"):
        temporal_tls(Settings(temporal_tls_cert=cert, temporal_tls_key=key))


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("https://temporal.example.org/", "https://temporal.example.org"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ],
)
def test_the_temporal_ui_origin_is_an_origin(value: str, origin: str) -> None:
    assert Settings(temporal_ui_origin=value).temporal_ui_origin == origin


@pytest.mark.parametrize("value", ["temporal.example.org", "https://t.example.org/ui", "ftp://x"])
def test_a_temporal_ui_origin_with_a_path_or_no_scheme_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="CZ_TEMPORAL_UI_ORIGIN"):
        Settings(temporal_ui_origin=value)


def test_uploads_default_under_the_data_dir(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).upload_directory == tmp_path / "uploads"
    elsewhere = tmp_path / "shared"
    assert Settings(data_dir=tmp_path, upload_dir=elsewhere).upload_directory == elsewhere


# ----- the Temporal connection over mutual TLS, for real -----


def _certificate(
    subject: str, key: Any, issuer: tuple[str, Any] | None, *, ca: bool, dns: str | None = None
) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = (
        (x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])]), issuer[1])
        if issuer
        else (name, key)
    )
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write_pki(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for ``temporal.test`` and a client certificate, as PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def pem_key(key: Any) -> bytes:
        return bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def pem_cert(cert: Any) -> bytes:
        return bytes(cert.public_bytes(serialization.Encoding.PEM))

    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _certificate("test ca", ca_key, None, ca=True)
    files = {
        "ca.pem": pem_cert(ca),
        "server.pem": pem_cert(
            _certificate(
                "temporal.test", server_key, ("test ca", ca_key), ca=False, dns="temporal.test"
            )
        ),
        "server.key": pem_key(server_key),
        "client.pem": pem_cert(
            _certificate("chuangzheng-worker", client_key, ("test ca", ca_key), ca=False)
        ),
        "client.key": pem_key(client_key),
    }
    paths = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths[name] = folder / name
    return paths


async def _tls_front(target: str, pki: dict[str, Path]) -> tuple[asyncio.Server, int]:
    """A TLS terminator in front of the dev server (which speaks plain gRPC only): mutual
    TLS with the test CA, HTTP/2 by ALPN, bytes passed through."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki["ca.pem"]))
    context.load_cert_chain(pki["server.pem"], pki["server.key"])
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    host, port = target.rsplit(":", 1)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    return server, server.sockets[0].getsockname()[1]


async def test_connect_temporal_over_mutual_tls_with_the_configured_files(tmp_path: Path) -> None:
    """The TLS settings against a real TLS endpoint: the client certificate, the private CA
    and the server name are used as configured, and a client without its certificate, or
    expecting another name, is refused."""
    from chuangzheng.bootstrap import connect_temporal
    from chuangzheng.temporal_server import start_dev_server_env

    pki = _write_pki(tmp_path)
    env = await start_dev_server_env()
    server, port = await _tls_front(env.client.service_client.config.target_host, pki)
    try:
        mutual = Settings(
            temporal_address=f"127.0.0.1:{port}",
            temporal_tls_cert=pki["client.pem"],
            temporal_tls_key=pki["client.key"],
            temporal_tls_ca=pki["ca.pem"],
            temporal_tls_server_name="temporal.test",
        )
        client = await connect_temporal(mutual)
        info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
        assert info.server_version
        without_certificate = mutual.model_copy(
            update={"temporal_tls_cert": None, "temporal_tls_key": None}
        )
        with pytest.raises(RuntimeError):
            await asyncio.wait_for(connect_temporal(without_certificate), 30)
        other_name = mutual.model_copy(update={"temporal_tls_server_name": "elsewhere.test"})
        with pytest.raises(RuntimeError):
            await asyncio.wait_for(connect_temporal(other_name), 30)
    finally:
        server.close()
        await env.shutdown()
