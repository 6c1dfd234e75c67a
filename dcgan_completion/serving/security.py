"""Who may use the server: the page it serves, at the address it serves, and nothing else.

- Host: a request's Host must name this server (the address it listens on, `localhost`, a loopback
  address, any IP address when it listens on every interface, or a name given with --allowHost).
  Another name means DNS rebinding: a page whose own name was pointed at this machine.
- Origin: a request that changes something (POST, DELETE, ...) sent by a page of another origin is
  refused. Browsers send a form-like POST to any host without asking first (no CORS preflight).
  --allowOrigin names origins that may, and only they get CORS headers.
- Token: when the server listens beyond loopback (or is given --token), every request needs the
  token: `?token=`, an `Authorization: Bearer` header, or the cookie that opening the page with
  `?token=` sets (so the page, its API calls, event streams and downloads carry it).

Every refusal is one JSON line, {"error": "..."}.
"""
from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi.responses import JSONResponse, RedirectResponse

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
DRAIN_BYTES = 64 << 20  # a refused request's body read (and dropped) before the answer, at most
WILDCARDS = ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    """Whether an address to listen on is this machine's own (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def hostname_of(host_header: str) -> str | None:
    """'Example.com:8080' -> 'example.com', '[::1]:80' -> '::1'; None if it is no host."""
    try:
        name = urlsplit("//" + host_header).hostname
    except ValueError:
        return None
    return name or None


@dataclass(frozen=True)
class Access:
    """Who may use the server listening on `host`: the Host names and origins it accepts, and its token."""
    host: str = "127.0.0.1"
    allow_hosts: tuple[str, ...] = ()
    allow_origins: tuple[str, ...] = ()
    token: str | None = None

    def host_allowed(self, name: str | None) -> bool:
        if name is None:
            return False
        names = {"localhost", self.host.strip("[]").lower(), *(h.lower() for h in self.allow_hosts)}
        if name in names:
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False  # a name this server was not told about
        # An IP address cannot be rebound: the page that sent it is this server's own.
        return address.is_loopback or self.host in WILDCARDS or address == _ip(self.host)

    def origin_allowed(self, origin: str, scheme: str, host_header: str) -> bool:
        return origin in self.allow_origins or origin == f"{scheme}://{host_header}"

    def token_given(self, headers: dict, query: dict, cookie_name: str) -> str | None:
        """The token the request carries (query, Authorization: Bearer, or cookie), or None."""
        bearer = headers.get("authorization", "")
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header: no token from it
            cookies = SimpleCookie()
        for given in (query.get("token"), bearer[7:] if bearer.lower().startswith("bearer ") else None,
                      cookies[cookie_name].value if cookie_name in cookies else None):
            if given and hmac.compare_digest(given.encode(), self.token.encode()):
                return given
        return None


def _ip(host: str):
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def refusal(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Guard:
    """ASGI middleware: refuses a foreign Host (421), a change from another origin (403) and, where a
    token is set, a request without it (401), before the request reaches the app. The refused body is
    read and dropped first (up to DRAIN_BYTES): a client still sending it would otherwise meet a closed
    socket (a broken pipe) instead of the refusal."""

    def __init__(self, app, access: Access):
        self.app, self.access = app, access

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        response = self.check(scope)
        if response is not None:
            await drain(receive)
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)

    def check(self, scope) -> JSONResponse | RedirectResponse | None:
        access = self.access
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers", ())}
        host = headers.get("host", "")
        if not access.host_allowed(hostname_of(host)):
            return refusal(421, f"this server does not answer for the host {host[:80]!r}; open it at its own "
                                "address (or start it with --allowHost NAME)")
        origin = headers.get("origin")
        if scope["method"] not in SAFE_METHODS and origin is not None and \
                not access.origin_allowed(origin, scope.get("scheme", "http"), host):
            return refusal(403, f"requests from another site ({origin[:80]}) may not change anything here "
                                "(start the server with --allowOrigin ORIGIN to let one)")
        if access.token is None:
            return None
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        cookie = cookie_name(scope)
        if access.token_given(headers, query, cookie) is None:
            return refusal(401, "this server needs its token: open the address it printed at start (with "
                                "?token=...), or send the header 'Authorization: Bearer TOKEN'")
        if "token" in query and scope["method"] == "GET" and scope["path"] in ("/", "/docs"):
            # The page keeps the token in a cookie, and the address bar loses it.
            rest = urlencode([(k, v) for k, v in query.items() if k != "token"])
            redirect = RedirectResponse(scope["path"] + (f"?{rest}" if rest else ""), status_code=303)
            redirect.set_cookie(cookie, access.token, httponly=True, samesite="strict", path="/")
            return redirect
        return None


async def drain(receive) -> None:
    """Reads a request's body to its end (or DRAIN_BYTES), dropping it."""
    read = 0
    while read <= DRAIN_BYTES:
        message = await receive()
        read += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


def cookie_name(scope) -> str:
    """The token's cookie, one per port: browsers share cookies between the ports of one host."""
    server = scope.get("server") or ("", 0)
    return f"dcgan-token-{server[1] or 0}"
