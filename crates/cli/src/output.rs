//! Lines on stdout that a closed pipe (`cratetorrent info x | head -1`) ends quietly, as it
//! ends other Unix tools, instead of a panic. SIGPIPE itself stays ignored: the engine's
//! sockets must not kill the process.

use std::io::Write;

/// Writes one line; on a closed stdout, exits 0 at once (what was asked for was read).
pub(crate) fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(error) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("cratetorrent: stdout: {error}");
        std::process::exit(1);
    }
}

/// `println!` through [`line`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;
