//! Network namespaces made with `ip` (root needed): one per host, named
//! `ctw-<pid>-<host>`, so a later run can remove what a killed one left behind.

use std::process::Command;

use crate::WanError;

/// Runs `ip ARGS`.
pub(crate) fn ip(args: &[&str]) -> Result<(), WanError> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| WanError::Setup(format!("cannot run ip: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(WanError::Setup(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// The namespace of host `index` of the emulator run by process `pid`.
pub(crate) fn name(pid: u32, index: usize) -> String {
    format!("ctw-{pid}-{index}")
}

/// Deletes the namespaces of emulators whose process is gone.
pub(crate) fn remove_stale() {
    let Ok(list) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let pid = name
            .strip_prefix("ctw-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = ip(&["netns", "del", name]);
        }
    }
}
