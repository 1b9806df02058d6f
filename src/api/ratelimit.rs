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
    fn a_huge_rate_does_not_underflow_the_period() {
        let limiter = TokenLimiter::new(NonZeroU32::MAX, Duration::from_secs(1), "lots".into());
        assert!(limiter.check("a").is_ok());
    }
}
