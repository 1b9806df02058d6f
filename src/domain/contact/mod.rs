//! Contact identity: every phone number is reduced to one E.164 form before it touches the
//! ledger, so `+33 6 12 34 56 78`, `0033612345678`, `33612345678` and (for a French tenant)
//! `06 12 34 56 78` are one person. A campaign check that missed one spelling would message
//! someone who said STOP, which is exactly the failure this product exists to prevent.

mod compiled;
mod memo;

use std::fmt;

use phonenumber::{country, Mode};
use serde::{Deserialize, Serialize};

/// A contact identifier: a phone number in E.164 form (`+` then digits), or a WhatsApp
/// business-scoped user ID as written. Constructed only through [`normalize`], so holding one
/// is proof that it was validated.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct Contact(String);

impl Contact {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// All but the last two digits hidden: the only form of a number that may reach a log.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }

    /// Whether this is a WhatsApp business-scoped user ID rather than a number.
    pub fn is_user_id(&self) -> bool {
        !self.0.starts_with('+')
    }

    /// Whether this is a portfolio's parent BSUID (`US.ENT.1181…`: two groups after the
    /// country code), shared by the businesses of one portfolio.
    pub fn is_parent_user_id(&self) -> bool {
        self.is_user_id() && self.0.matches('.').count() >= 2
    }

    /// Rebuilds a contact read back from our own storage, where it was stored already normalized.
    pub fn from_stored(e164: String) -> Self {
        Contact(e164)
    }
}

impl fmt::Display for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an input is not a usable phone number; shown to users next to the input they gave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("empty phone number")]
    Empty,
    #[error("phone number too long")]
    TooLong,
    #[error("not a phone number")]
    NotANumber,
    #[error(
        "not a valid phone number for any region (a national number needs the tenant's region)"
    )]
    Invalid,
    #[error("unknown region code {0:?} (expected an ISO 3166 code such as FR or US)")]
    UnknownRegion(String),
}

/// Parses an ISO 3166 region code as used in the config (`region = "FR"`).
pub fn parse_region(code: &str) -> Result<country::Id, ContactError> {
    code.trim()
        .to_ascii_uppercase()
        .parse::<country::Id>()
        .map_err(|_| ContactError::UnknownRegion(code.to_string()))
}

/// Normalizes any common spelling of a phone number to E.164.
///
/// Order matters: an explicit `+` or `00` prefix is international; otherwise the tenant's region
/// is tried first (a national number such as `0612345678`), and only then the digits as an
/// international number without `+` (what WhatsApp's `from` and many CRMs export).
pub fn normalize(input: &str, region: country::Id) -> Result<Contact, ContactError> {
    memo::normalized(input, region, normalize_uncached)
}

/// Loads libphonenumber's metadata and compiles the rules of `regions` (the tenants'), on a
/// thread of its own: otherwise the first message or check pays for it, about 0.1 s.
pub fn warm_up(regions: Vec<country::Id>) {
    let started = std::thread::Builder::new()
        .name("phone-rules".into())
        .spawn(move || compiled::warm_up(&regions));
    if let Err(e) = started {
        tracing::warn!(error = %e, "phone number rules not loaded ahead; the first number loads them");
    }
}

/// [`normalize`] without remembering the answer: for inputs that rarely repeat, such as an
/// audience list (whose repeats the check answers once itself), where remembering a million
/// numbers costs more time and memory than it saves (BENCHMARKS.md, "HTTP check").
pub fn normalize_once(input: &str, region: country::Id) -> Result<Contact, ContactError> {
    normalize_uncached(input, region)
}

fn normalize_uncached(input: &str, region: country::Id) -> Result<Contact, ContactError> {
    normalize_with(input, region, Rules::Compiled)
}

/// Who runs libphonenumber's rules: [`compiled`] in the product, the crate itself as the
/// reference the tests compare it with (and where `compiled` does not answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rules {
    Compiled,
    #[cfg(test)]
    Crate,
}

fn normalize_with(input: &str, region: country::Id, rules: Rules) -> Result<Contact, ContactError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(ContactError::Empty);
    }
    if is_user_id(trimmed) {
        return Ok(Contact(trimmed.to_string()));
    }
    if trimmed.len() > 64 {
        return Err(ContactError::TooLong);
    }
    // One pass over the bytes, which an audience check makes for every contact of a list: the
    // separators are ASCII but for the no-break space (C2 A0 in UTF-8).
    let mut digits = String::with_capacity(trimmed.len());
    let mut bytes = trimmed.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'0'..=b'9' => digits.push(char::from(b)),
            b' ' | b'+' | b'-' | b'.' | b'(' | b')' | b'/' => {}
            0xC2 if bytes.next() == Some(0xA0) => {}
            _ => return Err(ContactError::NotANumber),
        }
    }
    if digits.len() < 4 || digits.len() > 17 {
        return Err(ContactError::NotANumber);
    }
    if let Some(rest) = trimmed.strip_prefix('+') {
        if rest.contains('+') {
            return Err(ContactError::NotANumber);
        }
        return international(&digits, rules);
    }
    if trimmed.contains('+') {
        return Err(ContactError::NotANumber);
    }
    if let Some(intl) = digits.strip_prefix("00") {
        return international(intl, rules);
    }
    if let Some(contact) = national(&digits, region, rules) {
        return Ok(contact);
    }
    international(&digits, rules)
}

/// The digits as a national number of the tenant's region, when that reading is valid.
fn national(digits: &str, region: country::Id, rules: Rules) -> Option<Contact> {
    if rules == Rules::Compiled {
        match compiled::parse_national(digits, region.as_ref()) {
            Some(Some(number)) => {
                return compiled::is_valid(&number).then(|| Contact(number.e164()))
            }
            Some(None) => return None,
            None => {}
        }
    }
    parse_valid(Some(region), digits)
}

/// A number written internationally is accepted when it is possible: a known country code and
/// a length that country's numbers have. The stricter validity rule (the number falls in an
/// allocated range) follows libphonenumber's metadata, which lags real allocations, and a
/// sender WhatsApp or an SMS provider delivered does exist: rejecting it would lose its STOP.
/// A national spelling still needs the strict rule, since it is a guess about the region.
fn international(digits: &str, rules: Rules) -> Result<Contact, ContactError> {
    if rules == Rules::Compiled {
        if let Some(parsed) = compiled::parse_international(digits) {
            let number = parsed.ok_or(ContactError::Invalid)?;
            // The length test first: it accepts nearly every real sender without running the
            // validity patterns, which are a regex search each.
            if is_possible(number.code, number.national.len()) || compiled::is_valid(&number) {
                return Ok(Contact(number.e164()));
            }
            return Err(ContactError::Invalid);
        }
    }
    let text = format!("+{digits}");
    if let Some(contact) = parse_valid(None, &text) {
        return Ok(contact);
    }
    let number = phonenumber::parse(None, &text).map_err(|_| ContactError::Invalid)?;
    if !is_possible(number.code().value(), number.national().to_string().len()) {
        return Err(ContactError::Invalid);
    }
    Ok(Contact(number.format().mode(Mode::E164).to_string()))
}

/// Whether the national number's length is one that the numbers people write from (fixed,
/// mobile, VoIP, personal, UAN, pager) of its country code have. The general descriptor is not
/// used: its possible lengths are empty in the metadata this crate ships.
fn is_possible(code: u16, national_len: usize) -> bool {
    let length = national_len as u16;
    let Some(regions) = phonenumber::metadata::DATABASE.by_code(&code) else {
        return false;
    };
    regions.iter().any(|meta| {
        let d = meta.descriptors();
        [
            d.fixed_line(),
            d.mobile(),
            d.voip(),
            d.personal_number(),
            d.uan(),
            d.pager(),
        ]
        .into_iter()
        .flatten()
        .any(|desc| desc.possible_length().contains(&length))
    })
}

fn parse_valid(region: Option<country::Id>, text: &str) -> Option<Contact> {
    let number = phonenumber::parse(region, text).ok()?;
    if !phonenumber::is_valid(&number) {
        return None;
    }
    Some(Contact(number.format().mode(Mode::E164).to_string()))
}

/// Whether `input` is a WhatsApp business-scoped user ID (BSUID): an ISO country code, then one
/// or more dot-separated groups of 1 to 128 letters and digits (`US.13491208655302741918`; a
/// parent ID has two groups: `US.ENT.11815799212886844830`). Users who adopted a username
/// reach a business by this ID alone, so it is a contact like a number, compared exactly as
/// written.
pub fn is_user_id(input: &str) -> bool {
    let mut parts = input.split('.');
    let country = parts.next().unwrap_or_default();
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return false;
    }
    let mut groups = 0;
    for group in parts {
        if group.is_empty()
            || group.len() > 128
            || !group.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return false;
        }
        groups += 1;
    }
    groups > 0
}

/// Masks any string that may hold a phone number for logs: keeps the last two characters.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let keep = chars.len().min(2);
    let hidden = chars.len() - keep;
    let mut out = String::with_capacity(chars.len());
    if chars.first() == Some(&'+') {
        out.push('+');
    }
    let start = usize::from(chars.first() == Some(&'+'));
    for _ in start..hidden {
        out.push('*');
    }
    out.extend(&chars[hidden.max(start)..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fr(input: &str) -> Result<String, ContactError> {
        normalize(input, country::Id::FR).map(|c| c.0)
    }

    #[test]
    fn every_spelling_of_a_french_mobile_is_one_contact() {
        for input in [
            "+33 6 12 34 56 78",
            "+33612345678",
            "0033612345678",
            "33612345678",
            "06 12 34 56 78",
            "06.12.34.56.78",
            "+33 (0)6 12 34 56 78",
        ] {
            assert_eq!(fr(input).as_deref(), Ok("+33612345678"), "input {input:?}");
        }
    }

    #[test]
    fn a_no_break_space_separates_digits_and_other_characters_are_no_number() {
        assert_eq!(
            fr("06\u{a0}12\u{a0}34\u{a0}56\u{a0}78").as_deref(),
            Ok("+33612345678")
        );
        for input in [
            "06\u{a9}12345678",
            "06 12 34 56 7８",
            "06\u{c2}12345678",
            "06x12345678",
        ] {
            assert_eq!(fr(input), Err(ContactError::NotANumber), "input {input:?}");
        }
    }

    #[test]
    fn national_number_uses_the_tenant_region() {
        let us = normalize("(415) 555-2671", country::Id::US).unwrap();
        assert_eq!(us.as_str(), "+14155552671");
    }

    #[test]
    fn whatsapp_from_digits_without_plus_are_international() {
        assert_eq!(fr("14155552671").as_deref(), Ok("+14155552671"));
        assert_eq!(fr("447911123456").as_deref(), Ok("+447911123456"));
    }

    /// Regression: `972987654321`, a sender throughout a well-known WhatsApp SDK's fixtures,
    /// lies outside the ranges libphonenumber knows, and every message from it, STOP
    /// included, was dead-lettered as "not a valid phone number".
    #[test]
    fn a_real_sender_outside_libphonenumbers_ranges_is_accepted_when_possible() {
        for input in [
            "972987654321",
            "+972987654321",
            "00972987654321",
            "+972 98 765 4321",
        ] {
            assert_eq!(fr(input).as_deref(), Ok("+972987654321"), "input {input:?}");
        }
        // Possible means a known country code and a length its numbers have.
        assert_eq!(fr("+97298765"), Err(ContactError::Invalid));
        assert_eq!(fr("+3361234567890123"), Err(ContactError::Invalid));
    }

    #[test]
    fn a_whatsapp_user_id_is_a_contact_as_written() {
        for id in [
            "US.13491208655302741918",
            "US.ENT.11815799212886844830",
            "BR.a1",
        ] {
            assert_eq!(fr(id).as_deref(), Ok(id));
            assert_eq!(fr(&format!("  {id} ")).as_deref(), Ok(id));
        }
        for not_id in [
            "us.1349", "USA.1349", "US.", "US..1", "US.13-49", "US", "U1.23",
        ] {
            assert!(!is_user_id(not_id), "{not_id}");
        }
        assert!(is_user_id(&format!("US.{}", "9".repeat(128))));
        assert!(!is_user_id(&format!("US.{}", "9".repeat(129))));
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        assert_eq!(fr(""), Err(ContactError::Empty));
        assert_eq!(fr("hello"), Err(ContactError::NotANumber));
        assert_eq!(fr("12"), Err(ContactError::NotANumber));
        assert_eq!(fr("+33 6 12 +34"), Err(ContactError::NotANumber));
        assert_eq!(fr("+999 1234 5678"), Err(ContactError::Invalid));
    }

    #[test]
    fn masking_keeps_only_the_last_two_digits() {
        assert_eq!(mask("+33612345678"), "+*********78");
        assert_eq!(mask("7"), "7");
        assert_eq!(mask(""), "");
    }

    #[test]
    fn region_codes_parse_case_insensitively() {
        assert_eq!(parse_region("fr"), Ok(country::Id::FR));
        assert!(parse_region("XX1").is_err());
    }
}
