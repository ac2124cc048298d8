//! The load tool's own failures: a target that would not start, clients that could not
//! connect, a publisher that failed, output that could not be written.
//!
//! Every message names what failed and, where there is one, what to do about it, because the
//! person reading it is usually looking at a half-finished benchmark run.

use std::path::PathBuf;

/// Why the load tool (not the system under test's speed) failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A target's program is not where we looked.
    #[error("no {what} binary at {}: {hint}", path.display())]
    MissingBinary {
        /// "wsgate", "plain-hub", ...
        what: &'static str,
        path: PathBuf,
        /// How to get one.
        hint: String,
    },

    /// A target's process could not be started, or died before it was ready.
    #[error("{target} did not start: {reason}")]
    TargetStart { target: String, reason: String },

    /// A target stopped answering or misbehaved while the benchmark was running.
    #[error("{target}: {reason}")]
    Target { target: String, reason: String },

    /// Clients could not connect.
    #[error(
        "{failed} of {wanted} clients could not connect to {target} ({url}); first error: {first}"
    )]
    Connect {
        target: String,
        url: String,
        wanted: usize,
        failed: usize,
        first: String,
    },

    /// A scenario asks for more sockets than this process may open.
    #[error(
        "{scenario} needs {wanted} client sockets but this process may hold only {max} (open-file limit {limit}); lower the count, or raise the hard limit (ulimit -Hn) before starting"
    )]
    TooManyClients {
        scenario: &'static str,
        wanted: usize,
        max: usize,
        limit: u64,
    },

    /// The publisher or business process inside the bench failed.
    #[error("{what}: {reason}")]
    Driver { what: String, reason: String },

    /// A wait that should have ended did not.
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout { what: String, secs: u64 },

    /// Results could not be written.
    #[error("cannot write {}: {source}; check that the directory is writable or pass another --out", path.display())]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),

    /// Some measurements failed; the others were written.
    #[error(
        "{0} measurement(s) failed (see FAILED above and the notes in results.md); the rest were written"
    )]
    Failed(usize),

    /// The --smoke run finished but some target delivered nothing.
    #[error("smoke run failed: {0}")]
    Smoke(String),
}
