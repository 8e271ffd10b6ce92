"""`/readyz` stays 503 while the models load, so a load balancer sends no request to a cold replica."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from gateway.db import create_engine
from gateway.state import GatewayState


async def test_not_ready_until_the_warm_up_has_finished(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ready.db'}")
    release = threading.Event()
    loading = threading.Thread(target=release.wait, daemon=True)
    loading.start()
    gw = SimpleNamespace(engine=engine, redis=None, audit=SimpleNamespace(accepting=True, healthy=True),
                         draining=False, extras={"warm_up": loading})
    try:
        assert await GatewayState.readiness(gw) == {"database": "ok", "models": "loading"}
        release.set()
        loading.join(5)
        assert await GatewayState.readiness(gw) == {"database": "ok"}
    finally:
        release.set()
        await engine.dispose()
