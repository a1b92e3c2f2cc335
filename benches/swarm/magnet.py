"""Magnet links in the swarm benchmark: the time from adding a magnet link to the metadata
being verified, and to the download being complete, for cratetorrent and for libtorrent
fetching the same torrent from the same libtorrent seed. The leecher knows only the info-hash
and the seed's address.

Two clocks: each client's own, from adding the torrent (our CLI's JSON events, lt_client's
`METADATA`/`COMPLETE` lines), which leaves out starting the process (Python and the libtorrent
import take about 0.15 s); and the wall clock from spawning the process to its exit, which is
what a user waits.
"""
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time

import swarm as sw


def ct_event(line):
    """(kind, seconds since the torrent was added) from one of our CLI's JSON lines."""
    if '"event":"metadata"' in line:
        return "metadata", json.loads(line)["seconds"]
    if '"event":"complete"' in line:
        return "complete", json.loads(line)["elapsed"]
    return None


def lt_event(line):
    """(kind, seconds since the torrent was added) from one of lt_client.py's lines."""
    word, _, value = line.strip().partition(" ")
    if word in ("METADATA", "COMPLETE") and value:
        return word.lower(), float(value)
    return None


def run_magnet(args, parse, src, name, out):
    """Runs one leecher to its exit; returns its reported times and the wall times."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    started = time.monotonic()
    proc = sw.Proc(args, stdout=True)
    lines = queue.Queue()

    def pump():
        for line in proc.popen.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        reported, metadata_wall = {}, None
        deadline = started + sw.TIMEOUT
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError("the leecher did not finish in time") from None
            if line is None:
                break
            event = parse(line)
            if event:
                reported[event[0]] = event[1]
                if event[0] == "metadata" and metadata_wall is None:
                    metadata_wall = time.monotonic() - started
        code = proc.wait(sw.TIMEOUT)
        if code or "metadata" not in reported or "complete" not in reported:
            raise RuntimeError(f"the leecher failed (exit code {code}, reported {reported})")
        if not sw.same_tree(src, os.path.join(out, name)):
            raise RuntimeError("the download differs from the payload")
        return {"metadata_ms": reported["metadata"] * 1000, "complete_s": reported["complete"],
                "metadata_wall_ms": metadata_wall * 1000, "seconds": proc.ended - started,
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
    samples = {"libtorrent": [], "cratetorrent": []}
    seed = None
    try:
        info = subprocess.run([ct.binary, "info", torrent, "--json"], capture_output=True,
                              text=True, check=True, timeout=60).stdout
        magnet = f"magnet:?xt=urn:btih:{json.loads(info)['info_hash']}"
        seed, seed_addr = lt.seed(torrent, os.path.dirname(src), "127.0.0.2")
        leechers = {
            "libtorrent": (lambda out, listen: sw.LT + ["leech", magnet, out, listen, seed_addr],
                           lt_event),
            "cratetorrent": (lambda out, listen: [ct.binary, "download", magnet, "-o", out,
                                                  "--listen", listen, "--peer", seed_addr,
                                                  "--json"] + sw.CT_TUNING,
                             ct_event),
        }
        for run in range(runs):
            for client, (args, parse) in leechers.items():
                sw.note(f"[{label}] run {run + 1}/{runs}: libtorrent -> {client} by magnet")
                listen = f"127.0.0.1:{sw.free_port()}"
                out = os.path.join(work, "leech0")
                try:
                    samples[client].append(run_magnet(args(out, listen), parse, src, name, out))
                except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                    sw.note(f"  failed: {error}")
    finally:
        if seed:
            seed.stop(signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for client, found in samples.items():
        def med(key):
            return sw.median([s[key] for s in found])
        seconds = med("seconds")
        rows.append({
            "config": label, "pairing": f"libtorrent -> {client}", "runs": len(found),
            "bytes": size, "mb_per_s": size / seconds / 1e6 if seconds else None,
            "leech_cpu_per_gib": med("leech_cpu_per_gib"), "leech_rss_mib": med("leech_rss_mib"),
            "seed_rss_mib": None, "first_byte_ms": None,
            "metadata_ms": med("metadata_ms"), "complete_s": med("complete_s"),
            "metadata_wall_ms": med("metadata_wall_ms"), "wall_s": seconds, "samples": found,
        })
    return rows


def summary(rows):
    """One line per magnet benchmark: both clients' medians, ours next to libtorrent's."""
    by = {r["pairing"].split(" -> ")[1]: r for r in rows}
    ours, theirs = by.get("cratetorrent"), by.get("libtorrent")
    if not ours or not theirs:
        return []
    return [f"magnet [{ours['config']}], from adding the link: metadata verified after "
            f"{sw.fmt(ours['metadata_ms'], 1)} ms (libtorrent {sw.fmt(theirs['metadata_ms'], 1)} ms), "
            f"complete after {sw.fmt(ours['complete_s'], 2)} s "
            f"(libtorrent {sw.fmt(theirs['complete_s'], 2)} s); from starting the process: "
            f"{sw.fmt(ours['metadata_wall_ms'])} ms and {sw.fmt(ours['wall_s'], 2)} s "
            f"(libtorrent {sw.fmt(theirs['metadata_wall_ms'])} ms and "
            f"{sw.fmt(theirs['wall_s'], 2)} s); target: ours <= libtorrent's"]
