//! How a running transfer reports itself: a line per torrent on a terminal (each fitting its
//! width), periodic plain lines otherwise, one JSON object per stats tick with `--json`, or
//! nothing with `-q`. `create` and `verify` draw their hashing bar in the same style.

mod hashing;
mod line;
mod torrent;

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use cratetorrent::TorrentStats;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::escape::{escape, json_line};
pub(crate) use hashing::HashBar;
pub(crate) use line::{DEFAULT_WIDTH, Detail};
pub(crate) use torrent::ratio;

/// How often plain (non-terminal) progress lines are printed per torrent.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Different messages remembered so that repeats of one are shown once; past it they are
/// forgotten (a repeat may show again), so a session of a thousand torrents misses none.
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

/// A torrent's line in the display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot(usize);

struct Line {
    name: String,
    bar: Option<ProgressBar>,
    last_plain: Option<Instant>,
}

pub(crate) struct Reporter {
    style: Style,
    multi: Option<MultiProgress>,
    lines: Vec<Line>,
    started: Instant,
    notes: HashSet<String>,
}

impl Reporter {
    pub(crate) fn new(style: Style) -> Self {
        let multi = (style == Style::Human && std::io::stdout().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()));
        crate::log::set_bars(multi.clone());
        Self {
            style,
            multi,
            lines: Vec::new(),
            started: Instant::now(),
            notes: HashSet::new(),
        }
    }

    /// A line for one torrent, shown under the ones added before.
    pub(crate) fn add(&mut self, name: &str) -> Slot {
        let bar = self.multi.as_ref().map(|multi| {
            let bar = multi.add(
                ProgressBar::new(1).with_style(
                    ProgressStyle::with_template("{msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                ),
            );
            bar.set_message(line::compose(
                terminal_width(),
                &escape(name),
                Some(0.0),
                &[],
            ));
            bar
        });
        self.lines.push(Line {
            name: name.to_owned(),
            bar,
            last_plain: None,
        });
        Slot(self.lines.len() - 1)
    }

    /// The torrent's name changed (a magnet link's metadata arrived).
    pub(crate) fn rename(&mut self, slot: Slot, name: &str) {
        if let Some(line) = self.lines.get_mut(slot.0) {
            name.clone_into(&mut line.name);
        }
    }

    /// Seconds since the transfer started.
    pub(crate) fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Shows where a torrent is before its first stats: e.g. the pieces a resumed download
    /// verified on disk.
    pub(crate) fn show(&mut self, slot: Slot, fraction: Option<f64>, details: &[Detail]) {
        if self.style != Style::Human {
            return;
        }
        let Some(line) = self.lines.get_mut(slot.0) else {
            return;
        };
        let name = escape(&line.name);
        if let Some(bar) = &line.bar {
            bar.set_message(line::compose(terminal_width(), &name, fraction, details));
        } else if line.last_plain.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
            line.last_plain = Some(Instant::now());
            let text = line::plain(&name, fraction, details);
            self.print(&text);
        }
    }

    /// The torrent's latest stats.
    pub(crate) fn stats(&mut self, slot: Slot, stats: &TorrentStats) {
        let elapsed = self.elapsed();
        match self.style {
            Style::Quiet => {}
            Style::Json => {
                let name = self.lines.get(slot.0).map_or("", |l| l.name.as_str());
                let value = torrent::json(name, stats, elapsed);
                self.print(&json_line(&value));
            }
            Style::Human => {
                let (fraction, details) = torrent::view(stats);
                self.show(slot, fraction, &details);
            }
        }
    }

    /// A message for the user (shown once however often it repeats); on stderr, or stdout as
    /// a JSON event. Messages carry names, URLs and errors that torrents and trackers chose:
    /// they are escaped here, where they are printed.
    pub(crate) fn note(&mut self, kind: &str, message: &str) {
        if self.notes.len() >= MAX_NOTES {
            self.notes.clear();
        }
        if self.style == Style::Quiet || !self.notes.insert(format!("{kind}{message}")) {
            return;
        }
        match self.style {
            Style::Json => self.print(&json_line(&json!({ "event": kind, "message": message }))),
            _ => match &self.multi {
                Some(multi) => {
                    let _ = multi.println(escape(message));
                }
                None => eprintln!("{}", escape(message)),
            },
        }
    }

    /// An error, as the CLI prints them (`cratetorrent: …` on stderr) whatever the style.
    pub(crate) fn error(&self, message: &str) {
        let line = format!("cratetorrent: {}", escape(message));
        match &self.multi {
            Some(multi) => multi.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// A milestone with figures: a line for people, an event with `extra` merged in for JSON.
    pub(crate) fn event(&mut self, kind: &str, line: &str, extra: serde_json::Value) {
        match self.style {
            Style::Quiet => {}
            Style::Json => {
                let object = merged(json!({ "event": kind, "message": line }), extra);
                self.print(&json_line(&object));
            }
            Style::Human => match &self.multi {
                Some(multi) => {
                    let _ = multi.println(escape(line));
                }
                None => eprintln!("{}", escape(line)),
            },
        }
    }

    /// A torrent's final line (its bar goes away; the others stay).
    pub(crate) fn done(&mut self, slot: Slot, kind: &str, line: &str, extra: serde_json::Value) {
        if let Some(bar) = self.lines.get_mut(slot.0).and_then(|l| l.bar.take()) {
            bar.finish_and_clear();
            if let Some(multi) = &self.multi {
                multi.remove(&bar);
            }
        }
        match self.style {
            Style::Quiet => {}
            Style::Json => {
                let object = merged(
                    json!({ "event": kind, "message": line, "elapsed": self.elapsed() }),
                    extra,
                );
                self.print(&json_line(&object));
            }
            Style::Human => match &self.multi {
                Some(multi) => {
                    let _ = multi.println(escape(line));
                }
                None => self.print(&escape(line)),
            },
        }
    }

    /// Removes every bar (before the process prints its last lines or exits).
    pub(crate) fn clear(&mut self) {
        for line in &mut self.lines {
            if let Some(bar) = line.bar.take() {
                bar.finish_and_clear();
            }
        }
        if let Some(multi) = self.multi.take() {
            crate::log::set_bars(None);
            let _ = multi.clear();
        }
    }

    fn print(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        // A closed stdout (a pipe to `head`) must not stop the transfer.
        let _ = writeln!(out, "{line}");
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.clear();
    }
}

fn merged(mut object: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(object), serde_json::Value::Object(extra)) = (object.as_object_mut(), extra) {
        object.extend(extra);
    }
    object
}

/// The terminal's columns (stdout's, else stderr's), or 80.
pub(crate) fn terminal_width() -> usize {
    let size = rustix::termios::tcgetwinsize(std::io::stdout())
        .or_else(|_| rustix::termios::tcgetwinsize(std::io::stderr()));
    match size {
        Ok(size) if size.ws_col > 0 => usize::from(size.ws_col),
        _ => DEFAULT_WIDTH,
    }
}
