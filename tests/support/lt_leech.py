"""Download a torrent with libtorrent on loopback, from the given peers.

usage: lt_leech.py TORRENT|MAGNET SAVE_PATH [HOST:PORT ...]
Prints `READY <port>` once the torrent is added (so peers may also dial it), connects to each
HOST:PORT, prints `DONE` and exits 0 when the download is complete and verified. Exits 1 after
120 s without completing, or when stdin closes. Run with /usr/bin/python3.
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
    peers = [(p.rsplit(":", 1)[0], int(p.rsplit(":", 1)[1])) for p in sys.argv[3:]]
    session = lt_client.session("127.0.0.1")
    handle = lt_client.add(session, torrent, save_path)
    print(f"READY {session.listen_port()}", flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    deadline = time.time() + 120
    # connect_peer is only acted on once the torrent has been checked.
    lt_client.wait_checked(handle)
    connected_at = 0.0
    while not stop.is_set() and time.time() < deadline:
        status = handle.status()
        if status.is_seeding:
            # Seeding means every piece passed its hash, not that every block has reached
            # the file: libtorrent may still hold some in its store buffer. Ending the session
            # waits for its disk thread, so that whoever reads the file after DONE (and may
            # then kill this process) sees all of it.
            handle = None
            session = None
            print("DONE", flush=True)
            return
        if status.num_peers == 0 and time.time() - connected_at > 2:
            for peer in peers:
                handle.connect_peer(peer)
            connected_at = time.time()
        time.sleep(0.05)
    sys.exit("libtorrent did not finish downloading")


if __name__ == "__main__":
    main()
