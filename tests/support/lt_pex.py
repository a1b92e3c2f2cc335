"""libtorrent peers with peer exchange (BEP 11) on, for PEX interop tests.

usage: lt_pex.py TORRENT SAVE_ROOT N DIAL [HOST:PORT ...]
Starts N libtorrent sessions downloading TORRENT (nobody among them has it, so they stay
connected to each other), on 127.0.0.(20+i). With DIAL 1, session 0 dials sessions 1..N-1;
every session dials each HOST:PORT given. Prints `READY <port0> ... <portN-1>` once session 0
has its peers, then a line
`PEER <i> <ip>:<port>` the first time session i is connected to each peer address. Exits when
stdin closes, or after 120 s. Run with /usr/bin/python3.
"""
import os
import sys
import threading
import time

import libtorrent as lt

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../benches/swarm"))
import lt_client  # noqa: E402


def add(ses, torrent, save_path):
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = save_path
    flags = params.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
    # PEX stays on (lt_client turns it off for the benchmark); DHT and LSD off.
    params.flags = flags | lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd
    return ses.add_torrent(params)


def main():
    torrent, root, count, dial = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    extra = [(p.rsplit(":", 1)[0], int(p.rsplit(":", 1)[1])) for p in sys.argv[5:]]
    sessions, handles = [], []
    for i in range(count):
        ip = f"127.0.0.{20 + i}"
        ses = lt_client.session(ip)
        ses.apply_settings({"outgoing_interfaces": ip})
        save = os.path.join(root, str(i))
        os.makedirs(save, exist_ok=True)
        sessions.append(ses)
        handles.append(add(ses, torrent, save))
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    deadline = time.time() + 120
    targets = [(f"127.0.0.{20 + i}", s.listen_port()) for i, s in enumerate(sessions[1:], 1)]
    targets = targets if dial else []
    seen = [set() for _ in handles]
    ready = False
    dialled = 0.0
    while not stop.is_set() and time.time() < deadline:
        if time.time() - dialled > 1:
            for target in targets:
                handles[0].connect_peer(target)
            for handle in handles:
                for target in extra:
                    handle.connect_peer(target)
            dialled = time.time()
        if not ready and handles[0].status().num_peers >= len(targets) + len(extra):
            ports = " ".join(str(s.listen_port()) for s in sessions)
            print(f"READY {ports}", flush=True)
            ready = True
        for i, handle in enumerate(handles):
            for peer in handle.get_peer_info():
                ip, port = peer.ip
                if (ip, port) not in seen[i]:
                    seen[i].add((ip, port))
                    print(f"PEER {i} {ip}:{port}", flush=True)
        time.sleep(0.1)


if __name__ == "__main__":
    main()
