//! The rows of an import body, CSV or NDJSON, read one at a time and not yet checked: each
//! is the row as given, or why it could not be read. Pure, so that the fuzz target
//! `import_rows` reads bodies exactly as the handler does, without a ledger.

use super::ImportRow;

/// Excel and Notepad start a UTF-8 file with a byte order mark; the csv crate skips it.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A data row: its line in the body (from 1; the CSV header is line 1) and the row, or why
/// it could not be read.
pub(super) type Row = (u64, Result<ImportRow, String>);

/// The columns a row is read from, in [`ImportRow`]'s order.
const KNOWN: [&str; 5] = ["contact", "status", "occurred_at", "source", "scope"];

/// The rows of a CSV body after its header, and the header's columns that are not read.
/// A header without the three required columns, or naming one twice, is the reason given.
pub(super) fn csv(input: &[u8]) -> Result<(CsvRows<'_>, Vec<String>), String> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let header = rdr.headers().map_err(|e| e.to_string())?.clone();
    let names: Vec<String> = header.iter().map(|h| h.to_ascii_lowercase()).collect();
    let column = |name: &str| names.iter().position(|n| n == name);
    let missing: Vec<&str> = ["contact", "status", "occurred_at"]
        .into_iter()
        .filter(|c| column(c).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the first line must be a header naming the columns; missing: {} (found: {})",
            missing.join(", "),
            names.join(", ")
        ));
    }
    // Two columns of the same name would leave one of them silently unread.
    if let Some(twice) = KNOWN
        .iter()
        .find(|k| names.iter().filter(|n| n == k).count() > 1)
    {
        return Err(format!(
            "the column {twice} appears more than once in the header; keep one (found: {})",
            names.join(", ")
        ));
    }
    let ignored = names
        .iter()
        .filter(|n| !KNOWN.contains(&n.as_str()))
        .cloned()
        .collect();
    let columns = KNOWN.map(column);
    let rows = CsvRows {
        rdr,
        columns,
        record: csv::StringRecord::new(),
        lines: Lines {
            input,
            byte: 0,
            line: 1,
        },
    };
    Ok((rows, ignored))
}

/// The data rows of a CSV body; rows whose cells are all empty are skipped.
pub(super) struct CsvRows<'a> {
    rdr: csv::Reader<&'a [u8]>,
    /// Where each of [`KNOWN`] is in a record, if the header names it.
    columns: [Option<usize>; 5],
    record: csv::StringRecord,
    lines: Lines<'a>,
}

/// Line numbers as a person sees them. The csv crate ends a record at CR, LF or CRLF but
/// counts only LFs, and places a record before the blank lines and the LF of a CRLF that
/// precede it: the rows of a Windows file would be reported one line early, those after a
/// blank line too, and all those of a file with CR endings (Excel for Mac's "CSV
/// (Macintosh)") on line 1.
struct Lines<'a> {
    input: &'a [u8],
    /// Where the last line asked for starts, and its number.
    byte: usize,
    line: u64,
}

impl Lines<'_> {
    /// The line of the record that starts at `position`, a byte offset no earlier than the
    /// previous one asked for.
    fn at(&mut self, position: Option<&csv::Position>) -> u64 {
        let Some(byte) = position.and_then(|p| usize::try_from(p.byte()).ok()) else {
            return self.line;
        };
        // A record's position is where the reader resumed: before the blank lines and the LF
        // of a CRLF that precede it. Its line is the one its first character is on.
        let byte = byte.clamp(self.byte, self.input.len());
        let byte = byte
            + self.input[byte..]
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
        let ends = self.input[self.byte..byte]
            .iter()
            .enumerate()
            .filter(|&(i, b)| {
                *b == b'\n' || (*b == b'\r' && self.input.get(self.byte + i + 1) != Some(&b'\n'))
            })
            .count();
        self.line += ends as u64;
        self.byte = byte;
        self.line
    }
}

impl Iterator for CsvRows<'_> {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        loop {
            match self.rdr.read_record(&mut self.record) {
                Ok(false) => return None,
                Ok(true) => {
                    let line = self.lines.at(self.record.position());
                    if self.record.iter().all(str::is_empty) {
                        continue;
                    }
                    let get = |i: usize| {
                        self.columns[i]
                            .and_then(|c| self.record.get(c))
                            .filter(|v| !v.is_empty())
                            .map(str::to_string)
                    };
                    let row = ImportRow {
                        contact: get(0),
                        status: get(1),
                        occurred_at: get(2),
                        source: get(3),
                        scope: get(4),
                    };
                    return Some((line, Ok(row)));
                }
                Err(e) => {
                    let line = self.lines.at(e.position());
                    return Some((line, Err(format!("unreadable CSV row: {e}"))));
                }
            }
        }
    }
}

/// The rows of an NDJSON body, one JSON object a line; blank lines are skipped.
pub(super) fn ndjson(input: &[u8]) -> impl Iterator<Item = Row> + '_ {
    let input = input.strip_prefix(UTF8_BOM).unwrap_or(input);
    (1u64..)
        .zip(input.split(|b| *b == b'\n'))
        .filter_map(|(line, bytes)| {
            let text = String::from_utf8_lossy(bytes);
            if text.trim().is_empty() {
                return None;
            }
            let row =
                serde_json::from_str::<ImportRow>(&text).map_err(|e| format!("invalid JSON: {e}"));
            Some((line, row))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the fuzz target `import_rows` (fuzz/regressions/import_rows/): the NDJSON
    /// reader kept the byte order mark, so the first row was "invalid JSON".
    #[test]
    fn an_ndjson_import_starting_with_a_byte_order_mark_reads_its_first_row() {
        let body = "\u{feff}{\"contact\":\"+33600000001\",\"status\":\"opted_out\"}\n";
        let rows: Vec<Row> = ndjson(body.as_bytes()).collect();
        assert_eq!(rows.len(), 1);
        let (line, row) = &rows[0];
        assert_eq!(*line, 1);
        let row = row.as_ref().expect("the first row is read");
        assert_eq!(row.contact.as_deref(), Some("+33600000001"));
        assert_eq!(row.status.as_deref(), Some("opted_out"));
    }

    /// Found by the fuzz target `import_rows` (fuzz/regressions/import_rows/): a CR ends a
    /// CSV record but was not counted as a line, so two rows shared a line number; and rows
    /// after a CRLF or a blank line were reported on an earlier line than their own.
    #[test]
    fn a_csv_import_reports_each_rows_own_line_whatever_the_line_endings() {
        for body in [
            "contact,status,occurred_at\r+33600000001,opted_out,2024-01-01\r\rbad\r",
            "contact,status,occurred_at\r\n+33600000001,opted_out,2024-01-01\r\n\r\nbad\r\n",
            "contact,status,occurred_at\n+33600000001,opted_out,2024-01-01\n\nbad\n",
            "contact,status,occurred_at\n\"+33600000001\nx\",opted_out,2024-01-01\nbad\n",
        ] {
            let (rows, _) = csv(body.as_bytes()).expect("a valid header");
            let lines: Vec<u64> = rows.map(|(line, _)| line).collect();
            assert_eq!(lines, [2, 4], "{body:?}");
        }
    }
}
