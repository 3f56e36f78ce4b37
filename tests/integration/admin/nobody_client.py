"""Run as another user (stdlib only: the test's virtualenv may be out of that user's reach), this stands in for an
unprivileged caller of the admin socket.

  nobody_client.py probe ADMIN_SOCKET          connect once; print "connected" or the errno name
  nobody_client.py relay ADMIN_SOCKET LISTEN   listen on LISTEN; relay each connection to ADMIN_SOCKET, so the
                                               admin server sees this process's credentials; print "ready"
"""

from __future__ import annotations

import errno
import socket
import sys
import threading


def probe(admin: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(admin)
        except OSError as e:
            print(errno.errorcode.get(e.errno or 0, str(e)), flush=True)
            return
    print("connected", flush=True)


def pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def relay(admin: str, listen: str) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(listen)
    server.listen()
    print("ready", flush=True)
    while True:
        client, _ = server.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(admin)
        except OSError:
            client.close()
            upstream.close()
            continue
        threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()


if __name__ == "__main__":
    if sys.argv[1] == "probe":
        probe(sys.argv[2])
    else:
        relay(sys.argv[2], sys.argv[3])
