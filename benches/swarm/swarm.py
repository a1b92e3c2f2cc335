#!/usr/bin/python3
"""The swarm benchmark: whole client processes on loopback, seeder -> leecher, side by side.

Pairings (seeder -> leecher): libtorrent -> libtorrent, libtorrent -> cratetorrent,
cratetorrent -> libtorrent, cratetorrent -> cratetorrent, libtorrent -> rqbit (when rqbit is
installed or can be built); then many-peer cases: 8 libtorrent seeders on 127.0.0.2-9 -> one
leecher, and one seeder -> 20 libtorrent leechers that also trade with each other; Transmission
-> libtorrent and Transmission -> cratetorrent on the smaller many-peer payload (when
transmission-daemon exists: it seeds at a few MB/s on loopback, so 1 GiB would take minutes);
the leecher's peak RSS on a 4 GiB payload; and libtorrent and cratetorrent each fetching a
256 MiB torrent by magnet link from a libtorrent seed (time to metadata, to complete; see
magnet.py). Runs alternate A B C ... A B C and the
median of each figure is reported: throughput (MB/s, payload / leecher wall time), leecher CPU
seconds per GiB (user + sys), peak RSS of leecher and seeder, time to first byte on disk.

usage: /usr/bin/python3 benches/swarm/swarm.py [--quick] [options]   (see --help)
Loopback only; every process is stopped by PID; every wait has a timeout.
"""
import argparse
import json
import os
import re
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LT = ["/usr/bin/python3", os.path.join(HERE, "lt_client.py")]
TIMEOUT = 600
MIB = 1 << 20
GIB = 1 << 30


def parse_size(text):
    units = {"k": 10, "m": 20, "g": 30}
    text = text.strip().lower().rstrip("b").rstrip("i")
    if text and text[-1] in units:
        return int(float(text[:-1]) * (1 << units[text[-1]]))
    return int(text)


def free_port(ip="127.0.0.1"):
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def note(text):
    print(text, file=sys.stderr, flush=True)


class Proc:
    """A child process measured with wait4 (CPU and peak RSS of that process alone)."""

    def __init__(self, args, stdin=False, stdout=False):
        self.popen = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.started = time.monotonic()
        self.status = None
        self.rusage = None
        self.ended = None

    def poll(self):
        if self.status is None:
            pid, status, rusage = os.wait4(self.popen.pid, os.WNOHANG)
            if pid:
                self.status, self.rusage, self.ended = status, rusage, time.monotonic()
                self.popen.returncode = os.waitstatus_to_exitcode(status)
        return self.status is not None

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.poll():
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.popen.args[0]} did not exit in {timeout} s")
            time.sleep(0.01)
        return os.waitstatus_to_exitcode(self.status)

    def read_line(self, want, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.popen.stdout.readline()
            if not line:
                break
            if want(line):
                return line
        self.kill()
        raise RuntimeError(f"{self.popen.args[:3]} never became ready")

    def stop(self, how=signal.SIGINT):
        if self.poll():
            return
        if self.popen.stdin:
            try:
                self.popen.stdin.close()
            except OSError:
                pass
        try:
            os.kill(self.popen.pid, how)
        except ProcessLookupError:
            pass
        try:
            self.wait(30)
        except RuntimeError:
            pass

    def kill(self):
        if not self.poll():
            try:
                os.kill(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait(10)

    def cpu(self):
        return self.rusage.ru_utime + self.rusage.ru_stime

    def rss(self):
        return self.rusage.ru_maxrss * 1024

    def cpu_now(self):
        """CPU seconds (user + system) used so far, while it runs; None once it has exited."""
        try:
            return cpu_seconds(self.popen.pid)
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return None


def cpu_seconds(pid):
    """CPU seconds (user + system) a running process has used, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- clients ----

class Client:
    name = "?"

    def seed(self, torrent, data_dir, ip):
        raise NotImplementedError

    def leech(self, torrent, out_dir, peers, listen):
        raise NotImplementedError


class Libtorrent(Client):
    name = "libtorrent"

    def seed(self, torrent, data_dir, ip):
        proc = Proc(LT + ["seed", torrent, data_dir, ip], stdin=True, stdout=True)
        line = proc.read_line(lambda l: l.startswith("READY"), 300)
        return proc, f"{ip}:{int(line.split()[1])}"

    def leech(self, torrent, out_dir, peers, listen):
        return Proc(LT + ["leech", torrent, out_dir, listen] + peers)


# The one setting where libtorrent's high_performance_seed() differs from our defaults that
# matters here: it unchokes every interested peer (unchoke_slots_limit = -1).
# Every engine unchokes all (as libtorrent's high_performance_seed), and none looks for peers on
# the local network (libtorrent's LSD is off here too).
CT_TUNING = ["--upload-slots", "0", "--no-lsd", "--no-dht", "--transport", "tcp"]


class Cratetorrent(Client):
    name = "cratetorrent"

    def __init__(self, binary):
        self.binary = binary

    def seed(self, torrent, data_dir, ip):
        addr = f"{ip}:{free_port(ip)}"
        proc = Proc([self.binary, "seed", torrent, data_dir, "--listen", addr, "--json"]
                    + CT_TUNING, stdout=True)
        proc.read_line(lambda l: '"event":"checked"' in l, 300)
        return proc, addr

    def leech(self, torrent, out_dir, peers, listen):
        args = [self.binary, "download", torrent, "-o", out_dir, "--listen", listen, "-q"] + CT_TUNING
        for peer in peers:
            args += ["--peer", peer]
        return Proc(args)


class Rqbit(Client):
    name = "rqbit"

    def __init__(self, binary):
        self.binary = binary

    def leech(self, torrent, out_dir, peers, listen):
        ip, port = listen.rsplit(":", 1)
        if port == "0":
            port = str(free_port(ip))
        return Proc([self.binary, "--disable-dht", "--disable-dht-persistence", "--disable-lsd",
                     "--disable-upnp-port-forward", "--listen-ip", ip, "--listen-port", port,
                     "download", "--initial-peers", ",".join(peers), "-e",
                     "--disable-http-api", "-o", out_dir, torrent])


class Transmission(Client):
    name = "transmission"

    def seed(self, torrent, data_dir, ip):
        config = os.path.join(os.path.dirname(data_dir.rstrip("/")), f"tr-{time.time_ns()}")
        os.makedirs(config)
        peer_port, rpc_port = free_port(), free_port()
        settings = {
            "dht-enabled": False, "lpd-enabled": False, "pex-enabled": False,
            "utp-enabled": False, "port-forwarding-enabled": False,
            "bind-address-ipv4": ip, "peer-port": peer_port,
            "peer-port-random-on-start": False, "rpc-enabled": True, "rpc-port": rpc_port,
            "rpc-bind-address": "127.0.0.1", "rpc-authentication-required": False,
            "rpc-whitelist-enabled": False, "rpc-host-whitelist-enabled": False,
            "encryption": 0, "speed-limit-down-enabled": False,
            "speed-limit-up-enabled": False, "alt-speed-enabled": False,
            "download-queue-enabled": False, "seed-queue-enabled": False,
            "ratio-limit-enabled": False, "idle-seeding-limit-enabled": False,
            "start-added-torrents": True, "message-level": 0,
        }
        with open(os.path.join(config, "settings.json"), "w") as f:
            json.dump(settings, f)
        proc = Proc(["transmission-daemon", "-f", "-g", config])
        rpc = TransmissionRpc(rpc_port)
        rpc.call("torrent-add", {"filename": torrent, "download-dir": data_dir})
        deadline = time.monotonic() + 300
        while True:
            torrents = rpc.call("torrent-get", {"fields": ["percentDone", "status"]})
            found = torrents.get("arguments", {}).get("torrents", [])
            if found and found[0]["percentDone"] == 1 and found[0]["status"] == 6:
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("transmission never started seeding")
            time.sleep(0.1)
        return proc, f"{ip}:{peer_port}"


class TransmissionRpc:
    def __init__(self, port):
        self.url = f"http://127.0.0.1:{port}/transmission/rpc"
        self.session = ""

    def call(self, method, arguments):
        body = json.dumps({"method": method, "arguments": arguments}).encode()
        deadline = time.monotonic() + 30
        while True:
            request = urllib.request.Request(
                self.url, data=body, headers={"X-Transmission-Session-Id": self.session})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as error:
                if error.code != 409:
                    raise
                self.session = error.headers.get("X-Transmission-Session-Id", "")
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


# ---- payloads ----

def write_payload(root, kind, size):
    """A 1-file payload `payload.bin`, or `payload/` with 200 files of mixed sizes."""
    rng = random.Random(7)
    if kind == "single":
        path = os.path.join(root, "payload.bin")
        write_random(path, size)
        return path
    base = os.path.join(root, "payload")
    tiny = [rng.randint(1, 4096) for _ in range(40)]
    rest = size - sum(tiny)
    weights = [rng.random() ** 3 for _ in range(160)]
    scale = rest / sum(weights)
    sizes = tiny + [max(1, int(w * scale)) for w in weights]
    sizes[-1] += size - sum(sizes)
    rng.shuffle(sizes)
    for index, length in enumerate(sizes):
        write_random(os.path.join(base, f"d{index % 7}", f"f{index:03}.bin"), max(length, 0))
    return base


def write_random(path, size):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n


def same_tree(a, b):
    if os.path.isfile(a):
        return os.path.isfile(b) and files_equal(a, b)
    for dirpath, _, files in os.walk(a):
        for name in files:
            src = os.path.join(dirpath, name)
            dst = os.path.join(b, os.path.relpath(src, a))
            if not os.path.isfile(dst) and os.path.getsize(src) == 0:
                continue  # some clients do not create empty files
            if not files_equal(src, dst):
                return False
    return True


def files_equal(a, b):
    try:
        with open(a, "rb") as x, open(b, "rb") as y:
            while True:
                p, q = x.read(MIB), y.read(MIB)
                if p != q:
                    return False
                if not p:
                    return True
    except OSError:
        return False


def first_byte_on_disk(path):
    """Whether any file under `path` has a data block allocated."""
    if os.path.isfile(path):
        return os.stat(path).st_blocks > 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                if os.stat(os.path.join(dirpath, name)).st_blocks > 0:
                    return True
            except OSError:
                pass
    return False


# ---- runs ----

def run_pair(seeders, leechers, torrent, src, name, work, size):
    """Starts the seeders, then times the leechers until every one exits. Returns figures."""
    seeds = []
    procs = []
    try:
        for index, client in enumerate(seeders):
            ip = f"127.0.0.{index + 2}" if len(seeders) > 1 else "127.0.0.1"
            proc, addr = client.seed(torrent, os.path.dirname(src), ip)
            seeds.append((proc, addr))
        addrs = [addr for _, addr in seeds]
        outs = []
        listens = []
        for index in range(len(leechers)):
            ip = f"127.0.0.{index + 10}" if len(leechers) > 1 else "127.0.0.1"
            listens.append(f"{ip}:{free_port(ip)}")
        # The seeders' CPU from here on is the transfer's (their data check came before).
        seed_cpu = [proc.cpu_now() for proc, _ in seeds]
        started = time.monotonic()
        for index, client in enumerate(leechers):
            out = os.path.join(work, f"leech{index}")
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            outs.append(out)
            # Leechers also know each other, so that they can trade.
            others = [l for i, l in enumerate(listens) if i != index]
            procs.append(client.leech(torrent, out, addrs + others, listens[index]))
        first_byte = None
        deadline = started + TIMEOUT
        target = os.path.join(outs[0], name)
        while not all(p.poll() for p in procs):
            if first_byte is None and first_byte_on_disk(target):
                first_byte = time.monotonic() - started
            if time.monotonic() > deadline:
                raise RuntimeError("leechers did not finish in time")
            time.sleep(0.005 if first_byte is None else 0.02)
        codes = [os.waitstatus_to_exitcode(p.status) for p in procs]
        if any(codes):
            raise RuntimeError(f"a leecher failed with exit codes {codes}")
        wall = max(p.ended for p in procs) - started
        seed_cpu = [(proc.cpu_now() or 0) - (before or 0)
                    for (proc, _), before in zip(seeds, seed_cpu)]
        for out in outs:
            if not same_tree(src, os.path.join(out, name)):
                raise RuntimeError("a download differs from the payload")
        for proc, _ in seeds:
            proc.stop()
        lead = procs[0]
        return {
            "seconds": wall,
            "mb_per_s": size * len(procs) / wall / 1e6,
            "leech_cpu_per_gib": lead.cpu() / (size / GIB),
            "leech_rss_mib": lead.rss() / MIB,
            "seed_cpu_per_gib": sum(seed_cpu) / (size * len(procs) / GIB),
            "seed_rss_mib": max(p.rss() for p, _ in seeds if p.rusage) / MIB
            if any(p.rusage for p, _ in seeds) else None,
            "first_byte_ms": None if first_byte is None else first_byte * 1000,
        }
    finally:
        for proc in procs:
            proc.kill()
        for proc, _ in seeds:
            proc.stop(signal.SIGKILL)
        for out in [os.path.join(work, d) for d in os.listdir(work) if d.startswith("leech")]:
            shutil.rmtree(out, ignore_errors=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="256 MiB, /dev/shm, 256 KiB pieces, single file, 3 runs")
    parser.add_argument("--size", default="1G", help="payload size (default 1G)")
    parser.add_argument("--many-size", default="128M", help="payload of the many-peer cases")
    parser.add_argument("--runs", type=int, default=3, help="runs of each pairing (default 3)")
    parser.add_argument("--dirs", default="/dev/shm,/var/tmp", help="where payloads live")
    parser.add_argument("--pieces", default="256K,1M", help="piece sizes")
    parser.add_argument("--payloads", default="single,multi", help="single and/or multi")
    parser.add_argument("--no-many", action="store_true", help="skip the many-peer cases")
    parser.add_argument("--no-rqbit", action="store_true", help="skip rqbit")
    parser.add_argument("--no-transmission", action="store_true", help="skip Transmission")
    parser.add_argument("--rss-size", default="4G",
                        help="payload of the large-payload RSS check (default 4G)")
    parser.add_argument("--no-rss", action="store_true", help="skip the large-payload RSS check")
    parser.add_argument("--magnet-size", default="256M", help="payload of the magnet case")
    parser.add_argument("--no-magnet", action="store_true", help="skip the magnet case")
    parser.add_argument("--magnet-only", action="store_true", help="run only the magnet case")
    parser.add_argument("--cratetorrent", default=os.path.join(ROOT, "target/release/cratetorrent"))
    parser.add_argument("--rqbit", default=os.path.expanduser("~/.cache/cratetorrent-bench/bin/rqbit"))
    parser.add_argument("--json", default=os.path.join(ROOT, "target/swarm-bench.json"))
    parser.add_argument("--markdown", help="also write the report (e.g. BENCHMARKS.md)")
    parser.add_argument("--transport", choices=("tcp", "utp"), default="tcp",
                        help="libtorrent's and cratetorrent's transport (default tcp)")
    parser.add_argument("--meta", choices=("v1", "v2", "hybrid"), default="v1",
                        help="the torrents' BEP 52 version (default v1; v2: per-file merkle "
                             "trees, SHA-256, on both sides)")
    parser.add_argument("--encryption", choices=("off", "rc4"), default="off",
                        help="rc4: libtorrent and cratetorrent both require RC4-encrypted "
                             "connections (default off: plain handshakes)")
    args = parser.parse_args()
    set_variant(args.transport, args.encryption)
    META[0] = args.meta
    if args.quick:
        args.size, args.dirs, args.pieces, args.payloads = "256M", "/dev/shm", "256K", "single"
        args.many_size, args.rss_size, args.magnet_size = "64M", "512M", "64M"

    subprocess.run(["cargo", "build", "--release", "-q", "-p", "cratetorrent-cli"], cwd=ROOT,
                   check=True)
    ct = Cratetorrent(args.cratetorrent)
    lt = Libtorrent()
    pairings = [("libtorrent", lt, "libtorrent", lt), ("libtorrent", lt, "cratetorrent", ct),
                ("cratetorrent", ct, "libtorrent", lt), ("cratetorrent", ct, "cratetorrent", ct)]
    skipped = []
    rqbit = find_rqbit(args)
    if rqbit:
        pairings.append(("libtorrent", lt, "rqbit", Rqbit(rqbit)))
    elif args.no_rqbit:
        skipped.append("rqbit (--no-rqbit)")
    else:
        skipped.append("rqbit (not installed and could not be built; --no-rqbit to silence)")
    transmission = None
    if args.no_transmission:
        skipped.append("transmission (--no-transmission)")
    elif shutil.which("transmission-daemon"):
        transmission = Transmission()
    else:
        skipped.append("transmission (transmission-daemon not installed)")

    size = parse_size(args.size)
    results = []
    args.limits = {} if args.magnet_only else measure_limits(args.dirs.split(","))
    if args.magnet_only:
        import magnet  # noqa: E402 (it imports this module)
        results = magnet.bench_magnet(args.dirs.split(",")[0], args.magnet_size, args.runs, ct, lt)
        report(results, args, skipped)
        return
    for directory in args.dirs.split(","):
        for kind in args.payloads.split(","):
            for piece in args.pieces.split(","):
                results += bench_config(directory, kind, piece, size, args.runs, pairings, ct)
    first_dir = args.dirs.split(",")[0]
    many_size = parse_size(args.many_size)
    if not args.no_many:
        results += bench_cases(f"{first_dir} single 256K many-peer", first_dir, many_size,
                               args.runs, ct, [
                                   ("8 libtorrent -> libtorrent", [lt] * 8, [lt]),
                                   ("8 libtorrent -> cratetorrent", [lt] * 8, [ct]),
                                   ("libtorrent -> 20 libtorrent", [lt], [lt] * 20),
                                   ("cratetorrent -> 20 libtorrent", [ct], [lt] * 20)])
    if transmission:
        results += bench_cases(f"{first_dir} single 256K transmission", first_dir, many_size,
                               args.runs, ct, [
                                   ("transmission -> libtorrent", [transmission], [lt]),
                                   ("transmission -> cratetorrent", [transmission], [ct])])
    if not args.no_rss:
        rss_size = parse_size(args.rss_size)
        results += bench_cases(f"{first_dir} single 256K {args.rss_size} RSS", first_dir,
                               rss_size, 1, ct, [
                                   ("libtorrent -> cratetorrent", [lt], [ct]),
                                   ("cratetorrent -> cratetorrent", [ct], [ct])])
    if not args.no_magnet:
        import magnet  # noqa: E402 (it imports this module)
        results += magnet.bench_magnet(first_dir, args.magnet_size, args.runs, ct, lt)
    report(results, args, skipped)


def set_variant(transport, encryption):
    """Both clients on `transport` (tcp, utp) and `encryption` (off, rc4): cratetorrent
    through its flags, libtorrent through lt_client's environment switches."""
    CT_TUNING[CT_TUNING.index("--transport") + 1] = transport
    if transport == "utp":
        os.environ["LT_TRANSPORT"] = "utp"
    if encryption == "rc4":
        os.environ["LT_ENCRYPTION"] = "rc4"
    CT_TUNING.extend(["--encryption", encryption])


def measure_limits(dirs):
    """The machine's limits for a transfer into each payload directory (`benches/limits.rs`:
    memcpy, SHA-1, page cache, loopback TCP), or none without its release build."""
    binary = os.path.join(ROOT, "target/release/limits")
    if not os.access(binary, os.X_OK):
        note("no target/release/limits: physical limits not measured")
        return {}
    limits = {}
    for directory in dirs:
        done = subprocess.run([binary, directory], capture_output=True, text=True, check=False)
        if done.returncode == 0:
            limits[directory] = json.loads(done.stdout)
    return limits


def cpu_floors(l):
    """The least CPU seconds per GiB each end of a transfer can spend on this machine: the
    seeder reads the page cache and sends (or `sendfile`s, or sends zero-copy from registered
    buffers: whichever sending end is cheapest), the leecher receives (plain or into registered
    buffers), writes the page cache and hashes."""
    read, write, sha1 = GIB / l["page_cache_read"], GIB / l["page_cache_write"], GIB / l["sha1"]
    sending = [read + l["loopback_tcp_sender_cpu_per_gib"]]
    if "loopback_sendfile_sender_cpu_per_gib" in l:
        sending.append(l["loopback_sendfile_sender_cpu_per_gib"])
    if "loopback_send_zc_sender_cpu_per_gib" in l:
        sending.append(read + l["loopback_send_zc_sender_cpu_per_gib"])
    receiving = [l["loopback_tcp_receiver_cpu_per_gib"]]
    if "loopback_read_fixed_receiver_cpu_per_gib" in l:
        receiving.append(l["loopback_read_fixed_receiver_cpu_per_gib"])
    return min(sending), min(receiving) + write + sha1


def limits_summary(results, limits):
    """Each directory's limits, the copy-bound ceiling of a transfer on this machine's cores,
    the fraction of it the fastest pairings reach, and each end's CPU floor against
    libtorrent's CPU."""
    lines = []
    cores = os.cpu_count() or 1
    for directory, l in limits.items():
        # CPU seconds per GiB moved: the seeder's read from the page cache, the loopback flow
        # (both ends), the leecher's write to the page cache and its SHA-1.
        per_gib = (GIB / l["page_cache_read"] + l["loopback_tcp_cpu_per_gib"]
                   + GIB / l["page_cache_write"] + GIB / l["sha1"])
        ceiling = cores * GIB / per_gib
        best = {}
        lt_cpu = {"seed_cpu_per_gib": [], "leech_cpu_per_gib": []}
        for r in results:
            if r["config"].startswith(directory + " ") and r["mb_per_s"] and not any(
                    w in r["config"] for w in ("many", "transmission", "RSS", "magnet")):
                best[r["pairing"]] = max(best.get(r["pairing"], 0), r["mb_per_s"] * 1e6)
                if r["pairing"] == "libtorrent -> libtorrent":
                    for key, values in lt_cpu.items():
                        if r.get(key):
                            values.append(r[key])
        reached = ", ".join(f"{pairing} {rate / ceiling:.2f}" for pairing, rate in best.items()
                            if pairing in ("libtorrent -> libtorrent",
                                           "cratetorrent -> cratetorrent"))
        flows = "; ".join(
            f"{label} {l[key] / 1e9:.2f} GB/s at {l[key + '_sender_cpu_per_gib']:.2f} + "
            f"{l[key + '_receiver_cpu_per_gib']:.2f}"
            for key, label in (("loopback_tcp", "write/read"), ("loopback_sendfile", "sendfile"),
                               ("loopback_send_zc", "io_uring SEND_ZC"),
                               ("loopback_read_fixed", "io_uring READ_FIXED"))
            if key + "_sender_cpu_per_gib" in l)
        line = (
            f"physical limits [{directory}]: memcpy {l['memcpy'] / 1e9:.1f} GB/s, SHA-1 "
            f"{l['sha1'] / 1e9:.2f} GB/s on one core, page cache write "
            f"{l['page_cache_write'] / 1e9:.2f} GB/s and read {l['page_cache_read'] / 1e9:.2f} "
            f"GB/s; one loopback TCP flow (sender + receiver CPU s/GiB): {flows or 'n/a'}; "
            f"a transfer that copies once at each "
            f"step and hashes on {cores} cores tops out at {ceiling / 1e6:.0f} MB/s; the best "
            f"run of each pairing reaches {reached or 'n/a'} of that")
        if flows and lt_cpu["seed_cpu_per_gib"] and lt_cpu["leech_cpu_per_gib"]:
            seed_floor, leech_floor = cpu_floors(l)
            lt_seed = min(lt_cpu["seed_cpu_per_gib"])
            lt_leech = min(lt_cpu["leech_cpu_per_gib"])
            line += (f"; CPU floors: a seeder {seed_floor:.2f} s/GiB ({seed_floor / lt_seed:.2f}x "
                     f"libtorrent's least, {lt_seed:.2f}), a leecher {leech_floor:.2f} s/GiB "
                     f"({leech_floor / lt_leech:.2f}x libtorrent's least, {lt_leech:.2f})")
        lines.append(line)
    return lines


def find_rqbit(args):
    if args.no_rqbit:
        return None
    if os.path.exists(args.rqbit):
        return args.rqbit
    if shutil.which("rqbit"):
        return shutil.which("rqbit")
    root = os.path.dirname(os.path.dirname(args.rqbit))
    note(f"building rqbit into {root} (once; 3-5 minutes)...")
    try:
        subprocess.run(["cargo", "install", "rqbit", "--locked", "--root", root], check=True,
                       timeout=1800, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (subprocess.SubprocessError, OSError) as error:
        note(f"rqbit could not be built: {error}")
        return None
    return args.rqbit if os.path.exists(args.rqbit) else None


def prepare(directory, kind, piece, size, ct):
    work = os.path.join(directory, f"ct-swarm-bench-{os.getpid()}")
    src_root = os.path.join(work, "src")
    os.makedirs(src_root, exist_ok=True)
    src = write_payload(src_root, kind, size)
    torrent = os.path.join(work, "payload.torrent")
    # v1 unless --meta says otherwise (hybrids add padding and SHA-256 checks on both sides).
    subprocess.run([ct.binary, "create", src, "-o", torrent, "--force", "--piece-size", piece, "-q",
                    "--no-date", f"--{META[0]}"], check=True, stdout=subprocess.DEVNULL)
    return work, src, torrent


def bench_config(directory, kind, piece, size, runs, pairings, ct):
    label = f"{directory} {kind} {piece}"
    work, src, torrent = prepare(directory, kind, piece, size, ct)
    name = os.path.basename(src)
    samples = {i: [] for i in range(len(pairings))}
    try:
        for run in range(runs):
            for index, (seed_name, seeder, leech_name, leecher) in enumerate(pairings):
                note(f"[{label}] run {run + 1}/{runs}: {seed_name} -> {leech_name}")
                try:
                    samples[index].append(
                        run_pair([seeder], [leecher], torrent, src, name, work, size))
                except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                    note(f"  failed: {error}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [summarise(label, f"{s} -> {l}", samples[i], size)
            for i, (s, _, l, _) in enumerate(pairings)]


def bench_cases(label, directory, size, runs, ct, cases):
    """Runs (name, seeders, leechers) cases on one single-file 256 KiB-piece payload."""
    work, src, torrent = prepare(directory, "single", "256K", size, ct)
    name = os.path.basename(src)
    samples = {c[0]: [] for c in cases}
    try:
        for run in range(runs):
            for case, seeders, leechers in cases:
                note(f"[{label}] run {run + 1}/{runs}: {case}")
                try:
                    samples[case].append(run_pair(seeders, leechers, torrent, src, name, work, size))
                except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                    note(f"  failed: {error}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [summarise(label, case, samples[case], size) for case, _, _ in cases]


def summarise(label, pairing, samples, size):
    keys = ["mb_per_s", "leech_cpu_per_gib", "seed_cpu_per_gib", "leech_rss_mib", "seed_rss_mib",
            "first_byte_ms"]
    row = {"config": label, "pairing": pairing, "runs": len(samples), "bytes": size}
    for key in keys:
        row[key] = median([s[key] for s in samples])
    row["samples"] = samples
    return row


def fmt(value, digits=0):
    return "-" if value is None else f"{value:.{digits}f}"


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Linux {os.uname().release}"


def ratio(results, config, a, b, key):
    rows = {r["pairing"]: r for r in results if r["config"] == config}
    x, y = rows.get(a, {}).get(key), rows.get(b, {}).get(key)
    return None if not x or not y else x / y


def report(results, args, skipped):
    header = ("| config | seeder -> leecher | MB/s | leech CPU s/GiB | seed CPU s/GiB | "
              "leech RSS MiB | seed RSS MiB | first byte ms | runs |")
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['config']} | {r['pairing']} | {fmt(r['mb_per_s'])} | "
                     f"{fmt(r['leech_cpu_per_gib'], 2)} | {fmt(r.get('seed_cpu_per_gib'), 2)} | "
                     f"{fmt(r['leech_rss_mib'])} | "
                     f"{fmt(r['seed_rss_mib'])} | {fmt(r['first_byte_ms'])} | {r['runs']} |")
    table = "\n".join(lines)
    special = ("many", "transmission", "RSS", "magnet")
    configs = sorted({r["config"] for r in results
                      if not any(word in r["config"] for word in special)},
                     key=[r["config"] for r in results].index)
    summary = []
    ll = "libtorrent -> libtorrent"
    for config in configs:
        # Issue 20's bar: ct->ct 3.5x lt->lt; each side's CPU per GiB 0.3x libtorrent's in the
        # same role (the leecher's against libtorrent seeding, the seeder's against libtorrent
        # leeching). Over uTP or RC4, issue 21's: 1.3x, with no bar on CPU.
        variant = args.transport != "tcp" or args.encryption != "off"
        bars = {"lt->ct": 1.3, "ct->ct": 1.3 if variant else 3.5, "ct->lt": 1.0,
                "leech CPU": None if variant else 0.3, "seed CPU": None if variant else 0.3}
        parts = [
            ("lt->ct", ratio(results, config, "libtorrent -> cratetorrent", ll, "mb_per_s")),
            ("ct->ct", ratio(results, config, "cratetorrent -> cratetorrent", ll, "mb_per_s")),
            ("ct->lt", ratio(results, config, "cratetorrent -> libtorrent", ll, "mb_per_s")),
            ("leech CPU", ratio(results, config, "libtorrent -> cratetorrent", ll,
                                "leech_cpu_per_gib")),
            ("seed CPU", ratio(results, config, "cratetorrent -> libtorrent", ll,
                               "seed_cpu_per_gib")),
        ]
        text = ", ".join(f"{n} {fmt(v, 2)}x" + (
            "" if bars[n] is None else f" (target {'<=' if 'CPU' in n else '>='} {bars[n]})")
                         for n, v in parts)
        summary.append(f"cratetorrent / libtorrent [{config}]: {text}")
    tr = {r["pairing"]: r["mb_per_s"] for r in results if "transmission" in r["config"]}
    if tr.get("transmission -> cratetorrent") and tr.get("transmission -> libtorrent"):
        summary.append("Transmission seeding: cratetorrent / libtorrent as leecher "
                       f"{fmt(tr['transmission -> cratetorrent'] / tr['transmission -> libtorrent'], 2)}x")
    ct_rss = [r for r in results if r["pairing"].endswith("-> cratetorrent")
              and r["leech_rss_mib"] is not None and "many" not in r["config"]]
    if ct_rss:
        by_size = {}
        for r in ct_rss:
            by_size[r["bytes"]] = max(by_size.get(r["bytes"], 0), r["leech_rss_mib"])
        sizes = ", ".join(f"{fmt(rss)} MiB at {size // MIB} MiB" if size < GIB
                          else f"{fmt(rss)} MiB at {size / GIB:g} GiB"
                          for size, rss in sorted(by_size.items()))
        summary.append(f"cratetorrent leecher peak RSS (largest median per payload size): {sizes} "
                       "(target <= 64)")
    many = [r for r in results if "many" in r["config"]]
    if many:
        m = {r["pairing"]: r["mb_per_s"] for r in many}
        def many_ratio(a, b):
            return None if not m.get(a) or not m.get(b) else m[a] / m[b]
        summary.append("many-peer cratetorrent / libtorrent: 8 seeders -> leecher "
                       f"{fmt(many_ratio('8 libtorrent -> cratetorrent', '8 libtorrent -> libtorrent'), 2)}x, "
                       "seeder -> 20 leechers "
                       f"{fmt(many_ratio('cratetorrent -> 20 libtorrent', 'libtorrent -> 20 libtorrent'), 2)}x "
                       "(target >= 1.0)")
    import magnet  # noqa: E402 (it imports this module)
    summary += magnet.summary([r for r in results if "magnet" in r["config"]])
    summary += limits_summary(results, getattr(args, "limits", {}))
    lt_settings = subprocess.run(LT + ["settings"], capture_output=True, text=True).stdout.strip()
    print(table)
    print()
    for line in summary:
        print(line)
    for line in skipped:
        print(f"skipped: {line}")
    print(f"libtorrent settings: {lt_settings}")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"machine": machine(), "date": time.strftime("%Y-%m-%d"),
                   "libtorrent_settings": json.loads(lt_settings or "{}"),
                   "limits": getattr(args, "limits", {}), "results": results,
                   "summary": summary, "skipped": skipped}, f, indent=1)
    print(f"wrote {args.json}")
    if args.markdown:
        write_markdown(args, table, summary, skipped, lt_settings)
        print(f"wrote {args.markdown}")


VARIANT_TITLES = {"utp": "uTP (BEP 29) on loopback", "rc4": "RC4 (MSE) on loopback",
                  "v2": "BitTorrent v2 (BEP 52) on loopback",
                  "hybrid": "Hybrid v1+v2 torrents (BEP 52) on loopback"}
# The torrents' version (`--meta`), one element so that `prepare` sees the choice.
META = ["v1"]


def write_variant(args, table, summary, command):
    """A uTP, RC4, v2 or hybrid run's own section of the report, replaced by the next such run; the
    rest of the file stays."""
    from wan_report import replace_section
    name = ("utp" if args.transport == "utp" else "rc4" if args.encryption == "rc4"
            else args.meta)
    begin = (f"<!-- {name}:begin: generated by benches/swarm/swarm.py --transport/--encryption"
             " --markdown; edits are overwritten -->")
    end = f"<!-- {name}:end -->"
    how = {"utp": "Both clients on uTP only (libtorrent with TCP off, cratetorrent "
                  "`--transport utp`).",
           "rc4": "Both clients requiring RC4-encrypted payload (libtorrent `pe_forced` "
                  "with `pe_rc4`, cratetorrent `--encryption rc4`).",
           "v2": "A v2-only torrent (`cratetorrent create --v2`): both clients check every "
                 "piece against its file's merkle tree (SHA-256 of each 16 KiB block), no "
                 "SHA-1.",
           "hybrid": "A hybrid torrent (`cratetorrent create --hybrid`), downloaded as v1 by "
                     "both; cratetorrent checks SHA-1 and the merkle tree."}[name]
    section = f"""{begin}
## {VARIANT_TITLES[name]}

Generated by `{command}` on {time.strftime('%Y-%m-%d')}, method as above. {how}

{table}

{chr(10).join('- ' + s for s in summary)}
{end}
"""
    replace_section(args.markdown, begin, end, section)


def write_markdown(args, table, summary, skipped, lt_settings):
    command = "/usr/bin/python3 benches/swarm/swarm.py " + " ".join(sys.argv[1:])
    if args.transport != "tcp" or args.encryption != "off" or args.meta != "v1":
        write_variant(args, table, summary, command)
        return
    text = f"""# Benchmarks

Generated by `{command}` on {time.strftime('%Y-%m-%d')}; do not edit by hand.

## Method

Each pairing is one seeder process and one leecher process on loopback (the many-peer cases use
distinct 127.0.0.x addresses). The seeder checks its data first; the clock starts when the
leecher process is spawned and stops when it exits after verifying the whole torrent, so start-up
and the final check count. MB/s is payload bytes (times leechers) over that wall time. Leech CPU
is the leecher's user + system time from `wait4`, per GiB of payload; seed CPU the seeders' from
`/proc` over the transfer (after their data check), per GiB sent; RSS is `ru_maxrss` of each
process.
First byte is when the first data block of the download appears on disk (polled every 5 ms).
Runs alternate between pairings (A B C … A B C) and the median of each figure is shown.
libtorrent runs through python3-libtorrent with `high_performance_seed()` plus: `{lt_settings}`.
cratetorrent runs its CLI (`download`, `seed`) with default settings plus `{' '.join(CT_TUNING)}`
(every interested peer unchoked, as `high_performance_seed()` does for libtorrent). libtorrent 2.0 maps the files it
serves and downloads, so its `ru_maxrss` includes mapped page-cache pages of the payload (on
`/dev/shm` those are the payload itself); cratetorrent uses `pwritev`/`preadv`-style I/O, so its
figure is its own memory.

Machine: {machine()}.

## Results

{table}

{chr(10).join('- ' + s for s in summary)}
{chr(10).join('- skipped: ' + s for s in skipped)}
"""
    # The sections the WAN and scale benchmarks generate stay as they are.
    try:
        with open(args.markdown) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    kept = [m.group(0) for m in re.finditer(r"<!-- (\w+):begin.*?<!-- \1:end -->", old, re.S)]
    with open(args.markdown, "w") as f:
        f.write(text.rstrip("\n") + "".join("\n\n" + section for section in kept) + "\n")


if __name__ == "__main__":
    main()
