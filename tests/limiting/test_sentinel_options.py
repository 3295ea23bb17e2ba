"""Sentinel: the sentinels' own password and TLS (``SENTINEL_KWARGS``), the URL's query
options on the primary, and clear E040 errors for bad values.

Real processes: a redis-server primary and a ``redis-server --sentinel`` watching it,
with a password or TLS (certificates made with ``openssl`` in a temp dir).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from resilience_django.exceptions import ConfigError
from resilience_django.limiting.decision import LimitCheck, Policy
from resilience_django.limiting.redis import RedisLimiter
from resilience_django.limiting.redis_conn import make_sync_client, parse_redis_settings
from resilience_django.units import Rate
from tests.services import missing, require_binary
from tests.utils.redis_server import RedisServer, _wait_port

pytestmark = pytest.mark.redis

SERVICE = "Orders-Primary"  # mixed case: Sentinel service names are case-sensitive


class Sentinel:
    """A primary and one sentinel watching it as ``SERVICE``, configured by ``lines``."""

    def __init__(self, lines: str = "", tls: bool = False) -> None:
        self.primary = RedisServer()
        self.sentinel = RedisServer()
        self.lines = lines
        self.tls = tls

    def start(self) -> Sentinel:
        self.primary.start()
        port = self.sentinel.port
        listen = f"port 0\ntls-port {port}\n" if self.tls else f"port {port}\n"
        conf = Path(self.sentinel.dir) / "sentinel.conf"
        conf.write_text(
            f"{listen}bind 127.0.0.1\n{self.lines}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
        )
        log = Path(self.sentinel.dir) / "redis.log"
        with log.open("ab") as out:
            self.sentinel.proc = subprocess.Popen(
                [self.sentinel.binary, str(conf), "--sentinel"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_port(port, self.sentinel.proc, log)
        return self

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.sentinel.port)

    def stop(self) -> None:
        self.sentinel.stop()
        self.primary.stop()


def _settings(sentinel: Sentinel, url: str = f"redis://{SERVICE}/0", **extra: Any) -> Any:
    return parse_redis_settings({"URL": url, "SENTINELS": [sentinel.address], **extra}, budget=0.5)


def _decides_on_redis(settings: Any) -> bool:
    limiter = RedisLimiter(make_sync_client(settings), settings=settings)
    try:
        check = LimitCheck(Policy("sentinel", Rate(100, 60.0)), uuid.uuid4().hex)
        return limiter.decide((check,)).backend == "redis"
    finally:
        limiter.close()


@pytest.fixture(scope="module")
def plain() -> Iterator[Sentinel]:
    s = Sentinel().start()
    yield s
    s.stop()


def test_a_mixed_case_service_name_is_found(plain: Sentinel) -> None:
    assert _decides_on_redis(_settings(plain))


def test_the_urls_query_options_reach_the_primary(plain: Sentinel) -> None:
    name = f"limiter-{uuid.uuid4().hex[:8]}"
    settings = _settings(plain, url=f"redis://{SERVICE}/0?client_name={name}")
    client = make_sync_client(settings)
    admin = redis.Redis(port=plain.primary.port)
    try:
        assert client.ping()
        assert name in {c["name"] for c in admin.client_list()}
    finally:
        client.close()
        admin.close()


async def test_the_urls_query_options_reach_the_primary_on_the_async_path(
    plain: Sentinel,
) -> None:
    name = f"alimiter-{uuid.uuid4().hex[:8]}"
    settings = _settings(plain, url=f"redis://{SERVICE}/0?client_name={name}")
    limiter = RedisLimiter(settings=settings)
    admin = redis.Redis(port=plain.primary.port)
    check = LimitCheck(Policy("sentinel-query", Rate(1, 60.0)), uuid.uuid4().hex)
    try:
        assert (await limiter.adecide((check,))).allowed
        assert name in {c["name"] for c in admin.client_list()}
    finally:
        await limiter.aclose()
        admin.close()


@pytest.fixture(scope="module")
def guarded() -> Iterator[Sentinel]:
    s = Sentinel("requirepass sentinel-secret").start()
    yield s
    s.stop()


def test_the_sentinels_own_password_is_sentinel_kwargs(guarded: Sentinel) -> None:
    with pytest.raises(redis.RedisError):  # without it the sentinel refuses to answer
        _decides_on_redis(_settings(guarded))
    kwargs = {"password": "sentinel-secret"}
    assert _decides_on_redis(_settings(guarded, SENTINEL_KWARGS=kwargs))


async def test_the_sentinels_own_password_on_the_async_path(guarded: Sentinel) -> None:
    settings = _settings(guarded, SENTINEL_KWARGS={"password": "sentinel-secret"})
    limiter = RedisLimiter(make_sync_client(settings), settings=settings)
    check = LimitCheck(Policy("sentinel-async", Rate(1, 60.0)), uuid.uuid4().hex)
    try:
        assert [(await limiter.adecide((check,))).allowed for _ in range(2)] == [True, False]
    finally:
        await limiter.aclose()
        limiter.close()


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    openssl = require_binary("openssl")
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    ext = directory / "san.ext"
    # What Python 3.13's strict verification (VERIFY_X509_STRICT) wants of a server
    # certificate, the key identifiers included.
    ext.write_text(
        "subjectAltName=IP:127.0.0.1\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        str(key),
        "-out",
        str(csr),
    )
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        str(ext),
        "-out",
        str(cert),
    )
    return ca, cert, key


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sentinel, Path]]:
    ca, cert, key = _certificates(tmp_path_factory.mktemp("tls"))
    lines = f"tls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {ca}\ntls-auth-clients no"
    s = Sentinel(lines, tls=True)
    try:
        s.start()
    except RuntimeError as exc:  # a redis-server built without TLS
        s.stop()
        missing(f"redis-server cannot listen with TLS: {exc}")
    yield s, ca
    s.stop()


def test_sentinels_over_tls_are_sentinel_kwargs(tls: tuple[Sentinel, Path]) -> None:
    sentinel, ca = tls
    with pytest.raises(redis.RedisError):  # plain text to a TLS port
        _decides_on_redis(_settings(sentinel))
    kwargs = {"ssl": True, "ssl_ca_certs": str(ca), "ssl_cert_reqs": "required"}
    assert _decides_on_redis(_settings(sentinel, SENTINEL_KWARGS=kwargs))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"SENTINEL_KWARGS": "secret"}, "['SENTINEL_KWARGS'] must be a dict, not str"),
        ({"SENTINEL_KWARGS": {"socket_timeout": 5}}, "unknown keys ['socket_timeout']"),
        ({"SENTINEL_KWARGS": {"password": 1234}}, "['password'] = 1234 must be a string"),
        ({"SENTINEL_KWARGS": {"ssl": "yes"}}, "['ssl'] = 'yes' must be True or False"),
        ({"SENTINEL_KWARGS": {"ssl_cert_reqs": "always"}}, "must be one of none, optional"),
        ({"URL": "redis://mymaster/0?socket_timeout=soon"}, "Invalid value for 'socket_timeout'"),
        ({"URL": "unix:///tmp/redis.sock"}, "must name the Sentinel service as its host"),
        ({"URL": "redis:///0"}, "must name the Sentinel service as its host"),
    ],
)
def test_bad_sentinel_settings_are_e040_with_a_hint(extra: dict[str, Any], message: str) -> None:
    value = {"URL": "redis://mymaster/0", "SENTINELS": [("127.0.0.1", 26379)], **extra}
    with pytest.raises(ConfigError) as info:
        parse_redis_settings(value, budget=0.05)
    assert info.value.check_id == "resilience.E040"
    assert message in str(info.value), str(info.value)
    assert info.value.hint


def test_a_bad_sentinel_kwarg_fails_the_system_check_naming_it() -> None:
    from django.test import override_settings

    from resilience_django.checks import check_settings

    redis_settings = {
        "URL": "redis://mymaster/0",
        "SENTINELS": [("127.0.0.1", 26379)],
        "SENTINEL_KWARGS": {"ssl": "yes"},
    }
    with override_settings(RESILIENCE={"BACKEND": "redis", "REDIS": redis_settings}):
        (error,) = [m for m in check_settings() if m.id == "resilience.E040"]
    assert "['SENTINEL_KWARGS']['ssl'] = 'yes' must be True or False" in error.msg
    assert error.hint
