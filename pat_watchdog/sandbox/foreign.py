"""A host outside Azure (`attacker.example`), reachable through the proxy like any host on the internet.

It answers every request like the last page of a listing (`{"value": []}`) and records what arrived,
above all whether a credential did: the place a forged nextLink or redirect would send the product.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .web import Request, Response, json_response

HOST = "attacker.example"


@dataclass(frozen=True)
class Arrival:
    """One request that reached the foreign host (never the credential itself)."""

    method: str
    path: str
    authorization: bool     # an Authorization header came with it


class Foreign:
    """The foreign host's recorder."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrivals: list[Arrival] = []

    def handle(self, request: Request) -> Response:
        """Record the request; answer an empty last page."""
        with self._lock:
            self._arrivals.append(Arrival(request.method, request.path, request.header("Authorization") is not None))
        return json_response(200, {"value": []})

    @property
    def arrivals(self) -> list[Arrival]:
        """Every request that reached it, in order."""
        with self._lock:
            return list(self._arrivals)

    @property
    def credentials(self) -> int:
        """How many requests brought an Authorization header."""
        return sum(1 for a in self.arrivals if a.authorization)
