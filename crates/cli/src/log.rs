//! Log lines on stderr. At the default level they read as the CLI's other messages do
//! (`cratetorrent: …`, no timestamps or module paths); `-v` gives the full format. Colour only
//! on a terminal and without `NO_COLOR`; lines are drawn above the progress bars, not into them.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::MultiProgress;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// The bars on screen, if any: log lines are printed with them suspended.
static BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Registers (or with None, forgets) the bars log lines must not draw into.
pub(crate) fn set_bars(bars: Option<MultiProgress>) {
    if let Ok(mut slot) = BARS.lock() {
        *slot = bars;
    }
}

pub(crate) fn init(quiet: bool, verbose: u8) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(BarSafeStderr)
        .with_ansi(colour);
    let _ = if verbose > 0 || std::env::var_os("RUST_LOG").is_some() {
        builder.try_init()
    } else {
        builder.event_format(Plain).try_init()
    };
}

/// `cratetorrent: message key=value`.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "cratetorrent: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Stderr, with the bars suspended while a line is written.
struct BarSafeStderr;

impl<'a> MakeWriter<'a> for BarSafeStderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(Vec::new())
    }
}

/// Collects one event's text and writes it at once when dropped.
struct LineWriter(Vec<u8>);

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let write = || {
            let _ = std::io::stderr().lock().write_all(&self.0);
        };
        match BARS.lock().ok().as_ref().and_then(|bars| bars.as_ref()) {
            Some(bars) => bars.suspend(write),
            None => write(),
        }
    }
}
