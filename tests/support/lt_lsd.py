"""A libtorrent peer that finds its peers by local service discovery (BEP 14) only.

usage: lt_lsd.py seed|leech TORRENT SAVE_PATH LISTEN_IP
Listens on LISTEN_IP (any port) with LSD on (announcing every second) and DHT, PEX and
trackers off. Prints `READY <port>` once added (a seed: once its data is checked), and a leecher
prints `DONE` once complete and verified. Exits when stdin closes, or after 120 s.
Run with /usr/bin/python3, inside the network namespace the test made (multicast needs an
interface with a route for 224.0.0.0/4).
"""
import os
import sys
import threading
import time


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../benches/swarm"))
import lt_client  # noqa: E402


def main():
    role, torrent, save_path, ip = sys.argv[1:5]
    session = lt_client.session(ip)
    session.apply_settings({"enable_lsd": True, "local_service_announce_interval": 1})
    handle = lt_client.add(session, torrent, save_path, lsd=True)
    lt_client.wait_checked(handle)
    if role == "seed" and not handle.status().is_seeding:
        sys.exit("libtorrent has not the whole payload to seed")
    print(f"READY {session.listen_port()}", flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    deadline = time.time() + 120
    while not stop.is_set() and time.time() < deadline:
        if role == "leech" and handle.status().is_seeding:
            print("DONE", flush=True)
            stop.wait(deadline - time.time())
            return
        time.sleep(0.05)


if __name__ == "__main__":
    main()
