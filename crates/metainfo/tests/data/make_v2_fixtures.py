#!/usr/bin/python3
"""Writes the BEP 52 fixtures of the metainfo tests with libtorrent's creator (Debian's
python3-libtorrent): hybrid and v2-only torrents of a small payload whose bytes the tests
regenerate, so they can check each file's merkle root and piece layer against their own hashing.

Run from this directory: /usr/bin/python3 make_v2_fixtures.py
"""
import os
import shutil
import tempfile

import libtorrent as lt

# path, length; byte i of a file is (i * 7 + seed) % 251 with seed the file's index.
MULTI = [("a.bin", 40000), ("c.txt", 5), ("empty", 0), ("sub/b.bin", 70000)]
SINGLE = [("single.bin", 50000)]


def payload(root, files):
    for seed, (path, length) in enumerate(files):
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(bytes((i * 7 + seed) % 251 for i in range(length)))


def make(source, parent, flags, out):
    fs = lt.file_storage()
    lt.add_files(fs, source)
    ct = lt.create_torrent(fs, 32 * 1024, flags=flags)
    ct.set_creator("")
    lt.set_piece_hashes(ct, parent)
    entry = ct.generate()
    entry.pop(b"creation date", None)
    with open(out, "wb") as f:
        f.write(lt.bencode(entry))
    info = lt.torrent_info(out)
    print(out, info.info_hashes().v1, info.info_hashes().v2)


def main():
    work = tempfile.mkdtemp()
    try:
        payload(os.path.join(work, "multi"), MULTI)
        payload(work, SINGLE)
        make(os.path.join(work, "multi"), work, 0, "hybrid-multi.torrent")
        make(os.path.join(work, "multi"), work, lt.create_torrent.v2_only, "v2-multi.torrent")
        make(os.path.join(work, "single.bin"), work, 0, "hybrid-single.torrent")
        make(os.path.join(work, "single.bin"), work, lt.create_torrent.v2_only, "v2-single.torrent")
    finally:
        shutil.rmtree(work)


main()
