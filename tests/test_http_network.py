"""Corporate networks: an explicit proxy, TLS verified by default, a custom CA bundle, and
verification turned off on request. Real TLS on loopback with a throwaway certificate."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from http_fakes import FakeModelServer, Recorded, Reply, prompt_for

from ghostcomplete.backends.base import BackendError, GenerationLimits
from ghostcomplete.backends.http.backend import HttpBackend
from ghostcomplete.backends.http.config import HttpSettings
from ghostcomplete.context.syntax import Scope

pytestmark = pytest.mark.timeout(20)

GOOD = {"choices": [{"index": 0, "text": "math.pi * r ** 2"}]}


async def answer(request: Recorded, reply: Reply) -> None:
    await reply.json(GOOD)


def limits() -> GenerationLimits:
    return GenerationLimits(Scope.LINE, 400, 1, 1, time.monotonic() + 5)


async def texts(settings: HttpSettings) -> list[str]:
    backend = HttpBackend(settings, environ={})
    try:
        return [c.text for c in await backend.generate(prompt_for(None), limits())]
    finally:
        await backend.aclose()


async def test_requests_go_through_the_configured_proxy():
    async with FakeModelServer(answer) as proxy:
        settings = HttpSettings(url="http://model.internal:9/v1", proxy=proxy.base, stream=False)
        assert await texts(settings) == ["math.pi * r ** 2"]
    # A forward proxy sees the absolute address of the model server.
    assert proxy.requests[0].path == "http://model.internal:9/v1/completions"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


async def test_tls_is_verified_by_default(certificate: tuple[Path, Path]):
    server = await FakeModelServer(answer).start(tls=server_tls(certificate))
    try:
        with pytest.raises(BackendError) as caught:
            await texts(HttpSettings(url=server.base, stream=False))
    finally:
        await server.close()
    assert str(caught.value).startswith(f"TLS verification failed for {server.base}/v1/")
    assert "backend.http.caBundle" in str(caught.value)
    assert not server.requests


async def test_a_ca_bundle_makes_a_private_certificate_trusted(certificate: tuple[Path, Path]):
    server = await FakeModelServer(answer).start(tls=server_tls(certificate))
    try:
        settings = HttpSettings(url=server.base, ca_bundle=str(certificate[0]), stream=False)
        assert await texts(settings) == ["math.pi * r ** 2"]
    finally:
        await server.close()


async def test_verification_can_be_turned_off(certificate: tuple[Path, Path]):
    server = await FakeModelServer(answer).start(tls=server_tls(certificate))
    try:
        assert await texts(HttpSettings(url=server.base, verify_tls=False)) == ["math.pi * r ** 2"]
    finally:
        await server.close()


def test_an_unreadable_ca_bundle_is_reported(tmp_path: Path):
    with pytest.raises(BackendError, match="cannot use the CA bundle"):
        HttpBackend(HttpSettings(url="https://x", ca_bundle=str(tmp_path / "missing.pem")))
