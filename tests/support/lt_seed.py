"""Seed a torrent with libtorrent on loopback until stdin closes.

usage: lt_seed.py TORRENT SAVE_PATH [LISTEN_IP]
Prints `READY <port>` once libtorrent has checked the data and is seeding; exits when stdin
reaches EOF (so the test that started it can stop it by closing the pipe) or after 10 minutes.
Run with /usr/bin/python3: the bindings exist only for Debian's interpreter.
"""
import sys
import threading
import time

import libtorrent as lt


def main():
    torrent, save_path = sys.argv[1], sys.argv[2]
    ip = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    settings = lt.high_performance_seed()
    settings.update({
        "listen_interfaces": f"{ip}:0",
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
    })
    session = lt.session(settings)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = save_path
    flags = params.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
    params.flags = flags | lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    handle = session.add_torrent(params)
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
