#!/usr/bin/python3
"""One plain TCP flow, the baseline the WAN benchmark sets the clients beside.

usage: tcp_flow.py recv ADDR PORT          prints READY, then `BYTES SECONDS` when the sender ends
       tcp_flow.py send ADDR PORT SECONDS  sends for SECONDS
"""
import socket
import sys
import time


def main():
    role, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if role == "recv":
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((addr, port))
        server.listen(1)
        server.settimeout(60)
        print("READY", flush=True)
        conn, _ = server.accept()
        conn.settimeout(120)
        started, total = time.monotonic(), 0
        while True:
            data = conn.recv(1 << 20)
            if not data:
                break
            total += len(data)
        print(f"{total} {time.monotonic() - started:.3f}", flush=True)
    else:
        conn = socket.create_connection((addr, port), timeout=60)
        if len(sys.argv) > 5:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, int(sys.argv[5]))
        block = b"\x5a" * (1 << 20)
        until = time.monotonic() + float(sys.argv[4])
        while time.monotonic() < until:
            conn.sendall(block)
        conn.close()


if __name__ == "__main__":
    main()
