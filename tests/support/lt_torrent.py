"""Reference torrent operations through libtorrent (Debian's python3-libtorrent).

usage: lt_torrent.py info TORRENT          -> JSON description on stdout
       lt_torrent.py create PATH OUT PIECE  -> writes a v1 torrent of PATH
       lt_torrent.py hybrid PATH OUT PIECE  -> writes libtorrent's default: a hybrid v1+v2
                                              torrent, with BEP 47 pad files between files
       lt_torrent.py v2 PATH OUT PIECE      -> writes a v2-only torrent (BEP 52)
Run with /usr/bin/python3: the bindings exist only for Debian's interpreter.
"""
import json
import os
import sys

import libtorrent as lt


def info(path):
    ti = lt.torrent_info(path)
    fs = ti.files()
    files = [
        {
            "path": fs.file_path(i),
            "size": fs.file_size(i),
            "pad": bool(fs.file_flags(i) & lt.file_storage.flag_pad_file),
        }
        for i in range(fs.num_files())
    ]
    print(json.dumps({
        "info_hash": str(ti.info_hashes().v1),
        "info_hash_v2": str(ti.info_hashes().v2) if ti.info_hashes().has_v2() else None,
        "name": ti.name(),
        "piece_length": ti.piece_length(),
        "num_pieces": ti.num_pieces(),
        "total_size": ti.total_size(),
        "private": ti.priv(),
        "files": files,
    }))


def create(path, out, piece_length, flags=lt.create_torrent.v1_only):
    fs = lt.file_storage()
    lt.add_files(fs, path)
    torrent = lt.create_torrent(fs, int(piece_length), flags=flags)
    lt.set_piece_hashes(torrent, os.path.dirname(os.path.abspath(path)))
    with open(out, "wb") as f:
        f.write(lt.bencode(torrent.generate()))


if __name__ == "__main__":
    if sys.argv[1] == "info":
        info(sys.argv[2])
    elif sys.argv[1] == "create":
        create(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "hybrid":
        create(sys.argv[2], sys.argv[3], sys.argv[4], flags=0)
    elif sys.argv[1] == "v2":
        create(sys.argv[2], sys.argv[3], sys.argv[4], flags=lt.create_torrent.v2_only)
    else:
        sys.exit(__doc__)
