"""`vqtune dashboard` as a browser or another local process meets it: real servers (`python -m vqtune.cli
dashboard`) on free ports over a real SQLite study, spoken to over HTTP."""

from __future__ import annotations

import http.client
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from vqtune.cli import main
from vqtune.dashboard import READ_ONLY

REFUSED = "forbidden: open the URL with ?token=... that `vqtune dashboard` printed when it started\n"


@dataclass
class Served:
    storage: str
    line: str  # what the command printed
    port: int
    token: str
    log: Path  # its stderr: one line per request


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: str


def study_file(directory: Path) -> str:
    url = f"sqlite:///{directory / 'studies.db'}"
    study = optuna.create_study(study_name="kept", storage=url)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(trial, 0.5)
    return url


def dashboard(directory: Path, *args: str, env=None):
    """Start `vqtune dashboard` on a free port; yields once it has printed its URL; Ctrl-C stops it."""
    storage = study_file(directory)
    log = directory / "stderr.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "vqtune.cli", "dashboard", "--storage", storage,
                                    "--port", "0", *args], stdout=subprocess.PIPE, stderr=stderr, text=True,
                                   cwd=directory, env={**os.environ, **(env or {})})
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=60), f"no URL printed; stderr: {log.read_text()}"
        line = process.stdout.readline().strip()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=(\S+)", line)
        assert match, (line, log.read_text())
        yield Served(storage, line, int(match[1]), match[2], log)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert process.wait(timeout=20) == 130  # Ctrl-C: "vqtune: interrupted"
        finally:
            process.kill()
            process.stdout.close()


@pytest.fixture(scope="module")
def read_only(tmp_path_factory):
    yield from dashboard(tmp_path_factory.mktemp("read_only"))


@pytest.fixture(scope="module")
def writable(tmp_path_factory):
    yield from dashboard(tmp_path_factory.mktemp("writable"), "--allow-writes", "--allow-host", "Dash.Example",
                         env={"VQTUNE_DASHBOARD_TOKEN": "a-secret-from-the-environment"})


def call(served: Served, method: str, path: str, **headers: str) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        connection.request(method, path, headers={k.replace("_", "-"): v for k, v in headers.items()})
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read().decode())
    finally:
        connection.close()


def study_ids(served: Served) -> dict[str, int]:
    reply = call(served, "GET", f"/api/studies?token={served.token}")
    assert reply.status == 200, reply
    return {s["study_name"]: s["study_id"] for s in json.loads(reply.body)["study_summaries"]}


def test_without_the_token_nothing_is_served(read_only):
    for path in ("/", "/dashboard", "/api/meta", "/api/studies", "/api/studies/1", "/static/bundle.js"):
        reply = call(read_only, "GET", path)
        assert (reply.status, reply.body, reply.headers["Content-Type"]) == (403, REFUSED, "text/plain; charset=utf-8")
        assert "Set-Cookie" not in reply.headers
    wrong = "x" + read_only.token[1:]
    for path, headers in [(f"/api/studies?token={wrong}", {}), ("/api/studies?token=", {}),
                          ("/api/studies", {"Authorization": f"Token {wrong}"}),
                          ("/api/studies", {"Authorization": f"Bearer {read_only.token}"}),
                          ("/api/studies", {"Cookie": "vqtune-dashboard-000000000000=0"})]:
        assert (call(read_only, "GET", path, **headers).status, path, headers) == (403, path, headers)


def test_the_printed_url_opens_the_dashboard_and_its_cookie_keeps_it_open(read_only):
    assert read_only.line.startswith(f"optuna-dashboard: http://127.0.0.1:{read_only.port}/?token=")
    assert "read-only" in read_only.line and f"artifacts {read_only.log.parent / 'artifacts'}" in read_only.line
    assert len(read_only.token) >= 40  # secrets.token_urlsafe(32)

    opened = call(read_only, "GET", f"/?token={read_only.token}")  # what the browser does with the URL
    assert opened.status == 302 and opened.headers["Location"].endswith("/dashboard")
    cookie = opened.headers["Set-Cookie"]
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {part.strip() for part in cookie.split(";")}
    assert read_only.token not in cookie
    pair = cookie.split(";")[0]

    for headers in [{"Cookie": pair}, {"Authorization": f"Token {read_only.token}"}]:
        page = call(read_only, "GET", "/dashboard", **headers)
        assert page.status == 200 and "<html" in page.body.lower(), headers
        studies = call(read_only, "GET", "/api/studies", **headers)
        assert studies.status == 200 and [s["study_name"] for s in json.loads(studies.body)["study_summaries"]] == [
            "kept"]
        assert "Set-Cookie" not in studies.headers
    assert call(read_only, "GET", f"/api/studies/{study_ids(read_only)['kept']}", Cookie=pair).status == 200

    # the request log names each request, never the token
    deadline = time.monotonic() + 10
    while "GET /api/studies?token=***" not in read_only.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "GET /api/studies?token=***" in read_only.log.read_text()
    assert read_only.token not in read_only.log.read_text()


def test_a_foreign_host_is_refused_even_with_the_token(read_only):
    """A page whose own name was rebound to 127.0.0.1 still sends that name: DNS rebinding gets nowhere."""
    token = f"/api/studies?token={read_only.token}"
    for host in (f"rebound.example:{read_only.port}", "rebound.example", f"localhost.rebound.example:{read_only.port}",
                 f"evil@localhost:{read_only.port}", ""):
        reply = call(read_only, "GET", token, Host=host)
        assert (reply.status, host) == (403, host)
        assert reply.body.startswith(f"forbidden: Host {host!r} is not this dashboard's address")
        assert "--allow-host NAME" in reply.body and reply.body.count("\n") == 1
    for host in (f"localhost:{read_only.port}", f"LOCALHOST:{read_only.port}", "127.0.0.1:2222"):  # any port: tunnels
        assert (call(read_only, "GET", token, Host=host).status, host) == (200, host)


def test_without_allow_writes_nothing_is_changed_or_deleted(read_only):
    kept = study_ids(read_only)["kept"]
    authorized = {"Authorization": f"Token {read_only.token}"}
    for method, path in [("DELETE", f"/api/studies/{kept}"), ("POST", "/api/studies"),
                         ("POST", f"/api/studies/{kept}/rename"), ("PUT", f"/api/studies/{kept}/note"),
                         ("PATCH", f"/api/studies/{kept}")]:
        reply = call(read_only, method, f"{path}?token={read_only.token}")
        assert (reply.status, reply.body, method, path) == (403, READ_ONLY + "\n", method, path)
        assert call(read_only, method, path, **authorized).status == 403
    assert READ_ONLY == "read-only: restart with --allow-writes to change studies"
    assert optuna.get_all_study_names(read_only.storage) == ["kept"]
    assert study_ids(read_only) == {"kept": kept}


def test_with_allow_writes_a_delete_works(writable):
    assert writable.token == "a-secret-from-the-environment" and "writes allowed" in writable.line
    kept = study_ids(writable)["kept"]
    delete = f"/api/studies/{kept}"
    assert call(writable, "DELETE", delete).body == REFUSED  # still only with the token
    assert call(writable, "DELETE", f"{delete}?token={writable.token}", Host="rebound.example").status == 403
    from_elsewhere = call(writable, "DELETE", delete, Authorization=f"Token {writable.token}",
                          Origin=f"http://localhost:{writable.port + 1}")  # SameSite lets other ports' pages in
    assert from_elsewhere.status == 403 and "another origin" in from_elsewhere.body
    assert optuna.get_all_study_names(writable.storage) == ["kept"]

    # through a proxy named with --allow-host, from the dashboard's own page
    deleted = call(writable, "DELETE", delete, Authorization=f"Token {writable.token}", Host="dash.example",
                   Origin="https://dash.example")
    assert deleted.status == 204
    assert optuna.get_all_study_names(writable.storage) == []


def test_an_empty_token_or_a_busy_port_is_one_line(tmp_path, capsys):
    storage = study_file(tmp_path)
    assert main(["dashboard", "--storage", storage, "--token", " "]) == 2
    assert capsys.readouterr().err == ("vqtune: error: --token: empty; give a secret, or leave --token out for a "
                                       "random one each start\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["dashboard", "--storage", storage, "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vqtune: error: cannot listen on 127.0.0.1:{port}: ") and err.count("\n") == 1
    assert "give another --port" in err
