//! How a business process describes its link: gateway address, name, token, wanted events and
//! timing. [`ClientBuilder::connect`] turns the description into a running link.
//!
//! Everything has a default, so `Client::builder(addr).connect()` is enough on a developer
//! machine; durations left unset come from the gateway's `RegisterOk` limits. The settings
//! themselves are a `Config` (a leaf module every link reads); this module makes a
//! [`Client`] from them, so `Client::builder` lives here too and the client knows nothing of
//! how it was made.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wsgate_proto::v1::EventKind;

use crate::client::Client;
use crate::config::{Config, MIN_DURATION};
use crate::error::Error;
use crate::events::{AckPoint, EventSink, Events};
use crate::link::{FirstAttempt, FirstFailure, Link, LinkShared};
use crate::tls::TlsOptions;

impl Client {
    /// Starts describing a client of the gateway whose worker listener is at `addr`
    /// (`"host:port"`, for example `"127.0.0.1:8081"`).
    pub fn builder(addr: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(addr)
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
            config: Config::new(addr.into()),
        }
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

    /// When `true`, events are at least once: the process registers with acks, and each
    /// connection event is acknowledged to the gateway once the application has received it
    /// from [`Events`](crate::Events) (batched: every few dozen events, or 20 ms after the
    /// first not yet acknowledged). Events this process was given and had not received when it
    /// died, or when its link was lost or stalled, go to another process (or back to this one
    /// once it reconnects), in order per connection; such a redelivered message may have been
    /// handled already, so deduplicate by `conn_id` and
    /// [`ConnMessage::seq`](crate::ConnMessage). Receive events promptly: while more than the
    /// gateway's `--worker-ack-window` wait, it sends no more, and after its
    /// `--worker-ack-timeout` it closes the link and hands them on. Default `false` (at most
    /// once). See `docs/delivery.md`.
    pub fn acks(mut self, acks: bool) -> Self {
        self.config.acks = acks;
        self
    }

    /// With [`acks`](Self::acks): when an event counts as taken — when the application receives
    /// it ([`AckPoint::Received`], the default) or when it has handled it, i.e. asks for the
    /// next one ([`AckPoint::Handled`]: a process that dies while handling an event gets it
    /// again, or another process does). See `docs/delivery.md`.
    pub fn ack_point(mut self, point: AckPoint) -> Self {
        self.config.ack_point = point;
        self
    }

    /// When `true` (the default), every command that expects an answer gets a command id
    /// (`Envelope.command_id`), and one whose link drops before the answer is sent again, with
    /// the same id, once the link is back — within the request timeout — instead of failing
    /// with [`Error::Disconnected`](crate::Error::Disconnected). The gateway carries out a
    /// command id once, so a retry never delivers twice. Only with gateways that remember
    /// command ids (`Limits.command_ids` > 0); with others, and when `false`, a lost link
    /// fails the commands waiting on it as before. A command sent while the link is down still
    /// fails at once with [`Error::NotConnected`]. See `docs/delivery.md`.
    pub fn retries(mut self, retries: bool) -> Self {
        self.config.retries = retries;
        self
    }

    /// How often to ping the gateway. Default: the gateway's `heartbeat_interval_ms`.
    /// Values below 1 ms are raised to 1 ms.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.config.heartbeat_interval = Some(interval.max(MIN_DURATION));
        self
    }

    /// How long the gateway may stay silent before the link counts as dead and is
    /// re-established. Default: the gateway's `heartbeat_timeout_ms`.
    /// Values below 1 ms are raised to 1 ms.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.config.heartbeat_timeout = Some(timeout.max(MIN_DURATION));
        self
    }

    /// How long a command waits for the gateway's answer before failing with
    /// [`Error::Timeout`]; also bounds the register handshake. Default 10 s.
    /// Values below 1 ms are raised to 1 ms.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout.max(MIN_DURATION);
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
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let clients_gone = CancellationToken::new();
        // Until there is a `Client` to do it, dropping this future (with the events receiver
        // in it) must stop the driver.
        let not_connected = clients_gone.clone().drop_guard();
        let tracker = TaskTracker::new();
        let link = Link::new(
            Arc::clone(&config),
            Arc::clone(&shared),
            EventSink::Client(event_tx),
            clients_gone.clone(),
        );
        // The driver's reconnect policy makes the first registration too; it publishes the
        // session and queues Event::Connected before reporting it.
        let (report, first) = oneshot::channel();
        let on_failure = if config.retry_initial_connect {
            FirstFailure::RetryWhileRetryable
        } else {
            FirstFailure::GiveUp
        };
        tracker.spawn(link.run(FirstAttempt { report, on_failure }));
        first.await.unwrap_or(Err(Error::Closed))?;
        not_connected.disarm();

        let point = config.ack_point;
        let client = Client::new(config, shared, clients_gone, tracker);
        Ok((client, Events::new(event_rx, point)))
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
