//! The bar `create` and `verify` show on stderr while hashing, in the transfer lines' style.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::line::{Detail, compose};
use crate::units::{format_progress, format_rate};

/// Redraws at most this often (hashing reports every piece, on several threads).
const REDRAW: Duration = Duration::from_millis(100);

pub(crate) struct HashBar {
    label: &'static str,
    bar: Option<ProgressBar>,
    started: Instant,
    last: Mutex<Option<Instant>>,
}

impl HashBar {
    /// A bar on stderr when it is a terminal and not `quiet`; nothing otherwise.
    pub(crate) fn new(label: &'static str, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            )
        });
        Self {
            label,
            bar,
            started: Instant::now(),
            last: Mutex::new(None),
        }
    }

    /// `done` of `total` bytes hashed.
    pub(crate) fn update(&self, done: u64, total: u64) {
        let Some(bar) = &self.bar else {
            return;
        };
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.is_some_and(|t| t.elapsed() < REDRAW) && done < total {
            return;
        }
        *last = Some(Instant::now());
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let fraction = if total == 0 {
            1.0
        } else {
            done as f64 / total as f64
        };
        let details = [
            Detail::new(0, format_progress(done, total)),
            Detail::new(1, format_rate(rate)),
        ];
        bar.set_message(compose(
            super::terminal_width(),
            self.label,
            Some(fraction),
            &details,
        ));
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
