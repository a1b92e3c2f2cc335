"""Seed a torrent with libtorrent on loopback until stdin closes.

usage: lt_seed.py TORRENT SAVE_PATH [LISTEN_IP]
Prints `READY <port>` once libtorrent has checked the data and is seeding; exits when stdin
reaches EOF (so the test that started it can stop it by closing the pipe) or after 10 minutes.
Run with /usr/bin/python3: the bindings exist only for Debian's interpreter.
"""
import os
import sys
import threading
import time

# One source for the loopback session settings: the benchmark's libtorrent peer.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../benches/swarm"))
import lt_client  # noqa: E402


def main():
    torrent, save_path = sys.argv[1], sys.argv[2]
    ip = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    session = lt_client.session(ip)
    handle = lt_client.add(session, torrent, save_path)
    deadline = time.time() + 60
    while not handle.status().is_seeding:
        if time.time() > deadline:
            sys.exit("libtorrent did not start seeding within 60 s")
        time.sleep(0.05)
    print(f"READY {session.listen_port()}", flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait(600)


if __name__ == "__main__":
    main()
