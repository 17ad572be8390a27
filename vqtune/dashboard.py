"""``vqtune dashboard``: optuna-dashboard on a study storage, with the trials' artifacts, behind a token.

optuna-dashboard itself has no authentication and no Host check, and its API deletes studies and their
artifacts (``DELETE /api/studies/<id>``). vqtune serves its WSGI app behind :class:`Guard`, which lets a request
through only if (1) its Host header names this server (a web page that rebinds its own DNS name to 127.0.0.1
still sends its own name), (2) it carries the token printed at start (query parameter, the cookie the first
such response sets, or ``Authorization: Token ...``), and (3) it only reads, unless started with
``--allow-writes``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import socket
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Iterable, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from vqtune.config import Storage
from vqtune.errors import DashboardError
from vqtune.study import artifact_store, default_artifact_dir, mask, open_storage

TOKEN_ENV = "VQTUNE_DASHBOARD_TOKEN"
MIN_TOKEN = 8  # characters: any local process may try tokens, and a shorter one falls to trying them all
READ_ONLY = "read-only: restart with --allow-writes to change studies"
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_HOST = re.compile(r"^(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<name>[^:\[\]@/\\\s]+))(?::\d{1,5})?$")


def serve(storage_url: str, host: str = "127.0.0.1", port: int = 8080, artifact_dir: Optional[Path] = None, *,
          token: Optional[str] = None, allowed_hosts: Iterable[str] = (), allow_writes: bool = False,
          announce=print) -> None:
    """Serve the dashboard until interrupted; binds to ``host`` (loopback unless told otherwise).

    ``token``: the access token; default ``$VQTUNE_DASHBOARD_TOKEN``, else a random one for this start.
    ``allowed_hosts``: names the Host header may give besides ``host``, localhost and 127.0.0.1.
    """
    import optuna_dashboard

    token = _token(token)
    storage = open_storage(Storage(url=storage_url), create=False)
    directory = Path(artifact_dir) if artifact_dir else default_artifact_dir(storage_url)
    app = Guard(optuna_dashboard.wsgi(storage, artifact_store=artifact_store(directory)), token,
                hosts=[host, "localhost", "127.0.0.1", *allowed_hosts], allow_writes=allow_writes)
    server = _listen(host, port, app)
    with server:
        url = f"http://{_netloc(host, server.server_port)}/?{urlencode({'token': token})}"
        writes = "writes allowed" if allow_writes else "read-only"
        announce(f"optuna-dashboard: {url}  (storage {mask(storage_url)}, artifacts {directory}, {writes})")
        server.serve_forever()


class Guard:
    """WSGI middleware: a request passes with the right Host, the token, and (unless writes are allowed) a
    method that only reads; any other gets 403 and one line of text."""

    def __init__(self, app, token: str, hosts: Iterable[str], allow_writes: bool = False):
        self.app = app
        self.token = token.encode()
        # The cookie holds a digest of the token, not the token, and is named per token: two dashboards on
        # one machine (cookies ignore the port) keep apart. Same token, same cookie: it outlives a restart.
        self.cookie_value = hmac.new(self.token, b"vqtune dashboard cookie", hashlib.sha256).hexdigest()
        self.cookie_name = "vqtune-dashboard-" + hashlib.sha256(self.cookie_value.encode()).hexdigest()[:12]
        self.hosts = {_bare(name) for name in hosts}
        self.allow_writes = allow_writes

    def __call__(self, environ, start_response):
        host = _host_name(environ.get("HTTP_HOST", ""))
        if host is None or host not in self.hosts:
            # The port is not compared: an SSH tunnel or a proxy may change it, and a rebinding page sends its
            # own name whatever the port.
            return _forbidden(start_response, f"forbidden: Host {environ.get('HTTP_HOST', '')!r} is not this "
                                              "dashboard's address; start it with --allow-host NAME to accept NAME")
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        by_query = any(self._is_token(value) for key, value in query if key == "token")
        if not (by_query or self._by_header(environ) or self._by_cookie(environ)):
            return _forbidden(start_response, "forbidden: open the URL with ?token=... that `vqtune dashboard` "
                                              "printed when it started")
        if environ.get("REQUEST_METHOD", "GET").upper() not in _SAFE_METHODS:
            if not self.allow_writes:
                return _forbidden(start_response, READ_ONLY)
            origin = environ.get("HTTP_ORIGIN")
            if origin and urlsplit(origin).netloc.lower() != environ.get("HTTP_HOST", "").lower():
                # SameSite cookies still go to other ports of localhost: a write must come from this page.
                return _forbidden(start_response, f"forbidden: a change sent from another origin ({origin})")
        if not by_query:
            return self.app(environ, start_response)
        environ = {**environ, "QUERY_STRING": urlencode([(k, v) for k, v in query if k != "token"])}
        cookie = f"{self.cookie_name}={self.cookie_value}; Path=/; HttpOnly; SameSite=Strict"

        def start_with_cookie(status, headers, exc_info=None):
            return start_response(status, [*headers, ("Set-Cookie", cookie)], exc_info)

        return self.app(environ, start_with_cookie)

    def _is_token(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.token)

    def _by_header(self, environ) -> bool:
        scheme, _, given = environ.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
        return scheme.lower() == "token" and self._is_token(given.strip())

    def _by_cookie(self, environ) -> bool:
        try:
            morsel = SimpleCookie(environ.get("HTTP_COOKIE", "")).get(self.cookie_name)
        except CookieError:
            return False
        return morsel is not None and hmac.compare_digest(morsel.value.encode(), self.cookie_value.encode())


def _token(given: Optional[str]) -> str:
    """The token to serve behind: ``given``, else ``$VQTUNE_DASHBOARD_TOKEN``, else a random one (an empty variable,
    which docker-compose.yml passes when none is set, counts as unset); a blank one, or one shorter than
    ``MIN_TOKEN``, is refused."""
    if given is None:
        from_env = os.environ.get(TOKEN_ENV)
        if not from_env:
            return secrets.token_urlsafe(32)
        return _unguessable(from_env, f"${TOKEN_ENV}", f"unset {TOKEN_ENV}")
    return _unguessable(given, "--token", "leave --token out")


def _unguessable(token: str, source: str, instead: str) -> str:
    if not token.strip():
        raise DashboardError(f"{source}: empty; give a secret, or {instead} for a random one each start")
    if len(token.strip()) < MIN_TOKEN:
        raise DashboardError(f"{source}: shorter than {MIN_TOKEN} characters, so easily guessed; give a longer "
                             f"secret, or {instead} for a random one each start")
    return token


def _listen(host: str, port: int, app) -> WSGIServer:
    server_class = _Server6 if ":" in host else WSGIServer
    try:
        return make_server(host, port, app, server_class, _Handler)
    except OSError as exc:
        raise DashboardError(f"cannot listen on {_netloc(host, port)}: {exc.strerror or exc}; "
                             "give another --port (or --host)") from None


class _Server6(WSGIServer):
    address_family = socket.AF_INET6


class _Handler(WSGIRequestHandler):
    """Logs each request as wsgiref does, with the token blanked out."""

    def log_message(self, format, *args):
        super().log_message("%s", re.sub(r"(token=)[^&\s\"]*", r"\1***", format % args))


def _forbidden(start_response, line: str):
    body = (line + "\n").encode()
    start_response("403 Forbidden", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                                     ("X-Content-Type-Options", "nosniff")])
    return [body]


def _host_name(header: str) -> Optional[str]:
    """The name a Host header gives, lower case and without port or brackets; None if it is not one."""
    match = _HOST.match(header.strip())
    return None if match is None else (match["ip6"] or match["name"]).lower()


def _bare(name: str) -> str:
    return name.strip().strip("[]").lower()


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
