from tests.ovs_fixture import ovs  # noqa: F401
