//! `wanem`: the WAN emulator on the command line.
//!
//! ```text
//! wanem up [--seed N] HOST...     hosts until stdin closes, Ctrl-C or SIGTERM
//! wanem check [--secs S]          fidelity: TCP round trip and throughput against the links
//! wanem capacity [--secs S]       the forwarder's own limit: one TCP flow over perfect links
//! ```
//!
//! A HOST is `key=value,…` for its link both ways, or `up.key=…`/`down.key=…` for one way:
//! `delay=25ms`, `jitter=2ms`, `rate=10M` (bytes per second: k, M, G are 10³, 10⁶, 10⁹),
//! `queue=256k` (bytes), `loss=0.01`, `burst=ENTER/LEAVE/BAD` (Gilbert–Elliott). `up` prints
//! `host I NAMESPACE ADDRESS` per host, then `READY`; run programs in a host with
//! `ip netns exec NAMESPACE …`.

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cratetorrent_wanem::{HostConf, LinkConf, Loss, Wan, measure};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("up") => up(&args[1..]),
        Some("check") => check(&args[1..]),
        Some("capacity") => capacity(&args[1..]),
        _ => Err("usage: wanem up [--seed N] HOST... | wanem check [--secs S] | wanem capacity [--secs S]".to_owned()),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("wanem: {error}");
            ExitCode::FAILURE
        }
    }
}

fn up(args: &[String]) -> Result<ExitCode, String> {
    let mut seed = 1;
    let mut hosts = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--seed" {
            seed = rest
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or("--seed takes a number")?;
        } else {
            hosts.push(parse_host(arg)?);
        }
    }
    if hosts.len() < 2 {
        return Err("give at least two hosts".into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).map_err(|e| e.to_string())?;
    }
    let wan = Wan::start(&hosts, seed).map_err(|e| e.to_string())?;
    for (index, host) in wan.hosts().iter().enumerate() {
        println!("host {index} {} {}", host.namespace, host.addr);
    }
    println!("READY");
    // Stdin closing ends it too (a parent that dies takes the network with it).
    let closed = stop.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
        }
        closed.store(true, Ordering::Relaxed);
    });
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let counters = wan.stop().map_err(|e| e.to_string())?;
    for (index, (up, down)) in counters.iter().enumerate() {
        eprintln!(
            "host {index}: up {} packets {} bytes ({} lost, {} dropped); down {} packets {} bytes ({} lost, {} dropped)",
            up.delivered,
            up.bytes,
            up.lost,
            up.dropped,
            down.delivered,
            down.bytes,
            down.lost,
            down.dropped
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn secs(args: &[String], default: f64) -> Result<f64, String> {
    match args {
        [] => Ok(default),
        [flag, value] if flag == "--secs" => value.parse().map_err(|_| format!("--secs {value}")),
        _ => Err(format!("unexpected {args:?}")),
    }
}

/// Links the check runs: (name, per-link conf). The round trip is four one-way link delays.
fn check_links() -> Vec<(&'static str, LinkConf)> {
    let link = |delay_ms, rate| LinkConf {
        delay: Duration::from_millis(delay_ms),
        rate,
        // A bandwidth-delay product of queue, so one TCP flow can fill the link.
        queue: usize::try_from(rate * delay_ms * 4 / 1000)
            .unwrap_or(usize::MAX)
            .max(64 << 10),
        ..LinkConf::default()
    };
    vec![
        ("RTT 20 ms, 10 MB/s", link(5, 10_000_000)),
        ("RTT 100 ms, 10 MB/s", link(25, 10_000_000)),
    ]
}

fn check(args: &[String]) -> Result<ExitCode, String> {
    let seconds = secs(args, 8.0)?;
    let mut ok = true;
    for (name, link) in check_links() {
        let wan = Wan::start(&[HostConf::symmetric(link), HostConf::symmetric(link)], 1)
            .map_err(|e| e.to_string())?;
        let measured = measure::tcp(&wan, 0, 1, seconds).map_err(|e| e.to_string())?;
        drop(wan);
        let rtt = link.delay * 4;
        let goodput = link.rate as f64 * measure::PAYLOAD_PER_PACKET;
        let rtt_off = (measured.rtt.as_secs_f64() / rtt.as_secs_f64() - 1.0) * 100.0;
        let rate_off = (measured.throughput / goodput - 1.0) * 100.0;
        println!(
            "{name}: round trip {:.1} ms ({rtt_off:+.1} %), throughput {:.2} MB/s of {:.2} ({rate_off:+.1} %)",
            measured.rtt.as_secs_f64() * 1e3,
            measured.throughput / 1e6,
            goodput / 1e6
        );
        ok &= rtt_off.abs() <= 5.0 && rate_off.abs() <= 5.0;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn capacity(args: &[String]) -> Result<ExitCode, String> {
    let seconds = secs(args, 8.0)?;
    let wan =
        Wan::start(&[HostConf::default(), HostConf::default()], 1).map_err(|e| e.to_string())?;
    let measured = measure::tcp(&wan, 0, 1, seconds).map_err(|e| e.to_string())?;
    println!(
        "one TCP flow over perfect links: {:.2} Gbit/s of payload ({:.0} MB/s), round trip {:.3} ms",
        measured.throughput * 8.0 / 1e9,
        measured.throughput / 1e6,
        measured.rtt.as_secs_f64() * 1e3
    );
    Ok(ExitCode::SUCCESS)
}

fn parse_host(spec: &str) -> Result<HostConf, String> {
    let mut host = HostConf::symmetric(LinkConf::default());
    for item in spec.split(',').filter(|s| !s.is_empty()) {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("{item}: expected key=value"))?;
        let (which, key) = match key.split_once('.') {
            Some(("up", key)) => (Some(true), key),
            Some(("down", key)) => (Some(false), key),
            Some(_) => return Err(format!("{item}: up.KEY or down.KEY")),
            None => (None, key),
        };
        for (is_up, link) in [(true, &mut host.up), (false, &mut host.down)] {
            if which.is_none_or(|w| w == is_up) {
                apply(link, key, value)?;
            }
        }
    }
    Ok(host)
}

fn apply(link: &mut LinkConf, key: &str, value: &str) -> Result<(), String> {
    match key {
        "delay" => link.delay = duration(value)?,
        "jitter" => link.jitter = duration(value)?,
        "rate" => link.rate = amount(value)?,
        "queue" => {
            link.queue = usize::try_from(amount(value)?).map_err(|_| format!("queue={value}"))?
        }
        "loss" => link.loss = Loss::Random(probability(value)?),
        "burst" => {
            let parts: Vec<&str> = value.split('/').collect();
            let [enter, leave, bad] = parts[..] else {
                return Err(format!("burst={value}: ENTER/LEAVE/BAD"));
            };
            link.loss = Loss::Burst {
                enter: probability(enter)?,
                leave: probability(leave)?,
                bad: probability(bad)?,
            };
        }
        _ => return Err(format!("unknown key {key}")),
    }
    Ok(())
}

fn duration(text: &str) -> Result<Duration, String> {
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(us) = text.strip_suffix("us") {
        (us, 1e-6)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1e-3)
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text}: not a duration"))?;
    if !(0.0..1e6).contains(&value) {
        return Err(format!("{text}: out of range"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

fn amount(text: &str) -> Result<u64, String> {
    let (number, scale) = match text.chars().last() {
        Some('k' | 'K') => (&text[..text.len() - 1], 1e3),
        Some('M') => (&text[..text.len() - 1], 1e6),
        Some('G') => (&text[..text.len() - 1], 1e9),
        _ => (text, 1.0),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text}: not an amount"))?;
    if !(0.0..1e15).contains(&value) {
        return Err(format!("{text}: out of range"));
    }
    // Checked to be within range just above.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((value * scale).round() as u64)
}

fn probability(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{text}: a probability from 0 to 1")),
    }
}
