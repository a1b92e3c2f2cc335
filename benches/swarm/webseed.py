"""Web seeds (BEP 19): cratetorrent and aria2 each download the same torrent from the same
nginx on loopback, with no peer at all, in turns; medians of the wall time (process start to
exit, every byte verified by each client's own piece check and then compared here), the
client's CPU per GiB and its peak memory.

    python3 benches/swarm/webseed.py [--size 1G] [--runs 3] [--dir /tmp] [--piece 256K]

aria2 runs with its defaults for web seeds (one connection per server) and without file
preallocation; cratetorrent with its defaults. Needs nginx (Debian `nginx-light`) and aria2.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import swarm as sw


def start_nginx(root, work):
    """nginx serving `root` on a free loopback port, in the foreground; returns (proc, url)."""
    port = sw.free_port()
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  sendfile on;
  client_body_temp_path {work}/body;
  proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fastcgi;
  uwsgi_temp_path {work}/uwsgi;
  scgi_temp_path {work}/scgi;
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
""")
    proc = sw.Proc(["nginx", "-p", work, "-c", conf])
    deadline = time.monotonic() + 10
    import socket
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("nginx never listened") from None
            time.sleep(0.02)
    return proc, f"http://127.0.0.1:{port}/"


def run_one(args, src, out, size):
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    proc = sw.Proc(args)
    try:
        code = proc.wait(sw.TIMEOUT)
        if code:
            raise RuntimeError(f"{args[0]} exited with {code}")
        if not sw.files_equal(src, os.path.join(out, os.path.basename(src))):
            raise RuntimeError("the download differs from the payload")
        seconds = proc.ended - proc.started
        return {"seconds": seconds, "mb_per_s": size / seconds / 1e6,
                "cpu_per_gib": proc.cpu() / (size / sw.GIB), "rss_mib": proc.rss() / sw.MIB}
    finally:
        proc.kill()
        shutil.rmtree(out, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--piece", default="256K")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--ct", default=os.path.join(sw.ROOT, "target/release/cratetorrent"))
    parser.add_argument("--json", help="write the samples and medians here")
    args = parser.parse_args()
    size = sw.parse_size(args.size)
    work = os.path.join(args.dir, f"ct-webseed-bench-{os.getpid()}")
    served = os.path.join(work, "served")
    src = os.path.join(served, "payload.bin")
    os.makedirs(served)
    nginx = None
    samples = {"cratetorrent": [], "aria2": []}
    try:
        sw.write_random(src, size)
        nginx, url = start_nginx(served, work)
        torrent = os.path.join(work, "payload.torrent")
        subprocess.run([args.ct, "create", src, "-o", torrent, "--force", "--piece-size",
                        args.piece, "-q", "--no-date", "--v1", "--web-seed", url + "payload.bin"],
                       check=True, stdout=subprocess.DEVNULL)
        out = os.path.join(work, "out")
        clients = {
            "cratetorrent": [args.ct, "download", torrent, "-o", out, "--no-dht", "--no-lsd",
                             "--upload-slots", "0", "-q"],
            "aria2": ["aria2c", "--dir", out, "--seed-time=0", "--enable-dht=false",
                      "--enable-dht6=false", "--bt-enable-lpd=false",
                      "--enable-peer-exchange=false", "--file-allocation=none",
                      "--console-log-level=warn", "--summary-interval=0", "--quiet=true",
                      torrent],
        }
        for run in range(args.runs):
            for client, command in clients.items():
                sw.note(f"[web seed {args.size}] run {run + 1}/{args.runs}: nginx -> {client}")
                try:
                    samples[client].append(run_one(command, src, out, size))
                except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                    sw.note(f"  failed: {error}")
    finally:
        if nginx:
            nginx.kill()
        shutil.rmtree(work, ignore_errors=True)
    medians = {}
    print(f"| client | runs | MB/s | CPU s/GiB | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|")
    for client, found in samples.items():
        med = {key: sw.median([s[key] for s in found]) for key in
               ("seconds", "mb_per_s", "cpu_per_gib", "rss_mib")} if found else {}
        medians[client] = med
        if found:
            print(f"| {client} | {len(found)} | {med['mb_per_s']:.0f} | "
                  f"{med['cpu_per_gib']:.2f} | {med['rss_mib']:.0f} |")
    ours, theirs = medians.get("cratetorrent"), medians.get("aria2")
    if ours and theirs:
        print(f"\ncratetorrent / aria2 throughput: {ours['mb_per_s'] / theirs['mb_per_s']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size": size, "piece": args.piece, "samples": samples,
                       "medians": medians}, f, indent=1)
    return 0 if all(samples.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
