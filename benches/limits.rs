//! The machine's physical limits for a loopback transfer, which the swarm benchmark's figures
//! are read against: what each step of moving a piece costs with nothing else running.
//!
//! - `memcpy`: copying a 256 MiB buffer (larger than any cache) into another;
//! - `sha1`: SHA-1 of 16 KiB blocks on one core (the `sha1` crate, SHA-NI where the CPU has it);
//! - `page cache write`: `pwrite` of 1 MiB chunks into a new file, no sync (under DIR);
//! - `page cache read`: `pread` of the same file back, cached;
//! - `loopback tcp`: one TCP flow over 127.0.0.1, 1 MiB writes and reads, a thread each end,
//!   with the CPU seconds it took (both ends, and the kernel's work on their behalf);
//! - `loopback sendfile`: the same flow sending the cached 1 GiB file with `sendfile` (no copy
//!   into user memory at the sender: what zero-copy seeding would cost), and its CPU.
//!
//! Each figure is the best of three rounds. Prints one JSON object.
//!
//! Usage: `limits [DIR]` (default /var/tmp; the file is 1 GiB and removed after).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::process::ExitCode;
use std::time::Instant;

use sha1::{Digest, Sha1};

const MIB: usize = 1 << 20;
const ROUNDS: usize = 3;

/// The best of `ROUNDS` rates, in bytes per second, of `f` moving `bytes`.
fn best(bytes: usize, mut f: impl FnMut() -> std::io::Result<()>) -> std::io::Result<f64> {
    let mut rate: f64 = 0.0;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        f()?;
        rate = rate.max(bytes as f64 / started.elapsed().as_secs_f64());
    }
    Ok(rate)
}

/// CPU seconds this process has used, user and system.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn memcpy() -> std::io::Result<f64> {
    let source = vec![7u8; 256 * MIB];
    let mut target = vec![0u8; 256 * MIB];
    best(4 * 256 * MIB, || {
        for _ in 0..4 {
            target.copy_from_slice(std::hint::black_box(&source));
        }
        std::hint::black_box(&target);
        Ok(())
    })
}

fn sha1() -> std::io::Result<f64> {
    let data = vec![3u8; 64 * MIB];
    best(8 * 64 * MIB, || {
        for _ in 0..8 {
            for block in data.chunks(16 * 1024) {
                std::hint::black_box(Sha1::digest(block));
            }
        }
        Ok(())
    })
}

fn scratch_file(dir: &str) -> std::path::PathBuf {
    std::path::Path::new(dir).join(format!("ct-limits-{}", std::process::id()))
}

/// Writes and reads back a 1 GiB file under `dir`, which stays for [`loopback`].
fn page_cache(dir: &str) -> std::io::Result<(f64, f64)> {
    let path = scratch_file(dir);
    let chunk = vec![5u8; MIB];
    let size = 1024 * MIB;
    let write = best(size, || {
        let _ = std::fs::remove_file(&path);
        let file = std::fs::File::create(&path)?;
        for i in 0..size / MIB {
            file.write_all_at(&chunk, (i * MIB) as u64)?;
        }
        Ok(())
    });
    let mut buf = vec![0u8; MIB];
    let read = best(size, || {
        let file = std::fs::File::open(&path)?;
        for i in 0..size / MIB {
            file.read_exact_at(&mut buf, (i * MIB) as u64)?;
        }
        Ok(())
    });
    Ok((write?, read?))
}

/// Rate of one loopback TCP flow, and the CPU seconds per GiB it cost: from a user buffer, or
/// with `sendfile` from `file` (cached) when given.
fn loopback(file: Option<&std::path::Path>) -> std::io::Result<(f64, f64)> {
    let size = match file {
        Some(path) => usize::try_from(std::fs::metadata(path)?.len()).unwrap_or(0),
        None => 8 * 1024 * MIB,
    };
    let file = file
        .map(std::fs::File::open)
        .transpose()?
        .map(std::sync::Arc::new);
    let mut cpu_per_gib = f64::MAX;
    let rate = best(size, || {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let cpu = cpu_seconds();
        let file = file.clone();
        let sender = std::thread::spawn(move || -> std::io::Result<()> {
            let mut stream = TcpStream::connect(addr)?;
            match file {
                Some(file) => {
                    let mut offset = 0u64;
                    while (offset as usize) < size {
                        let left = size - offset as usize;
                        let sent = rustix::fs::sendfile(&stream, &*file, Some(&mut offset), left)?;
                        if sent == 0 {
                            break;
                        }
                    }
                }
                None => {
                    let chunk = vec![9u8; MIB];
                    for _ in 0..size / MIB {
                        stream.write_all(&chunk)?;
                    }
                }
            }
            Ok(())
        });
        let (mut stream, _) = listener.accept()?;
        let mut buf = vec![0u8; MIB];
        let mut received = 0;
        while received < size {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            received += n;
        }
        sender
            .join()
            .map_err(|_| std::io::Error::other("sender panicked"))??;
        let gib = size as f64 / (1024 * MIB) as f64;
        cpu_per_gib = cpu_per_gib.min((cpu_seconds() - cpu) / gib);
        Ok(())
    })?;
    Ok((rate, cpu_per_gib))
}

fn main() -> ExitCode {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "/var/tmp".into());
    let measured = (|| -> std::io::Result<String> {
        let memcpy = memcpy()?;
        let sha1 = sha1()?;
        let (write, read) = page_cache(&dir)?;
        let (tcp, tcp_cpu) = loopback(None)?;
        let (sendfile, sendfile_cpu) = loopback(Some(&scratch_file(&dir)))?;
        Ok(format!(
            "{{\"memcpy\":{memcpy:.0},\"sha1\":{sha1:.0},\"page_cache_write\":{write:.0},\
             \"page_cache_read\":{read:.0},\"loopback_tcp\":{tcp:.0},\
             \"loopback_tcp_cpu_per_gib\":{tcp_cpu:.3},\"loopback_sendfile\":{sendfile:.0},\
             \"loopback_sendfile_cpu_per_gib\":{sendfile_cpu:.3},\"dir\":\"{dir}\"}}"
        ))
    })();
    let _ = std::fs::remove_file(scratch_file(&dir));
    match measured {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("limits: {error}");
            ExitCode::FAILURE
        }
    }
}
