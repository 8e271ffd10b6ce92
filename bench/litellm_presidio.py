"""Issue 25's comparison system: an OpenAI-compatible proxy that does what LiteLLM's proxy does with
its Presidio guardrail in `pre_call` mode (`litellm/proxy/guardrails/guardrail_hooks/presidio.py`):
every message's text through Presidio's analyzer and anonymizer, then `litellm.acompletion` to
the upstream, streamed or whole.

It is an equivalent, not LiteLLM's proxy (which needs `litellm[proxy]`, not a project dependency),
and it errs in the baseline's favour, so a ratio against it understates Bulkhead's lead:
- Presidio runs in this process; the guardrail posts to a Presidio server over HTTP (/analyze,
  then /anonymize), paying JSON and a second process per message;
- no virtual-key lookup, spend tracking or callbacks, which the proxy runs on every request;
- Presidio reads with the project's small spaCy model (its server's default is the large one).

    python bench/litellm_presidio.py --port 8100 --upstream http://127.0.0.1:8000/v1

`bench/overhead.py --varied --baseline` starts it pinned to the gateway's core and runs the same
scenarios against it in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
from presidio_anonymizer import AnonymizerEngine  # noqa: E402

from bench.pii import vanilla_presidio  # noqa: E402


def build_app(upstream: str) -> Starlette:
    analyzer = vanilla_presidio()
    anonymizer = AnonymizerEngine()
    analyzer.analyze("warm up John Smith", language="en")

    def mask(text: str) -> str:
        # the guardrail's default: each detected span replaced by <ENTITY_TYPE>
        found = analyzer.analyze(text, language="en")
        return anonymizer.anonymize(text=text, analyzer_results=found).text if found else text

    async def chat(request: Request) -> Response:
        body = orjson.loads(await request.body())
        messages = body.get("messages") or []
        for m in messages:
            if isinstance(m.get("content"), str):
                # the guardrail awaits a Presidio server; a thread is this process's equivalent
                m["content"] = await asyncio.to_thread(mask, m["content"])
        kwargs = {"model": "openai/" + str(body.get("model", "echo")), "messages": messages,
                  "api_base": upstream, "api_key": "unused"}
        if body.get("stream"):
            stream = await litellm.acompletion(**kwargs, stream=True)

            async def events():
                async for chunk in stream:
                    yield b"data: " + chunk.model_dump_json(exclude_none=True).encode() + b"\n\n"
                yield b"data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        answer = await litellm.acompletion(**kwargs)
        return JSONResponse(answer.model_dump(exclude_none=True))

    async def ready(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/readyz", ready)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="the OpenAI-compatible base URL, ending in /v1")
    args = ap.parse_args()
    uvicorn.run(build_app(args.upstream), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
