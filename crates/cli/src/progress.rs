//! How a running transfer reports itself: a progress bar on a terminal, periodic plain lines
//! otherwise, one JSON object per stats tick with `--json`, or nothing with `-q`.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use cratetorrent::{TorrentState, TorrentStats};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::escape::{escape, json_line};
use crate::units::format_rate;

/// How often plain (non-terminal) progress lines are printed.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Different messages shown at most (repeats of one are shown once).
const MAX_NOTES: usize = 1000;

/// The output style chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// A bar on a terminal, plain lines otherwise.
    Human,
    /// One JSON object per line on stdout.
    Json,
    /// Errors only.
    Quiet,
}

pub(crate) struct Reporter {
    style: Style,
    bar: Option<ProgressBar>,
    started: Instant,
    last_plain: Option<Instant>,
    notes: HashSet<String>,
}

impl Reporter {
    pub(crate) fn new(style: Style, label: &str) -> Self {
        let bar = (style == Style::Human && std::io::stdout().is_terminal()).then(|| {
            let bar = ProgressBar::new(1).with_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}% {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_owned());
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Self {
            style,
            bar,
            started: Instant::now(),
            last_plain: None,
            notes: HashSet::new(),
        }
    }

    /// Seconds since the transfer started.
    pub(crate) fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub(crate) fn stats(&mut self, stats: &TorrentStats) {
        match self.style {
            Style::Quiet => {}
            Style::Json => self.json(json!({
                "event": "stats",
                "state": state_name(stats.state),
                "progress": fraction(stats),
                "pieces_had": stats.pieces_had,
                "piece_count": stats.piece_count,
                "bytes_left": stats.bytes_left,
                "downloaded": stats.downloaded,
                "uploaded": stats.uploaded,
                "download_rate": stats.download_rate,
                "upload_rate": stats.upload_rate,
                "peers": stats.peers.len(),
                "hash_failures": stats.hash_failures,
                "dht_nodes": stats.dht_nodes,
                "dht_peers": stats.dht_peers,
                "dht_sent": stats.dht_datagrams.0,
                "dht_received": stats.dht_datagrams.1,
                "elapsed": self.elapsed(),
            })),
            Style::Human => {
                let summary = summary(stats);
                if let Some(bar) = &self.bar {
                    bar.set_length(u64::from(stats.piece_count.max(1)));
                    bar.set_position(u64::from(stats.pieces_had));
                    bar.set_message(summary);
                } else if self.last_plain.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
                    self.last_plain = Some(Instant::now());
                    self.line(&format!("{:5.1}% {summary}", fraction(stats) * 100.0));
                }
            }
        }
    }

    /// A message for the user (shown once however often it repeats); on stderr in JSON mode.
    /// Messages carry names, URLs and errors that torrents and trackers chose: they are
    /// escaped here, where they are printed.
    pub(crate) fn note(&mut self, kind: &str, message: &str) {
        if self.style == Style::Quiet
            || self.notes.len() >= MAX_NOTES
            || !self.notes.insert(format!("{kind}{message}"))
        {
            return;
        }
        match self.style {
            Style::Json => self.json(json!({ "event": kind, "message": message })),
            _ => match &self.bar {
                Some(bar) => bar.println(escape(message)),
                None => eprintln!("{}", escape(message)),
            },
        }
    }

    /// A milestone with figures: a line for people, an event with `extra` merged in for JSON.
    pub(crate) fn event(&mut self, kind: &str, line: &str, extra: serde_json::Value) {
        match self.style {
            Style::Quiet => {}
            Style::Json => {
                let mut object = json!({ "event": kind, "message": line });
                if let (Some(object), serde_json::Value::Object(extra)) =
                    (object.as_object_mut(), extra)
                {
                    object.extend(extra);
                }
                self.json(object);
            }
            Style::Human => match &self.bar {
                Some(bar) => bar.println(escape(line)),
                None => eprintln!("{}", escape(line)),
            },
        }
    }

    /// The final line of a transfer.
    pub(crate) fn done(&mut self, kind: &str, line: &str, extra: serde_json::Value) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        match self.style {
            Style::Quiet => {}
            Style::Json => {
                let mut object =
                    json!({ "event": kind, "message": line, "elapsed": self.elapsed() });
                if let (Some(object), serde_json::Value::Object(extra)) =
                    (object.as_object_mut(), extra)
                {
                    object.extend(extra);
                }
                self.json(object);
            }
            Style::Human => self.line(&escape(line)),
        }
    }

    fn line(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        // A closed stdout (a pipe to `head`) must not stop the transfer.
        let _ = writeln!(out, "{line}");
    }

    fn json(&self, value: serde_json::Value) {
        self.line(&json_line(&value));
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn fraction(stats: &TorrentStats) -> f64 {
    f64::from(stats.pieces_had) / f64::from(stats.piece_count.max(1))
}

fn state_name(state: TorrentState) -> &'static str {
    match state {
        TorrentState::Metadata => "metadata",
        TorrentState::Checking => "checking",
        TorrentState::Downloading => "downloading",
        TorrentState::Seeding => "seeding",
        TorrentState::Paused => "paused",
        _ => "unknown",
    }
}

fn summary(stats: &TorrentStats) -> String {
    let eta = match stats.bytes_left.checked_div(stats.download_rate) {
        _ if stats.bytes_left == 0 => "-".to_owned(),
        Some(seconds) => format_eta(seconds),
        None => "∞".to_owned(),
    };
    format!(
        "↓ {} ↑ {} ETA {eta} peers {} pieces {}/{}",
        format_rate(stats.download_rate as f64),
        format_rate(stats.upload_rate as f64),
        stats.peers.len(),
        stats.pieces_had,
        stats.piece_count
    )
}

fn format_eta(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
    }
}
