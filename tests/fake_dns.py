"""A resolver hook for tests: fixed answers for names under ``.apim.test``, the real resolver otherwise.

Nothing in the suite may leave the machine, and a hosts file is global; this
gives a test a DNS name with a known answer (for example one that "rebinds"
to 127.0.0.1 after registration) by wrapping ``socket.getaddrinfo``, which
both upstream clients and the registration check go through.
"""

from __future__ import annotations

import socket
from typing import Any

SUFFIX = ".apim.test"


def install(monkeypatch: Any) -> dict[str, list[str]]:
    """Patch ``socket.getaddrinfo``; the returned dict maps a name to the addresses it resolves to."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        name = (host.decode() if isinstance(host, bytes) else str(host)).rstrip(".").lower()
        if not name.endswith(SUFFIX):
            return real(host, port, family, type, proto, flags)
        ips = answers.get(name)
        if flags & socket.AI_NUMERICHOST or not ips:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        port_number = int(port or 0)
        out = []
        for ip in ips:
            if ":" in ip:
                if family in (0, socket.AF_INET6):
                    out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port_number, 0, 0)))
            elif family in (0, socket.AF_INET):
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port_number)))
        if not out:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return out

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers
