//! The times users and other platforms write, read one way everywhere.

use chrono::{DateTime, Utc};

/// The times users and other platforms write (RFC 3339, `YYYY-MM-DD HH:MM[:SS]`, a bare date
/// meaning its midnight), read as UTC when they carry no offset: one reading for `--since`,
/// `?since=` and imported rows.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_from_other_platforms_parse_as_utc() {
        let t = |s| parse_time(s).map(|t| t.to_rfc3339());
        let noon = Some("2024-03-01T12:00:00+00:00".to_string());
        assert_eq!(t("2024-03-01T12:00:00Z"), noon);
        assert_eq!(t("2024-03-01T13:00:00+01:00"), noon);
        assert_eq!(t("2024-03-01 12:00:00"), noon);
        assert_eq!(t("2024-03-01 12:00"), noon);
        assert_eq!(
            t("2024-03-01"),
            Some("2024-03-01T00:00:00+00:00".to_string())
        );
        assert_eq!(t("01/03/2024"), None);
    }
}
