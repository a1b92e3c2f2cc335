"""A libtorrent peer that reports its BEP 6 fast-extension message counters.

usage: lt_fast.py seed TORRENT SAVE_PATH [SETTING=INT ...]
       lt_fast.py leech TORRENT SAVE_PATH HOST:PORT [SETTING=INT ...]
Prints `READY <port>` once added (a seed: once its data is checked); a leecher dials HOST:PORT
and prints `DONE` once complete and verified. Each `stats` line on stdin is answered with
`STATS <json>`: how many have-all, have-none, reject, allowed-fast, suggest, choke and unchoke
messages it received (from its peer log) and sent (from its session counters; libtorrent
counts few incoming fast messages there), and how many distinct peers it was connected to in
all past their handshakes, over RC4 (`peers_rc4`), with an obfuscated handshake but plaintext
payload (`peers_obfuscated`) and over uTP (`peers_utp`). SETTING=INT override libtorrent settings
(e.g. unchoke_slots_limit=0). Exits when stdin closes, or after 300 s.
Run with /usr/bin/python3.
"""
import json
import os
import queue
import sys
import threading
import time

import libtorrent as lt

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../benches/swarm"))
import lt_client  # noqa: E402

KINDS = ("have_all", "have_none", "reject", "allowed_fast", "suggest", "choke", "unchoke")


# How the peer log names each incoming message.
LOGGED = {"have_all": "HAVE_ALL", "have_none": "HAVE_NONE", "reject": "REJECT_PIECE",
          "allowed_fast": "ALLOWED_FAST", "suggest": "SUGGEST_PIECE", "choke": "CHOKE",
          "unchoke": "UNCHOKE"}


def read_log(session, incoming):
    for alert in session.pop_alerts():
        if isinstance(alert, lt.peer_log_alert):
            # "<torrent> peer [ <addr> client: <name> ] [<addr>] <== EVENT [ details ]"
            _, arrow, rest = alert.message().partition(" <== ")
            event = rest.split(" ", 1)[0]
            for kind, name in LOGGED.items():
                if arrow and event == name:
                    incoming[kind] += 1
        elif isinstance(alert, lt.session_stats_alert):
            return alert.values
    return None


def counters(session, incoming):
    session.post_session_stats()
    deadline = time.time() + 10
    while time.time() < deadline:
        session.wait_for_alert(500)
        # The bindings give the values by metric name.
        values = read_log(session, incoming)
        if values is not None:
            stats = {f"incoming_{kind}": n for kind, n in incoming.items()}
            stats.update({f"outgoing_{kind}": values[f"ses.num_outgoing_{kind}"] for kind in KINDS})
            return stats
    sys.exit("no session stats from libtorrent")


def main():
    role, torrent, save_path = sys.argv[1], sys.argv[2], sys.argv[3]
    rest = sys.argv[4:]
    peer = None
    if role == "leech":
        host, port = rest[0].rsplit(":", 1)
        peer, rest = (host, int(port)), rest[1:]
    session = lt_client.session("127.0.0.1")
    # Integers, but booleans for the `enable_*` switches (the bindings insist).
    overrides = {k: (bool(int(v)) if k.startswith("enable_") else int(v))
                 for k, v in (a.split("=", 1) for a in rest)}
    overrides["alert_mask"] = int(lt.alert.category_t.stats_notification
                                  | lt.alert.category_t.peer_log_notification)
    session.apply_settings(overrides)
    handle = lt_client.add(session, torrent, save_path)
    lt_client.wait_checked(handle)
    if role == "seed" and not handle.status().is_seeding:
        sys.exit("libtorrent has not the whole payload to seed")
    print(f"READY {session.listen_port()}", flush=True)
    commands = queue.Queue()

    def read_stdin():
        for line in sys.stdin:
            commands.put(line.strip())
        commands.put(None)

    threading.Thread(target=read_stdin, daemon=True).start()
    deadline = time.time() + 300
    incoming = {kind: 0 for kind in KINDS}
    # Every peer seen connected, by address, with its flags then.
    seen = {}
    done = False
    connected_at = 0.0
    while time.time() < deadline:
        try:
            command = commands.get(timeout=0.05)
        except queue.Empty:
            command = ""
        if command is None:
            return
        read_log(session, incoming)
        for info in handle.get_peer_info():
            # Flags are final only once the handshakes are done.
            if not int(info.flags) & (int(lt.peer_info.handshake) | int(lt.peer_info.connecting)):
                seen[str(info.ip)] = seen.get(str(info.ip), 0) | int(info.flags)
        if command == "stats":
            stats = counters(session, incoming)
            stats["peers"] = len(seen)
            stats["peers_rc4"] = sum(1 for f in seen.values()
                                     if f & int(lt.peer_info.rc4_encrypted))
            stats["peers_obfuscated"] = sum(1 for f in seen.values()
                                            if f & int(lt.peer_info.plaintext_encrypted))
            # `peer_info::utp_socket` (bit 17), which the bindings do not name.
            stats["peers_utp"] = sum(1 for f in seen.values() if f & (1 << 17))
            print(f"STATS {json.dumps(stats)}", flush=True)
        status = handle.status()
        if peer and not done and status.is_seeding:
            done = True
            print("DONE", flush=True)
        if peer and not done and status.num_peers == 0 and time.time() - connected_at > 2:
            handle.connect_peer(peer)
            connected_at = time.time()
    sys.exit("libtorrent peer timed out")


if __name__ == "__main__":
    main()
