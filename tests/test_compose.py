"""docker-compose.yml validates offline (Debian's docker-compose; skipped where it is not installed)."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("docker-compose") is None,
                                reason="docker-compose not installed (Debian package docker-compose)")


def _config(env_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["docker-compose", "--env-file", str(env_file), "config"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_compose_file_validates_with_the_example_env():
    result = _config(ROOT / ".env.example")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == {"postgres", "dashboard", "ray-head", "ray-worker", "vqtune"}
    assert services["postgres"]["healthcheck"]["test"]
    dashboard = services["dashboard"]  # vqtune's own, behind a token, the password in its environment only
    assert dashboard["command"][0] == "dashboard" and "--artifact-dir=/artifacts" in dashboard["command"]
    assert "--allow-writes" not in dashboard["command"] and "VQTUNE_STORAGE" in dashboard["environment"]
    assert services["dashboard"]["ports"][0].startswith("127.0.0.1:")  # loopback of the host only
    worker = services["ray-worker"]
    assert worker["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    assert "container_name" not in worker and "ports" not in worker  # --scale needs both absent
    assert worker["shm_size"]
    assert "postgres-data" in config["volumes"]
    vqtune = services["vqtune"]  # the password reaches it through the environment, not its command line
    assert vqtune["environment"]["VQTUNE_STORAGE"].startswith("postgresql+psycopg2://vqtune:change-me@")
    assert not any("change-me" in part for part in vqtune["command"])
    for name in ("ray-head", "ray-worker", "vqtune"):  # Ray's servers listen on the network: tokens stay on
        environment = services[name]["environment"]
        assert environment["RAY_AUTH_MODE"] == "token" and environment["RAY_AUTH_TOKEN"] == "change-me-too", name


def test_a_missing_password_is_refused(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = _config(empty)
    assert result.returncode != 0 and "POSTGRES_PASSWORD" in result.stderr


def test_a_missing_ray_token_is_refused(tmp_path):
    env = tmp_path / "no-token.env"
    env.write_text("\n".join(line for line in (ROOT / ".env.example").read_text().splitlines()
                             if not line.startswith("RAY_AUTH_TOKEN=")))
    result = _config(env)
    assert result.returncode != 0 and "RAY_AUTH_TOKEN" in result.stderr
