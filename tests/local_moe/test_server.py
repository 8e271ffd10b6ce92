"""The standalone OpenAI-compatible server: in-process over ASGI, and once as a real process via the CLI
spoken to with the openai SDK."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from local_moe.engine import Engine
from local_moe.loader import load_model
from local_moe.server import create_app
from local_moe.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
CHAT = {
    "model": "tiny",
    "messages": [{"role": "user", "content": "hello"}],
    "temperature": 0,
    "max_tokens": 8,
    "ignore_eos": True,
}


@pytest.fixture(scope="module")
async def client(tiny_checkpoint):
    engine = Engine(load_model(tiny_checkpoint), Tokenizer(tiny_checkpoint), max_batch=2, max_seq=256)
    transport = httpx.ASGITransport(app=create_app(engine, "tiny"))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c
    engine.close()


async def test_models(client):
    r = await client.get("/v1/models")
    assert r.status_code == 200 and r.json()["data"][0]["id"] == "tiny"


async def test_chat_non_stream_is_greedy_and_deterministic(client):
    a = (await client.post("/v1/chat/completions", json=CHAT)).json()
    b = (await client.post("/v1/chat/completions", json=CHAT)).json()
    assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]
    assert a["usage"]["completion_tokens"] == 8


async def test_chat_sse_stream(client):
    whole = (await client.post("/v1/chat/completions", json=CHAT)).json()["choices"][0]["message"]["content"]
    body = CHAT | {"stream": True, "stream_options": {"include_usage": True}}
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line async for line in r.aiter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == whole
    assert chunks[-1]["usage"]["completion_tokens"] == 8


async def test_completions_and_errors(client):
    r = await client.post(
        "/v1/completions", json={"prompt": "the quick", "max_tokens": 4, "temperature": 0, "ignore_eos": True}
    )
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 4
    r = await client.post("/v1/chat/completions", content=b"{nope")
    assert r.status_code == 400 and "error" in r.json()
    r = await client.post("/v1/chat/completions", json=CHAT | {"model": "other"})
    assert r.status_code == 404
    r = await client.get("/v1/bulkhead/moe/experts")
    assert r.status_code == 200 and r.json()["tokens"] > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serve_speaks_openai_sdk(tiny_checkpoint):
    openai = pytest.importorskip("openai")
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local_moe.cli",
            "serve",
            "--model",
            str(tiny_checkpoint),
            "--port",
            str(port),
            "--name",
            "tiny",
            "--max-seq",
            "256",
        ],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        sdk = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        assert [m.id for m in sdk.models.list().data] == ["tiny"]
        reply = sdk.chat.completions.create(
            model="tiny",
            messages=CHAT["messages"],
            temperature=0,
            max_tokens=6,
            extra_body={"ignore_eos": True},
        )
        assert reply.usage.completion_tokens == 6
        streamed = sdk.chat.completions.create(
            model="tiny",
            messages=CHAT["messages"],
            temperature=0,
            max_tokens=6,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        assert text == reply.choices[0].message.content
    finally:
        proc.terminate()
        proc.wait(30)
