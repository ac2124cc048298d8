//! The settings of one link, fixed once connected: what [`ClientBuilder`](crate::ClientBuilder)
//! and [`ClusterBuilder`](crate::ClusterBuilder) fill in and every link driver reads.
//!
//! A leaf: the builders write a [`Config`], the link and the clients only read it, so it knows
//! none of them.

use std::time::Duration;

use wsgate_proto::backoff::{self, Backoff};
use wsgate_proto::v1::EventKind;

use crate::error::Error;
use crate::events::AckPoint;
use crate::tls::{Connector, TlsOptions};

/// The default name sent in `Register`.
pub const DEFAULT_NAME: &str = "business";
/// The default time a command waits for the gateway's answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The smallest duration accepted for timers (a zero period would spin or panic).
pub(crate) const MIN_DURATION: Duration = Duration::from_millis(1);

/// The settings of a client, fixed once connected.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) addr: String,
    pub(crate) name: String,
    pub(crate) token: String,
    pub(crate) events: Vec<EventKind>,
    pub(crate) authorize: bool,
    /// Register with acks: events are acknowledged once the application receives them.
    pub(crate) acks: bool,
    /// With acks: when an event counts as taken.
    pub(crate) ack_point: AckPoint,
    /// Give commands ids and send them again after a lost session (see `link::handle`).
    pub(crate) retries: bool,
    pub(crate) heartbeat_interval: Option<Duration>,
    pub(crate) heartbeat_timeout: Option<Duration>,
    pub(crate) request_timeout: Duration,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) retry_initial_connect: bool,
    /// TLS as asked for with `tls()`.
    pub(crate) tls_options: Option<TlsOptions>,
    /// The same, prepared by [`Config::prepare_tls`] before connecting.
    pub(crate) tls: Option<Connector>,
}

// By hand, so the token never reaches a log line.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("name", &self.name)
            .field(
                "token",
                &if self.token.is_empty() {
                    ""
                } else {
                    "[redacted]"
                },
            )
            .field("events", &self.events)
            .field("authorize", &self.authorize)
            .field("acks", &self.acks)
            .field("ack_point", &self.ack_point)
            .field("retries", &self.retries)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("backoff", &(self.backoff_min, self.backoff_max))
            .field("retry_initial_connect", &self.retry_initial_connect)
            .field("tls", &self.tls_options)
            .finish()
    }
}

impl Config {
    /// The defaults, for a link to `addr`.
    pub(crate) fn new(addr: String) -> Self {
        Self {
            addr,
            name: DEFAULT_NAME.to_owned(),
            token: String::new(),
            events: Vec::new(),
            authorize: false,
            acks: false,
            ack_point: AckPoint::Received,
            retries: true,
            heartbeat_interval: None,
            heartbeat_timeout: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            backoff_min: backoff::DEFAULT_MIN,
            backoff_max: backoff::DEFAULT_MAX,
            retry_initial_connect: false,
            tls_options: None,
            tls: None,
        }
    }

    /// A fresh reconnect backoff (exponential, full jitter).
    pub(crate) fn backoff(&self) -> Backoff {
        Backoff::new(self.backoff_min, self.backoff_max)
    }

    /// Turns the TLS options into what links dial with; fails on unusable options.
    pub(crate) fn prepare_tls(&mut self) -> Result<(), Error> {
        self.tls = self.tls_options.as_ref().map(Connector::new).transpose()?;
        Ok(())
    }
}
