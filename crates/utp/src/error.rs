//! The crate's errors.

use thiserror::Error;

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CloseReason {
    /// Both ends closed and everything was acknowledged.
    #[error("closed")]
    Finished,
    /// The peer reset the connection (or refused it).
    #[error("reset by the peer")]
    Reset,
    /// The peer stopped answering (or never answered the SYN).
    #[error("timed out")]
    TimedOut,
    /// We reset it.
    #[error("aborted")]
    Aborted,
    /// The network said the peer cannot be reached (an ICMP unreachable for our SYN's address,
    /// given through [`Endpoint::unreachable`](crate::Endpoint::unreachable)).
    #[error("unreachable")]
    Unreachable,
}

/// Why a stream operation did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum StreamError {
    /// Nothing to read, or no room to write, yet: wait for the connection's event.
    #[error("would block")]
    WouldBlock,
    /// The connection is closed (or the handle is stale).
    #[error("connection closed")]
    Closed,
}

/// Why a connection could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ConnectError {
    /// The endpoint holds `Config::max_connections` already.
    #[error("too many uTP connections")]
    TooManyConnections,
    /// Every connection id towards that address is taken.
    #[error("no free uTP connection id")]
    NoConnectionId,
}
