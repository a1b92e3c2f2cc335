//! A whole peer session against the sans-IO core: peers connect, send arbitrary bytes in
//! arbitrary chunks and hang up, time passes, storage verifies or fails pieces and answers reads.
//! Nothing may panic and every per-peer bound holds after each step.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cratetorrent::fuzzing::run_session(data);
});
