//! libphonenumber's parse and validity rules for digits, run on regular expressions compiled
//! once per process.
//!
//! The `phonenumber` crate keeps its metadata's regular expressions in one shared cache of 100
//! compiled expressions behind a mutex: every match takes the lock and refreshes an LRU list,
//! and an audience that spans more patterns than fit recompiles them. Parsing and validating a
//! number that way cost about half of an audience check and a third of the stream writer's time
//! on new senders, and kept two threads from normalizing side by side (BENCHMARKS.md).
//!
//! This module follows the crate's algorithm step by step, on the crate's own metadata, for the
//! only input [`super`] hands it: a string of ASCII digits, read either as an international
//! number (after `+` or `00`) or as a national number of the tenant's region. Where a step
//! would need more than that (an international dialling prefix inside a national number, a
//! national number of zeros), it answers `None` and the caller asks the crate. The test below
//! compares the two on every example number of every region, varied, so a difference in any
//! country fails the build rather than splitting a person in two.

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock};

use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use regex::{Regex, RegexBuilder};

/// A number as the crate's parser leaves it: the country calling code and the national
/// significant number, as the digits its E.164 form ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Parsed {
    pub code: u16,
    pub national: String,
}

impl Parsed {
    pub fn e164(&self) -> String {
        use std::fmt::Write;
        // Sized once: an audience check builds one for nearly every contact.
        let mut e164 = String::with_capacity(6 + self.national.len());
        write!(e164, "+{}", self.code).expect("writing to a String cannot fail");
        e164.push_str(&self.national);
        e164
    }
}

/// Parses digits written after `+` or `00`, as `phonenumber::parse(None, "+digits")` does.
/// `Some(None)`: the crate would fail to parse them; `None`: ask the crate.
pub(super) fn parse_international(digits: &str) -> Option<Option<Parsed>> {
    let table = &*TABLE;
    // No country code starts with 0, and the crate wants more than two digits.
    if digits.len() <= MIN_LENGTH_FOR_NSN || digits.starts_with('0') {
        return Some(None);
    }
    let Some((code, national)) = (1..=3).find_map(|len| {
        let code: u16 = digits[..len].parse().ok()?;
        table
            .by_code
            .contains_key(&code)
            .then(|| (code, &digits[len..]))
    }) else {
        return Some(None);
    };
    let meta = table.source_for(code, national.trim_start_matches('0'));
    finish(code, national, meta)
}

/// Parses digits as a national number of `region`, as `phonenumber::parse(Some(region),
/// digits)` does.
pub(super) fn parse_national(digits: &str, region: &str) -> Option<Option<Parsed>> {
    let table = &*TABLE;
    let meta = table.by_id.get(region).map(|&i| table.region(i))?;
    if digits.len() < MIN_LENGTH_FOR_NSN
        || meta.idd.as_ref().is_some_and(|idd| idd.is_match(digits))
    {
        return None;
    }
    let mut national = digits;
    if digits.starts_with(&meta.code_str)
        && (!meta.general.is_match(digits) || !meta.length(digits).is_possible())
    {
        national = &digits[meta.code_str.len()..];
    }
    finish(meta.code, national, Some(meta))
}

/// Loads the table and compiles the rules of `regions` now rather than at their first number;
/// the crate's own metadata is loaded with it, for the numbers the table leaves to the crate.
pub(super) fn warm_up(regions: &[phonenumber::country::Id]) {
    for region in regions {
        if let Some(&index) = TABLE.by_id.get(region.as_ref()) {
            TABLE.region(index);
        }
    }
}

/// Whether the crate's `is_valid` holds for the number: it falls in a range of a type (fixed,
/// mobile, toll-free…) of the region its leading digits select.
pub(super) fn is_valid(number: &Parsed) -> bool {
    let table = &*TABLE;
    table
        .source_for(number.code, &number.national)
        .is_some_and(|meta| meta.has_type(&number.national))
}

/// The national prefix (a trunk `0`, a carrier code) stripped as the crate strips it, then the
/// crate's length limits.
fn finish(code: u16, national: &str, meta: Option<&Region>) -> Option<Option<Parsed>> {
    let mut national = national.to_string();
    if let Some(meta) = meta {
        let mut potential = meta.strip_national_prefix(national.clone());
        if let Some(prefix) = &meta.national_prefix {
            if potential.starts_with(prefix.as_str()) {
                potential.drain(..prefix.len());
            }
        }
        if meta.length(&potential) != Validation::TooShort {
            national = potential;
        }
    }
    if national.len() < MIN_LENGTH_FOR_NSN || national.len() > MAX_LENGTH_FOR_NSN {
        return Some(None);
    }
    let significant = national.trim_start_matches('0');
    if significant.is_empty() {
        return None;
    }
    match significant.parse::<u64>() {
        Ok(value) if value < 1 << 56 => Some(Some(Parsed { code, national })),
        _ => Some(None),
    }
}

const MIN_LENGTH_FOR_NSN: usize = 2;
const MAX_LENGTH_FOR_NSN: usize = 17;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Validation {
    IsPossible,
    IsPossibleLocalOnly,
    TooShort,
    InvalidLength,
    TooLong,
}

impl Validation {
    fn is_possible(self) -> bool {
        matches!(
            self,
            Validation::IsPossible | Validation::IsPossibleLocalOnly
        )
    }
}

static TABLE: LazyLock<Table> = LazyLock::new(Table::load);

struct Table {
    /// Compiled on first use: a deployment reads numbers of a few countries, and every
    /// region's expressions together take tens of MiB.
    regions: Vec<(&'static Metadata, OnceLock<Region>)>,
    by_id: HashMap<String, usize>,
    /// The crate's `by_code` order: its first entry is the main region of a code.
    by_code: HashMap<u16, Vec<usize>>,
    /// The crate's `region` order, which `source_for` walks; `None` stands for a region id
    /// the crate's `country::Id` does not know, which selects nothing.
    source_order: HashMap<u16, Vec<Option<usize>>>,
}

impl Table {
    fn load() -> Self {
        let mut table = Table {
            regions: Vec::new(),
            by_id: HashMap::new(),
            by_code: HashMap::new(),
            source_order: HashMap::new(),
        };
        for code in 1..1000u16 {
            let Some(metas) = DATABASE.by_code(&code) else {
                continue;
            };
            // The non-geographic codes (+800, +979…) all have the region id "001", so a
            // region is one code's entry, not one id.
            for meta in metas {
                table.regions.push((meta, OnceLock::new()));
                let index = table.regions.len() - 1;
                table.by_id.entry(meta.id().to_string()).or_insert(index);
                table.by_code.entry(code).or_default().push(index);
            }
        }
        for &code in table.by_code.keys() {
            let ids = DATABASE.region(&code).unwrap_or_default();
            let order = if ids.len() == 1 && ids[0] == "001" {
                vec![table.by_code[&code].first().copied()]
            } else if ids.len() == 1 {
                let known = ids[0].parse::<phonenumber::country::Id>().is_ok();
                vec![table.by_id.get(ids[0]).copied().filter(|_| known)]
            } else {
                ids.iter().map(|id| table.by_id.get(*id).copied()).collect()
            };
            table.source_order.insert(code, order);
        }
        table
    }

    fn region(&self, index: usize) -> &Region {
        let (meta, region) = &self.regions[index];
        region.get_or_init(|| Region::compile(meta))
    }

    /// The crate's `validator::source_for`: the one region of a code, or the first whose
    /// leading digits match, or (without leading digits) whose ranges hold the number.
    fn source_for(&self, code: u16, national: &str) -> Option<&Region> {
        let order = self.source_order.get(&code)?;
        if order.len() == 1 {
            return order[0].map(|i| self.region(i));
        }
        for meta in order.iter().map(|i| i.map(|i| self.region(i))) {
            let meta = meta?;
            match &meta.leading_digits {
                Some(leading) if leading.is_match(national) => return Some(meta),
                Some(_) => {}
                None if meta.has_type(national) => return Some(meta),
                None => {}
            }
        }
        None
    }
}

/// One region's metadata with its expressions compiled. `anchored` expressions answer "is there
/// a match starting at the first digit", which is what the crate asks of `find` with
/// `start() == 0`.
struct Region {
    code: u16,
    code_str: String,
    general: Desc,
    /// Every type `number_type` tests: any match makes the number valid.
    types: Vec<Desc>,
    national_prefix: Option<String>,
    prefix_for_parsing: Option<(Regex, Regex)>,
    transform_rule: Option<String>,
    leading_digits: Option<Regex>,
    idd: Option<Regex>,
}

impl Region {
    fn compile(meta: &Metadata) -> Self {
        let d = meta.descriptors();
        let types = [
            d.premium_rate(),
            d.toll_free(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
            d.fixed_line(),
            d.mobile(),
        ];
        Region {
            code: meta.country_code(),
            code_str: meta.country_code().to_string(),
            general: Desc::compile(d.general()),
            types: types.into_iter().flatten().map(Desc::compile).collect(),
            national_prefix: meta.national_prefix().map(str::to_string),
            prefix_for_parsing: meta
                .national_prefix_for_parsing()
                .map(|re| (regex(re.as_str()), anchored(re.as_str()))),
            transform_rule: meta.national_prefix_transform_rule().map(str::to_string),
            leading_digits: meta.leading_digits().map(|re| anchored(re.as_str())),
            idd: meta.international_prefix().map(|re| anchored(re.as_str())),
        }
    }

    fn has_type(&self, national: &str) -> bool {
        self.general.is_match(national) && self.types.iter().any(|d| d.is_match(national))
    }

    /// The crate's `validator::length` for `Type::Unknown`, whose descriptor is the general one.
    fn length(&self, national: &str) -> Validation {
        let length = national.len() as u16;
        let possible = &self.general.possible_length;
        let Some(&minimum) = possible.first() else {
            return Validation::InvalidLength;
        };
        if self.general.possible_local_length.contains(&length) {
            Validation::IsPossibleLocalOnly
        } else if length == minimum {
            Validation::IsPossible
        } else if length < minimum {
            Validation::TooShort
        } else if length > *possible.last().unwrap_or(&minimum) {
            Validation::TooLong
        } else if possible.contains(&length) {
            Validation::IsPossible
        } else {
            Validation::InvalidLength
        }
    }

    /// The crate's `parser::helper::national_number`, without the carrier code it also keeps.
    fn strip_national_prefix(&self, national: String) -> String {
        let Some((parsing, at_start)) = &self.prefix_for_parsing else {
            return match &self.national_prefix {
                Some(prefix) if national.starts_with(prefix.as_str()) => {
                    national[prefix.len()..].to_string()
                }
                _ => national,
            };
        };
        if !at_start.is_match(&national) {
            return national;
        }
        let Some(captures) = parsing.captures(&national) else {
            return national;
        };
        let end = captures.get(0).map_or(0, |m| m.end());
        let viable = self.general.is_match(&national);
        let last = captures.get(captures.len() - 1);
        match &self.transform_rule {
            Some(rule) if last.is_some() => {
                let transformed = parsing.replace(&national, rule.as_str()).into_owned();
                if viable && !self.general.is_match(&transformed) {
                    return national;
                }
                transformed
            }
            // The crate tests the number from the match's start, which is 0 here, so a viable
            // number is never kept whole on this branch.
            _ => national[end..].to_string(),
        }
    }
}

/// A descriptor: the crate's `Descriptor::is_match` checks the length list, then whether the
/// pattern matches from the first digit (not necessarily to the last).
struct Desc {
    possible_length: Vec<u16>,
    possible_local_length: Vec<u16>,
    pattern: Regex,
}

impl Desc {
    fn compile(desc: &Descriptor) -> Self {
        Desc {
            possible_length: desc.possible_length().to_vec(),
            possible_local_length: desc.possible_local_length().to_vec(),
            pattern: anchored(desc.national_number().as_str()),
        }
    }

    fn is_match(&self, value: &str) -> bool {
        (self.possible_length.is_empty() || self.possible_length.contains(&(value.len() as u16)))
            && self.pattern.is_match(value)
    }
}

/// The crate compiles its metadata's expressions with `ignore_whitespace`, since the patterns
/// are written across lines; these must be read the same way. Without Unicode, `\d` is
/// `[0-9]`, which gives the same answers on the ASCII digits this module is given, and the
/// expressions of every region take a tenth of the memory and the time to compile.
fn regex(pattern: &str) -> Regex {
    RegexBuilder::new(pattern)
        .ignore_whitespace(true)
        .unicode(false)
        .build()
        .expect("libphonenumber's metadata patterns compile, as they do in the crate itself")
}

fn anchored(pattern: &str) -> Regex {
    regex(&format!("^(?:{pattern}\n)"))
}

#[cfg(test)]
mod tests {
    use super::super::{normalize_with, Rules};
    use super::*;
    use phonenumber::country;

    /// Tenants from the regions whose national numbers are the hardest to read: trunk
    /// prefixes (FR, GB, DE), carrier codes rewritten by transform rules (AR, BR, MX, CO), the
    /// shared +1 and +7 plans (US, CA, RU, KZ), leading zeros kept (IT), no trunk prefix (ES).
    const TENANTS: [country::Id; 16] = [
        country::Id::FR,
        country::Id::US,
        country::Id::GB,
        country::Id::DE,
        country::Id::IN,
        country::Id::BR,
        country::Id::IT,
        country::Id::AR,
        country::Id::MX,
        country::Id::CO,
        country::Id::CA,
        country::Id::RU,
        country::Id::KZ,
        country::Id::ES,
        country::Id::CN,
        country::Id::NG,
    ];

    /// Every example number of every type of every region, and spellings of it a person or a
    /// CRM writes (with the country code, a trunk prefix, a digit more or less, another last
    /// digit): international spellings read once, national ones by a tenant of the number's
    /// own region and by two of [`TENANTS`]. Of the about 137,000 inputs the suite compares
    /// every tenth: the crate needs about 0.4 ms for each in a test build (its 100-entry regex
    /// cache thrashes across regions).
    #[test]
    fn the_compiled_rules_read_every_region_as_the_crate_does() {
        compare(&world().into_iter().step_by(10).collect::<Vec<_>>());
    }

    /// Random digits after every country code, of every length a caller lets through.
    #[test]
    fn random_digits_after_every_country_code_read_as_the_crate_reads_them() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        let mut cases = Vec::new();
        for code in codes() {
            for _ in 0..8 {
                let length = 4 + next(14) as usize;
                let mut digits = code.to_string();
                while digits.len() < length {
                    digits.push(char::from(b'0' + next(10) as u8));
                }
                let region = TENANTS[next(TENANTS.len() as u64) as usize];
                cases.push((format!("+{digits}"), region));
                cases.push((digits, region));
            }
        }
        compare(&cases);
    }

    /// Normalizes each input through the compiled rules and through the crate: the answers
    /// must be the same, to the byte and to the error. The comparison means something only if
    /// the compiled rules, not their fallback to the crate, gave nearly all the answers.
    fn compare(cases: &[(String, country::Id)]) {
        let mut answered = 0;
        for (input, region) in cases {
            assert_eq!(
                normalize_with(input, *region, Rules::Compiled),
                normalize_with(input, *region, Rules::Crate),
                "input {input:?}, tenant region {region:?}"
            );
            answered += usize::from(answers(input, *region));
        }
        assert!(cases.len() > 1_000, "{} inputs compared", cases.len());
        assert!(
            answered * 100 > cases.len() * 95,
            "{answered} of {} answered by the table",
            cases.len()
        );
    }

    fn codes() -> Vec<u16> {
        let mut codes: Vec<u16> = TABLE.by_code.keys().copied().collect();
        codes.sort_unstable();
        codes
    }

    fn world() -> Vec<(String, country::Id)> {
        let mut cases = Vec::new();
        let mut turn = 0;
        for meta in codes()
            .iter()
            .flat_map(|code| DATABASE.by_code(code).unwrap_or_default())
        {
            let code = meta.country_code().to_string();
            let trunk = meta.national_prefix().unwrap_or("0");
            let own = meta.id().parse::<country::Id>().ok();
            for national in examples(meta).iter().flat_map(|e| variants(e)) {
                for digits in [
                    national.clone(),
                    format!("{trunk}{national}"),
                    format!("{code}{national}"),
                    format!("{code}{trunk}{national}"),
                ] {
                    turn += 1;
                    cases.push((format!("+{digits}"), country::Id::FR));
                    cases.push((format!("00{digits}"), country::Id::FR));
                    let tenants = [
                        TENANTS[turn % TENANTS.len()],
                        TENANTS[turn * 7 % TENANTS.len()],
                    ];
                    for region in own.into_iter().chain(tenants) {
                        cases.push((digits.clone(), region));
                    }
                }
            }
        }
        cases
    }

    /// Whether the table, rather than the crate, answers for this input (a national
    /// spelling that is not valid in the region is read again as international).
    fn answers(input: &str, region: country::Id) -> bool {
        let digits: String = input.chars().filter(char::is_ascii_digit).collect();
        if input.starts_with('+') {
            return parse_international(&digits).is_some();
        }
        if let Some(international) = digits.strip_prefix("00") {
            return parse_international(international).is_some();
        }
        let national = parse_national(&digits, region.as_ref());
        national.is_some() && parse_international(&digits).is_some()
    }

    fn examples(meta: &Metadata) -> Vec<String> {
        let d = meta.descriptors();
        [
            Some(d.general()),
            d.fixed_line(),
            d.mobile(),
            d.toll_free(),
            d.premium_rate(),
            d.shared_cost(),
            d.personal_number(),
            d.voip(),
            d.pager(),
            d.uan(),
            d.voicemail(),
        ]
        .into_iter()
        .flatten()
        .filter_map(|desc| desc.example().map(str::to_string))
        .collect()
    }

    fn variants(example: &str) -> Vec<String> {
        let mut out = vec![example.to_string(), format!("{example}5")];
        if example.len() > 2 {
            out.push(example[..example.len() - 1].to_string());
            let stem = &example[..example.len() - 1];
            out.extend(["0", "3", "9"].map(|last| format!("{stem}{last}")));
        }
        out
    }
}
