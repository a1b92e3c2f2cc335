#!/usr/bin/python3
"""The WAN benchmark: scenario 1, one seeder -> one leecher across an emulated link; scenario 2,
eight libtorrent seeders on links of their own (1-50 MB/s, 20-300 ms) -> one leecher.

Each run starts the user-space WAN emulator (benches/wanem: two hosts in network namespaces),
a seeder in one host and a leecher in the other, and times the leecher to completion. The link
is the same both ways: one-way delay RTT/4 per host link (the round trip crosses four), the
given rate, a queue of one bandwidth-delay product, and with --loss, random loss on the seeder's
uplink (the data's direction). Pairings: libtorrent -> libtorrent, libtorrent -> cratetorrent,
cratetorrent -> libtorrent, cratetorrent -> cratetorrent, alternating run by run; the median
is reported as link utilisation (payload bytes per second over the link's rate; TCP/IP headers
alone cap it at 0.965 with 1500-byte packets), beside that of one plain TCP flow across the same
link for as long (`tcp`: the kernel's own limit there, e.g. its send buffer at long round trips).

usage: sudo /usr/bin/python3 benches/swarm/wan.py [--scenario 1|2] [--quick] [--runs N]
       [--rtt 20,100,300] [--rate 10M,100M] [--loss 0,0.01] [--seconds S] [--json FILE]
Needs root (namespaces), python3-libtorrent, and release builds of cratetorrent and wanem
(`cargo build --release -p cratetorrent-cli -p cratetorrent-wanem`).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import swarm as sw

PAIRINGS = [("libtorrent", "libtorrent"), ("libtorrent", "cratetorrent"),
            ("cratetorrent", "libtorrent"), ("cratetorrent", "cratetorrent")]
PORT = 6881


def netns(namespace, args):
    return ["ip", "netns", "exec", namespace] + args


def link_spec(one_way_ms, rate, rtt_ms):
    """A host link: one-way delay, rate, and a queue of one bandwidth-delay product."""
    queue = max(64 * 1024, int(rate * rtt_ms / 1000))
    return f"delay={one_way_ms:g}ms,rate={rate},queue={queue}"


class Emulator:
    """`wanem up` with the given host links (scenario 1: the seeder's, then the leecher's)."""

    def __init__(self, wanem, specs):
        self.proc = sw.Proc([wanem, "up"] + specs, stdin=True, stdout=True)
        self.hosts = []
        while True:
            line = self.proc.read_line(lambda l: True, 30).strip()
            if line == "READY":
                break
            _, _, namespace, addr = line.split()
            self.hosts.append((namespace, addr))

    def stop(self):
        self.proc.stop()


def seed(client, ct, namespace, addr, torrent, data_dir):
    if client == "libtorrent":
        proc = sw.Proc(netns(namespace, sw.LT + ["seed", torrent, data_dir, addr]),
                       stdin=True, stdout=True)
        line = proc.read_line(lambda l: l.startswith("READY"), 300)
        return proc, f"{addr}:{int(line.split()[1])}"
    proc = sw.Proc(netns(namespace, [ct, "seed", torrent, data_dir, "--listen", f"{addr}:{PORT}",
                                     "--json"] + sw.CT_TUNING), stdout=True)
    proc.read_line(lambda l: '"event":"checked"' in l, 300)
    return proc, f"{addr}:{PORT}"


def leech(client, ct, namespace, addr, torrent, out, peer):
    if client == "libtorrent":
        return sw.Proc(netns(namespace, sw.LT + ["leech", torrent, out, f"{addr}:{PORT}", peer]))
    return sw.Proc(netns(namespace, [ct, "download", torrent, "-o", out, "--listen",
                                     f"{addr}:{PORT}", "-q", "--peer", peer] + sw.CT_TUNING))


TCP_FLOW = ["/usr/bin/python3", os.path.join(sw.HERE, "tcp_flow.py")]


def raw_tcp(args, config, seconds):
    """Utilisation of the same link by one plain TCP flow (the kernel's own limit there)."""
    rtt, rate, loss = config
    link = link_spec(rtt / 4, rate, rtt)
    emulator = Emulator(args.wanem, [link + (f",up.loss={loss}" if loss else ""), link])
    receiver = sender = None
    try:
        (send_ns, _), (recv_ns, recv_addr) = emulator.hosts
        receiver = sw.Proc(netns(recv_ns, TCP_FLOW + ["recv", recv_addr, str(PORT)]), stdout=True)
        receiver.read_line(lambda l: l.startswith("READY"), 30)
        sender = sw.Proc(netns(send_ns, TCP_FLOW + ["send", recv_addr, str(PORT), str(seconds)]))
        sender.wait(seconds + 120)
        total, elapsed = receiver.read_line(lambda l: True, seconds + 120).split()
        return int(total) / float(elapsed) / rate
    finally:
        for proc in (sender, receiver):
            if proc:
                proc.kill()
        emulator.stop()


def rx_bytes(pid):
    """Bytes the links delivered into process `pid`'s network namespace (its TUN device)."""
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            rows = [line.split(":", 1) for line in f.readlines()[2:]]
    except OSError:
        return None
    return sum(int(counters.split()[0]) for name, counters in rows if name.strip() != "lo")


def watch(proc, timeout):
    """Waits for `proc`; returns its exit code and samples (seconds, bytes received)."""
    deadline = time.monotonic() + timeout
    samples = []
    while not proc.poll():
        received = rx_bytes(proc.popen.pid)
        if received is not None:
            samples.append((time.monotonic(), received))
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{proc.popen.args[3]} did not finish in {timeout} s")
        time.sleep(0.01)
    return os.waitstatus_to_exitcode(proc.status), samples


def steady_rate(samples, size):
    """Payload bytes per second once the connection is up to speed: over the transfer's
    middle, from 25 % to 95 % of the bytes received (slow start and set-up before, the last
    pieces' round trips after), each received byte counted as size / all bytes received."""
    total = samples[-1][1]

    def when(fraction):
        goal = fraction * total
        for (t0, b0), (t1, b1) in zip(samples, samples[1:]):
            if b1 >= goal:
                return t0 + (t1 - t0) * ((goal - b0) / (b1 - b0) if b1 > b0 else 0)
        return samples[-1][0]

    return size * 0.70 / max(when(0.95) - when(0.25), 1e-3)


def one_run(args, pairing, config, work, src, torrent, size):
    rtt, rate, loss = config
    link = link_spec(rtt / 4, rate, rtt)
    emulator = Emulator(args.wanem, [link + (f",up.loss={loss}" if loss else ""), link])
    seeder = None
    leecher = None
    out = os.path.join(work, "leech")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    try:
        (seed_ns, seed_addr), (leech_ns, leech_addr) = emulator.hosts
        seeder, peer = seed(pairing[0], args.cratetorrent, seed_ns, seed_addr, torrent,
                            os.path.dirname(src))
        started = time.monotonic()
        leecher = leech(pairing[1], args.cratetorrent, leech_ns, leech_addr, torrent, out, peer)
        code, samples = watch(leecher, sw.TIMEOUT)
        wall = leecher.ended - started
        if code:
            raise RuntimeError(f"{pairing[1]} leecher exited with {code}")
        if not sw.same_tree(src, os.path.join(out, os.path.basename(src))):
            raise RuntimeError("the download differs from the payload")
        return {"seconds": wall, "utilisation": size / wall / rate,
                "steady": steady_rate(samples, size) / rate}
    finally:
        if leecher:
            leecher.kill()
        if seeder:
            seeder.stop()
        emulator.stop()
        shutil.rmtree(out, ignore_errors=True)


# Scenario 2: eight libtorrent seeders on links of their own -> one leecher on a 100 MB/s link
# with 1 ms each way. (rate MB/s, round trip to the leecher in ms) per seeder.
SEEDERS = [(1, 300), (2, 200), (5, 150), (10, 100), (20, 80), (30, 50), (40, 30), (50, 20)]


def many_seeders(args, leecher_client, work, src, torrent, size):
    """Time for `leecher_client` to fetch the payload from the eight seeders."""
    specs = [link_spec(rtt / 2 - 1, mb * 1_000_000, rtt) for mb, rtt in SEEDERS]
    specs.append(link_spec(1, 100_000_000, 20))
    emulator = Emulator(args.wanem, specs)
    seeders = []
    leecher = None
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
        if leecher_client == "libtorrent":
            leecher = sw.Proc(netns(namespace, sw.LT + ["leech", torrent, out, f"{addr}:{PORT}"]
                                    + peers))
        else:
            cmd = [args.cratetorrent, "download", torrent, "-o", out, "--listen", f"{addr}:{PORT}",
                   "-q"] + sw.CT_TUNING
            for peer in peers:
                cmd += ["--peer", peer]
            leecher = sw.Proc(netns(namespace, cmd))
        code = leecher.wait(sw.TIMEOUT)
        if code:
            raise RuntimeError(f"{leecher_client} leecher exited with {code}")
        if not sw.same_tree(src, os.path.join(out, os.path.basename(src))):
            raise RuntimeError("the download differs from the payload")
        return leecher.ended - started
    finally:
        if leecher:
            leecher.kill()
        for proc in seeders:
            proc.stop()
        emulator.stop()
        shutil.rmtree(out, ignore_errors=True)


def scenario2(args):
    ct = sw.Cratetorrent(args.cratetorrent)
    size = 256 * sw.MIB
    work, src, torrent = sw.prepare("/dev/shm", "single", "256K", size, ct)
    times = {"libtorrent": [], "cratetorrent": []}
    try:
        for _ in range(args.runs):
            for client in times:
                times[client].append(many_seeders(args, client, work, src, torrent, size))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lt, ours = sw.median(times["libtorrent"]), sw.median(times["cratetorrent"])
    print(f"8 seeders on 1-50 MB/s, 20-300 ms links -> one leecher, 256 MiB: libtorrent "
          f"{lt:.1f} s, cratetorrent {ours:.1f} s (ct/lt time {ours / lt:.2f})", flush=True)
    return {"libtorrent_s": lt, "cratetorrent_s": ours}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", type=int, default=1, choices=[1, 2],
                        help="1: one seeder -> one leecher over one link (the grid); "
                             "2: eight seeders on mixed links -> one leecher")
    parser.add_argument("--quick", action="store_true",
                        help="one link (RTT 100 ms, 10 MB/s, no loss), one run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rtt", default="20,100,300", help="round trips, ms")
    parser.add_argument("--rate", default="10M,100M", help="link rates, bytes per second")
    parser.add_argument("--loss", default="0,0.01")
    parser.add_argument("--seconds", type=float, default=12.0,
                        help="payload size as this many seconds of the link's rate")
    parser.add_argument("--cratetorrent", default=os.path.join(sw.ROOT, "target/release/cratetorrent"))
    parser.add_argument("--wanem", default=os.path.join(sw.ROOT, "target/release/wanem"))
    parser.add_argument("--json", default=os.path.join(sw.ROOT, "target/wan-bench.json"))
    args = parser.parse_args()
    if args.quick:
        args.rtt, args.rate, args.loss, args.runs = "100", "10M", "0", 1
    if args.scenario == 2:
        with open(args.json, "w") as f:
            json.dump(scenario2(args), f, indent=1)
        return 0
    rates = [int(float(r[:-1]) * 1e6) if r.endswith("M") else int(r) for r in args.rate.split(",")]
    configs = [(int(rtt), rate, float(loss)) for rtt in args.rtt.split(",") for rate in rates
               for loss in args.loss.split(",")]
    ct = sw.Cratetorrent(args.cratetorrent)
    results = {}
    for config in configs:
        rtt, rate, loss = config
        size = int(rate * args.seconds) // sw.MIB * sw.MIB
        work, src, torrent = sw.prepare("/dev/shm", "single", "256K", size, ct)
        label = f"RTT {rtt} ms, {rate / 1e6:g} MB/s, loss {loss * 100:g} %"
        samples = {p: [] for p in PAIRINGS}
        try:
            for _ in range(args.runs):
                for pairing in PAIRINGS:
                    samples[pairing].append(one_run(args, pairing, config, work, src, torrent, size))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        row = {"tcp": raw_tcp(args, config, args.seconds)}
        for pairing, runs in samples.items():
            name = f"{pairing[0][:2]}->{pairing[1][:2]}".replace("li", "lt").replace("cr", "ct")
            row[name] = sw.median([r["utilisation"] for r in runs])
            row[name + " steady"] = sw.median([r["steady"] for r in runs])
        results[label] = row
        whole = "  ".join(f"{k} {v:.3f}" for k, v in row.items() if "steady" not in k)
        steady = "  ".join(f"{k.split()[0]} {v:.3f}" for k, v in row.items() if "steady" in k)
        print(f"{label} ({size // sw.MIB} MiB): utilisation {whole}; steady {steady}", flush=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
