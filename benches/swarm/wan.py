#!/usr/bin/python3
"""The WAN benchmark: scenario 1, one seeder -> one leecher across an emulated link (here);
scenarios 2 (eight seeders), 3 (flash crowd) and 4 (end-game tail) in wan_many.py.

Each run starts the user-space WAN emulator (benches/wanem: two hosts in network namespaces),
a seeder in one host and a leecher in the other, and times the leecher to completion. The link
is the same both ways: one-way delay RTT/4 per host link (the round trip crosses four), the
given rate, a queue of one bandwidth-delay product, and with --loss, random loss on the seeder's
uplink (the data's direction). Pairings: libtorrent -> libtorrent, libtorrent -> cratetorrent,
cratetorrent -> libtorrent, cratetorrent -> cratetorrent, alternating run by run; the median
is reported as link utilisation (payload bytes per second over the link's rate; TCP/IP headers
alone cap it at 0.965 with 1500-byte packets), beside that of one plain TCP flow across the same
link for as long (`tcp`: the kernel's own limit there, e.g. its send buffer at long round trips).

usage: sudo /usr/bin/python3 benches/swarm/wan.py [--scenario 1,2,3,4] [--quick] [--runs N]
       [--rtt 20,100,300] [--rate 10M,100M] [--loss 0,0.01] [--seconds S] [--json FILE]
       [--transport tcp|utp] [--markdown BENCHMARKS.md]
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


def leecher_cmd(client, ct, namespace, addr, torrent, out, peers):
    """`client` downloading `torrent` into `out` from `peers`, in host `namespace`."""
    if client == "libtorrent":
        return netns(namespace, sw.LT + ["leech", torrent, out, f"{addr}:{PORT}"] + peers)
    cmd = [ct, "download", torrent, "-o", out, "--listen", f"{addr}:{PORT}", "-q"] + sw.CT_TUNING
    for peer in peers:
        cmd += ["--peer", peer]
    return netns(namespace, cmd)


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


def rx_bytes(pid, transmitted=False):
    """Bytes the links delivered into (or, `transmitted`, carried out of) process `pid`'s
    network namespace: its TUN device's counters."""
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            rows = [line.split(":", 1) for line in f.readlines()[2:]]
    except OSError:
        return None
    field = 8 if transmitted else 0
    return sum(int(counters.split()[field]) for name, counters in rows if name.strip() != "lo")


def in_namespace(pid, namespace):
    """Whether process `pid` has entered network namespace `namespace` (`ip netns exec` runs
    in the caller's until it switches)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{namespace}").st_ino
    except OSError:
        return False


def watch(proc, namespace, timeout):
    """Waits for `proc`, which runs in `namespace`; returns its exit code and samples
    (seconds, bytes received by the namespace)."""
    deadline = time.monotonic() + timeout
    samples = []
    while not proc.poll():
        received = rx_bytes(proc.popen.pid) if in_namespace(proc.popen.pid, namespace) else None
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
        leecher = sw.Proc(leecher_cmd(pairing[1], args.cratetorrent, leech_ns, leech_addr,
                                      torrent, out, [peer]))
        code, samples = watch(leecher, leech_ns, sw.TIMEOUT)
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


def scenario1(args):
    rates = [int(float(r[:-1]) * 1e6) if r.endswith("M") else int(r) for r in args.rate.split(",")]
    configs = [(int(rtt), rate, float(loss)) for rtt in args.rtt.split(",") for rate in rates
               for loss in args.loss.split(",")]
    ct = sw.Cratetorrent(args.cratetorrent)
    results = {}
    for config in configs:
        rtt, rate, loss = config
        size = min(int(rate * args.seconds), args.max_size) // sw.MIB * sw.MIB
        work, src, torrent = sw.prepare("/dev/shm", "single", "256K", size, ct)
        label = f"RTT {rtt} ms, {rate / 1e6:g} MB/s, loss {loss * 100:g} %"
        samples = {p: [] for p in PAIRINGS}
        try:
            for _ in range(args.runs):
                for pairing in PAIRINGS:
                    samples[pairing].append(one_run(args, pairing, config, work, src, torrent, size))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        row = {"size_mib": size // sw.MIB, "tcp": raw_tcp(args, config, args.seconds)}
        for pairing, runs in samples.items():
            name = f"{pairing[0][:2]}->{pairing[1][:2]}".replace("li", "lt").replace("cr", "ct")
            row[name] = sw.median([r["utilisation"] for r in runs])
            row[name + " steady"] = sw.median([r["steady"] for r in runs])
        results[label] = row
        whole = "  ".join(f"{k} {v:.3f}" for k, v in row.items() if "->" in k and "steady" not in k)
        steady = "  ".join(f"{k.split()[0]} {v:.3f}" for k, v in row.items() if "steady" in k)
        print(f"{label} ({size // sw.MIB} MiB): utilisation tcp {row['tcp']:.3f}  {whole}; "
              f"steady {steady}", flush=True)
        args.save("scenario1", results)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default="1,2,3,4",
                        help="which scenarios, e.g. 1 or 2,3 (default all): 1 one link's grid, "
                             "2 eight seeders, 3 flash crowd, 4 end-game tail")
    parser.add_argument("--quick", action="store_true",
                        help="scenario 1 on one link (RTT 100 ms, 10 MB/s, no loss), one run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rtt", default="20,100,300", help="round trips, ms")
    parser.add_argument("--rate", default="10M,100M", help="link rates, bytes per second")
    parser.add_argument("--loss", default="0,0.01")
    parser.add_argument("--seconds", type=float, default=12.0,
                        help="payload size as this many seconds of the link's rate")
    parser.add_argument("--max-size", type=int, default=512 * sw.MIB,
                        help="largest payload, bytes (default 512 MiB: a 100 MB/s link at 300 ms "
                             "and 1 %% loss carries a few MB/s)")
    parser.add_argument("--cratetorrent", default=os.path.join(sw.ROOT, "target/release/cratetorrent"))
    parser.add_argument("--wanem", default=os.path.join(sw.ROOT, "target/release/wanem"))
    parser.add_argument("--json", default=os.path.join(sw.ROOT, "target/wan-bench.json"))
    parser.add_argument("--markdown", help="write the WAN section of this file (BENCHMARKS.md) "
                                           "and the flash crowd's plot beside it")
    parser.add_argument("--transport", choices=("tcp", "utp"), default="tcp",
                        help="the clients' transport (utp: libtorrent and cratetorrent both "
                             "uTP only; the `tcp` column stays one TCP flow)")
    args = parser.parse_args()
    args.argv = sys.argv[1:]
    if args.transport == "utp":
        # Both clients on uTP: libtorrent through lt_client's switch, ours by its flag.
        os.environ["LT_TRANSPORT"] = "utp"
        sw.CT_TUNING[sw.CT_TUNING.index("tcp")] = "utp"
    if args.quick:
        args.scenario, args.rtt, args.rate, args.loss, args.runs = "1", "100", "10M", "0", 1
    import wan_many
    scenarios = {"1": scenario1, "2": wan_many.scenario2, "3": wan_many.scenario3,
                 "4": wan_many.scenario4}
    results = {}

    def save(scenario, figures):
        """Keeps what is measured so far in args.json (a long grid may be cut short)."""
        results[scenario] = figures
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)

    args.save = save
    for name in args.scenario.split(","):
        save(f"scenario{name}", scenarios[name](args))
    if args.markdown:
        import wan_report
        wan_report.write(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
