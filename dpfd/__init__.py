"""dpf's node daemon and everything it shares with the controller and the simulator."""

import os

# gRPC's fork handlers (pthread_atfork) are for children that go on using gRPC without exec. Ours never do: every
# fork here is followed by exec (kubeadm, bash, ip, ipmitool). With the handlers on, a fork while gRPC's threads
# are busy can crash the child before its exec (SIGSEGV) or hang it. Read by gRPC when it loads, so set before
# any dpfd module imports grpc; a value the user set wins.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
