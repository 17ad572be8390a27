"""A local Ray session that vqtune starts is not open to the network: a server of its processes that listens on
an address other than loopback needs the session's token (Ray cannot hold its servers to loopback), and no token
is written to disk. A cluster's authentication is left as Ray set it up."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SESSION = """
import json, os, sys
from vqtune.tune import start_ray

ray = start_ray()
ray.get(ray.remote(lambda: os.getpid()).remote())  # a worker process, with its own server, as a trial has
print(json.dumps({"pid": os.getpid(), "gcs": ray.get_runtime_context().gcs_address}), flush=True)
sys.stdin.read()  # until the test is done
"""
# A client of the session's GCS, as anyone who reaches the machine could run one.
CLIENT = """
import sys
import ray._raylet

print(len(ray._raylet.GcsClient(address=sys.argv[1]).get_all_node_info(timeout=20)))
"""


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = {root}, [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address of /proc/net/tcp{,6}: little-endian 32-bit words."""
    raw = bytes.fromhex(hex_address)
    return ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))


def _listening(pids: set[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every TCP socket in LISTEN state that one of ``pids`` holds."""
    owners = {}
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    owners[target[8:-1]] = pid
        except OSError:  # ended meanwhile
            continue
    sockets = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in owners:
                address, port = local.split(":")
                sockets.append((owners[inode], str(_address(address)), int(port, 16)))
    return sockets


def _token(pids: set[int]) -> str:
    """The session's token, from the environment its driver gave the processes it started (the driver's own
    /proc environ shows what it started with, before it chose one)."""
    for pid in pids:
        try:
            items = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        for item in items:
            if item.startswith("RAY_AUTH_TOKEN="):
                return item.split("=", 1)[1]
    raise AssertionError("no process of the session has RAY_AUTH_TOKEN")


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


def _client(gcs: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLIENT, gcs], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")
def test_a_local_session_listens_on_loopback_only_or_asks_for_its_token(tmp_path):
    # a user's environment without any Ray setting, and a home of its own (to see what is written there)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    session = subprocess.Popen([sys.executable, "-c", SESSION], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    try:
        info = json.loads(session.stdout.readline())
        listening = _listening(_descendants(info["pid"]))
        assert listening, "no listening socket found: the session's processes were not looked at"
        exposed = [s for s in listening if not _loopback(s[1])]
        if exposed:  # Ray 2.60 binds the GCS, the raylet and the workers' servers to every interface
            refused = _client(info["gcs"], {**env, "RAY_AUTH_MODE": "disabled"})
            assert refused.returncode != 0 and "AuthenticationError" in refused.stderr, (exposed, refused.stdout)
            token = _token(_descendants(info["pid"]) - {info["pid"]})
            allowed = _client(info["gcs"], {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
            assert allowed.returncode == 0 and allowed.stdout.strip() == "1", allowed.stderr[-2000:]
    finally:
        session.stdin.close()
        session.wait(timeout=120)
    assert not (tmp_path / ".ray" / "auth_token").exists()  # the token lived in the session's environment only


@pytest.mark.parametrize("address, environment", [("auto", {}), (None, {"RAY_ADDRESS": "10.0.0.1:6379"})])
def test_a_cluster_keeps_rays_own_authentication(address, environment, monkeypatch):
    import ray

    from vqtune.tune import start_ray

    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    start_ray(address)
    assert [call["address"] for call in calls] == [address or environment["RAY_ADDRESS"]]
    assert not {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"} & set(os.environ)
