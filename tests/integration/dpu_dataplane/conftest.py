"""The private OVS fixture for these tests."""

from tests.ovs_fixture import ovs  # noqa: F401
