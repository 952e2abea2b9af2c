//! Relay configuration: limits with safe defaults, read from a TOML file
//! and overridden by `AMANA_RELAY_*` environment variables and flags.

use serde::Deserialize;

/// Limits that protect the relay from clients, buggy or hostile.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub max_request_bytes: usize,
    /// Largest envelope body, in bytes.
    pub max_envelope_bytes: usize,
    /// Most envelopes in one upload.
    pub max_batch: usize,
    /// Most envelopes in one page of a download.
    pub max_page: usize,
    /// Most envelope bytes in one page (but always at least one envelope).
    pub max_page_bytes: usize,
    /// Requests per device per minute.
    pub requests_per_minute: u32,
    /// Most teams on this relay.
    pub max_teams: u64,
    /// Most stored bytes per team.
    pub max_team_bytes: u64,
    /// Allowed difference between a request's time and the relay's, seconds.
    pub max_clock_skew_secs: u64,
    /// Longest a request may take, seconds (slow clients are cut off).
    pub request_timeout_secs: u64,
    /// Longest a client may take to send its request headers, seconds
    /// (half-open and slowloris connections are closed).
    pub header_timeout_secs: u64,
    /// Most unused, unexpired invites per team.
    pub max_open_invites: u64,
    /// Longest an invite may stay valid, seconds.
    pub max_invite_ttl_secs: u64,
    /// Most request-body bytes the relay holds at once, over all
    /// connections (503 past it).
    pub max_in_flight_bytes: u64,
    /// Most requests in flight from one peer address (429 past it).
    pub max_requests_per_peer: u32,
    /// Most open connections from one peer address (more are closed as
    /// they are accepted).
    pub max_connections_per_peer: u32,
    /// Let anyone create a team without a token: for tests and benchmarks
    /// only (a relay on the internet would fill up with strangers' teams).
    pub open_team_creation: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 16 * 1024 * 1024,
            max_envelope_bytes: 4 * 1024 * 1024,
            max_batch: 500,
            max_page: 1000,
            max_page_bytes: 16 * 1024 * 1024,
            requests_per_minute: 600,
            max_teams: 1000,
            max_team_bytes: 20 * 1024 * 1024 * 1024,
            max_clock_skew_secs: 300,
            request_timeout_secs: 30,
            header_timeout_secs: 10,
            max_open_invites: 100,
            max_invite_ttl_secs: 30 * 24 * 3600,
            max_in_flight_bytes: 96 * 1024 * 1024,
            max_requests_per_peer: 128,
            max_connections_per_peer: 256,
            open_team_creation: false,
        }
    }
}

/// The relay's configuration file (`amana-relay serve --config relay.toml`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub listen: Option<String>,
    /// SQLite database path.
    pub db: Option<String>,
    /// TLS certificate chain (PEM).
    pub tls_cert: Option<String>,
    /// TLS private key (PEM).
    pub tls_key: Option<String>,
    /// Serve plain HTTP (behind a TLS-terminating proxy or on loopback).
    pub insecure_http: Option<bool>,
    /// Limits.
    pub limits: Limits,
}

impl FileConfig {
    /// Parses a TOML configuration.
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}
