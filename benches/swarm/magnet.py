"""Magnet links in the swarm benchmark: the time from `download MAGNET` to the metadata being
verified, and to the download being complete, for cratetorrent and for libtorrent fetching the
same torrent from the same libtorrent seed. The leecher knows only the info-hash and the seed's
address; its clock starts when its process is spawned.
"""
import json
import os
import shutil
import signal
import subprocess
import threading
import time

import swarm as sw


def run_magnet(args, marker, src, name, out):
    """Runs one leecher; returns seconds to the line carrying `marker` and to its exit."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    started = time.monotonic()
    proc = sw.Proc(args, stdout=True)
    try:
        proc.read_line(lambda line: marker in line, sw.TIMEOUT)
        metadata = time.monotonic() - started
        # The rest of its output is drained, so that it never waits on a full pipe.
        threading.Thread(target=proc.popen.stdout.read, daemon=True).start()
        code = proc.wait(sw.TIMEOUT)
        if code:
            raise RuntimeError(f"the leecher failed with exit code {code}")
        if not sw.same_tree(src, os.path.join(out, name)):
            raise RuntimeError("the download differs from the payload")
        return {"metadata_ms": metadata * 1000, "seconds": proc.ended - started,
                "leech_cpu_per_gib": proc.cpu() / (os.path.getsize(src) / sw.GIB),
                "leech_rss_mib": proc.rss() / sw.MIB}
    finally:
        proc.kill()
        shutil.rmtree(out, ignore_errors=True)


def bench_magnet(directory, size_text, runs, ct, lt):
    """Rows for the report: libtorrent and cratetorrent leeching by magnet link."""
    size = sw.parse_size(size_text)
    label = f"{directory} single 256K {size_text} magnet"
    work, src, torrent = sw.prepare(directory, "single", "256K", size, ct)
    name = os.path.basename(src)
    info = subprocess.run([ct.binary, "info", torrent, "--json"], capture_output=True,
                          text=True, check=True).stdout
    magnet = f"magnet:?xt=urn:btih:{json.loads(info)['info_hash']}"
    seed, seed_addr = lt.seed(torrent, os.path.dirname(src), "127.0.0.2")
    leechers = {
        "libtorrent": (lambda out, listen: sw.LT + ["leech", magnet, out, listen, seed_addr],
                       "METADATA"),
        "cratetorrent": (lambda out, listen: [ct.binary, "download", magnet, "-o", out,
                                              "--listen", listen, "--peer", seed_addr,
                                              "--json"] + sw.CT_TUNING,
                         '"event":"metadata"'),
    }
    samples = {client: [] for client in leechers}
    try:
        for run in range(runs):
            for client, (args, marker) in leechers.items():
                sw.note(f"[{label}] run {run + 1}/{runs}: libtorrent -> {client} by magnet")
                listen = f"127.0.0.1:{sw.free_port()}"
                out = os.path.join(work, "leech0")
                try:
                    samples[client].append(run_magnet(args(out, listen), marker, src, name, out))
                except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                    sw.note(f"  failed: {error}")
    finally:
        seed.stop(signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for client, found in samples.items():
        seconds = sw.median([s["seconds"] for s in found])
        rows.append({
            "config": label, "pairing": f"libtorrent -> {client}", "runs": len(found),
            "bytes": size, "mb_per_s": size / seconds / 1e6 if seconds else None,
            "leech_cpu_per_gib": sw.median([s["leech_cpu_per_gib"] for s in found]),
            "leech_rss_mib": sw.median([s["leech_rss_mib"] for s in found]),
            "seed_rss_mib": None, "first_byte_ms": None,
            "metadata_ms": sw.median([s["metadata_ms"] for s in found]),
            "complete_s": seconds, "samples": found,
        })
    return rows


def summary(rows):
    """One line per magnet benchmark: both clients' medians, ours next to libtorrent's."""
    by = {r["pairing"].split(" -> ")[1]: r for r in rows}
    ours, theirs = by.get("cratetorrent"), by.get("libtorrent")
    if not ours or not theirs:
        return []
    return [f"magnet [{ours['config']}]: metadata verified after {sw.fmt(ours['metadata_ms'])} ms "
            f"(libtorrent {sw.fmt(theirs['metadata_ms'])} ms), complete after "
            f"{sw.fmt(ours['complete_s'], 2)} s (libtorrent {sw.fmt(theirs['complete_s'], 2)} s); "
            "target: ours <= libtorrent's"]
