"""Two gateway processes sharing one database and one Redis behave as one gateway: a key's
requests-per-minute limit counts across both."""

from __future__ import annotations

import httpx

from tests.conftest import start_gateway


def test_rpm_limit_holds_across_two_replicas(standin, tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    policy = (f"backends:\n  - {{name: echo, adapter: openai, model: echo, api_base: '{standin.base_url}'}}\n"
              "limits: {rpm_per_key: 4}\npii: {enabled: false}\nrisk: {embeddings: {enabled: false}}\n")
    replicas = []
    try:
        for i in range(2):
            replicas.append(start_gateway(tmp_path / f"r{i}", url, standin, redis=True, policy=policy))
        first = replicas[0]
        first.cli("tenants", "create", "shared")
        key = first.new_key("shared", "app")
        body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
        statuses = [httpx.post(replicas[i % 2].base_url + "/v1/chat/completions", json=body,
                               headers={"authorization": f"Bearer {key}"}).status_code for i in range(6)]
        assert statuses[:4] == [200] * 4 and statuses[4:] == [429, 429]
        # revoking on one replica's database takes effect on the other at once
        key_id = next(line.split("\t")[0] for line in first.cli("keys", "list", "--tenant", "shared").splitlines()
                      if "\tapp\t" in line)
        first.cli("keys", "revoke", key_id)
        r = httpx.get(replicas[1].base_url + "/v1/models", headers={"authorization": f"Bearer {key}"})
        assert r.status_code == 401
    finally:
        for gw in replicas:
            assert gw.stop() == 0
