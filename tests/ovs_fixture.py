"""A private Open vSwitch for tests (dpfd/sim/ovs.py): one per test, about 0.1 s to start.

Make the fixture visible with an import in the test folder's conftest.py:

    from tests.ovs_fixture import ovs  # noqa: F401

    def test_x(ovs: PrivateOvs) -> None:  # in a test module
        ovs.vsctl("add-br", "br-sfc", "--", "set", "Bridge", "br-sfc", "datapath_type=netdev")

Skips the test (with the reason) when the OVS binaries are missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dpfd.sim.ovs import OvsError, PrivateOvs, missing_ovs

__all__ = ["OvsError", "PrivateOvs", "missing_ovs", "ovs"]


@pytest.fixture
def ovs() -> Iterator[PrivateOvs]:
    """A fresh private OVS for one test (skips when OVS is not installed)."""
    why = missing_ovs()
    if why:
        pytest.skip(why)
    with PrivateOvs() as instance:
        yield instance
