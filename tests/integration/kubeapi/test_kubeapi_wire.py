"""The emulated API on the wire: `Expect: 100-continue`, and a write's answer sharing its bytes with the watch."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import aiohttp
from kubeapi_harness import DPU_API, dpu

from dpfd.sim.kubeapi import KubeApiServer

DPUS = f"/apis/{DPU_API}/namespaces/default/dpus"
MERGE = {"Content-Type": "application/merge-patch+json"}


async def test_expect_100_continue_is_answered_before_the_body(kubeapi: KubeApiServer) -> None:
    url = urlsplit(kubeapi.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}}).encode()
        writer.write(
            b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)  # sent before the body arrives
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        writer.write(body)
        final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert final.startswith(b"HTTP/1.1 201 Created")
    finally:
        writer.close()


async def test_write_answers_match_watch_events_and_dry_runs_answer_for_themselves(
    with_dpu_crd: KubeApiServer,
) -> None:
    base = with_dpu_crd.url + DPUS
    async with aiohttp.ClientSession() as http:
        async with http.post(base, json=dpu("a", "n1")) as resp:
            assert resp.status == 201
            created = await resp.read()
        rv = json.loads(created)["metadata"]["resourceVersion"]
        async with http.patch(f"{base}/a", data=json.dumps({"spec": {"nodeName": "n2"}}), headers=MERGE) as resp:
            patched = await resp.read()
        async with http.patch(
            f"{base}/a?dryRun=All", data=json.dumps({"spec": {"nodeName": "n3"}}), headers=MERGE
        ) as resp:
            dry = json.loads(await resp.read())
        async with http.patch(f"{base}/a", data=json.dumps({"spec": {"nodeName": "n2"}}), headers=MERGE) as resp:
            unchanged = json.loads(await resp.read())
        async with http.get(f"{base}?watch=true&resourceVersion={rv}&timeoutSeconds=1") as resp:
            event = await resp.content.readline()
    # The watch sends the very bytes the patch answered with.
    assert event == b'{"type":"MODIFIED","object":' + patched + b"}\n"
    assert json.loads(patched)["spec"] == {"nodeName": "n2", "bfb": "bf-bundle"}
    # A dry run answers with what would be stored, not with the last write's object; a no-op with the stored one.
    assert dry["spec"]["nodeName"] == "n3"
    assert unchanged == json.loads(patched)
