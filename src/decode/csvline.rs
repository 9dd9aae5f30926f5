//! CSV records for the decoders that read CSV (Exchange message tracking, Exchange admin
//! audit exports): RFC 4180 quoting, and records that continue over several lines.
//!
//! | input | result |
//! |---|---|
//! | `a,b,c` | three fields |
//! | `"a,b",c` | `a,b` and `c` (quoted commas stay in the field) |
//! | `"say ""hi""",x` | `say "hi"` and `x` (doubled quotes are one quote) |
//! | `,` | two empty fields |
//! | `"a` then `b"` on the next line | one field `a\nb` (see [`Joiner`]) |
//!
//! Guarantees: never panics; a field borrows the line unless it held a doubled quote; a
//! record whose quoted field is not closed within [`MAX_RECORD_BYTES`] is a `syntax` error,
//! so a stray quote cannot swallow the rest of a file.
//!
//! Not supported: other separators or quote characters, and a quote character inside an
//! unquoted field that changes the parity of a line's quotes (it is read as opening a
//! quoted field that continues on the next line).

use std::borrow::Cow;

use super::{DecodeError, ErrorReason};

/// The longest record a quoted field may stretch over several lines to.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// Splits one complete CSV record into its fields.
pub fn split(record: &str) -> Result<Vec<Cow<'_, str>>, DecodeError> {
    let mut fields = Vec::new();
    let mut rest = record;
    loop {
        let (field, after) = match rest.strip_prefix('"') {
            Some(quoted) => quoted_field(quoted)?,
            None => rest.split_once(',').map_or((Cow::Borrowed(rest), None), |(f, r)| (Cow::Borrowed(f), Some(r))),
        };
        fields.push(field);
        match after {
            Some(r) => rest = r,
            None => return Ok(fields),
        }
    }
}

/// Reads a quoted field (after its opening quote): the field and what follows its comma,
/// `None` at the end of the record.
fn quoted_field(s: &str) -> Result<(Cow<'_, str>, Option<&str>), DecodeError> {
    let mut owned: Option<String> = None;
    let mut start = 0;
    loop {
        let Some(q) = s.get(start..).and_then(|t| t.find('"')).map(|i| start + i) else {
            return Err(DecodeError::new(ErrorReason::Syntax, "CSV quoted field is not closed"));
        };
        let piece = s.get(start..q).unwrap_or("");
        let after = s.get(q + 1..).unwrap_or("");
        if let Some(more) = after.strip_prefix('"') {
            owned.get_or_insert_with(String::new).extend([piece, "\""]);
            start = s.len() - more.len();
            continue;
        }
        let field = match owned {
            Some(mut o) => {
                o.push_str(piece);
                Cow::Owned(o)
            }
            None => Cow::Borrowed(piece),
        };
        return match after.strip_prefix(',') {
            Some(rest) => Ok((field, Some(rest))),
            None if after.is_empty() => Ok((field, None)),
            None => Err(DecodeError::new(ErrorReason::Syntax, "CSV text after a closing quote")),
        };
    }
}

/// Joins lines into records where a quoted field holds a line break.
#[derive(Debug, Default)]
pub struct Joiner {
    pending: String,
    open: bool,
}

impl Joiner {
    /// Feeds one line: returns the record it completes, or `None` while a quoted field is
    /// still open (the line is kept until the field closes).
    pub fn push<'a>(&'a mut self, line: &'a str) -> Result<Option<Cow<'a, str>>, DecodeError> {
        let odd = line.bytes().filter(|&b| b == b'"').count() % 2 == 1;
        if !self.open {
            if !odd {
                return Ok(Some(Cow::Borrowed(line)));
            }
            self.pending.clear();
            self.pending.push_str(line);
            self.open = true;
            return Ok(None);
        }
        self.pending.push('\n');
        self.pending.push_str(line);
        if self.pending.len() > MAX_RECORD_BYTES {
            self.abandon();
            return Err(DecodeError::new(
                ErrorReason::Syntax,
                format!("CSV quoted field still open after {MAX_RECORD_BYTES} bytes"),
            ));
        }
        if odd {
            self.open = false;
            return Ok(Some(Cow::Owned(std::mem::take(&mut self.pending))));
        }
        Ok(None)
    }

    /// True while an earlier line left a quoted field open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Drops a record left open (a truncated line).
    pub fn abandon(&mut self) {
        self.pending.clear();
        self.open = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(s: &str) -> Vec<String> {
        split(s).unwrap().into_iter().map(Cow::into_owned).collect()
    }

    #[test]
    fn quoted_commas_and_doubled_quotes_stay_in_the_field() {
        assert_eq!(fields(r#"a,"b,c","say ""hi""",,"""""#), ["a", "b,c", "say \"hi\"", "", "\""]);
        assert_eq!(fields(""), [""]);
        assert_eq!(fields("a,"), ["a", ""]);
    }

    #[test]
    fn unclosed_quote_and_text_after_quote_are_syntax_errors() {
        assert_eq!(split(r#"a,"b"#).unwrap_err().reason, ErrorReason::Syntax);
        assert_eq!(split(r#""a"b,c"#).unwrap_err().reason, ErrorReason::Syntax);
    }

    #[test]
    fn a_quoted_line_break_joins_two_lines() {
        let mut j = Joiner::default();
        assert_eq!(j.push(r#"1,"first"#).unwrap(), None);
        assert!(j.is_open());
        let rec = j.push(r#"second",3"#).unwrap().unwrap().into_owned();
        assert_eq!(fields(&rec), ["1", "first\nsecond", "3"]);
        assert_eq!(j.push("4,5").unwrap().as_deref(), Some("4,5"));
    }

    #[test]
    fn a_record_that_never_closes_is_bounded() {
        let mut j = Joiner::default();
        j.push("\"open").unwrap();
        let long = "x".repeat(1024);
        let err = (0..100).find_map(|_| j.push(&long).err()).unwrap();
        assert_eq!(err.reason, ErrorReason::Syntax);
        assert!(!j.is_open());
    }
}
