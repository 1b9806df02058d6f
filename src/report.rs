//! The campaign statistics of [`crate::query::stats`] as a self-contained HTML page (inline
//! CSS and SVG, no script, no external asset), because a marketer spots the one red bar faster
//! than the one odd row. Written by `consent-ledger stats --html` and served by
//! `/v1/tenants/{t}/campaigns.html`; this module only renders, it reads nothing.

use std::fmt::Write;

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::analytics::{self, TenantStats};

/// Bar colours; the legend and the browser test use the same values.
pub const NORMAL_COLOUR: &str = "#3b6ea5";
pub const ANOMALY_COLOUR: &str = "#d62728";
pub const SENT_COLOUR: &str = "#9aa5b1";
pub const OPT_OUT_LINE_COLOUR: &str = "#e07b00";

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn pct(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_string(), |r| format!("{:.2}%", r * 100.0))
}

/// An axis maximum for counts with four gridlines that all fall on whole, round numbers.
fn count_max(v: u64) -> f64 {
    let quarter = (v as f64 / 4.0).max(1.0);
    let magnitude = 10f64.powf(quarter.log10().floor());
    for step in [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        let tick = step * magnitude;
        if quarter <= tick && tick.fract() == 0.0 {
            return 4.0 * tick;
        }
    }
    40.0 * magnitude
}

/// A round axis maximum at or above `v`, so gridlines fall on readable values.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= step * magnitude {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

const CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#1f2933;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
p.meta{color:#52606d;margin:0 0 16px}
.legend{display:flex;gap:18px;margin:6px 0 10px;font-size:13px}
.legend span{display:inline-flex;align-items:center;gap:6px}
.swatch{display:inline-block;width:14px;height:14px;border-radius:2px}
svg text{font-size:11px;fill:#3e4c59}
table{border-collapse:collapse;font-size:13px;margin-top:8px}
th,td{border-bottom:1px solid #e4e7eb;padding:5px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}
tr.anomaly td{background:#fde8e8}
td.reasons{text-align:left;max-width:460px;color:#52606d}
";

/// The report page.
pub fn html(stats: &TenantStats) -> String {
    let mut out = String::new();
    let title = format!("Campaign opt-outs — {}", stats.tenant);
    let since = stats
        .since
        .map(|s| format!(" since {}", s.to_rfc3339()))
        .unwrap_or_default();
    let flagged = stats.campaigns.iter().filter(|c| c.anomaly.flagged).count();
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{CSS}</style></head><body>\n<h1>{}</h1>\n\
         <p class=\"meta\">{} campaigns{since}; tenant median opt-out rate {}; {flagged} flagged \
         (rate over {}× the median and over {}%, with at least {} sends).</p>",
        esc(&title),
        esc(&title),
        stats.campaigns.len(),
        pct(stats.median_opt_out_rate),
        stats.rules.rate_multiple,
        stats.rules.min_rate_percent,
        stats.rules.min_sent,
    );
    rate_chart(&mut out, stats);
    daily_chart(&mut out, stats);
    table(&mut out, stats);
    out.push_str("</body></html>\n");
    out
}

fn legend(out: &mut String, items: &[(&str, &str, &str)]) {
    out.push_str("<div class=\"legend\">");
    for (class, colour, label) in items {
        let _ = write!(
            out,
            "<span class=\"{class}\"><i class=\"swatch\" style=\"background:{colour}\"></i>{}</span>",
            esc(label)
        );
    }
    out.push_str("</div>\n");
}

fn rate_chart(out: &mut String, stats: &TenantStats) {
    out.push_str("<h2>Opt-out rate per campaign</h2>\n");
    legend(
        out,
        &[
            ("legend-normal", NORMAL_COLOUR, "campaign"),
            ("legend-anomaly", ANOMALY_COLOUR, "anomalous campaign"),
            ("legend-median", "#52606d", "tenant median (dashed)"),
        ],
    );
    let with_rate: Vec<_> = stats
        .campaigns
        .iter()
        .filter_map(|c| c.opt_out_rate.map(|r| (c, r)))
        .collect();
    let (left, top, plot_h, bar_w, gap) = (56.0, 12.0, 220.0, 36.0, 18.0);
    let width = left + (with_rate.len().max(1) as f64) * (bar_w + gap) + gap;
    let height = top + plot_h + 70.0;
    let max = nice_max(
        with_rate
            .iter()
            .map(|(_, r)| *r)
            .fold(stats.median_opt_out_rate.unwrap_or(0.0), f64::max),
    );
    let y = |rate: f64| top + plot_h - rate / max * plot_h;
    let _ = writeln!(
        out,
        "<svg id=\"rate-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"Opt-out rate per campaign\">"
    );
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" x2=\"{width}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e4e7eb\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.2}%</text>",
            left - 6.0,
            y(v) + 4.0,
            v * 100.0,
            y = y(v)
        );
    }
    for (i, (c, rate)) in with_rate.iter().enumerate() {
        let x = left + gap + i as f64 * (bar_w + gap);
        let (class, colour) = if c.anomaly.flagged {
            ("bar anomaly", ANOMALY_COLOUR)
        } else {
            ("bar normal", NORMAL_COLOUR)
        };
        let h = (rate / max * plot_h).max(if *rate > 0.0 { 1.0 } else { 0.0 });
        let _ = writeln!(
            out,
            "<rect class=\"{class}\" data-campaign=\"{id}\" data-rate=\"{rate}\" x=\"{x:.1}\" y=\"{:.1}\" \
             width=\"{bar_w}\" height=\"{h:.1}\" fill=\"{colour}\"><title>{id}: {}</title></rect>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" transform=\"rotate(-35 {:.1} {:.1})\">{id}</text>",
            top + plot_h - h,
            pct(Some(*rate)),
            x + bar_w / 2.0,
            top + plot_h + 14.0,
            x + bar_w / 2.0,
            top + plot_h + 14.0,
            id = esc(&c.campaign_id),
        );
    }
    if let Some(m) = stats.median_opt_out_rate {
        let _ = writeln!(
            out,
            "<line class=\"median\" x1=\"{left}\" x2=\"{width}\" y1=\"{y:.1}\" y2=\"{y:.1}\" \
             stroke=\"#52606d\" stroke-dasharray=\"5 4\"/>",
            y = y(m)
        );
    }
    let _ = writeln!(
        out,
        "<line x1=\"{left}\" x2=\"{left}\" y1=\"{top}\" y2=\"{}\" stroke=\"#7b8794\"/></svg>",
        top + plot_h
    );
}

/// Days without sends or opt-outs are drawn too (up to a year), so the axis is time and a
/// gap between campaigns looks like one.
fn with_quiet_days(days: Vec<(NaiveDate, u64, u64)>) -> Vec<(NaiveDate, u64, u64)> {
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        return days;
    };
    if (last.0 - first.0).num_days() > 366 {
        return days;
    }
    let given: std::collections::BTreeMap<NaiveDate, (u64, u64)> =
        days.iter().map(|(d, s, o)| (*d, (*s, *o))).collect();
    first
        .0
        .iter_days()
        .take_while(|d| *d <= last.0)
        .map(|d| {
            let (s, o) = given.get(&d).copied().unwrap_or_default();
            (d, s, o)
        })
        .collect()
}

fn daily_chart(out: &mut String, stats: &TenantStats) {
    out.push_str("<h2>Per day: sends and opt-outs</h2>\n");
    legend(
        out,
        &[
            ("legend-sent", SENT_COLOUR, "messages sent (left axis)"),
            (
                "legend-optouts",
                OPT_OUT_LINE_COLOUR,
                "opt-outs (right axis)",
            ),
        ],
    );
    let days = with_quiet_days(analytics::all_days(stats));
    // Wide enough for a "MM-DD" label under every day of a month; longer series label weekly.
    let step = if days.len() <= 31 { 44.0 } else { 16.0 };
    let (left, right, top, plot_h) = (56.0, 56.0, 12.0, 180.0);
    let width = left + right + (days.len().max(1) as f64) * step;
    let height = top + plot_h + 60.0;
    let max_sent = count_max(days.iter().map(|d| d.1).max().unwrap_or(0));
    let max_out = count_max(days.iter().map(|d| d.2).max().unwrap_or(0));
    let _ = writeln!(
        out,
        "<svg id=\"daily-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"Sends and opt-outs per day\">"
    );
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let y = top + plot_h - f * plot_h;
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e4e7eb\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <text x=\"{}\" y=\"{:.1}\">{}</text>",
            width - right,
            left - 6.0,
            y + 4.0,
            (max_sent * f).round(),
            width - right + 6.0,
            y + 4.0,
            (max_out * f).round(),
        );
    }
    let mut points = Vec::new();
    for (i, (date, sent, opt_outs)) in days.iter().enumerate() {
        let x = left + i as f64 * step;
        let h = *sent as f64 / max_sent * plot_h;
        let _ = if *sent == 0 {
            Ok(())
        } else {
            writeln!(
            out,
            "<rect class=\"day-bar\" data-date=\"{date}\" data-sent=\"{sent}\" x=\"{:.1}\" y=\"{:.1}\" \
             width=\"{:.1}\" height=\"{h:.1}\" fill=\"{SENT_COLOUR}\"><title>{date}: {sent} sent, {opt_outs} opt-outs</title></rect>",
            x + 3.0,
            top + plot_h - h,
            step - 6.0,
        )
        };
        let cx = x + step / 2.0;
        let cy = top + plot_h - *opt_outs as f64 / max_out * plot_h;
        points.push(format!("{cx:.1},{cy:.1}"));
        let _ = writeln!(
            out,
            "<circle class=\"day-optouts\" data-date=\"{date}\" data-opt-outs=\"{opt_outs}\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3\" fill=\"{OPT_OUT_LINE_COLOUR}\"/>"
        );
        if i % 7 == 0 || days.len() <= 31 {
            let _ = writeln!(
                out,
                "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                top + plot_h + 16.0,
                date.format("%m-%d")
            );
        }
    }
    if !points.is_empty() {
        let _ = writeln!(
            out,
            "<polyline class=\"optout-line\" points=\"{}\" fill=\"none\" stroke=\"{OPT_OUT_LINE_COLOUR}\" stroke-width=\"2\"/>",
            points.join(" ")
        );
    }
    out.push_str("</svg>\n");
}

fn table(out: &mut String, stats: &TenantStats) {
    out.push_str(
        "<h2>Campaigns</h2>\n<table id=\"campaigns\"><thead><tr><th>campaign</th><th>sent</th>\
         <th>delivered</th><th>opt-outs</th><th>opt-out rate</th><th>help</th>\
         <th>possible opt-outs</th><th>first send</th><th>last send</th><th>anomaly</th></tr></thead><tbody>\n",
    );
    let day = |t: Option<DateTime<Utc>>| {
        t.map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M").to_string())
    };
    for c in &stats.campaigns {
        let _ = writeln!(
            out,
            "<tr class=\"{}\" data-campaign=\"{id}\"><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"reasons\">{}</td></tr>",
            if c.anomaly.flagged { "anomaly" } else { "normal" },
            c.sent,
            c.delivered.map_or_else(|| "–".to_string(), |d| d.to_string()),
            c.opt_outs,
            pct(c.opt_out_rate),
            c.help_requests,
            c.possible_opt_outs,
            day(c.first_sent),
            day(c.last_sent),
            if c.anomaly.flagged {
                format!("<strong>flagged</strong>: {}", esc(&c.anomaly.reasons.join("; ")))
            } else {
                esc(&c.anomaly.reasons.join("; "))
            },
            id = esc(&c.campaign_id),
        );
    }
    out.push_str("</tbody></table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(0.045), 0.05);
        assert_eq!(nice_max(0.012), 0.02);
        assert_eq!(nice_max(1000.0), 1000.0);
        assert_eq!(nice_max(1001.0), 2000.0);
    }

    #[test]
    fn count_axes_have_whole_gridlines() {
        assert_eq!(count_max(0), 4.0);
        assert_eq!(count_max(24), 24.0);
        assert_eq!(count_max(25), 32.0);
        assert_eq!(count_max(450), 480.0);
        assert_eq!(count_max(1000), 1000.0);
    }

    #[test]
    fn quiet_days_fill_the_gaps() {
        let d = |day| NaiveDate::from_ymd_opt(2026, 11, day).unwrap();
        let filled = with_quiet_days(vec![(d(2), 5, 1), (d(5), 3, 0)]);
        assert_eq!(
            filled,
            vec![(d(2), 5, 1), (d(3), 0, 0), (d(4), 0, 0), (d(5), 3, 0)]
        );
        assert!(with_quiet_days(vec![]).is_empty());
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(esc("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
    }
}
