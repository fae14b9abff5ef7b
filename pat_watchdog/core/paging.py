"""Which page of a listing comes next (docs/reference.md, "Answers and deadlines").

A listing's answer names its next page (ARM's and Key Vault's `nextLink`, the PAT Lifecycle API's
`continuationToken`). The client pipelines send the credential to whatever URL they are given, so a
nextLink is followed only to the scheme, host and port of the endpoint that answered, never to a page
already read (a nextLink naming itself would loop for ever, the pages piling up in memory), and a
listing ends after at most 1,000 pages. Anything else ends that listing with UnexpectedAnswer.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from pat_watchdog.core.errors import UnexpectedAnswer

PAGE_LIMIT = 1000
_DEFAULT_PORTS = {"https": 443, "http": 80}


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the default port filled in, host and scheme lower-cased."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def _same_page(url: str) -> str:
    """One spelling per page: `https://HOST:443/p?q` and `https://host/p?q` are the same link."""
    scheme, host, port = origin(url)
    parts = urlsplit(url)
    return f"{scheme}://{host}:{port}{parts.path}?{parts.query}"


class Pages:
    """The pages of one listing: `follow(next)` gives the next page to read, None at the end.

    `first` is the first page's absolute URL (its origin is the only one followed), or None for a
    listing whose pages are continuation tokens rather than links.
    """

    def __init__(self, system: str, what: str, first: str | None, *, limit: int = PAGE_LIMIT):
        self.system, self.what, self.limit = system, what, limit
        self.origin = origin(first) if first else None
        self._seen = {_same_page(first)} if first else set()
        self.read = 1

    def follow(self, following: object) -> str | None:
        """The next page (a URL, or a continuation token), checked; None when the listing ended."""
        if following is None or following == "":
            return None
        if not isinstance(following, str):
            raise self._refused(f"page {self.read} names its next page with a {type(following).__name__}, "
                                "not a string")
        if self.origin is None:
            key = following
        else:
            try:
                link = urljoin(f"{self.origin[0]}://{self.origin[1]}:{self.origin[2]}/", following)
                where = origin(link)
                key = _same_page(link)
            except ValueError:
                raise self._refused(f"page {self.read}'s nextLink is not a URL") from None
            if where != self.origin:
                raise self._refused(
                    f"page {self.read}'s nextLink points at {_shown(where)}, not at {_shown(self.origin)} that "
                    "answered: not followed (the credential would go with it)")
            following = link
        if key in self._seen:
            raise self._refused(f"page {self.read}'s next page is one already read: the listing loops, "
                                f"stopped after {self.read} page{'s' if self.read > 1 else ''}")
        if self.read >= self.limit:
            raise self._refused(f"more than {self.limit} pages: stopped")
        self._seen.add(key)
        self.read += 1
        return following

    def _refused(self, problem: str) -> UnexpectedAnswer:
        return UnexpectedAnswer(self.system, f"{self.what}: {problem}")


def _shown(where: tuple[str, str, int | None]) -> str:
    scheme, host, port = where
    return f"{scheme}://{host}" + ("" if port == _DEFAULT_PORTS.get(scheme) else f":{port}")
