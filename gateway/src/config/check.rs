//! The checks clap cannot make alone: settings that must agree with each other (an idle
//! timeout longer than the ping interval, an authorize timeout shorter than the handshake's),
//! files and names that must make sense, and the frame arithmetic ([`super::frames`]). Run by
//! `Gateway::bind`, so a bad combination stops the gateway at start with the setting to change.

use wsgate_proto::conn_id::validate_node_id;

use super::{Config, frames};
use crate::error::ConfigError;

impl Config {
    /// Checks settings that clap cannot check alone.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_node_id(&self.node_id)?;
        // Checked when read from a file too; a Config built in code gets the same check.
        crate::consumers::spec::check_all(&self.consumers).map_err(|reason| {
            ConfigError::Invalid {
                key: "consumer",
                reason,
            }
        })?;
        if !self.ws_path.starts_with('/') {
            return Err(ConfigError::Invalid {
                key: "ws-path",
                reason: format!("{:?} must start with '/'", self.ws_path),
            });
        }
        let token_missing = self.worker_token.as_deref().is_none_or(str::is_empty);
        if token_missing && !self.worker_addr.ip().is_loopback() {
            return Err(ConfigError::TokenRequired {
                addr: self.worker_addr,
            });
        }
        let key_missing = self.api_key.as_deref().is_none_or(str::is_empty);
        for (key, addr) in [("api-addr", self.api_addr), ("grpc-addr", self.grpc_addr)] {
            if key_missing && !addr.ip().is_loopback() {
                return Err(ConfigError::ApiKeyRequired { key, addr });
            }
        }
        let positive = [
            ("send-queue", self.send_queue == 0),
            ("send-queue-bytes", self.send_queue_bytes == 0),
            ("link-queue-bytes", self.link_queue_bytes == 0),
            ("worker-ack-window", self.worker_ack_window == 0),
            ("worker-ack-window-bytes", self.worker_ack_window_bytes == 0),
            ("worker-ack-timeout", self.worker_ack_timeout.is_zero()),
            ("command-id-ttl", self.command_id_ttl.is_zero()),
            ("max-topics-per-conn", self.max_topics_per_conn == 0),
            ("max-topics-per-command", self.max_topics_per_command == 0),
            (
                "max-conn-ids-per-command",
                self.max_conn_ids_per_command == 0,
            ),
            (
                "max-user-ids-per-command",
                self.max_user_ids_per_command == 0,
            ),
            ("listen-backlog", self.listen_backlog == 0),
            (
                "client-message-burst",
                self.client_message_rate > 0 && self.client_message_burst == 0,
            ),
            (
                "handshake-burst-per-ip",
                self.handshake_rate_per_ip > 0 && self.handshake_burst_per_ip == 0,
            ),
            ("max-message-bytes", self.max_message_bytes == 0),
            ("max-frame-bytes", self.max_frame_bytes < 1024),
            ("client-ping-interval", self.client_ping_interval.is_zero()),
            (
                "worker-heartbeat-interval",
                self.worker_heartbeat_interval.is_zero(),
            ),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, bad)| *bad) {
            return Err(ConfigError::Invalid {
                key,
                reason: "must be greater than zero (max-frame-bytes: at least 1024)".into(),
            });
        }
        for (key, list) in [
            ("handshake-rate-exempt", &self.handshake_rate_exempt),
            ("trusted-proxies", &self.trusted_proxies),
        ] {
            crate::cidr::CidrList::parse(list)
                .map_err(|reason| ConfigError::Invalid { key, reason })?;
        }
        if let Some(bad) = self
            .api_allowed_hosts
            .iter()
            .filter(|h| !h.is_empty())
            .find(|h| h.contains('/') || h.contains(char::is_whitespace))
        {
            return Err(ConfigError::Invalid {
                key: "api-allowed-hosts",
                reason: format!(
                    "{bad:?} is not a host name; list names like gateway.internal or gateway.internal:8082"
                ),
            });
        }
        frames::check(self).map_err(|reason| ConfigError::Invalid {
            key: "max-frame-bytes",
            reason,
        })?;
        if self.client_idle_timeout <= self.client_ping_interval {
            return Err(ConfigError::Invalid {
                key: "client-idle-timeout",
                reason: format!(
                    "{:?} must be longer than client-ping-interval ({:?}), or clients are closed between pings",
                    self.client_idle_timeout, self.client_ping_interval
                ),
            });
        }
        if let Some(dns) = &self.peers_dns {
            let port_ok = dns
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                return Err(ConfigError::Invalid {
                    key: "peers-dns",
                    reason: format!(
                        "{dns:?} is not NAME:PORT (for example wsgate-workers.default.svc:8081)"
                    ),
                });
            }
        }
        let (missing, set) = match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => (Some("tls-key"), "tls-cert"),
            (None, Some(_)) => (Some("tls-cert"), "tls-key"),
            _ => (None, ""),
        };
        if let Some(key) = missing {
            return Err(ConfigError::Invalid {
                key,
                reason: format!(
                    "not set while --{set} is; --tls-cert (the certificate chain) and --tls-key \
                     (its private key) go together: set both for wss://, or neither"
                ),
            });
        }
        let has_cert = self.tls_cert.is_some() && self.tls_key.is_some();
        for (key, on) in [("api-tls", self.api_tls), ("worker-tls", self.worker_tls)] {
            if on && !has_cert {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "is set but --tls-cert and --tls-key are not; the listener serves \
                             TLS with that certificate, so set both"
                        .into(),
                });
            }
        }
        if self.worker_tls_ca.is_some() && !self.worker_tls {
            return Err(ConfigError::Invalid {
                key: "worker-tls-ca",
                reason: "is set but --worker-tls is not; it is the CA the cluster client trusts \
                         on TLS worker links"
                    .into(),
            });
        }
        for entry in &self.allowed_origins {
            crate::client::origin::Pattern::parse(entry).map_err(|reason| {
                ConfigError::Invalid {
                    key: "allowed-origins",
                    reason,
                }
            })?;
        }
        if self.authorize_hook && self.authorize_timeout >= self.handshake_timeout {
            return Err(ConfigError::Invalid {
                key: "authorize-timeout",
                reason: format!(
                    "{:?} must be shorter than handshake-timeout ({:?}), or clients are dropped before the hook's fallback answers them",
                    self.authorize_timeout, self.handshake_timeout
                ),
            });
        }
        if self.worker_heartbeat_timeout <= self.worker_heartbeat_interval {
            return Err(ConfigError::Invalid {
                key: "worker-heartbeat-timeout",
                reason: format!(
                    "{:?} must be longer than worker-heartbeat-interval ({:?})",
                    self.worker_heartbeat_timeout, self.worker_heartbeat_interval
                ),
            });
        }
        Ok(())
    }
}
