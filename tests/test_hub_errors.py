"""Hub download failures: one request, a few seconds, one actionable line (no retry loop)."""
from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest


class _Failing(http.server.BaseHTTPRequestHandler):
    """Answers every request with HTTP 500 and counts them."""

    requests: list[str] = []

    def _fail(self) -> None:
        type(self).requests.append(f"{self.command} {self.path}")
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET = _fail

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def failing_hub():
    _Failing.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Failing.requests
    server.shutdown()
    server.server_close()


@pytest.fixture
def refusing_hub() -> str:
    with socket.socket() as s:  # a port nobody listens on: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


FETCH = textwrap.dedent("""
    import sys, time
    from vidtok_bench.errors import CheckpointError
    from vidtok_bench.hub import fetch_checkpoint
    t = time.monotonic()
    try:
        print("PATH", fetch_checkpoint("checkpoints/vidtok_kl_causal_488_4chn.ckpt"))
    except CheckpointError as exc:
        print("ERROR", exc)
    print("SECONDS", time.monotonic() - t)
""")


def _fetch_in_subprocess(tmp_path: Path, **env: str) -> str:
    """fetch_checkpoint in a fresh process (huggingface_hub reads HF_ENDPOINT etc. once, at import).

    Asserts it took under 5 s and logged no retries; returns the error line or "PATH <path>".
    """
    full = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_CACHE=str(tmp_path / "hf" / "hub"),
                HF_HUB_DISABLE_TELEMETRY="1", **env)
    proc = subprocess.run([sys.executable, "-c", FETCH], env=full, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Retrying" not in proc.stderr, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())
    assert float(lines["SECONDS"]) < 5  # huggingface_hub alone backs off for ~25 s
    return lines.get("ERROR") or "PATH " + lines["PATH"]


def _assert_actionable(msg: str) -> None:
    assert "\n" not in msg
    for part in ("vidtok_kl_causal_488_4chn.ckpt", "microsoft/VidTok",
                 "`hf download microsoft/VidTok checkpoints/vidtok_kl_causal_488_4chn.ckpt`", "tokenizer.checkpoint=PATH"):
        assert part in msg, msg
    assert "huggingface-cli" not in msg


def test_hub_erroring_gets_one_request_and_a_fast_clear_error(tmp_path, failing_hub):
    endpoint, requests = failing_hub
    msg = _fetch_in_subprocess(tmp_path, HF_ENDPOINT=endpoint, HF_HUB_OFFLINE="0")
    _assert_actionable(msg)
    assert "the hub answered HTTP 500 and it is not in the local cache" in msg
    assert len(requests) == 1, requests  # huggingface_hub alone retries 5 times with backoff


def test_hub_refusing_connections_fails_fast(tmp_path, refusing_hub):
    msg = _fetch_in_subprocess(tmp_path, HF_ENDPOINT=refusing_hub, HF_HUB_OFFLINE="0")
    _assert_actionable(msg)
    assert f"the hub at {refusing_hub} cannot be reached (ConnectError" in msg


def test_hub_offline_env_needs_no_network(tmp_path, refusing_hub):
    msg = _fetch_in_subprocess(tmp_path, HF_ENDPOINT=refusing_hub, HF_HUB_OFFLINE="1")
    _assert_actionable(msg)
    assert "HF_HUB_OFFLINE is set and it is not in the local cache" in msg


def test_unreachable_hub_falls_back_to_the_cache(tmp_path, failing_hub):
    endpoint, requests = failing_hub
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--microsoft--VidTok"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    target = repo / "snapshots" / commit / "checkpoints" / "vidtok_kl_causal_488_4chn.ckpt"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"cached")
    assert _fetch_in_subprocess(tmp_path, HF_ENDPOINT=endpoint, HF_HUB_OFFLINE="0") == f"PATH {target}"
    assert len(requests) == 1


DIFFUSERS_LOAD = textwrap.dedent("""
    import time, torch
    from vidtok_bench import create_tokenizer
    from vidtok_bench.errors import CheckpointError
    t = time.monotonic()
    try:
        create_tokenizer("cogvideox").encode(torch.zeros(1, 3, 9, 32, 32))
    except CheckpointError as exc:
        print("ERROR", exc)
    print("SECONDS", time.monotonic() - t)
""")


def test_diffusers_vae_with_an_erroring_hub_is_one_request_and_one_quiet_line(tmp_path, failing_hub):
    """A hub-id VAE is decided by one request as VidTok checkpoints are (diffusers' own loader retried for ~25 s
    per file), and loading prints nothing besides the error (no accelerate advice, no deprecation warning)."""
    endpoint, requests = failing_hub
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_CACHE=str(tmp_path / "hf" / "hub"),
               HF_HUB_DISABLE_TELEMETRY="1", HF_ENDPOINT=endpoint, HF_HUB_OFFLINE="0")
    proc = subprocess.run([sys.executable, "-c", DIFFUSERS_LOAD], env=env, capture_output=True, text=True, timeout=120)
    lines = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
    assert float(lines["SECONDS"]) < 10 and len(requests) == 1, requests
    msg = lines["ERROR"]
    assert "\n" not in msg and "the hub answered HTTP 500" in msg
    assert "THUDM/CogVideoX-2b" in msg and "tokenizer.pretrained=" in msg
