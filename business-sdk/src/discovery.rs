//! How a [`Cluster`](crate::Cluster) finds its gateways: a [`Discovery`] names the worker
//! addresses of every gateway right now.
//!
//! wsgate has no registry service of its own: discovery is configuration
//! ([`StaticDiscovery`], a fixed list) or DNS ([`DnsDiscovery`](crate::DnsDiscovery), a name
//! that resolves to every gateway, such as a Kubernetes headless Service). The cluster asks once
//! at `connect()` and again every `rediscover_every`, starting links to new addresses and
//! stopping the links of vanished ones. Implement the trait for anything else (Consul, a file).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

/// The future a [`Discovery`] returns.
type Discovered<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<String>>> + Send + 'a>>;

/// Names the gateways of a cluster.
///
/// ```
/// use std::io;
/// use std::pin::Pin;
/// use wsgate_business::Discovery;
///
/// /// Gateways listed in an environment variable, re-read at every rediscovery.
/// #[derive(Debug)]
/// struct FromEnv(&'static str);
///
/// impl Discovery for FromEnv {
///     fn discover(
///         &self,
///     ) -> Pin<Box<dyn Future<Output = io::Result<Vec<String>>> + Send + '_>> {
///         Box::pin(async move {
///             let list = std::env::var(self.0).map_err(io::Error::other)?;
///             Ok(list.split(',').map(|s| s.trim().to_owned()).collect())
///         })
///     }
/// }
/// ```
pub trait Discovery: Send + Sync + fmt::Debug + 'static {
    /// The worker addresses ("host:port") of every gateway right now.
    ///
    /// An error or an empty list at `connect()` fails the connect with
    /// [`Error::Discovery`](crate::Error::Discovery); later, the cluster keeps its current
    /// gateways and tries again at the next rediscovery.
    fn discover(&self) -> Pin<Box<dyn Future<Output = io::Result<Vec<String>>> + Send + '_>>;
}

/// A fixed list of gateway worker addresses.
///
/// ```
/// use wsgate_business::StaticDiscovery;
///
/// let gateways = StaticDiscovery::new(vec!["10.0.0.1:8081".into(), "10.0.0.2:8081".into()]);
/// assert_eq!(gateways.0.len(), 2);
/// // Or from any list of strings:
/// let gateways: StaticDiscovery = ["10.0.0.1:8081", "10.0.0.2:8081"].into_iter().collect();
/// assert_eq!(gateways.0[1], "10.0.0.2:8081");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticDiscovery(pub Vec<String>);

impl StaticDiscovery {
    /// The gateways at these worker addresses (`"host:port"`).
    pub fn new(addrs: Vec<String>) -> Self {
        Self(addrs)
    }
}

impl<S: Into<String>> FromIterator<S> for StaticDiscovery {
    fn from_iter<I: IntoIterator<Item = S>>(addrs: I) -> Self {
        Self(addrs.into_iter().map(Into::into).collect())
    }
}

impl Discovery for StaticDiscovery {
    fn discover(&self) -> Discovered<'_> {
        let addrs = self.0.clone();
        Box::pin(async move { Ok(addrs) })
    }
}

/// A boxed discovery, so the kind can be chosen at run time (a list or a DNS name).
impl<D: Discovery + ?Sized> Discovery for Box<D> {
    fn discover(&self) -> Discovered<'_> {
        (**self).discover()
    }
}

/// A shared discovery.
impl<D: Discovery + ?Sized> Discovery for Arc<D> {
    fn discover(&self) -> Discovered<'_> {
        (**self).discover()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn static_discovery_returns_its_list() {
        let d: StaticDiscovery = ["a:1", "b:2"].into_iter().collect();
        assert_eq!(d.discover().await.expect("static"), ["a:1", "b:2"]);
    }

    #[tokio::test]
    async fn boxed_and_shared_discoveries_delegate() {
        let boxed: Box<dyn Discovery> = Box::new(StaticDiscovery::new(vec!["a:1".into()]));
        assert_eq!(boxed.discover().await.expect("boxed"), ["a:1"]);
        let shared: Arc<dyn Discovery> = Arc::new(StaticDiscovery(vec!["b:2".into()]));
        assert_eq!(shared.discover().await.expect("shared"), ["b:2"]);
    }
}
