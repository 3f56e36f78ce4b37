"""The emulated API as dpf-sim runs it: a process with a kubeconfig, a state directory, clean shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import aiohttp
import yaml
from kubeapi_harness import DPU_API, DPU_CRD, AcceptAll, dpu

from dpfd.sim.kubeapi import KubeApiServer
from dpfd.sim.ports import free_port
from tests.waiting import eventually


async def test_module_entry_point_serves_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    kubeconfig = tmp_path / "host.kubeconfig"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dpfd.sim.kubeapi", "--port", str(port), "--kubeconfig", str(kubeconfig),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).parents[3],
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        url = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        assert url == f"http://127.0.0.1:{port}"
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["clusters"][0]["cluster"]["server"] == url
        assert config["contexts"][0]["context"]["namespace"] == "default"
        async with aiohttp.ClientSession() as http, http.get(f"{url}/version") as resp:
            assert (await resp.json())["gitVersion"].startswith("v1.32")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 20)
    assert code == 0


async def test_state_dir_snapshot_survives_a_restart(tmp_path: Path) -> None:
    first = KubeApiServer(state_dir=tmp_path, validation=AcceptAll())
    await first.start()
    await first.register_crds([DPU_CRD])
    await first.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lab"}})
    made = await first.apply_object({"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "c", "namespace": "lab"}, "data": {"k": "v"}})  # fmt: skip
    rv = first.store.rv
    await first.stop()

    second = KubeApiServer(state_dir=tmp_path, validation=AcceptAll())
    url = await second.start()
    try:
        kept = second.get_object("v1", "ConfigMap", "c", namespace="lab")
        assert kept == made
        assert second.objects(DPU_API, "DPU") == []  # the CRD came back, so its kind is served
        after = await second.apply_object(dpu("d", "host-1"))
        assert int(after["metadata"]["resourceVersion"]) > rv
        async with aiohttp.ClientSession() as http:
            old_watch = f"{url}/api/v1/namespaces/lab/configmaps?watch=true&resourceVersion={rv - 1}"
            async with http.get(old_watch) as resp:  # no events survive a restart
                assert json.loads(await resp.content.readline())["object"]["code"] == 410
    finally:
        await second.stop()


async def test_watches_end_on_disconnect_and_on_stop(kubeapi: KubeApiServer) -> None:
    url = f"{kubeapi.url}/api/v1/namespaces/default/configmaps?watch=true"
    async with aiohttp.ClientSession() as http:
        resp = await http.get(url)
        await eventually(lambda: kubeapi.store.watcher_count() == 1, what="the watch to register")
        resp.close()
        await eventually(lambda: kubeapi.store.watcher_count() == 0, what="the watch to go with its client")

        resp = await http.get(url)
        await eventually(lambda: kubeapi.store.watcher_count() == 1, what="the second watch to register")
        await asyncio.wait_for(kubeapi.stop(), 5)  # an open watch does not hold the server up
        assert await asyncio.wait_for(resp.content.read(), 5) == b""
