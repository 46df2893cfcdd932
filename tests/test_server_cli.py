"""``tiermem serve``: it starts as a process on a free loopback port and answers, and it refuses to
listen beyond loopback without tokens (the embedded engine: no test Redis is used)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from memory import AgentMemoryAPI, MemoryConfig
from memory.cli import main

REPO = Path(__file__).resolve().parent.parent


def test_tiermem_serve_answers_and_stops(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    env.pop("TIERMEM_TOKENS", None)
    command = [sys.executable, "-m", "memory.cli", "serve", "--port", "0", "--redis-url", "",
               "--data-dir", str(tmp_path / "data"), "--prefix", "served"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        port = None
        for line in process.stderr:
            if found := re.search(r"running on http://127\.0\.0\.1:(\d+)", line):
                port = int(found.group(1))
                break
        assert port is not None, "the server never said where it listens"
        assert httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=10).json() == {"status": "ok"}
        stored = httpx.post(f"http://127.0.0.1:{port}/v1/agents/a/memories", timeout=10,
                            json={"memory_type": "state", "data": {"x": 1}, "step_number": 1})
        assert stored.status_code == 201
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    with AgentMemoryAPI(MemoryConfig(redis_url="", data_dir=str(tmp_path / "data"), key_prefix="served")) as engine:
        assert [m["contents"] for m in engine.retrieve_by_time_range("a", 0, 10)] == [{"x": 1}]  # closed, not killed


def test_tiermem_serve_refuses_to_listen_beyond_loopback_without_tokens(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TIERMEM_TOKENS", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tiermem: error: refusing to listen on '0.0.0.0' without tokens")
    assert not (tmp_path / "ltm.sqlite").exists()  # refused before opening anything
