//! `api.rate_limit_per_token`: each token gets its own allowance (GCRA, governor), so one
//! tenant's runaway loop slows that tenant alone. A token may spend its whole allowance at
//! once, then gets it back at an even pace. Only authenticated tokens are counted, so the
//! table holds at most the configured tokens, keyed by their SHA-256 like the config.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

use super::problem::Problem;

pub struct TokenLimiter {
    limiter: DefaultKeyedRateLimiter<[u8; 32]>,
    /// The rate as configured (`100/s`), for the 429's detail.
    written: String,
}

impl TokenLimiter {
    /// `requests` per `period` for each token.
    pub fn new(requests: NonZeroU32, period: Duration, written: String) -> TokenLimiter {
        TokenLimiter {
            limiter: RateLimiter::keyed(quota(requests, period)),
            written,
        }
    }

    /// `Ok` when `token` may make one more request now, else a 429 saying when it may.
    pub fn check(&self, token: &str) -> Result<(), Problem> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            // Whole seconds, rounded up: a client that waits what it is told gets through.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Problem::too_many_requests(&self.written, secs.max(1))
        })
    }
}

/// `webhooks.rate_limit_per_source`: each client address gets its own allowance on one
/// webhook endpoint. Webhooks carry no token to count by, and a signature is only checked
/// once the body is read, so the address is what a flood can be told apart by. An IPv6
/// client is counted by its /64, which one host usually holds whole. The table forgets
/// addresses whose allowance is full again, so many addresses cannot grow it without end.
pub struct SourceLimiter {
    limiter: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    written: String,
    checks: std::sync::atomic::AtomicU64,
}

impl SourceLimiter {
    pub fn new(rate: crate::config::Rate) -> SourceLimiter {
        SourceLimiter {
            limiter: RateLimiter::keyed(quota(rate.requests, rate.per.duration())),
            written: rate.to_string(),
            checks: Default::default(),
        }
    }

    /// `Ok` when `source` may make one more request now, else a 429 saying when it may.
    pub fn check(&self, source: Option<std::net::IpAddr>) -> Result<(), Problem> {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let key = match source {
            Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
            Some(IpAddr::V6(v6)) => IpAddr::V4(v6.to_ipv4_mapped().expect("checked")),
            Some(v4) => v4,
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let n = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % 4096 == 4095 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
            Problem::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                format!(
                    "this address is over its {} requests to this webhook \
                     (webhooks.rate_limit_per_source); retry in {secs} s",
                    self.written
                ),
            )
            .with_retry_after(secs)
        })
    }
}

/// `requests` per `period`, all of them at once if the client wants.
fn quota(requests: NonZeroU32, period: Duration) -> Quota {
    let each = (period / requests.get()).max(Duration::from_nanos(1));
    Quota::with_period(each)
        .expect("a period of at least a nanosecond")
        .allow_burst(requests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gets_its_burst_then_a_429_with_the_wait_while_others_go_on() {
        let limiter = TokenLimiter::new(
            NonZeroU32::new(2).unwrap(),
            Duration::from_secs(3600),
            "2/h".into(),
        );
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        let p = limiter.check("a").unwrap_err();
        assert_eq!(p.status, 429);
        // One request back every 30 minutes.
        let wait = p.retry_after().unwrap();
        assert!((1..=1800).contains(&wait), "{wait}");
        assert!(limiter.check("b").is_ok());
    }

    #[test]
    fn a_source_gets_its_burst_and_an_ipv6_host_is_counted_by_its_64() {
        let limiter = SourceLimiter::new("2/h".parse().unwrap());
        let a: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        let same_host: std::net::IpAddr = "2001:db8::2".parse().unwrap();
        let other: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        assert!(limiter.check(Some(a)).is_ok());
        assert!(limiter.check(Some(same_host)).is_ok());
        let p = limiter.check(Some(a)).unwrap_err();
        assert_eq!((p.status, p.retry_after().is_some()), (429, true));
        assert!(
            p.detail.contains("webhooks.rate_limit_per_source"),
            "{}",
            p.detail
        );
        assert!(limiter.check(Some(other)).is_ok());
    }

    #[test]
    fn a_huge_rate_does_not_underflow_the_period() {
        let limiter = TokenLimiter::new(NonZeroU32::MAX, Duration::from_secs(1), "lots".into());
        assert!(limiter.check("a").is_ok());
    }
}
