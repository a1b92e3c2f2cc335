#!/usr/bin/python3
"""The WAN benchmark, scenario 1: one seeder -> one leecher across an emulated link.

Each run starts the user-space WAN emulator (benches/wanem: two hosts in network namespaces),
a seeder in one host and a leecher in the other, and times the leecher to completion. The link
is the same both ways: one-way delay RTT/4 per host link (the round trip crosses four), the
given rate, a queue of one bandwidth-delay product, and with --loss, random loss on the seeder's
uplink (the data's direction). Pairings: libtorrent -> libtorrent, libtorrent -> cratetorrent,
cratetorrent -> libtorrent, cratetorrent -> cratetorrent, alternating run by run; the median
is reported as link utilisation (payload bytes per second over the link's rate; TCP/IP headers
alone cap it at 0.965 with 1500-byte packets).

usage: sudo /usr/bin/python3 benches/swarm/wan.py [--quick] [--runs N] [--rtt 20,100,300]
       [--rate 10M,100M] [--loss 0,0.01] [--seconds S] [--json FILE]
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


class Emulator:
    """`wanem up` with two hosts: the seeder's and the leecher's."""

    def __init__(self, wanem, rtt_ms, rate, loss):
        delay = f"{rtt_ms / 4:g}ms"
        queue = max(64 * 1024, int(rate * rtt_ms / 1000))
        link = f"delay={delay},rate={rate},queue={queue}"
        seeder = link + (f",up.loss={loss}" if loss else "")
        self.proc = sw.Proc([wanem, "up", seeder, link], stdin=True, stdout=True)
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


def one_run(args, pairing, config, work, src, torrent, size):
    rtt, rate, loss = config
    emulator = Emulator(args.wanem, rtt, rate, loss)
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
        code = leecher.wait(sw.TIMEOUT)
        wall = leecher.ended - started
        if code:
            raise RuntimeError(f"{pairing[1]} leecher exited with {code}")
        if not sw.same_tree(src, os.path.join(out, os.path.basename(src))):
            raise RuntimeError("the download differs from the payload")
        return {"seconds": wall, "utilisation": size / wall / rate}
    finally:
        if leecher:
            leecher.kill()
        if seeder:
            seeder.stop()
        emulator.stop()
        shutil.rmtree(out, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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
        row = {}
        for pairing, runs in samples.items():
            name = f"{pairing[0][:2]}->{pairing[1][:2]}".replace("li", "lt").replace("cr", "ct")
            row[name] = sw.median([r["utilisation"] for r in runs])
        results[label] = row
        cells = "  ".join(f"{k} {v:.3f}" for k, v in row.items())
        print(f"{label} ({size // sw.MIB} MiB): utilisation {cells}", flush=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
