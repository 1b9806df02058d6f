//! Campaign analytics: which campaign made people leave. Pure, like the rest of the domain: the
//! ledger hands over what was sent, what was delivered, the attributed opt-outs and the help /
//! possible opt-out signals, and [`compute`] turns them into per-campaign numbers and anomaly
//! flags. Everything here is derived from the log and the sent records, so it can always be
//! recomputed and is never part of the proof of consent.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::contact::Contact;
use super::inbound::{DeliveryState, SentCategory};
use super::tenant::TenantId;

/// A message a campaign sent, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRef {
    pub message_id: String,
    pub contact: Contact,
    pub campaign_id: String,
    pub category: SentCategory,
    pub sent_at: DateTime<Utc>,
}

/// What Meta told us about one business message, merged over its statuses. Kept apart from
/// the sent record and keyed by message id, because Meta's statuses and the campaign's own
/// sent record arrive on different topics in no guaranteed order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub category: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
}

impl DeliveryRecord {
    /// Folds one status in; a redelivered or out-of-order status keeps the earliest time.
    pub fn merge(&mut self, state: DeliveryState, at: DateTime<Utc>, category: &str) {
        let slot = match state {
            DeliveryState::Sent => &mut self.sent_at,
            DeliveryState::Delivered => &mut self.delivered_at,
            DeliveryState::Read => &mut self.read_at,
            DeliveryState::Failed => &mut self.failed_at,
        };
        *slot = Some(slot.map_or(at, |t| t.min(at)));
        if self.category.is_none() {
            self.category = Some(category.to_string());
        }
    }

    /// A read message was delivered even when Meta's `delivered` status was lost.
    pub fn delivered(&self) -> bool {
        self.delivered_at.is_some() || self.read_at.is_some()
    }
}

/// A message that did not change consent but matters to a campaign's reception.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Help,
    PossibleOptOut,
}

impl SignalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Help => "help",
            SignalKind::PossibleOptOut => "possible_opt_out",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub campaign_id: String,
    pub kind: SignalKind,
    pub occurred_at: DateTime<Utc>,
}

/// An `OptedOut` event attributed to a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOut {
    pub campaign_id: String,
    pub contact: Contact,
    pub occurred_at: DateTime<Utc>,
}

/// Everything [`compute`] needs, read by the ledger.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Each sent message with whether it is known to be delivered (`None`: no status seen).
    pub sent: Vec<(SentRef, Option<bool>)>,
    pub opt_outs: Vec<OptOut>,
    pub signals: Vec<Signal>,
}

/// When a campaign's opt-out rate is abnormal. All three conditions must hold: the multiple
/// catches a campaign that is worse than the tenant's usual, the floor keeps a tenant whose
/// campaigns almost never lose anyone from being paged over a handful of STOPs, and the
/// minimum sends keeps a small test send with two STOPs from looking like a disaster.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AnomalyRules {
    /// Flag above this multiple of the tenant's median campaign opt-out rate.
    pub rate_multiple: f64,
    /// ... and above this absolute opt-out rate, in percent.
    pub min_rate_percent: f64,
    /// ... and only with at least this many sends.
    pub min_sent: u64,
}

impl Default for AnomalyRules {
    /// 3× the median is far outside the spread of ordinary campaigns of one sender; 1% of
    /// recipients leaving is where a sender starts to risk WhatsApp quality ratings; 200 sends
    /// make the floor mean at least 3 opt-outs, so one or two unlucky STOPs cannot flag.
    fn default() -> Self {
        AnomalyRules {
            rate_multiple: 3.0,
            min_rate_percent: 1.0,
            min_sent: 200,
        }
    }
}

/// Sends and opt-outs of one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DayStats {
    pub date: NaiveDate,
    pub sent: u64,
    pub opt_outs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Anomaly {
    pub flagged: bool,
    /// Why it is flagged, or why not, in words a marketer reads.
    pub reasons: Vec<String>,
}

/// One campaign's reception.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CampaignStats {
    pub campaign_id: String,
    /// Sent records of this campaign.
    pub sent: u64,
    /// Sends with a delivered or read status; absent when no status of this campaign was seen.
    pub delivered: Option<u64>,
    /// Distinct contacts whose opt-out was attributed to this campaign.
    pub opt_outs: u64,
    /// `opt_outs / sent` (a fraction, 0.012 = 1.2%); absent without sends.
    pub opt_out_rate: Option<f64>,
    pub help_requests: u64,
    /// Messages with an opt-out keyword inside a sentence: not acted on, worth a look.
    pub possible_opt_outs: u64,
    pub first_sent: Option<DateTime<Utc>>,
    pub last_sent: Option<DateTime<Utc>>,
    /// Per UTC day: sends, and opt-outs on the day they happened.
    pub daily: Vec<DayStats>,
    pub anomaly: Anomaly,
}

/// Every campaign of one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TenantStats {
    pub tenant: TenantId,
    /// Only sends, opt-outs and signals at or after this time were counted.
    pub since: Option<DateTime<Utc>>,
    /// Median opt-out rate of the campaigns with at least `rules.min_sent` sends (of every
    /// campaign with sends when none has that many).
    pub median_opt_out_rate: Option<f64>,
    pub rules: AnomalyRules,
    /// By campaign id.
    pub campaigns: Vec<CampaignStats>,
}

impl TenantStats {
    pub fn campaign(&self, id: &str) -> Option<&CampaignStats> {
        self.campaigns.iter().find(|c| c.campaign_id == id)
    }
}

#[derive(Default)]
struct Acc {
    sent: u64,
    delivered: u64,
    status_known: bool,
    opted_out: BTreeMap<Contact, DateTime<Utc>>,
    help: u64,
    possible: u64,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    days: BTreeMap<NaiveDate, (u64, u64)>,
}

/// Per-campaign numbers and anomaly flags. Opt-outs count contacts, not messages: a customer
/// who sends STOP twice left once.
pub fn compute(
    tenant: &TenantId,
    since: Option<DateTime<Utc>>,
    inputs: &Inputs,
    rules: &AnomalyRules,
) -> TenantStats {
    let counted = |t: &DateTime<Utc>| since.map_or(true, |s| *t >= s);
    let mut acc: BTreeMap<&str, Acc> = BTreeMap::new();
    for (s, delivered) in inputs.sent.iter().filter(|(s, _)| counted(&s.sent_at)) {
        let a = acc.entry(&s.campaign_id).or_default();
        a.sent += 1;
        if let Some(d) = delivered {
            a.status_known = true;
            a.delivered += u64::from(*d);
        }
        a.first = Some(a.first.map_or(s.sent_at, |f| f.min(s.sent_at)));
        a.last = Some(a.last.map_or(s.sent_at, |l| l.max(s.sent_at)));
        a.days.entry(s.sent_at.date_naive()).or_default().0 += 1;
    }
    for o in inputs.opt_outs.iter().filter(|o| counted(&o.occurred_at)) {
        let a = acc.entry(&o.campaign_id).or_default();
        let first = a
            .opted_out
            .entry(o.contact.clone())
            .or_insert(o.occurred_at);
        *first = (*first).min(o.occurred_at);
    }
    for s in inputs.signals.iter().filter(|s| counted(&s.occurred_at)) {
        let a = acc.entry(&s.campaign_id).or_default();
        match s.kind {
            SignalKind::Help => a.help += 1,
            SignalKind::PossibleOptOut => a.possible += 1,
        }
    }
    let mut campaigns: Vec<CampaignStats> = acc
        .into_iter()
        .map(|(id, mut a)| {
            for at in a.opted_out.values() {
                a.days.entry(at.date_naive()).or_default().1 += 1;
            }
            let opt_outs = a.opted_out.len() as u64;
            CampaignStats {
                campaign_id: id.to_string(),
                sent: a.sent,
                delivered: a.status_known.then_some(a.delivered),
                opt_outs,
                opt_out_rate: (a.sent > 0).then(|| opt_outs as f64 / a.sent as f64),
                help_requests: a.help,
                possible_opt_outs: a.possible,
                first_sent: a.first,
                last_sent: a.last,
                daily: a
                    .days
                    .into_iter()
                    .map(|(date, (sent, opt_outs))| DayStats {
                        date,
                        sent,
                        opt_outs,
                    })
                    .collect(),
                anomaly: Anomaly {
                    flagged: false,
                    reasons: vec![],
                },
            }
        })
        .collect();
    let median = median_rate(&campaigns, rules);
    for c in &mut campaigns {
        c.anomaly = judge(c, median, rules);
    }
    TenantStats {
        tenant: tenant.clone(),
        since,
        median_opt_out_rate: median,
        rules: *rules,
        campaigns,
    }
}

/// The baseline: small campaigns are left out when there are large ones, since their rates
/// are mostly noise and would drag the median around.
fn median_rate(campaigns: &[CampaignStats], rules: &AnomalyRules) -> Option<f64> {
    let rates = |min: u64| -> Vec<f64> {
        campaigns
            .iter()
            .filter(|c| c.sent >= min.max(1))
            .filter_map(|c| c.opt_out_rate)
            .collect()
    };
    let mut rates = rates(rules.min_sent);
    if rates.is_empty() {
        rates = campaigns.iter().filter_map(|c| c.opt_out_rate).collect();
    }
    if rates.is_empty() {
        return None;
    }
    rates.sort_by(f64::total_cmp);
    let n = rates.len();
    Some(if n % 2 == 1 {
        rates[n / 2]
    } else {
        (rates[n / 2 - 1] + rates[n / 2]) / 2.0
    })
}

fn pct(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

fn judge(c: &CampaignStats, median: Option<f64>, rules: &AnomalyRules) -> Anomaly {
    let Some(rate) = c.opt_out_rate else {
        return Anomaly {
            flagged: false,
            reasons: vec!["no sends recorded for this campaign, so no opt-out rate".into()],
        };
    };
    let median = median.unwrap_or(0.0);
    let floor = rules.min_rate_percent / 100.0;
    let over_multiple = rate > median * rules.rate_multiple && rate > 0.0;
    let over_floor = rate > floor;
    let enough = c.sent >= rules.min_sent;
    let multiple = if median > 0.0 {
        format!("{:.1}×", rate / median)
    } else {
        "infinitely many times".to_string()
    };
    let vs_median = format!(
        "opt-out rate {} is {multiple} the tenant median {} (threshold {}×)",
        pct(rate),
        pct(median),
        rules.rate_multiple
    );
    let vs_floor = format!(
        "opt-out rate {} is {} the {}% floor",
        pct(rate),
        if over_floor { "over" } else { "not over" },
        rules.min_rate_percent
    );
    let sends = format!(
        "{} sends {} the minimum of {}",
        c.sent,
        if enough { "reach" } else { "are under" },
        rules.min_sent
    );
    let flagged = over_multiple && over_floor && enough;
    let reasons = if flagged {
        vec![vs_median, vs_floor, sends]
    } else {
        let mut why = Vec::new();
        if !over_multiple {
            why.push(if median > 0.0 {
                format!(
                    "opt-out rate {} is {} the tenant median {}, within the {}× threshold",
                    pct(rate),
                    multiple,
                    pct(median),
                    rules.rate_multiple
                )
            } else {
                format!("opt-out rate {} is not over the tenant median", pct(rate))
            });
        }
        if !over_floor {
            why.push(vs_floor);
        }
        if !enough {
            why.push(sends);
        }
        why
    };
    Anomaly { flagged, reasons }
}

/// The distinct days of a set of campaigns, for a chart's axis.
pub fn all_days(stats: &TenantStats) -> Vec<(NaiveDate, u64, u64)> {
    let mut days: BTreeMap<NaiveDate, (u64, u64)> = BTreeMap::new();
    for c in &stats.campaigns {
        for d in &c.daily {
            let e = days.entry(d.date).or_default();
            e.0 += d.sent;
            e.1 += d.opt_outs;
        }
    }
    days.into_iter().map(|(d, (s, o))| (d, s, o)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::tests::tenant;
    use chrono::{Duration, TimeZone};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
    }

    fn contact(i: u64) -> Contact {
        Contact::from_stored(format!("+336{i:08}"))
    }

    /// A campaign of `sent` sends on day `day`, `opt_outs` of whose recipients leave an hour later.
    fn campaign(inputs: &mut Inputs, id: &str, day: i64, sent: u64, opt_outs: u64) {
        let at = t0() + Duration::days(day);
        for i in 0..sent {
            inputs.sent.push((
                SentRef {
                    message_id: format!("{id}-{i}"),
                    contact: contact(i),
                    campaign_id: id.into(),
                    category: SentCategory::Marketing,
                    sent_at: at + Duration::seconds(i as i64),
                },
                Some(i % 10 != 0),
            ));
        }
        for i in 0..opt_outs {
            inputs.opt_outs.push(OptOut {
                campaign_id: id.into(),
                contact: contact(i),
                occurred_at: at + Duration::hours(1),
            });
        }
    }

    fn history() -> Inputs {
        let mut inputs = Inputs::default();
        campaign(&mut inputs, "weekly-1", 0, 1000, 8);
        campaign(&mut inputs, "weekly-2", 7, 1200, 9);
        campaign(&mut inputs, "weekly-3", 14, 900, 6);
        campaign(&mut inputs, "flash-sale", 15, 1000, 45);
        campaign(&mut inputs, "weekly-4", 21, 1100, 10);
        campaign(&mut inputs, "vip-test", 22, 40, 4);
        inputs
    }

    #[test]
    fn the_abnormal_campaign_is_flagged_and_the_others_are_not() {
        let stats = compute(&tenant("acme"), None, &history(), &AnomalyRules::default());
        let flagged: Vec<&str> = stats
            .campaigns
            .iter()
            .filter(|c| c.anomaly.flagged)
            .map(|c| c.campaign_id.as_str())
            .collect();
        assert_eq!(flagged, ["flash-sale"]);
        let flash = stats.campaign("flash-sale").unwrap();
        assert_eq!((flash.sent, flash.opt_outs), (1000, 45));
        assert_eq!(flash.delivered, Some(900));
        assert!((flash.opt_out_rate.unwrap() - 0.045).abs() < 1e-12);
        // Median of the five campaigns with ≥ 200 sends: 0.8%, 0.75%, 0.667%, 4.5%, 0.909%.
        assert!((stats.median_opt_out_rate.unwrap() - 0.008).abs() < 1e-12);
        assert_eq!(
            flash.anomaly.reasons[0],
            "opt-out rate 4.5% is 5.6× the tenant median 0.8% (threshold 3×)"
        );
        assert_eq!(flash.daily.len(), 1);
        assert_eq!(flash.daily[0].sent, 1000);
        assert_eq!(flash.daily[0].opt_outs, 45);
    }

    #[test]
    fn a_small_campaign_with_a_high_rate_is_not_flagged() {
        let stats = compute(&tenant("acme"), None, &history(), &AnomalyRules::default());
        let vip = stats.campaign("vip-test").unwrap();
        assert!((vip.opt_out_rate.unwrap() - 0.1).abs() < 1e-12);
        assert!(!vip.anomaly.flagged);
        assert!(
            vip.anomaly
                .reasons
                .contains(&"40 sends are under the minimum of 200".to_string()),
            "{:?}",
            vip.anomaly.reasons
        );
    }

    #[test]
    fn a_high_multiple_of_a_tiny_median_stays_under_the_floor() {
        let mut inputs = Inputs::default();
        campaign(&mut inputs, "a", 0, 1000, 1);
        campaign(&mut inputs, "b", 1, 1000, 1);
        campaign(&mut inputs, "c", 2, 1000, 8);
        let stats = compute(&tenant("acme"), None, &inputs, &AnomalyRules::default());
        let c = stats.campaign("c").unwrap();
        assert!(!c.anomaly.flagged, "{:?}", c.anomaly);
        assert!(c
            .anomaly
            .reasons
            .iter()
            .any(|r| r.contains("not over the 1% floor")));
        // A stricter tenant that sets its floor lower does get the flag.
        let strict = AnomalyRules {
            min_rate_percent: 0.5,
            ..AnomalyRules::default()
        };
        assert!(
            compute(&tenant("acme"), None, &inputs, &strict)
                .campaign("c")
                .unwrap()
                .anomaly
                .flagged
        );
    }

    #[test]
    fn repeated_stops_count_once_and_since_filters() {
        let mut inputs = Inputs::default();
        campaign(&mut inputs, "a", 0, 10, 2);
        inputs.opt_outs.push(inputs.opt_outs[0].clone());
        inputs.signals.push(Signal {
            campaign_id: "a".into(),
            kind: SignalKind::Help,
            occurred_at: t0(),
        });
        let stats = compute(&tenant("acme"), None, &inputs, &AnomalyRules::default());
        let a = stats.campaign("a").unwrap();
        assert_eq!((a.opt_outs, a.help_requests), (2, 1));
        assert_eq!(a.first_sent, Some(t0()));
        let later = compute(
            &tenant("acme"),
            Some(t0() + Duration::days(1)),
            &inputs,
            &AnomalyRules::default(),
        );
        assert!(later.campaigns.is_empty());
    }

    #[test]
    fn opt_outs_without_known_sends_have_no_rate() {
        let inputs = Inputs {
            opt_outs: vec![OptOut {
                campaign_id: "sms-blast".into(),
                contact: contact(1),
                occurred_at: t0(),
            }],
            ..Inputs::default()
        };
        let stats = compute(&tenant("acme"), None, &inputs, &AnomalyRules::default());
        let c = stats.campaign("sms-blast").unwrap();
        assert_eq!((c.sent, c.opt_outs, c.opt_out_rate), (0, 1, None));
        assert_eq!(c.delivered, None);
        assert!(!c.anomaly.flagged);
        assert_eq!(stats.median_opt_out_rate, None);
    }

    #[test]
    fn delivery_merge_keeps_the_earliest_time_and_read_implies_delivered() {
        let mut d = DeliveryRecord::default();
        d.merge(DeliveryState::Read, t0() + Duration::hours(1), "marketing");
        assert!(d.delivered());
        d.merge(DeliveryState::Read, t0(), "marketing");
        assert_eq!(d.read_at, Some(t0()));
    }
}
