#!/usr/bin/env python3
"""The scale benchmark (scenario 5): cratetorrent and libtorrent in the same roles, on loopback.

1. torrents: one engine seeds N torrents of 256 KiB (N = 10, 100, 1,000 by default) while a
   libtorrent session downloads 100 of them, 10 at a time, removing each once complete
   (leechers that come and go). Figures: seconds until every torrent is checked and seeding,
   resident memory, threads and descriptors once ready, CPU per second while idle, and the
   churn's seconds and the seeder's CPU during it.
2. connections: one engine seeds one 256 MiB torrent to 500 leechers (the `loadpeer` binary:
   500 connections from 500 loopback addresses, each a plain BEP 3 leecher fetching random
   pieces; every peer is unchoked) until 8 GiB have gone out. Figures: seconds, the seeder's
   CPU per GiB, peak resident memory, and the spread of bytes over connections.
3. pieces: a torrent of 1,000,000 pieces of 16 KiB (a sparse 16.4 GB file) downloaded end to
   end, libtorrent → libtorrent and cratetorrent → cratetorrent. Figures: seconds, the
   leecher's CPU and peak resident memory, the seeder's CPU and resident memory.

usage: sudo-less; python3 benches/swarm/scale.py [--parts torrents,connections,pieces]
       [--torrents 10,100,1000] [--work DIR] [--json FILE] [--markdown BENCHMARKS.md]
Needs Debian's python3-libtorrent and release builds of `cratetorrent` and `loadpeer`
(cargo build --release -p cratetorrent-cli -p cratetorrent-benches). The pieces part needs
about 17 GB free under --work (default /var/tmp/cratetorrent-scale), which is removed after.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import swarm as sw

ROOT = sw.ROOT
LT = sw.LT
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
SMALL = 256 * KIB
CHURN_TORRENTS = 100
CHURN_AT_ONCE = 10
ONE_SIZE = 256 * MIB
LOAD_CONNECTIONS = 500
LOAD_BYTES = 8 * GIB
MILLION = 1_000_000
BLOCK = 16 * KIB
CT_FLAGS = ["--no-dht", "--no-lsd", "--upload-slots", "0", "--transport", "tcp"]


def proc_status(pid):
    """Resident memory now and at its peak (bytes), its anonymous part now (libtorrent maps its
    files, so its resident memory counts page cache too), threads and descriptors of a running
    process."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            values[key] = value.split()
    return {
        "rss": int(values["VmRSS"][0]) * KIB,
        "hwm": int(values["VmHWM"][0]) * KIB,
        "anon": int(values["RssAnon"][0]) * KIB,
        "threads": int(values["Threads"][0]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def wait_sampling(proc, timeout):
    """Waits for `proc` to exit; returns its exit code and its peak anonymous resident memory,
    sampled every 0.2 s."""
    deadline = time.monotonic() + timeout
    peak = 0
    while not proc.poll():
        try:
            peak = max(peak, proc_status(proc.popen.pid)["anon"])
        except (FileNotFoundError, ProcessLookupError, KeyError):
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{proc.popen.args[0]} did not exit in {timeout} s")
        time.sleep(0.2)
    return os.waitstatus_to_exitcode(proc.status), peak


def create_small(work, count):
    """`count` files of 256 KiB and their torrents (16 KiB pieces), made by libtorrent."""
    data, torrents = os.path.join(work, "small"), os.path.join(work, "small-torrents")
    if os.path.isdir(torrents) and len(os.listdir(torrents)) >= count:
        return data, sorted(os.path.join(torrents, t) for t in os.listdir(torrents))[:count]
    os.makedirs(data, exist_ok=True)
    os.makedirs(torrents, exist_ok=True)
    script = (
        "import libtorrent as lt, os, sys\n"
        "data, out, count = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
        "for i in range(count):\n"
        "    name = f'f{i:05}.bin'\n"
        "    with open(os.path.join(data, name), 'wb') as f: f.write(os.urandom(262144))\n"
        "    fs = lt.file_storage(); lt.add_files(fs, os.path.join(data, name))\n"
        "    t = lt.create_torrent(fs, 16384); lt.set_piece_hashes(t, data)\n"
        "    open(os.path.join(out, f't{i:05}.torrent'), 'wb').write(lt.bencode(t.generate()))\n")
    subprocess.run([LT[0], "-c", script, data, torrents, str(count)], check=True)
    return data, sorted(os.path.join(torrents, t) for t in os.listdir(torrents))[:count]


def start_seeder(engine, args, torrents, data, max_peers=None):
    """Starts `engine` seeding; returns (Proc, address, seconds until every torrent seeds)."""
    started = time.monotonic()
    if engine == "libtorrent":
        proc = sw.Proc(LT + ["seed-many", data, "127.0.0.2"] + torrents, stdin=True, stdout=True)
        line = proc.read_line(lambda l: l.startswith("READY"), 900)
        return proc, f"127.0.0.2:{int(line.split()[1])}", time.monotonic() - started
    # A fresh start: cratetorrent checks the data as libtorrent does, not from resume data.
    shutil.rmtree(os.path.join(data, ".cratetorrent"), ignore_errors=True)
    addr = f"127.0.0.1:{sw.free_port('127.0.0.1')}"
    extra = ["--max-peers", str(max_peers)] if max_peers else []
    proc = sw.Proc([args.cratetorrent, "download", *torrents, "-o", data, "--seed", "--listen",
                    addr, "--json", *CT_FLAGS, *extra], stdout=True)
    checked = 0
    while checked < len(torrents):
        proc.read_line(lambda l: '"event":"checked"' in l, 900)
        checked += 1
    ready = time.monotonic() - started
    # Its JSON stats (a line a second per torrent with peers, and when an idle one's change)
    # are read and dropped, so that a full pipe never holds the process up.
    threading.Thread(target=lambda: sum(1 for _ in proc.popen.stdout), daemon=True).start()
    return proc, addr, ready


def part_torrents(args, results):
    counts = [int(n) for n in args.torrents.split(",")]
    data, torrents = create_small(args.work, max(counts))
    for count in counts:
        for engine in ("libtorrent", "cratetorrent"):
            sw.note(f"torrents: {engine} seeding {count}")
            proc, addr, ready = start_seeder(engine, args, torrents[:count], data)
            pid = proc.popen.pid
            time.sleep(2)
            idle_from = sw.cpu_seconds(pid)
            time.sleep(5)
            idle = (sw.cpu_seconds(pid) - idle_from) / 5
            status = proc_status(pid)
            churn_dir = os.path.join(args.work, "churn")
            shutil.rmtree(churn_dir, ignore_errors=True)
            os.makedirs(churn_dir)
            wanted = torrents[:count][:CHURN_TORRENTS]
            cpu_from = sw.cpu_seconds(pid)
            leecher = sw.Proc(LT + ["churn", churn_dir, "127.0.0.3", addr, str(CHURN_AT_ONCE)]
                              + wanted, stdout=True)
            line = leecher.read_line(lambda l: l.startswith("DONE"), 700)
            churn_cpu = sw.cpu_seconds(pid) - cpu_from
            after = proc_status(pid)
            leecher.wait(30)
            proc.stop()
            results.append({
                "part": "torrents", "engine": engine, "torrents": count,
                "ready_s": ready, "rss": status["rss"], "anon": status["anon"],
                "threads": status["threads"],
                "fds": status["fds"], "idle_cpu": idle, "churned": len(wanted),
                "churn_s": float(line.split()[1]), "churn_cpu": churn_cpu,
                "rss_after_churn": after["rss"],
            })
            save(args, results)


def part_connections(args, results):
    directory = os.path.join(args.work, "one")
    os.makedirs(directory, exist_ok=True)
    payload = os.path.join(directory, "one.bin")
    torrent = os.path.join(args.work, "one.torrent")
    if not os.path.exists(torrent):
        sw.write_random(payload, ONE_SIZE)
        subprocess.run([args.cratetorrent, "create", payload, "--piece-size", "256K", "--v1",
                        "-o", torrent, "-q"], check=True)
    for engine in ("libtorrent", "cratetorrent"):
        sw.note(f"connections: {engine} seeding to {LOAD_CONNECTIONS}")
        proc, addr, _ = start_seeder(engine, args, [torrent], directory,
                                     max_peers=LOAD_CONNECTIONS + 100)
        pid = proc.popen.pid
        cpu_from = sw.cpu_seconds(pid)
        out = subprocess.run([args.loadpeer, torrent, addr, "--connections",
                              str(LOAD_CONNECTIONS), "--bytes", str(LOAD_BYTES), "--seconds",
                              "300"], check=True, capture_output=True, text=True).stdout
        cpu = sw.cpu_seconds(pid) - cpu_from
        status = proc_status(pid)
        proc.stop()
        load = json.loads(out)
        results.append({
            "part": "connections", "engine": engine, **load,
            "cpu_per_gib": cpu / (load["bytes"] / GIB), "hwm": status["hwm"],
            "anon": status["anon"],
            "threads": status["threads"],
        })
        save(args, results)


def part_pieces(args, results):
    directory = os.path.join(args.work, "million")
    os.makedirs(directory, exist_ok=True)
    payload = os.path.join(directory, "million.bin")
    torrent = os.path.join(args.work, "million.torrent")
    if not os.path.exists(torrent):
        # Sparse: the seeder's file takes no disk; the leecher writes all 16.4 GB.
        with open(payload, "wb") as f:
            f.truncate(MILLION * BLOCK)
        sw.note("pieces: hashing 1,000,000 pieces for the torrent")
        subprocess.run([args.cratetorrent, "create", payload, "--piece-size", "16K", "--v1",
                        "-o", torrent, "-q"], check=True)
    out_dir = os.path.join(args.work, "million-out")
    for engine in ("libtorrent", "cratetorrent"):
        sw.note(f"pieces: {engine} → {engine}, 1,000,000 pieces")
        proc, addr, ready = start_seeder(engine, args, [torrent], directory)
        pid = proc.popen.pid
        shutil.rmtree(out_dir, ignore_errors=True)
        os.makedirs(out_dir)
        seed_cpu = sw.cpu_seconds(pid)
        client = sw.Libtorrent() if engine == "libtorrent" else sw.Cratetorrent(args.cratetorrent)
        leecher = client.leech(torrent, out_dir, [addr], "127.0.0.4:0")
        code, leecher_anon = wait_sampling(leecher, 1200)
        seed_cpu = sw.cpu_seconds(pid) - seed_cpu
        status = proc_status(pid)
        proc.stop()
        shutil.rmtree(out_dir, ignore_errors=True)
        if code != 0:
            raise RuntimeError(f"{engine} leecher exited {code}")
        results.append({
            "part": "pieces", "engine": engine, "seconds": leecher.ended - leecher.started,
            "leecher_cpu": leecher.cpu(), "leecher_hwm": leecher.rss(),
            "leecher_anon": leecher_anon, "seeder_cpu": seed_cpu, "seeder_rss": status["rss"],
            "seeder_anon": status["anon"], "seeder_check_s": ready,
        })
        save(args, results)


def save(args, results):
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="torrents,connections,pieces")
    parser.add_argument("--torrents", default="10,100,1000")
    parser.add_argument("--work", default="/var/tmp/cratetorrent-scale")
    parser.add_argument("--cratetorrent", default=os.path.join(ROOT, "target/release/cratetorrent"))
    parser.add_argument("--loadpeer", default=os.path.join(ROOT, "target/release/loadpeer"))
    parser.add_argument("--json", default=os.path.join(ROOT, "target/scale-bench.json"))
    parser.add_argument("--markdown", help="write the scale section of this file (BENCHMARKS.md)")
    args = parser.parse_args()
    for binary in (args.cratetorrent, args.loadpeer):
        if not os.access(binary, os.X_OK):
            sys.exit(f"{binary} is missing: cargo build --release -p cratetorrent-cli "
                     "-p cratetorrent-benches")
    os.makedirs(args.work, exist_ok=True)
    results = []
    parts = args.parts.split(",")
    for name, run in (("torrents", part_torrents), ("connections", part_connections),
                      ("pieces", part_pieces)):
        if name in parts:
            run(args, results)
    import scale_report
    table = scale_report.markdown(results, args)
    print(table)
    if args.markdown:
        scale_report.write(args.markdown, table)


if __name__ == "__main__":
    main()
