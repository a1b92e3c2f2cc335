//! The machine's physical limits for a loopback transfer, which the swarm benchmark's figures
//! are read against: what each step of moving a piece costs with nothing else running.
//!
//! - `memcpy`: copying a 256 MiB buffer (larger than any cache) into another;
//! - `sha1`: SHA-1 of 16 KiB blocks on one core (the `sha1` crate, SHA-NI where the CPU has it);
//! - `page cache write`: `pwrite` of 1 MiB chunks into a new file, no sync (under DIR);
//! - `page cache read`: `pread` of the same file back, cached;
//! - `loopback tcp`: one TCP flow over 127.0.0.1, 1 MiB writes and reads, a thread each end,
//!   with the CPU seconds each end's thread took (the kernel's work in its context included);
//! - `loopback sendfile`: the same flow sending the cached 1 GiB file with `sendfile` (no copy
//!   into user memory at the sender: what zero-copy seeding from the page cache would cost);
//! - `loopback send zc`: the sender hands registered buffers to io_uring `SEND_ZC`;
//! - `loopback read fixed`: the receiver reads with io_uring `READ_FIXED` into a registered,
//!   page-aligned buffer.
//!
//! Each figure is the best of three rounds. Prints one JSON object.
//!
//! Usage: `limits [DIR]` (default /var/tmp; the file is 1 GiB and removed after).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use sha1::{Digest, Sha1};

mod uring_flow;

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

/// How the sending end of a loopback flow moves its bytes.
#[derive(Clone, Copy)]
enum Sender<'a> {
    /// `write` from a user buffer: copied into the socket.
    Write,
    /// `sendfile` from this (cached) file: no copy into user memory.
    Sendfile(&'a Path),
    /// io_uring `SEND_ZC` from registered buffers: pages pinned, not copied, when sent.
    ZeroCopy,
}

/// How the receiving end reads.
#[derive(Clone, Copy)]
enum Receiver {
    /// `read` into a heap buffer.
    Read,
    /// io_uring `READ_FIXED` into a registered, page-aligned buffer.
    Fixed,
}

/// One loopback flow's rate and the CPU seconds per GiB each end's thread spent (with the
/// kernel's work done in its context: on loopback the sender's thread also runs the
/// receiving TCP stack, the receiver's thread the copy out of the socket).
struct Flow {
    rate: f64,
    sender_cpu: f64,
    receiver_cpu: f64,
}

/// CPU seconds the calling thread has used, user and system.
fn thread_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes only into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_THREAD is valid on Linux.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn send(stream: &mut TcpStream, how: Sender<'_>, size: usize) -> std::io::Result<()> {
    match how {
        Sender::Sendfile(path) => {
            let file = std::fs::File::open(path)?;
            let mut offset = 0u64;
            while (offset as usize) < size {
                let left = size - offset as usize;
                if rustix::fs::sendfile(&*stream, &file, Some(&mut offset), left)? == 0 {
                    break;
                }
            }
        }
        Sender::Write => {
            let chunk = vec![9u8; MIB];
            for _ in 0..size / MIB {
                stream.write_all(&chunk)?;
            }
        }
        Sender::ZeroCopy => uring_flow::send_zero_copy(stream, size)?,
    }
    Ok(())
}

fn receive(stream: &mut TcpStream, how: Receiver, size: usize) -> std::io::Result<usize> {
    if let Receiver::Fixed = how {
        return uring_flow::receive_fixed(stream);
    }
    let mut buf = vec![0u8; MIB];
    let mut received = 0;
    while received < size {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        received += n;
    }
    Ok(received)
}

/// One loopback TCP flow of 8 GiB (or of the file `sendfile` sends), best of three rounds.
fn loopback(sender: Sender<'_>, receiver: Receiver) -> std::io::Result<Flow> {
    let size = match sender {
        Sender::Sendfile(path) => usize::try_from(std::fs::metadata(path)?.len()).unwrap_or(0),
        _ => 8 * 1024 * MIB,
    };
    let gib = size as f64 / (1024 * MIB) as f64;
    let (mut sender_cpu, mut receiver_cpu) = (f64::MAX, f64::MAX);
    let rate = best(size, || {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let sending = std::thread::scope(|scope| -> std::io::Result<f64> {
            let sending = scope.spawn(move || -> std::io::Result<f64> {
                let mut stream = TcpStream::connect(addr)?;
                let cpu = thread_cpu_seconds();
                send(&mut stream, sender, size)?;
                Ok(thread_cpu_seconds() - cpu)
            });
            let (mut stream, _) = listener.accept()?;
            let cpu = thread_cpu_seconds();
            let received = receive(&mut stream, receiver, size)?;
            receiver_cpu = receiver_cpu.min((thread_cpu_seconds() - cpu) / gib);
            let sent = sending
                .join()
                .map_err(|_| std::io::Error::other("sender panicked"))??;
            if received != size {
                return Err(std::io::Error::other("flow ended early"));
            }
            Ok(sent)
        })?;
        sender_cpu = sender_cpu.min(sending / gib);
        Ok(())
    })?;
    Ok(Flow {
        rate,
        sender_cpu,
        receiver_cpu,
    })
}

/// A flow's figures as JSON fields under `name`.
fn flow_json(name: &str, flow: &Flow) -> String {
    format!(
        "\"{name}\":{:.0},\"{name}_cpu_per_gib\":{:.3},\"{name}_sender_cpu_per_gib\":{:.3},\
         \"{name}_receiver_cpu_per_gib\":{:.3}",
        flow.rate,
        flow.sender_cpu + flow.receiver_cpu,
        flow.sender_cpu,
        flow.receiver_cpu
    )
}

fn main() -> ExitCode {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "/var/tmp".into());
    let measured = (|| -> std::io::Result<String> {
        let memcpy = memcpy()?;
        let sha1 = sha1()?;
        let (write, read) = page_cache(&dir)?;
        let file = scratch_file(&dir);
        let flows = [
            ("loopback_tcp", loopback(Sender::Write, Receiver::Read)?),
            (
                "loopback_sendfile",
                loopback(Sender::Sendfile(&file), Receiver::Read)?,
            ),
            (
                "loopback_send_zc",
                loopback(Sender::ZeroCopy, Receiver::Read)?,
            ),
            (
                "loopback_read_fixed",
                loopback(Sender::Write, Receiver::Fixed)?,
            ),
        ];
        let flows: Vec<String> = flows
            .iter()
            .map(|(name, flow)| flow_json(name, flow))
            .collect();
        Ok(format!(
            "{{\"memcpy\":{memcpy:.0},\"sha1\":{sha1:.0},\"page_cache_write\":{write:.0},\
             \"page_cache_read\":{read:.0},{},\"dir\":\"{dir}\"}}",
            flows.join(",")
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
