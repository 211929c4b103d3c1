"""The Docker entrypoint shares one identity between replicas (issue 18, shared identity).

The script runs here as the container would run it (``sh docker/entrypoint.sh
CMD``), with the image's paths replaced through the environment: the
configuration of ``docker/config/332``, a secrets directory and a
certificate volume of the test's own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    etc = tmp_path / "etc"
    if not etc.exists():
        shutil.copytree(DOCKER / "config" / "332", etc / "332")
        shutil.copy(DOCKER / "config" / "authorities.yaml", etc / "authorities.yaml")
        (tmp_path / "certs").mkdir()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("CAFGW_", "LA_"))}
    return {
        **inherited,
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        "LA_CODE": "332",
        "CAFGW_CONFIG_DIR": str(etc / "332"),
        "CAFGW_SECRETS_DIR": str(tmp_path / "secrets"),
        "CERTS_DIR": str(tmp_path / "certs"),
        **extra,
    }


def _start(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["sh", str(DOCKER / "entrypoint.sh"), "sh", "-c", 'cat "$CERTS_DIR/332.pem"'],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_replica_never_makes_a_key_of_its_own_and_says_where_it_looked(
    tmp_path: Path,
) -> None:
    started = _start(_environment(tmp_path))
    out, err = started.communicate(timeout=50)
    assert started.returncode != 0, out
    assert f"no certificate for 332 in {tmp_path / 'secrets' / 'keys' / '332'}" in err
    assert not (tmp_path / "secrets" / "keys" / "332" / "key.pem").exists()
    assert not (tmp_path / "certs" / "332.pem").exists()


def test_replicas_starting_together_make_one_key_and_publish_one_certificate(
    tmp_path: Path,
) -> None:
    env = _environment(tmp_path, LA_MAKE_KEY="yes")
    replicas = [_start(env) for _ in range(2)]
    published = []
    for replica in replicas:
        out, err = replica.communicate(timeout=50)
        assert replica.returncode == 0, err
        published.append(out)
    cert = (tmp_path / "secrets" / "keys" / "332" / "cert.pem").read_text(encoding="ascii")
    assert published == [cert] * 2
    assert (tmp_path / "certs" / "332.pem").read_text(encoding="ascii") == cert
    key = tmp_path / "secrets" / "keys" / "332" / "key.pem"
    made = key.read_bytes()

    # A replica given the same directory later, without LA_MAKE_KEY, signs with that key.
    later = _start(_environment(tmp_path))
    out, err = later.communicate(timeout=50)
    assert later.returncode == 0, err
    assert out == cert
    assert key.read_bytes() == made
