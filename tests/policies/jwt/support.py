"""Shared pieces of the jwt tests: real keys, real tokens, a real JWKS server, a real consumer directory."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.db import connections

from policies.consumer_directory import ConsumerDirectory

HS_SECRET = "s3cret-for-tests-" + "x" * 32


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def public_pem(private: Any) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "alice", "iat": now, "exp": now + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def token(key: Any, alg: str, *, kid: str | None = None, **overrides: Any) -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims(**overrides), key, algorithm=alg, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict[str, Any], payload: dict[str, Any], hs_secret: bytes | None = None) -> str:
    """A token built by hand, for what PyJWT refuses to make (alg none, an RSA public key as HMAC secret)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = b"" if hs_secret is None else hmac.new(hs_secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def jwk_of(private: Any, kid: str) -> dict[str, Any]:
    alg = "RS256" if isinstance(private, rsa.RSAPrivateKey) else "ES256"
    algorithm = jwt.get_algorithm_by_name(alg)
    document = json.loads(algorithm.to_jwk(private.public_key()))
    return {**document, "kid": kid, "use": "sig", "alg": alg}


class JwksServer:
    """A real HTTP server on loopback serving a JWKS document the test can change (and break)."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.status = 200
        self.raw: bytes | None = None
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                body = server.raw if server.raw is not None else json.dumps(server.document).encode()
                self.send_response(server.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/.well-known/jwks.json"

    def start(self) -> JwksServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


async def run_in_thread(fn: Callable[[], Any]) -> Any:
    """What the gateway runtime does on a cache miss: the ORM off the loop, connection closed after."""

    def call() -> Any:
        try:
            return fn()
        finally:
            connections.close_all()

    return await asyncio.to_thread(call)


def directory() -> ConsumerDirectory:
    return ConsumerDirectory(run_in_thread=run_in_thread)


def poll(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False
