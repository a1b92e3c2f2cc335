"""libtorrent as a benchmark peer: one process seeding or downloading one torrent on loopback.

usage: lt_client.py seed TORRENT SAVE_PATH LISTEN
       lt_client.py leech TORRENT SAVE_PATH LISTEN [HOST:PORT ...]
       lt_client.py seed-many SAVE_PATH LISTEN TORRENT...
       lt_client.py churn SAVE_PATH LISTEN HOST:PORT AT_ONCE TORRENT...
       lt_client.py settings            -> the session settings as JSON
A seeder prints `READY <port>` once it has checked its data, then seeds until stdin closes.
`seed-many` seeds every TORRENT from one session. `churn` downloads the torrents from one peer,
AT_ONCE at a time, each removed with its data once complete, and prints `DONE <seconds>`.
A leecher dials the given peers, exits 0 once the download is complete and verified, and
exits 1 after 10 minutes; given a magnet link, it prints `METADATA <s>` once the metadata
is verified and `COMPLETE <s>` once done (seconds since the torrent was added). Run with /usr/bin/python3 (Debian's python3-libtorrent).
"""
import json
import os
import sys
import threading
import time

import libtorrent as lt

# Tuned for loopback, so that the comparison measures the engines and nothing else: no DHT,
# LSD, UPnP or NAT-PMP, TCP only, no rate limits, plain handshakes, several connections per IP
# (every peer is on 127.0.0.x), and a short tick so completion is noticed quickly.
OVERRIDES = {
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "enable_outgoing_utp": False,
    "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True,
    "smooth_connects": False,
    "upload_rate_limit": 0,
    "download_rate_limit": 0,
    "out_enc_policy": 2,
    "in_enc_policy": 1,
    "tick_interval": 100,
    "min_reconnect_time": 1,
    "alert_mask": 0,
}


# Large enough for the scale benchmark's torrent of 1,000,000 pieces (20 MB of hashes), which
# libtorrent's default limits (10 MB) refuse.
LIMITS = {"max_buffer_size": 64 << 20, "max_pieces": 4_000_000, "max_decode_tokens": 10_000_000}


def session(ip):
    settings = lt.high_performance_seed()
    settings.update(OVERRIDES)
    # LT_TRANSPORT=utp: uTP only, both ways (the uTP benchmarks).
    if os.environ.get("LT_TRANSPORT") == "utp":
        settings.update({"enable_outgoing_utp": True, "enable_incoming_utp": True,
                         "enable_outgoing_tcp": False, "enable_incoming_tcp": False})
    # LT_ENCRYPTION=rc4: encrypted handshakes and RC4 payload required both ways.
    if os.environ.get("LT_ENCRYPTION") == "rc4":
        settings.update({"out_enc_policy": 0, "in_enc_policy": 0, "allowed_enc_level": 2})
    # LISTEN is an IP (any free port) or IP:PORT.
    settings["listen_interfaces"] = ip if ":" in ip else f"{ip}:0"
    return lt.session(settings)


def add(ses, torrent, save_path, lsd=False):
    # TORRENT is a .torrent path or a magnet link (BEP 9: the metadata comes from peers).
    # With `lsd`, the torrent may be announced on the local network (the session must enable it).
    if torrent.startswith("magnet:"):
        params = lt.parse_magnet_uri(torrent)
    else:
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(torrent, LIMITS)
    params.save_path = save_path
    flags = params.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
    flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_pex
    if not lsd:
        flags |= lt.torrent_flags.disable_lsd
    params.flags = flags
    return ses.add_torrent(params)


def wait_checked(handle, timeout=300):
    """Returns once libtorrent has checked the torrent's data (peers are dialled only then)."""
    deadline = time.time() + timeout
    while handle.status().state in (lt.torrent_status.checking_files,
                                    lt.torrent_status.checking_resume_data):
        if time.time() > deadline:
            sys.exit(f"libtorrent did not check the data within {timeout} s")
        time.sleep(0.01)


def seed(torrent, save_path, ip):
    seed_many(save_path, ip, [torrent])


def leech(torrent, save_path, ip, peers):
    peers = [(p.rsplit(":", 1)[0], int(p.rsplit(":", 1)[1])) for p in peers]
    ses = session(ip)
    added = time.time()
    handle = add(ses, torrent, save_path)
    deadline = time.time() + 600
    wait_checked(handle)
    dialled = 0.0
    # A magnet link's torrent says when its metadata is verified and when it is complete, in
    # seconds since it was added (for the magnet benchmark).
    magnet = torrent.startswith("magnet:")
    told = not magnet
    while time.time() < deadline:
        status = handle.status()
        if not told and status.has_metadata:
            print(f"METADATA {time.time() - added:.6f}", flush=True)
            told = True
        if status.is_seeding:
            if magnet:
                print(f"COMPLETE {time.time() - added:.6f}", flush=True)
            return
        if status.num_peers < min(len(peers), 8) and time.time() - dialled > 1:
            for peer in peers:
                handle.connect_peer(peer)
            dialled = time.time()
        time.sleep(0.01)
    sys.exit("libtorrent did not finish downloading")


def seed_many(save_path, ip, torrents):
    ses = session(ip)
    handles = [add(ses, torrent, save_path) for torrent in torrents]
    deadline = time.time() + 600
    while not all(h.status().is_seeding for h in handles):
        if time.time() > deadline:
            sys.exit("libtorrent did not start seeding within 600 s")
        time.sleep(0.02)
    print(f"READY {ses.listen_port()}", flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait(3600)


def churn(save_path, ip, peer, at_once, torrents):
    host, port = peer.rsplit(":", 1)
    ses = session(ip)
    started = time.time()
    deadline = started + 600
    waiting = list(torrents)
    active = []
    while waiting or active:
        while waiting and len(active) < at_once:
            handle = add(ses, waiting.pop(0), save_path)
            handle.connect_peer((host, int(port)))
            active.append(handle)
        for handle in [h for h in active if h.status().is_seeding]:
            ses.remove_torrent(handle, lt.session.delete_files)
            active.remove(handle)
        if time.time() > deadline:
            sys.exit(f"libtorrent churn: {len(waiting) + len(active)} torrents left after 600 s")
        time.sleep(0.01)
    print(f"DONE {time.time() - started:.3f}", flush=True)


def main():
    role = sys.argv[1]
    if role == "settings":
        print(json.dumps({"base": "high_performance_seed", **OVERRIDES}))
    elif role == "seed":
        seed(sys.argv[2], sys.argv[3], sys.argv[4])
    elif role == "leech":
        leech(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    elif role == "seed-many":
        seed_many(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif role == "churn":
        churn(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
