"""`dpf-controller validate` and `dpf-controller crds`, run end to end as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from dpfd.api.crds import crd_files

REPO = Path(__file__).resolve().parents[3]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller.main", *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


BROKEN = """\
apiVersion: v1
kind: Node
metadata:
  name: worker-1
---
apiVersion: provisioning.dpu.nvidia.com/v1alpha1
kind: BFB
metadata:
  name: bf-bundle
  namespace: dpf-operator-system
spec:
  url: ftp://example.com/bf-bundle.bfb
---
apiVersion: provisioning.dpu.nvidia.com/v1alpha1
kind: DPUSet
metadata:
  name: dpuset
  namespace: dpf-operator-system
spec:
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: "0"
  dpuTemplate:
    spec:
      bfb:
        name: bf-bundle
      dpuFlavor: hbn
      nodeEffect:
        noEffect: true
        drian: {}
"""


def test_valid_manifests_exit_0(tmp_path: Path) -> None:
    result = run("validate", "-f", "docs/examples", "-f", "tests/unit/api/manifests")
    assert (result.returncode, result.stdout) == (0, ""), result.stderr


def test_problems_exit_1_with_one_line_each(tmp_path: Path) -> None:
    manifest = tmp_path / "broken.yaml"
    manifest.write_text(BROKEN)
    result = run("validate", "-f", str(manifest))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{manifest}:12: BFB dpf-operator-system/bf-bundle: spec.url: "
        "Invalid value: \"ftp://example.com/bf-bundle.bfb\": should match '^(http|https)://.+\\.bfb$'",
        f"{manifest}:23: DPUSet dpf-operator-system/dpuset: spec.strategy.rollingUpdate.maxUnavailable: "
        'must be > 0 and <= 100%, got "0"',
        f"{manifest}:31: DPUSet dpf-operator-system/dpuset: spec.dpuTemplate.spec.nodeEffect: "
        'unknown field "drian" (rejected by strict field validation)',
    ]
    assert "3 problem(s) found" in result.stderr


def test_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: provisioning.dpu.nvidia.com/v1alpha1\n"
        "kind: DPUFlavor\n"
        "metadata:\n"
        "  name: f\n"
        "spec:\n"
        "  grub:\n"
        "    kernelParameters: [console=hvc0\n"
        "  sysctl: {}\n"
    )
    result = run("validate", "-f", str(manifest))
    assert result.returncode == 1
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"{manifest}:8: YAML syntax error: while parsing a flow sequence"), line


def test_directories_recurse_and_stdin_is_read(tmp_path: Path) -> None:
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "x.yml").write_text(BROKEN)
    (tmp_path / "notes.txt").write_text("not a manifest: ignored")
    result = run("validate", "-f", str(tmp_path))
    assert result.returncode == 1 and len(result.stdout.splitlines()) == 3
    assert all(line.startswith(f"{tmp_path}/nested/x.yml:") for line in result.stdout.splitlines())
    result = run("validate", "-f", "-", stdin=BROKEN)
    assert result.returncode == 1 and result.stdout.startswith("<stdin>:12: BFB dpf-operator-system/bf-bundle:")


def test_unknown_dpf_kind_and_non_objects(tmp_path: Path) -> None:
    result = run(
        "validate",
        "-f",
        "-",
        stdin="apiVersion: svc.dpu.nvidia.com/v1alpha1\nkind: DPUVPC\nmetadata: {name: v}\n---\n- a list\n",
    )
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        '<stdin>:2: DPUVPC v: kind: no kind "DPUVPC" in version "svc.dpu.nvidia.com/v1alpha1" (kinds: '
        "DPUDeployment, DPUService, DPUServiceChain, DPUServiceConfiguration, DPUServiceCredentialRequest, "
        "DPUServiceIPAM, DPUServiceInterface, DPUServiceTemplate, ServiceChain, ServiceChainSet, "
        "ServiceInterface, ServiceInterfaceSet)",
        "<stdin>:5: not a Kubernetes object: expected a mapping with apiVersion and kind",
    ]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = run("validate", "-f", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "no such file or directory" in missing.stderr
    assert run("validate").returncode == 2
    unreadable = tmp_path / "latin1.yaml"
    unreadable.write_bytes(b"kind: \xff\xfe\n")
    result = run("validate", "-f", str(unreadable))
    assert result.returncode == 2 and "cannot read" in result.stderr


def test_crds_command(tmp_path: Path) -> None:
    printed = run("crds")
    assert printed.returncode == 0
    docs = list(yaml.safe_load_all(printed.stdout))
    assert len(docs) == 18 and all(d["kind"] == "CustomResourceDefinition" for d in docs)
    out = tmp_path / "crds"
    assert run("crds", "--out-dir", str(out)).returncode == 0
    assert {p.name: p.read_text() for p in out.iterdir()} == crd_files()
