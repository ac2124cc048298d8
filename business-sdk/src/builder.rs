//! How a business process describes its link: gateway address, name, token, wanted events and
//! timing. [`ClientBuilder::connect`] turns the description into a running link.
//!
//! Everything has a default, so `Client::builder(addr).connect()` is enough on a developer
//! machine; durations left unset come from the gateway's `RegisterOk` limits.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;
use wsgate_proto::v1::EventKind;

use crate::backoff::{self, Backoff};
use crate::client::Client;
use crate::error::Error;
use crate::events::{EventSink, Events};
use crate::link::{self, Link, LinkShared};
use crate::tls::{Connector, TlsOptions};

/// The default name sent in `Register`.
pub const DEFAULT_NAME: &str = "business";
/// The default time a command waits for the gateway's answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings of a client, fixed once connected.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) addr: String,
    pub(crate) name: String,
    pub(crate) token: String,
    pub(crate) events: Vec<EventKind>,
    pub(crate) authorize: bool,
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
    pub(crate) fn backoff(&self) -> Backoff {
        Backoff::new(self.backoff_min, self.backoff_max)
    }

    /// Turns the TLS options into what links dial with; fails on unusable options.
    pub(crate) fn prepare_tls(&mut self) -> Result<(), Error> {
        self.tls = self.tls_options.as_ref().map(Connector::new).transpose()?;
        Ok(())
    }
}

/// Builds a [`Client`]; made by [`Client::builder`].
///
/// ```no_run
/// use std::time::Duration;
/// use wsgate_business::{Client, EventKind};
///
/// # async fn run() -> Result<(), wsgate_business::Error> {
/// let (client, mut events) = Client::builder("127.0.0.1:8081")
///     .name("chat")
///     .token(std::env::var("WSGATE_WORKER_TOKEN").unwrap_or_default())
///     .events([EventKind::Open, EventKind::Message, EventKind::Close])
///     .request_timeout(Duration::from_secs(5))
///     .retry_initial_connect(true)
///     .connect()
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until .connect().await"]
pub struct ClientBuilder {
    config: Config,
}

impl ClientBuilder {
    pub(crate) fn new(addr: impl Into<String>) -> Self {
        Self {
            config: Config {
                addr: addr.into(),
                name: DEFAULT_NAME.to_owned(),
                token: String::new(),
                events: Vec::new(),
                authorize: false,
                heartbeat_interval: None,
                heartbeat_timeout: None,
                request_timeout: DEFAULT_REQUEST_TIMEOUT,
                backoff_min: backoff::DEFAULT_MIN,
                backoff_max: backoff::DEFAULT_MAX,
                retry_initial_connect: false,
                tls_options: None,
                tls: None,
            },
        }
    }

    #[cfg(test)]
    pub(crate) fn config_for_tests(self) -> Config {
        self.config
    }

    /// The settings, for a [`ClusterBuilder`](crate::ClusterBuilder) that shares these setters.
    pub(crate) fn into_config(self) -> Config {
        self.config
    }

    /// The name of this business process, shown in the gateway's logs and metrics.
    /// Default `"business"`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// The gateway's worker token. Default empty (a gateway on loopback needs none).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.config.token = token.into();
        self
    }

    /// The client connection events this process wants. Default (and an empty list): all.
    /// Link events ([`Event::Connected`](crate::Event::Connected),
    /// [`Event::Disconnected`](crate::Event::Disconnected)) are always delivered;
    /// [`Event::Authorize`](crate::Event::Authorize) depends on [`authorize`](Self::authorize)
    /// only.
    pub fn events(mut self, kinds: impl IntoIterator<Item = EventKind>) -> Self {
        self.config.events = kinds
            .into_iter()
            .filter(|k| *k != EventKind::Unspecified)
            .collect();
        self
    }

    /// When `true`, this process answers the gateway's handshake hook: a gateway started with
    /// `--authorize-hook` sends every client handshake to one of the processes registered this
    /// way, and it arrives as [`Event::Authorize`](crate::Event::Authorize). Every such event
    /// must be answered (see [`AuthorizeCall`](crate::AuthorizeCall)). Default `false`.
    ///
    /// ```no_run
    /// use wsgate_business::{Client, Event};
    ///
    /// # async fn run() -> Result<(), wsgate_business::Error> {
    /// let (_client, mut events) = Client::builder("127.0.0.1:8081")
    ///     .name("auth")
    ///     .authorize(true)
    ///     .connect()
    ///     .await?;
    /// while let Some(event) = events.recv().await {
    ///     if let Event::Authorize(call) = event {
    ///         let user = call.request.jwt_user_id.clone();
    ///         if user.is_empty() {
    ///             call.deny(401, "log in first").await?;
    ///         } else {
    ///             call.allow(user).await?;
    ///         }
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn authorize(mut self, authorize: bool) -> Self {
        self.config.authorize = authorize;
        self
    }

    /// How often to ping the gateway. Default: the gateway's `heartbeat_interval_ms`.
    /// Values below 1 ms are raised to 1 ms.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.config.heartbeat_interval = Some(interval.max(link::MIN_DURATION));
        self
    }

    /// How long the gateway may stay silent before the link counts as dead and is
    /// re-established. Default: the gateway's `heartbeat_timeout_ms`.
    /// Values below 1 ms are raised to 1 ms.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.config.heartbeat_timeout = Some(timeout.max(link::MIN_DURATION));
        self
    }

    /// How long a command waits for the gateway's answer before failing with
    /// [`Error::Timeout`]; also bounds the register handshake. Default 10 s.
    /// Values below 1 ms are raised to 1 ms.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout.max(link::MIN_DURATION);
        self
    }

    /// The reconnect backoff: the n-th attempt waits a random time between zero and
    /// `min(max, min * 2^n)`. Default 100 ms .. 5 s.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config.backoff_min = min;
        self.config.backoff_max = max;
        self
    }

    /// When `true`, [`connect`](Self::connect) keeps retrying (with the backoff) while the
    /// gateway is unreachable instead of failing at once, so a business process may start
    /// before its gateway. It still fails at once when the gateway refuses the registration
    /// ([`Error::Rejected`]). Default `false`.
    pub fn retry_initial_connect(mut self, retry: bool) -> Self {
        self.config.retry_initial_connect = retry;
        self
    }

    /// Connects with TLS, for a gateway started with `--worker-tls`. Default: plain TCP.
    /// Unusable options (no certificate in the CA PEM, a bad server name) make
    /// [`connect`](Self::connect) fail with [`Error::TlsConfig`].
    pub fn tls(mut self, options: TlsOptions) -> Self {
        self.config.tls_options = Some(options);
        self
    }

    /// Connects, registers and starts the link driver in the background.
    ///
    /// Resolves once the gateway accepted the registration; [`Event::Connected`](crate::Event)
    /// is then already queued in [`Events`]. Fails with [`Error::Connect`] when the gateway
    /// is unreachable (unless [`retry_initial_connect`](Self::retry_initial_connect) is set),
    /// [`Error::Rejected`] when it refuses the registration (for example a wrong token), and
    /// [`Error::Timeout`] when it does not answer the registration in time.
    ///
    /// Must be called from within a Tokio runtime.
    pub async fn connect(mut self) -> Result<(Client, Events), Error> {
        self.config.prepare_tls()?;
        let config = Arc::new(self.config);
        let shared = Arc::new(LinkShared::new(
            config.addr.clone(),
            CancellationToken::new(),
        ));

        let mut backoff = config.backoff();
        let established = loop {
            match link::establish(&config, &shared).await {
                Ok(established) => break established,
                Err(err) if config.retry_initial_connect && err.is_retryable() => {
                    let delay = backoff.next_delay();
                    warn!(addr = %config.addr, error = %err, retry_in = ?delay, "cannot register with the gateway yet; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(err) => return Err(err),
            }
        };

        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let clients_gone = CancellationToken::new();
        let tracker = TaskTracker::new();
        let link = Link::new(
            Arc::clone(&config),
            Arc::clone(&shared),
            EventSink::Client(event_tx),
            clients_gone.clone(),
        );
        // Publishes the session and queues Event::Connected before connect() returns.
        let session = link.activate(established);
        tracker.spawn(link.run(session));

        let client = Client::new(config, shared, clients_gone, tracker);
        Ok((client, Events::new(event_rx)))
    }
}

#[cfg(test)]
mod tests {
    use crate::Client;

    #[test]
    fn debug_never_shows_the_token() {
        let builder = Client::builder("127.0.0.1:1").token("hunter2-secret");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
