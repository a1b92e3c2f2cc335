#!/usr/bin/env bash
# The test command: installs the reference tools the tests drive (where missing), then runs
# formatting, lints and the whole test suite, interop tests included.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(python3-libtorrent python3-seccomp transmission-daemon transmission-cli aria2 mktorrent opentracker iproute2 rtorrent nginx-light)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "==> installing ${missing[*]}"
    sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "==> no import cycles between modules"
python3 scripts/import-cycles.py
echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
echo "==> cargo doc (no warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
echo "==> cargo publish --dry-run (each library crate packages and builds on its own)"
# Cargo takes a registry crate for immutable: it unpacks each packaged crate from its temporary
# registry into CARGO_HOME once per checkout path, and never rebuilds one it has built. So a
# second run would verify against the first run's sources. Remove those copies (our crates
# only, from local registries, whose directory names start with -) and build in a target
# directory of its own whose builds of our crates are removed each time.
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/cratetorrent-* \
    target/publish/package target/publish/debug/.fingerprint/cratetorrent-*
# --allow-dirty: CI's clone is clean, but a developer's tree need not be.
cargo publish --workspace --dry-run --allow-dirty --locked --target-dir target/publish \
    --exclude cratetorrent-cli --exclude cratetorrent-benches --exclude cratetorrent-tests
echo "==> cargo test (interop tests included)"
# --show-output: the reliability tests print what they measured (attack counters, kill points,
# fds and RSS over the soak) even when they pass.
cargo test --workspace --all-features --locked -- --include-ignored --show-output
