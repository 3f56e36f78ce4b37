"""`kubectl apply` of an invalid DPF manifest is refused by the emulated API with exactly the problems
`dpf-controller validate` prints for the same file, using the real models and the generated CRDs."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dpfd.api.crds import generate_crds
from dpfd.sim.kubeapi import KubeApiServer
from tests.integration.kubeapi.conftest import Kubectl

BAD = """\
apiVersion: provisioning.dpu.nvidia.com/v1alpha1
kind: DPUSet
metadata:
  name: ds
  namespace: default
spec:
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0%
  dpuTemplate:
    spec:
      dpuFlavor: flavor
      bfb:
        name: bf-bundle
      nodeEffect:
        taint: {key: a, value: b, effect: NoSchedule}
        noEffect: true
"""


@pytest.fixture
async def kubeapi() -> AsyncIterator[KubeApiServer]:
    server = KubeApiServer()  # the real validation: dpfd.api.validation
    await server.start()
    await server.register_crds(generate_crds())
    yield server
    await server.stop()


async def test_kubectl_apply_is_refused_with_the_lines_validate_prints(
    kubeapi: KubeApiServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(BAD)

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.main", "validate", "-f", str(manifest),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 1
    # validate prefixes each problem with file:line; the API server cannot know those.
    problems = [line.split(": ", 1)[1] for line in out.decode().splitlines()]
    assert len(problems) == 2, problems
    assert any("spec.strategy.rollingUpdate.maxUnavailable" in p for p in problems)
    assert any("spec.dpuTemplate.spec.nodeEffect" in p for p in problems)

    applied = await kubectl("apply", "-f", str(manifest), check=False)
    assert applied.rc != 0
    for problem in problems:
        assert problem in applied.err, f"{problem!r} not in kubectl's output:\n{applied.err}"
    assert kubeapi.objects("provisioning.dpu.nvidia.com/v1alpha1", "DPUSet") == []
