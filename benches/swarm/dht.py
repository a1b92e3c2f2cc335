"""The DHT benchmark: a magnet link with nothing but the info-hash, found through a loopback DHT
of libtorrent nodes that a libtorrent seed announced to; and our node's cost when idle.

usage: /usr/bin/python3 benches/swarm/dht.py [--runs N] [--size 16M] [--idle 60]
       [--cratetorrent PATH]

A DHT of 6 libtorrent sessions on 127.{1..6}.0.1 (tests/support/lt_dht.py), the last one seeding.
Each run alternates two cold leechers, each a fresh process whose DHT node starts from one
bootstrap address (127.1.0.1):
  - ours: `cratetorrent download MAGNET --dht-bootstrap 127.1.0.1:P` on 127.200.0.1;
  - libtorrent's: one more lt_dht.py session on 127.1.0.1 (another port), added the magnet once
    its DHT runs.
Both report times from adding the magnet: metadata verified, first payload byte (libtorrent;
ours is within a piece of the metadata on this link), complete. Then our seed idles in the DHT
for --idle seconds: datagrams per minute (from its --json stats) and resident memory, beside the
same seed with --no-dht.
"""
import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

import swarm as sw

LT_DHT = ["/usr/bin/python3", os.path.join(sw.ROOT, "tests/support/lt_dht.py")]
NODES = 6


def pump(proc):
    """The process's stdout lines, on a queue (None at the end)."""
    lines = queue.Queue()

    def run():
        for line in proc.popen.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=run, daemon=True).start()
    return lines


def read_until(lines, done, timeout):
    """Collects lines until `done(line)`; returns them."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise RuntimeError(f"timed out; last lines {seen[-3:]}") from None
        if line is None:
            return seen
        seen.append(line)
        if done(line):
            return seen


def ours(ct, magnet, out, bootstrap):
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    listen = f"127.200.0.1:{sw.free_port('127.200.0.1')}"
    proc = sw.Proc([ct, "download", magnet, "-o", out, "--listen", listen, "--no-lsd",
                    "--dht-bootstrap", bootstrap, "--json"], stdout=True)
    try:
        got = {}
        for line in read_until(pump(proc), lambda l: '"event":"complete"' in l, 120):
            if '"event":"metadata"' in line:
                got["metadata"] = json.loads(line)["seconds"]
            elif '"event":"complete"' in line:
                got["complete"] = json.loads(line)["elapsed"]
        proc.wait(60)
        return got
    finally:
        proc.kill()


def libtorrent(magnet, out, port, bootstrap):
    shutil.rmtree(out, ignore_errors=True)
    proc = sw.Proc(LT_DHT + ["1", str(port), "leech", magnet, out, "bootstrap", bootstrap],
                   stdin=True, stdout=True)
    try:
        got = {}
        for line in read_until(pump(proc), lambda l: l.startswith("DONE"), 120):
            word, _, value = line.strip().partition(" ")
            if word in ("METADATA", "FIRST_BYTE", "DONE"):
                got[{"DONE": "complete"}.get(word, word.lower())] = float(value)
        return got
    finally:
        proc.stop(signal.SIGKILL)


def idle(ct, torrent, data_dir, bootstrap, seconds, dht):
    """Our seed idling in the DHT: (datagrams per minute, RSS MiB at the end)."""
    listen = f"127.200.0.1:{sw.free_port('127.200.0.1')}"
    args = [ct, "seed", torrent, data_dir, "--listen", listen, "--no-lsd", "--json"]
    args += ["--dht-bootstrap", bootstrap] if dht else ["--no-dht"]
    proc = sw.Proc(args, stdout=True)
    lines = pump(proc)
    try:
        start = time.monotonic()
        first = last = None
        while time.monotonic() - start < seconds:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line and '"event":"stats"' in line:
                stats = json.loads(line)
                point = (time.monotonic(), stats.get("dht_sent", 0), stats.get("dht_received", 0))
                if first is None and time.monotonic() - start > 10:
                    first = point  # after the bootstrap and the first announce
                last = point
        with open(f"/proc/{proc.popen.pid}/status") as status:
            rss = next(int(l.split()[1]) for l in status if l.startswith("VmRSS")) / 1024
        rate = (None, None)
        if first and last and last[0] > first[0]:
            minutes = (last[0] - first[0]) / 60
            rate = ((last[1] - first[1]) / minutes, (last[2] - first[2]) / minutes)
        return rate, rss
    finally:
        proc.stop(signal.SIGINT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle-only", action="store_true", help="only the idle measurement")
    parser.add_argument("--size", default="16M")
    parser.add_argument("--idle", type=int, default=60, help="seconds of idle seeding measured")
    parser.add_argument("--cratetorrent", default=os.path.join(sw.ROOT, "target/release/cratetorrent"))
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "cratetorrent-cli"], cwd=sw.ROOT,
                   check=True)
    ct = sw.Cratetorrent(args.cratetorrent)
    work, src, torrent = sw.prepare("/var/tmp", "single", "256K", sw.parse_size(args.size), ct)
    base = sw.free_port("127.1.0.1")
    bootstrap = f"127.1.0.1:{base}"
    dht = None
    try:
        info = subprocess.run([ct.binary, "info", torrent, "--json"], capture_output=True,
                              text=True, check=True, timeout=60).stdout
        magnet = f"magnet:?xt=urn:btih:{json.loads(info)['info_hash']}"
        dht = sw.Proc(LT_DHT + [str(NODES), str(base), "seed", torrent, os.path.dirname(src)],
                      stdin=True, stdout=True)
        dht.read_line(lambda l: l.startswith("READY"), 120)
        samples = {"cratetorrent": [], "libtorrent": []}
        for run in range(0 if args.idle_only else args.runs):
            for client in samples:
                out = os.path.join(work, "leech")
                sw.note(f"[dht] run {run + 1}/{args.runs}: {client} by DHT-only magnet")
                try:
                    if client == "cratetorrent":
                        got = ours(ct.binary, magnet, out, bootstrap)
                    else:
                        got = libtorrent(magnet, out, sw.free_port("127.1.0.1"), bootstrap)
                    if not sw.same_tree(src, os.path.join(out, os.path.basename(src))):
                        raise RuntimeError("the download differs")
                    samples[client].append(got)
                except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                    sw.note(f"  failed: {error}")
        lines = []
        for client, found in samples.items():
            if not found:
                continue

            def med(key):
                return sw.median([s.get(key) for s in found])
            lines.append(f"{client}: {len(found)} runs, DHT-only magnet of {args.size} from a "
                         f"libtorrent seed: metadata {sw.fmt(med('metadata') and med('metadata') * 1000, 1)} ms, "
                         f"first byte {sw.fmt(med('first_byte') and med('first_byte') * 1000, 1)} ms, "
                         f"complete {sw.fmt(med('complete'), 3)} s (medians, from adding the link)")
        if args.idle:
            # A DHT with no seed announcing every 2 s (lt_dht.py's seed does, for the tests).
            dht.stop(signal.SIGKILL)
            base = sw.free_port("127.1.0.1")
            bootstrap = f"127.1.0.1:{base}"
            dht = sw.Proc(LT_DHT + [str(NODES), str(base)], stdin=True, stdout=True)
            dht.read_line(lambda l: l.startswith("READY"), 120)
            (sent, received), rss = idle(ct.binary, torrent, os.path.dirname(src), bootstrap,
                                         args.idle, True)
            _, rss_off = idle(ct.binary, torrent, os.path.dirname(src), bootstrap, 15, False)
            lines.append(f"idle seed in a {NODES}-node libtorrent DHT for {args.idle} s (from 10 s "
                         f"on): {sw.fmt(sent, 1)} DHT datagrams sent and {sw.fmt(received, 1)} "
                         f"received a minute, RSS {sw.fmt(rss, 1)} MiB (with --no-dht: "
                         f"{sw.fmt(rss_off, 1)} MiB)")
        print("\n".join(lines))
    finally:
        if dht:
            dht.stop(signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
