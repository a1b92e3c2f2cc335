//! Addresses as people type them: `--listen 6881` (a bare port), `--peer host.example:6881`.

use std::net::{Ipv6Addr, SocketAddr, ToSocketAddrs};

/// `--listen`: `IP:PORT`, or a bare port (on every address, `[::]`).
pub(crate) fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)));
    }
    text.parse().map_err(|_| {
        format!("`{text}` is not a port or an address such as 0.0.0.0:6881 or [::]:6881")
    })
}

/// `--peer`: `IP:PORT` or `HOST:PORT` (resolved now; the first address is taken).
pub(crate) fn parse_peer(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    if !text.contains(':') {
        return Err(format!(
            "`{text}` has no port: give HOST:PORT, e.g. {text}:6881"
        ));
    }
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{text}`: {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("`{text}` resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_ports_hosts_and_mistakes() {
        assert_eq!(
            parse_listen("6881"),
            Ok("[::]:6881".parse().unwrap_or_else(|_| unreachable!()))
        );
        assert_eq!(
            parse_listen("127.0.0.1:7000"),
            Ok("127.0.0.1:7000".parse().unwrap_or_else(|_| unreachable!()))
        );
        assert!(parse_listen("seven").is_err());
        assert_eq!(
            parse_peer("localhost:6881").map(|a| a.port()),
            Ok(6881),
            "a host name resolves"
        );
        assert!(parse_peer("localhost").unwrap_err().contains("no port"));
    }
}
