//! Decoder for the Exchange Server (on-premises) admin audit log as exported from
//! `Search-AdminAuditLog`: JSON lines, or CSV with a header row. Each line is judged on its
//! own: a line starting with `{` is a JSON record, anything else is CSV.
//!
//! | field (JSON property or CSV column) | event field | notes |
//! |---|---|---|
//! | `CmdletName` | event kind | mapping in [`exchange_cmdlet`]; other cmdlets skipped |
//! | `CmdletParameters` | cmdlet parameters | JSON `[{"Name", "Value"}]`; in CSV the cell holds that JSON |
//! | `ObjectModified` | mailbox / rule name fallback | e.g. `exempel.se/Users/Anna Andersson\fwd` |
//! | `Caller` | `actor` | normalised (often `domain/Users/Name`) |
//! | `RunDate` | `Event::time` | RFC 3339 **with offset**, or .NET JSON `/Date(ms)/`; else `bad_time` |
//! | `Succeeded` | — | `false` → skipped (the change did not happen) |
//!
//! Exporting: JSON lines with `Search-AdminAuditLog … | ForEach-Object { $_ |
//! Select-Object CmdletName,CmdletParameters,ObjectModified,Caller,Succeeded,
//! @{n='RunDate';e={$_.RunDate.ToString('o')}} | ConvertTo-Json -Compress -Depth 4 }`;
//! CSV the same with `@{n='CmdletParameters';e={$_.CmdletParameters | Select-Object
//! Name,Value | ConvertTo-Json -Compress}}` and `Export-Csv` (a plain `Export-Csv` writes
//! the parameter list as a type name, which carries nothing). `RunDate.ToString('o')`
//! keeps the offset: times without one are never guessed.
//!
//! CSV: the first row that is not a `#TYPE` line is the header (column names matched
//! case-insensitively; a line starting with `"RunDate"`, `"CmdletName"`, … may come again
//! when files are concatenated and then resets the header). Quoted cells may hold commas,
//! doubled quotes and line breaks (a record then spans lines). A record whose quoted cell is
//! still open when the input ends is reported by [`Decoder::finish`] as a `syntax` error at
//! the line it began on, with its bytes.
//!
//! Not supported: the XML report the admin center mails, `ModifiedProperties` (old/new
//! values), CSV without a header row.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::csvline::{self, Joiner};
use super::exchange_cmdlet::{self, json_error, Cmdlet, Params};
use super::{check_year, parse_time, utf8, DecodeError, Decoder, ErrorReason, Unfinished};
use crate::event::{Event, SourcePos};

/// Decodes admin audit log JSON lines and CSV; keeps the CSV header between lines.
#[derive(Debug, Default)]
pub struct AdminAuditDecoder {
    header: Option<Vec<String>>,
    joiner: Joiner,
}

#[derive(Deserialize)]
struct JsonRecord {
    #[serde(rename = "CmdletName")]
    cmdlet_name: String,
    #[serde(rename = "CmdletParameters", default)]
    cmdlet_parameters: Params,
    #[serde(rename = "ObjectModified", default)]
    object_modified: Option<String>,
    #[serde(rename = "Caller", default)]
    caller: Option<String>,
    #[serde(rename = "RunDate")]
    run_date: String,
    #[serde(rename = "Succeeded", default)]
    succeeded: Option<serde_json::Value>,
}

/// The fields of one record, whichever way it was written.
struct Audit<'a> {
    cmdlet: &'a str,
    params: &'a Params,
    object: Option<&'a str>,
    caller: Option<&'a str>,
    run_date: &'a str,
    succeeded: bool,
}

const COLUMNS: [&str; 6] = ["CmdletName", "CmdletParameters", "ObjectModified", "Caller", "RunDate", "Succeeded"];

impl Decoder for AdminAuditDecoder {
    fn decode(&mut self, line: &[u8], pos: &SourcePos, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        let text = utf8(line)?.trim_start_matches('\u{feff}');
        if !self.joiner.is_open() && text.trim_start().starts_with('{') {
            return json_record(text, pos, out);
        }
        let Some(record) = self.joiner.push(text, pos)? else { return Ok(()) };
        let record = record.into_owned();
        self.csv_record(&record, pos, out)
    }

    fn finish(&mut self, _out: &mut Vec<Event>) -> Result<(), Unfinished> {
        self.joiner.finish()
    }
}

fn json_record(text: &str, pos: &SourcePos, out: &mut Vec<Event>) -> Result<(), DecodeError> {
    let r: JsonRecord = serde_json::from_str(text).map_err(json_error)?;
    let audit = Audit {
        cmdlet: &r.cmdlet_name,
        params: &r.cmdlet_parameters,
        object: r.object_modified.as_deref(),
        caller: r.caller.as_deref(),
        run_date: &r.run_date,
        succeeded: !r.succeeded.as_ref().is_some_and(|v| *v == false || v.as_str().is_some_and(is_false)),
    };
    emit(&audit, pos, out)
}

impl AdminAuditDecoder {
    fn csv_record(&mut self, record: &str, pos: &SourcePos, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        if record.trim().is_empty() || record.starts_with("#TYPE") {
            return Ok(());
        }
        let cells = csvline::split(record)?;
        if is_header(&cells) {
            self.header = Some(cells.iter().map(|c| c.trim().to_ascii_lowercase()).collect());
            return Ok(());
        }
        let header = self
            .header
            .as_deref()
            .ok_or_else(|| DecodeError::new(ErrorReason::Syntax, "CSV record before the header row"))?;
        let row = Row::new(header, &cells)?;
        let params = row.params()?;
        emit(&row.audit(&params)?, pos, out)
    }
}

/// One CSV record with the header that names its cells.
struct Row<'a> {
    header: &'a [String],
    cells: &'a [Cow<'a, str>],
}

impl<'a> Row<'a> {
    fn new(header: &'a [String], cells: &'a [Cow<'a, str>]) -> Result<Self, DecodeError> {
        if cells.len() != header.len() {
            return Err(DecodeError::new(
                ErrorReason::Syntax,
                format!("CSV record has {} cells, the header {}", cells.len(), header.len()),
            ));
        }
        Ok(Row { header, cells })
    }

    fn cell(&self, name: &str) -> Option<&'a str> {
        let i = self.header.iter().position(|h| h.eq_ignore_ascii_case(name))?;
        self.cells.get(i).map(|c| c.as_ref())
    }

    fn required(&self, name: &str) -> Result<&'a str, DecodeError> {
        self.cell(name).ok_or_else(|| DecodeError::new(ErrorReason::MissingField, format!("no {name} column")))
    }

    /// The `CmdletParameters` cell: a JSON parameter list, or none when empty.
    fn params(&self) -> Result<Params, DecodeError> {
        match self.cell("CmdletParameters").map(str::trim).filter(|p| !p.is_empty()) {
            Some(json) => serde_json::from_str(json).map_err(|e| {
                DecodeError::new(
                    ErrorReason::InvalidValue,
                    format!("CmdletParameters is not a JSON parameter list ({e})"),
                )
            }),
            None => Ok(Params::default()),
        }
    }

    fn audit<'p>(&self, params: &'p Params) -> Result<Audit<'p>, DecodeError>
    where
        'a: 'p,
    {
        Ok(Audit {
            cmdlet: self.required("CmdletName")?,
            params,
            object: self.cell("ObjectModified"),
            caller: self.cell("Caller"),
            run_date: self.required("RunDate")?,
            succeeded: !self.cell("Succeeded").is_some_and(is_false),
        })
    }
}

/// A header row names at least two of the admin audit columns.
fn is_header(cells: &[Cow<str>]) -> bool {
    cells.iter().filter(|c| COLUMNS.iter().any(|k| c.trim().eq_ignore_ascii_case(k))).count() >= 2
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|v| !v.trim().is_empty())
}

fn is_false(s: &str) -> bool {
    s.trim().eq_ignore_ascii_case("false")
}

fn emit(a: &Audit, pos: &SourcePos, out: &mut Vec<Event>) -> Result<(), DecodeError> {
    if !a.succeeded {
        return Ok(());
    }
    let cmdlet = Cmdlet { name: a.cmdlet, params: a.params, object: non_empty(a.object), actor: non_empty(a.caller) };
    if let Some(body) = exchange_cmdlet::to_event(&cmdlet)? {
        out.push(Event { time: run_date(a.run_date)?, source: pos.clone(), body });
    }
    Ok(())
}

/// `RunDate`: RFC 3339 with offset, or `/Date(ms)/` (optionally `/Date(ms+0100)/`).
fn run_date(s: &str) -> Result<DateTime<Utc>, DecodeError> {
    let s = s.trim();
    let Some(inner) = s.trim_matches(['\\', '/']).strip_prefix("Date(").and_then(|r| r.strip_suffix(')')) else {
        return parse_time(s);
    };
    let digits = inner.find(['+', '-']).filter(|&i| i > 0).map_or(inner, |i| &inner[..i]);
    digits
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| DecodeError::new(ErrorReason::BadTime, format!("RunDate {s:?} is not /Date(milliseconds)/")))
        .and_then(check_year)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_date_forms() {
        assert_eq!(run_date("/Date(1772434801000)/").unwrap().to_rfc3339(), "2026-03-02T07:00:01+00:00");
        assert_eq!(run_date("\\/Date(1772434801000+0100)\\/").unwrap().to_rfc3339(), "2026-03-02T07:00:01+00:00");
        assert_eq!(run_date("2026-03-02T08:00:01.0000000+01:00").unwrap().to_rfc3339(), "2026-03-02T07:00:01+00:00");
        assert_eq!(run_date("2026-03-02 08:00:01").unwrap_err().reason, ErrorReason::BadTime);
        assert_eq!(run_date("/Date(x)/").unwrap_err().reason, ErrorReason::BadTime);
    }
}
