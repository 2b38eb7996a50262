"""Fixtures: a private host-local bus per test (a pyMbus-style configuration
file with fresh keys on a free port, as $MBUS), an `rmbus join` process as
the Rust entity, and loops that wait for an event with a deadline."""

from __future__ import annotations

import base64
import json
import os
import queue
import secrets
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional

import pytest

DEADLINE = 20.0
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def bus_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pyMbus's configuration format (no CONFIG_VERSION, spaces after the
    commas), fresh keys, a free port, HOSTLOCAL."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    path = tmp_path / ".mbus"
    path.write_text(
        "[MBUS]\n# multicast address for the Mbus communication\nADDRESS=239.255.255.247\n"
        f"PORT={port}\nENCRYPTIONKEY=(NOENCR, )\nHASHKEY=(HMAC-MD5-96, {key})\n"
        "SCOPE=HOSTLOCAL\nSEND_UNICAST=no\n")
    path.chmod(0o600)
    monkeypatch.setenv("MBUS", str(path))
    monkeypatch.setenv("HOME", str(tmp_path))
    return path


def rmbus_bin() -> str:
    """The rmbus command scripts/test built (RMBUS_BIN), or one on PATH."""
    found = os.environ.get("RMBUS_BIN") or shutil.which("rmbus")
    if not found:
        candidate = REPO / "target" / "debug" / "rmbus"
        found = str(candidate) if candidate.exists() else None
    if not found:
        pytest.skip("no rmbus command (cargo build; scripts/test sets RMBUS_BIN)")
    return found


def pump(entities: Iterable[Any], done: Callable[[], bool], what: str,
         within: float = DEADLINE) -> None:
    """Steps each entity until `done()` holds; fails after `within` seconds."""
    entities = list(entities)
    until = time.monotonic() + within
    while not done():
        assert time.monotonic() < until, f"no {what} within {within} s"
        for e in entities:
            e.step(0.02)


class Join:
    """`rmbus join --json` as the Rust entity: actions in, events out."""

    def __init__(self, address: str) -> None:
        self.proc = subprocess.Popen(
            [rmbus_bin(), "join", "--json", "--address", address],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: "queue.Queue[Dict[str, Any]]" = queue.Queue()
        self.seen: List[Dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.address = self.expect(lambda e: e["event"] == "ready", "ready")["address"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                pass

    def say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, pred: Callable[[Dict[str, Any]], bool], what: str,
               pump_with: Optional[List[Any]] = None) -> Dict[str, Any]:
        """The first event (seen or arriving) that `pred` accepts, stepping
        `pump_with` meanwhile."""
        for e in self.seen:
            if pred(e):
                return e
        until = time.monotonic() + DEADLINE
        while time.monotonic() < until:
            for ent in pump_with or []:
                ent.step(0.02)
            try:
                e = self.lines.get(timeout=0.02 if pump_with else 0.2)
            except queue.Empty:
                continue
            self.seen.append(e)
            if pred(e):
                return e
        raise AssertionError(f"no {what} from rmbus join within {DEADLINE} s; saw {self.seen}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def join(bus_config: Path):
    """Starts `rmbus join` entities on the test's bus; all end with the test."""
    started: List[Join] = []

    def start(address: str = "(app:rust module:join)") -> Join:
        j = Join(address)
        started.append(j)
        return j

    yield start
    for j in started:
        j.close()
