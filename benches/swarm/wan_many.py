"""The WAN benchmark's scenarios with many hosts (see wan.py for the harness):

2. eight libtorrent seeders on links of their own (1-50 MB/s, 20-300 ms) -> one leecher:
   time to complete;
3. flash crowd: one libtorrent seed (10 MB/s up) -> 30 leechers on mixed links, half libtorrent
   and half cratetorrent, all in one swarm and all starting at once: each leecher's completion
   time (the groups' distributions) and the seed's upload ratio;
4. the end-game tail: one leecher fetching from three fast libtorrent seeders and one on a
   0.1 MB/s uplink: time to complete, the tail (from 95 % of the bytes to the end), and the
   bytes received over the payload (headers make 1.036; more is blocks received twice).

Leechers leave when they complete, whichever client they are.
"""
import os
import shutil
import time

import swarm as sw
from wan import PORT, Emulator, leecher_cmd, link_spec, rx_bytes, seed, watch

# Scenario 2: (rate MB/s, round trip to the leecher in ms) per seeder.
SEEDERS = [(1, 300), (2, 200), (5, 150), (10, 100), (20, 80), (30, 50), (40, 30), (50, 20)]
# The leecher's own link: 100 MB/s, 1 ms each way.
LEECHER_LINK = link_spec(1, 100_000_000, 20)


def seeder_link(mb, rtt):
    """A seeder's link, its delay making the round trip to a leecher on LEECHER_LINK `rtt`."""
    return link_spec(rtt / 2 - 1, mb * 1_000_000, rtt)


def fetch_from_seeders(args, links, leecher_client, torrent, src, work):
    """One leecher on LEECHER_LINK fetching from libtorrent seeders on `links`: its exit code's
    wall time and samples of the bytes its host received."""
    emulator = Emulator(args.wanem, links + [LEECHER_LINK])
    seeders, leecher = [], None
    out = os.path.join(work, "leech")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    try:
        peers = []
        for namespace, addr in emulator.hosts[:-1]:
            proc, peer = seed("libtorrent", args.cratetorrent, namespace, addr, torrent,
                              os.path.dirname(src))
            seeders.append(proc)
            peers.append(peer)
        namespace, addr = emulator.hosts[-1]
        started = time.monotonic()
        leecher = sw.Proc(leecher_cmd(leecher_client, args.cratetorrent, namespace, addr,
                                      torrent, out, peers))
        code, samples = watch(leecher, namespace, sw.TIMEOUT)
        if code:
            raise RuntimeError(f"{leecher_client} leecher exited with {code}")
        if not sw.same_tree(src, os.path.join(out, os.path.basename(src))):
            raise RuntimeError("the download differs from the payload")
        return leecher.ended - started, samples
    finally:
        if leecher:
            leecher.kill()
        for proc in seeders:
            proc.stop()
        emulator.stop()
        shutil.rmtree(out, ignore_errors=True)


def tail(samples, started_fraction=0.95):
    """Seconds from `started_fraction` of the bytes received to the last of them."""
    total = samples[-1][1]
    at = next(t for t, b in samples if b >= started_fraction * total)
    end = next(t for t, b in samples if b >= total)
    return end - at


def alternate(args, size, run):
    """`run(client, work, src, torrent)` for each leecher client, alternating, args.runs times."""
    ct = sw.Cratetorrent(args.cratetorrent)
    work, src, torrent = sw.prepare("/dev/shm", "single", "256K", size, ct)
    results = {"libtorrent": [], "cratetorrent": []}
    try:
        for _ in range(args.runs):
            for client, runs in results.items():
                runs.append(run(client, work, src, torrent))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def scenario2(args):
    size = 256 * sw.MIB
    links = [seeder_link(mb, rtt) for mb, rtt in SEEDERS]
    runs = alternate(args, size, lambda client, work, src, torrent: fetch_from_seeders(
        args, links, client, torrent, src, work)[0])
    lt, ours = sw.median(runs["libtorrent"]), sw.median(runs["cratetorrent"])
    print(f"scenario 2: 8 seeders on 1-50 MB/s, 20-300 ms links -> one leecher, 256 MiB: "
          f"libtorrent {lt:.1f} s, cratetorrent {ours:.1f} s (ct/lt time {ours / lt:.2f})",
          flush=True)
    return {"libtorrent_s": lt, "cratetorrent_s": ours, "size_mib": size // sw.MIB}


# Scenario 4: three seeders at 10 MB/s and one at 0.1 MB/s, all 50 ms from the leecher.
TAIL_SEEDERS = [(10, 50), (10, 50), (10, 50), (0.1, 50)]


def scenario4(args):
    size = 64 * sw.MIB
    links = [seeder_link(mb, rtt) for mb, rtt in TAIL_SEEDERS]

    def run(client, work, src, torrent):
        wall, samples = fetch_from_seeders(args, links, client, torrent, src, work)
        return {"seconds": wall, "tail": tail(samples), "received": samples[-1][1] / size}

    runs = alternate(args, size, run)
    row = {}
    for client, samples in runs.items():
        row[client] = {k: sw.median([r[k] for r in samples])
                       for k in ("seconds", "tail", "received")}
    lt, ours = row["libtorrent"], row["cratetorrent"]
    print(f"scenario 4: 3 seeders at 10 MB/s and one at 0.1 MB/s -> one leecher, 64 MiB: "
          f"libtorrent {lt['seconds']:.2f} s (last 5 % in {lt['tail']:.2f} s, received "
          f"{lt['received']:.3f}x the payload), cratetorrent {ours['seconds']:.2f} s (last 5 % in "
          f"{ours['tail']:.2f} s, received {ours['received']:.3f}x)", flush=True)
    return {"size_mib": size // sw.MIB, **row}


# Scenario 3: the leechers' links (rate MB/s both ways, round trip to the seed in ms), cycled;
# each link is given to one libtorrent and one cratetorrent leecher.
CROWD_LINKS = [(2, 40), (5, 60), (10, 100), (20, 150), (50, 200), (5, 300), (10, 20),
               (20, 80), (2, 120), (50, 50), (10, 250), (5, 30), (20, 180), (2, 220), (50, 90)]
CROWD_SEED = (10, 20)


def flash_crowd(args, work, src, torrent, size):
    """One run: completion seconds per leecher (client, seconds) and the seed's upload ratio."""
    seed_mb, seed_rtt = CROWD_SEED
    # Round trips are between a leecher and the seed; half of each on either side.
    specs = [link_spec(seed_rtt / 4, seed_mb * 1_000_000, seed_rtt)]
    clients = []
    for mb, rtt in CROWD_LINKS:
        for client in ("libtorrent", "cratetorrent"):
            specs.append(link_spec(max(rtt / 2 - seed_rtt / 4, 1), mb * 1_000_000, rtt))
            clients.append(client)
    emulator = Emulator(args.wanem, specs)
    seeder, leechers, outs = None, [], []
    try:
        (seed_ns, seed_addr), hosts = emulator.hosts[0], emulator.hosts[1:]
        seeder, seed_peer = seed("libtorrent", args.cratetorrent, seed_ns, seed_addr, torrent,
                                 os.path.dirname(src))
        peers = [seed_peer] + [f"{addr}:{PORT}" for _, addr in hosts]
        started = time.monotonic()
        for index, (client, (namespace, addr)) in enumerate(zip(clients, hosts)):
            out = os.path.join(work, f"leech{index}")
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            outs.append(out)
            others = [p for p in peers if p != f"{addr}:{PORT}"]
            leechers.append(sw.Proc(leecher_cmd(client, args.cratetorrent, namespace, addr,
                                                torrent, out, others)))
        deadline = started + sw.TIMEOUT
        # Every leecher is polled each time round, so each one's end is seen when it happens.
        while not all([p.poll() for p in leechers]):
            if time.monotonic() > deadline:
                raise RuntimeError("the flash crowd did not finish in time")
            time.sleep(0.02)
        uploaded = rx_bytes(seeder.popen.pid, transmitted=True) or 0
        for client, proc, out in zip(clients, leechers, outs):
            if os.waitstatus_to_exitcode(proc.status):
                raise RuntimeError(f"a {client} leecher failed")
            if not sw.same_tree(src, os.path.join(out, os.path.basename(src))):
                raise RuntimeError("a download differs from the payload")
        times = [(c, p.ended - started) for c, p in zip(clients, leechers)]
        return times, uploaded / size
    finally:
        for proc in leechers:
            proc.kill()
        if seeder:
            seeder.stop()
        emulator.stop()
        for out in outs:
            shutil.rmtree(out, ignore_errors=True)


def scenario3(args):
    size = 64 * sw.MIB
    ct = sw.Cratetorrent(args.cratetorrent)
    work, src, torrent = sw.prepare("/dev/shm", "single", "256K", size, ct)
    times = {"libtorrent": [], "cratetorrent": []}
    # Each client's completion times by its link's rate (MB/s), over all runs.
    by_rate = {client: {} for client in times}
    link_rates = [mb for mb, _ in CROWD_LINKS for _ in ("libtorrent", "cratetorrent")]
    ratios = []
    try:
        for _ in range(args.runs):
            run, ratio = flash_crowd(args, work, src, torrent, size)
            ratios.append(ratio)
            for (client, seconds), mb in zip(run, link_rates):
                times[client].append(seconds)
                by_rate[client].setdefault(str(mb), []).append(seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    row = {"size_mib": size // sw.MIB, "seed_upload_ratio": sw.median(ratios), "times": times,
           "median_by_rate": {client: {mb: sw.median(s) for mb, s in rates.items()}
                              for client, rates in by_rate.items()}}
    for client, seconds in times.items():
        seconds.sort()
        row[client] = {"median_s": sw.median(seconds), "p90_s": seconds[int(len(seconds) * 0.9)],
                       "max_s": seconds[-1]}
    lt, ours = row["libtorrent"], row["cratetorrent"]
    print(f"scenario 3: flash crowd, 1 seed at 10 MB/s -> 15 libtorrent + 15 cratetorrent "
          f"leechers, 64 MiB: completion median/p90/max libtorrent {lt['median_s']:.1f}/"
          f"{lt['p90_s']:.1f}/{lt['max_s']:.1f} s, cratetorrent {ours['median_s']:.1f}/"
          f"{ours['p90_s']:.1f}/{ours['max_s']:.1f} s; seed upload ratio "
          f"{row['seed_upload_ratio']:.2f}", flush=True)
    return row
