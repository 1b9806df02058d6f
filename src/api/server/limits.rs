//! How many connections the server takes and how long it waits for each part of a request,
//! from `[api]`. The connection cap matters most: each connection holds a file descriptor,
//! and a process out of descriptors cannot open a ledger file, a Kafka socket or the next
//! log segment, so the cap keeps a margin below the open-file limit for them.

use std::io;
use std::time::Duration;

use crate::config::ApiConfig;

/// The resolved limits of one server.
#[derive(Debug, Clone)]
pub(super) struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub fn new(api: &ApiConfig) -> io::Result<Limits> {
        let open_files = open_file_limit();
        let max_connections = match (api.max_connections, open_files) {
            (None, soft) => default_max_connections(soft),
            (Some(n), Some(soft)) if n.get() as u64 >= soft => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "api.max_connections = {n} is not below this process's open-file limit \
                         ({soft}): raise the limit (ulimit -n, systemd LimitNOFILE=) or lower \
                         max_connections, so that connections cannot starve the ledger and Kafka \
                         of file descriptors"
                    ),
                ));
            }
            (Some(n), soft) => {
                if soft.is_some_and(|soft| (n.get() as u64) > soft.saturating_sub(reserve(soft))) {
                    tracing::warn!(
                        max_connections = n.get(),
                        open_file_limit = soft,
                        "api.max_connections leaves little room below the open-file limit"
                    );
                }
                n.get()
            }
        };
        Ok(Limits {
            header_timeout: api.header_timeout(),
            idle_timeout: api.idle_timeout(),
            body_timeout: api.body_timeout(),
            max_connections,
        })
    }
}

/// The process's soft limit on open files, when it has one.
fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Descriptors kept for everything but HTTP connections: the ledger's files, Kafka's
/// sockets, the relay's files, connections being turned away with a 503.
fn reserve(soft: u64) -> u64 {
    (soft / 10).clamp(128, 1024)
}

/// `api.max_connections` when the config leaves it out: the open-file limit minus a reserve
/// of a tenth of it (at least 128, at most 1024), e.g. 18,976 under a limit of 20,000. A
/// million at most, and with no limit.
fn default_max_connections(open_file_limit: Option<u64>) -> usize {
    let Some(soft) = open_file_limit else {
        return 1_000_000;
    };
    let n = soft.saturating_sub(reserve(soft)).max(soft / 2).max(1);
    usize::try_from(n.min(1_000_000)).unwrap_or(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_keeps_a_margin_below_the_open_file_limit() {
        assert_eq!(default_max_connections(Some(20_000)), 18_976);
        assert_eq!(default_max_connections(Some(1024)), 896);
        assert_eq!(default_max_connections(Some(65_536)), 64_512);
        assert_eq!(default_max_connections(Some(1 << 30)), 1_000_000);
        // Under a tiny limit, half of it rather than nothing.
        assert_eq!(default_max_connections(Some(200)), 100);
        assert_eq!(default_max_connections(Some(1)), 1);
        assert_eq!(default_max_connections(None), 1_000_000);
    }

    #[test]
    fn a_cap_at_or_over_the_open_file_limit_is_refused_at_start() {
        let soft = open_file_limit().expect("Linux always limits open files");
        let api: ApiConfig = toml::from_str(&format!("max_connections = {soft}")).unwrap();
        let err = Limits::new(&api).unwrap_err();
        assert!(err.to_string().contains("open-file limit"), "{err}");
        let api: ApiConfig = toml::from_str("max_connections = 1").unwrap();
        assert_eq!(Limits::new(&api).unwrap().max_connections, 1);
    }
}
