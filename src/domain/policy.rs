//! `may_send`: the one question every campaign and automation asks before a message leaves.
//! It is a pure function of the consent view and the tenant's policy so that the CLI, the HTTP
//! API and the tests can never disagree on the answer.

use serde::{Deserialize, Serialize};

use super::consent::{ContactConsent, Status};
use super::event::Purpose;

/// What happens to transactional messages after a marketing opt-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TransactionalAfterOptOut {
    /// Order confirmations and delivery updates still go out (the usual reading of the rules).
    #[default]
    Allow,
    /// The tenant stops every message after any opt-out.
    Block,
}

/// The parts of a tenant's config that decide sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Marketing only to contacts with a recorded opt-in (strict opt-in regimes).
    pub marketing_requires_opt_in: bool,
    pub transactional_after_optout: TransactionalAfterOptOut,
}

/// Why a contact is excluded; stable strings shown in CLI and API output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exclusion {
    OptedOut,
    NoOptIn,
    RevokedAll,
    MarketingOptedOut,
}

impl Exclusion {
    pub fn as_str(self) -> &'static str {
        match self {
            Exclusion::OptedOut => "opted_out",
            Exclusion::NoOptIn => "no_opt_in",
            Exclusion::RevokedAll => "revoked_all",
            Exclusion::MarketingOptedOut => "marketing_opted_out_and_tenant_blocks_transactional",
        }
    }
}

/// `Ok(())` when a message of `purpose` may be sent, else why not.
pub fn may_send(
    consent: &ContactConsent,
    purpose: Purpose,
    policy: &Policy,
) -> Result<(), Exclusion> {
    match purpose {
        Purpose::Marketing => match consent.marketing.status {
            Status::OptedOut => Err(Exclusion::OptedOut),
            Status::Unknown if policy.marketing_requires_opt_in => Err(Exclusion::NoOptIn),
            _ => Ok(()),
        },
        Purpose::Transactional => {
            if consent.transactional.status == Status::OptedOut {
                return Err(Exclusion::RevokedAll);
            }
            if policy.transactional_after_optout == TransactionalAfterOptOut::Block
                && consent.marketing.status == Status::OptedOut
            {
                return Err(Exclusion::MarketingOptedOut);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(marketing: Status, transactional: Status) -> ContactConsent {
        let mut c = ContactConsent::default();
        c.marketing.status = marketing;
        c.transactional.status = transactional;
        c
    }

    const DEFAULT: Policy = Policy {
        marketing_requires_opt_in: false,
        transactional_after_optout: TransactionalAfterOptOut::Allow,
    };

    #[test]
    fn marketing_is_blocked_only_by_an_opt_out_by_default() {
        let m = Purpose::Marketing;
        assert_eq!(
            may_send(&with(Status::Unknown, Status::Unknown), m, &DEFAULT),
            Ok(())
        );
        assert_eq!(
            may_send(&with(Status::OptedIn, Status::Unknown), m, &DEFAULT),
            Ok(())
        );
        assert_eq!(
            may_send(&with(Status::OptedOut, Status::Unknown), m, &DEFAULT),
            Err(Exclusion::OptedOut)
        );
    }

    #[test]
    fn strict_tenants_need_an_opt_in_for_marketing() {
        let strict = Policy {
            marketing_requires_opt_in: true,
            ..DEFAULT
        };
        let m = Purpose::Marketing;
        assert_eq!(
            may_send(&with(Status::Unknown, Status::Unknown), m, &strict),
            Err(Exclusion::NoOptIn)
        );
        assert_eq!(
            may_send(&with(Status::OptedIn, Status::Unknown), m, &strict),
            Ok(())
        );
    }

    #[test]
    fn transactional_survives_a_marketing_stop_unless_blocked_or_revoked_all() {
        let t = Purpose::Transactional;
        let stopped = with(Status::OptedOut, Status::Unknown);
        assert_eq!(may_send(&stopped, t, &DEFAULT), Ok(()));
        let block = Policy {
            transactional_after_optout: TransactionalAfterOptOut::Block,
            ..DEFAULT
        };
        assert_eq!(
            may_send(&stopped, t, &block),
            Err(Exclusion::MarketingOptedOut)
        );
        assert_eq!(
            may_send(&with(Status::OptedOut, Status::OptedOut), t, &DEFAULT),
            Err(Exclusion::RevokedAll)
        );
    }
}
