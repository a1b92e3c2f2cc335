"""A small DHT (BEP 5) of libtorrent sessions on loopback, for tests of our own DHT node.

usage: lt_dht.py NODES BASE_PORT [seed TORRENT SAVE_PATH] [leech MAGNET_OR_TORRENT SAVE_PATH]
                 [bootstrap HOST:PORT]...
Session i (0-based) listens on 127.{i+1}.0.1:BASE_PORT (TCP and UDP; DHT on; LSD, UPnP, NAT-PMP
off), each in its own /24 (keep NODES below our node's 127.N). Until READY, every session pings
every other one as a DHT node each second; every session pings each bootstrap HOST:PORT (our node)
at start and every 5 s, so a node started later is still learnt. With `seed`, the last session
seeds TORRENT from SAVE_PATH and announces it to the DHT every 2 s. With `leech`, the last session
(or, if `seed` is given too, an extra session at 127.{NODES+1}.0.1:BASE_PORT) adds the magnet
(info-hash only, no tracker or peer) after READY and downloads through the DHT.
stdout: `READY <BASE_PORT>` once every session has another libtorrent session in its routing table (our
bootstrap nodes are not waited for) and the seed is seeding (after 60 s: READY anyway, with a
warning on stderr); then `METADATA <s>`, `FIRST_BYTE <s>` and `DONE <s>` (seconds since the
leech was added).
stdin lines:
  stats               -> `STATS {"dht_nodes": [...], "seed": {...}, "leech": {...}}`
  get_peers <40-hex> [SECONDS]
                      -> session 0 looks the info-hash up in the DHT and prints
                         `PEERS <hex> ip:port ...` 1 s after the first reply with peers
                         (none within SECONDS, default 30: `PEERS <hex>`). Needs NODES >= 2:
                         session 0 reads its own store only when another node refers it back.
Exits when stdin closes, or after 300 s. Run with /usr/bin/python3 (Debian's python3-libtorrent).
"""
import json
import os
import queue
import sys
import threading
import time
import warnings

import libtorrent as lt

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../benches/swarm"))
import lt_client  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)  # session.status() is enough here

DHT_OVERRIDES = {
    "enable_dht": True,
    # Bootstrap nodes are "router" nodes, which libtorrent never puts in its routing table, so
    # session 0 and our node would never be returned in find_node/get_peers replies: the nodes
    # are given with add_dht_node instead. Empty also avoids resolving dht.libtorrent.org.
    "dht_bootstrap_nodes": "",
    # Several nodes per IP or /24 are allowed (e.g. more than one of ours at 127.200.0.1).
    "dht_restrict_routing_ips": False,
    "dht_restrict_search_ips": False,
    # DoS blocker: an IP sending >= 10 * dht_block_ratelimit packets within 10 s is ignored for
    # dht_block_timeout s (default 5/s -> 50 packets, 300 s), which a test's burst from our node
    # (every query and reply counts) easily trips. Raised so that our node is never banned.
    "dht_block_ratelimit": 100000,
    "dht_block_timeout": 1,
    # Incoming requests are dropped when replies exceed this byte rate (default 8000 B/s, with
    # 3 s of burst). 0 is not "unlimited" (libtorrent divides by it), so a large value instead.
    "dht_upload_rate_limit": 100_000_000,
    "alert_mask": lt.alert.category_t.dht_operation_notification,
}


def make_session(i, port):
    ip = f"127.{i + 1}.0.1"
    ses = lt_client.session(f"{ip}:{port}")
    # Explicit IPs: libtorrent does not start its DHT on a listen socket it thinks is on the
    # local network (0.0.0.0 or `lo`), and outgoing_interfaces keeps the source IP ours.
    ses.apply_settings({**DHT_OVERRIDES, "outgoing_interfaces": ip})
    return ses


def add(ses, torrent, save_path):
    if torrent.startswith("magnet:"):
        params = lt.parse_magnet_uri(torrent)
    else:
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(torrent)
    os.makedirs(save_path, exist_ok=True)
    params.save_path = save_path
    flags = params.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
    params.flags = flags | lt.torrent_flags.disable_lsd  # DHT and PEX stay on
    return ses.add_torrent(params)


def parse(argv):
    if len(argv) < 2 or int(argv[0]) < 1:
        sys.exit(__doc__)
    count, port, args, opts, boot = int(argv[0]), int(argv[1]), argv[2:], {}, []
    while args:
        if args[0] in ("seed", "leech") and len(args) >= 3:
            opts[args[0]], args = (args[1], args[2]), args[3:]
        elif args[0] == "bootstrap" and len(args) >= 2:
            host, _, boot_port = args[1].rpartition(":")
            boot.append((host, int(boot_port)))
            args = args[2:]
        else:
            sys.exit(__doc__)
    return count, port, opts.get("seed"), opts.get("leech"), boot


def main():
    count, port, seed, leech, boot = parse(sys.argv[1:])
    start = time.time()
    deadline = start + 300
    total = count + (1 if seed and leech else 0)
    sessions = [make_session(i, port) for i in range(total)]

    def ping_nodes(formed=False):
        # Until READY every session pings every other (a full mesh: each then knows all the
        # others at once, instead of after libtorrent's table refreshes); our nodes, always.
        for i, ses in enumerate(sessions):
            mesh = [] if formed else [(f"127.{j + 1}.0.1", port) for j in range(total) if j != i]
            for node in mesh + boot:
                ses.add_dht_node(node)

    while not all(s.is_dht_running() for s in sessions) and time.time() < start + 5:
        time.sleep(0.01)
    ping_nodes()
    pinged = time.time()
    seeder = add(sessions[count - 1], seed[0], seed[1]) if seed else None
    lines, eof = queue.Queue(), threading.Event()

    def read_stdin():
        for line in sys.stdin:
            lines.put(line.split())
        lines.put(None)
        eof.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    ready_by = start + 60
    while True:
        # Formed: each session knows another (a lone session, only that its DHT runs).
        nodes = [s.status().dht_nodes for s in sessions]
        formed = all(nodes) or (total == 1 and sessions[0].is_dht_running())
        seeding = seeder is None or seeder.status().is_seeding
        if (formed and seeding) or time.time() > ready_by:
            break
        if eof.is_set():
            os._exit(0)
        if time.time() - pinged > 1:  # a ping sent before the peer's DHT was up is lost
            ping_nodes()
            pinged = time.time()
        time.sleep(0.01)
    if not seeding:
        print("lt_dht: libtorrent did not start seeding within 60 s", file=sys.stderr, flush=True)
        os._exit(1)
    if not formed:
        print(f"lt_dht: warning: DHT not formed after 60 s, nodes per session: {nodes}",
              file=sys.stderr, flush=True)
    print(f"READY {port}", flush=True)
    print(f"lt_dht: READY after {time.time() - start:.3f} s, nodes {nodes}", file=sys.stderr)

    leecher = added = first = metadata = None
    if leech:
        added = time.time()
        leecher = add(sessions[-1], leech[0], leech[1])
    done = False
    queries = {}  # info-hash hex -> [deadline, flush-at or None, peers]
    announced = 0.0
    while time.time() < deadline:
        now = time.time()
        if now - announced > 2:
            for handle in (seeder, leecher):
                if handle is not None:
                    handle.force_dht_announce()
            announced = now
        if now - pinged > 5:
            ping_nodes(formed=True)
            pinged = now
        if leecher is not None and not done:
            status = leecher.status()
            if metadata is None and status.has_metadata:
                metadata = now - added
                print(f"METADATA {metadata:.3f}", flush=True)
            if first is None and status.total_done > 0:
                first = now - added
                print(f"FIRST_BYTE {first:.3f}", flush=True)
            if status.is_seeding:
                print(f"DONE {now - added:.3f}", flush=True)
                done = True
        for alert in sessions[0].pop_alerts():
            if isinstance(alert, lt.dht_get_peers_reply_alert):
                query = queries.get(str(alert.info_hash))
                if query is not None:
                    query[2].update(f"{ip}:{p}" for ip, p in alert.peers())
                    # Replies come one alert per responding node: gather them for 1 s more.
                    query[1] = query[1] or now + 1
        for key, (until, flush_at, peers) in list(queries.items()):
            if now > until or (flush_at is not None and now > flush_at):
                print(" ".join(["PEERS", key] + sorted(peers)), flush=True)
                del queries[key]
        try:
            words = lines.get(timeout=0.01)
        except queue.Empty:
            continue
        if words is None:
            break
        if words == ["stats"]:
            stats = {"dht_nodes": [s.status().dht_nodes for s in sessions]}
            for name, handle in (("seed", seeder), ("leech", leecher)):
                if handle is not None:
                    st = handle.status()
                    stats[name] = {"peers": st.num_peers, "seeding": st.is_seeding,
                                   "progress": st.progress}
            print(f"STATS {json.dumps(stats)}", flush=True)
        elif len(words) in (2, 3) and words[0] == "get_peers" and len(words[1]) == 40:
            try:
                key, wait = words[1].lower(), float(words[2]) if words[2:] else 30
                sessions[0].dht_get_peers(lt.sha1_hash(bytes.fromhex(key)))
                queries[key] = [time.time() + wait, None, set()]
            except ValueError:
                print(f"lt_dht: bad command {' '.join(words)}", file=sys.stderr, flush=True)
        elif words:
            print(f"lt_dht: unknown command {' '.join(words)}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(0)  # skip the sessions' orderly shutdown, which can take seconds


if __name__ == "__main__":
    main()
