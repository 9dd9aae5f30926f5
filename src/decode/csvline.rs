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
//! so a stray quote cannot swallow the rest of a file; a record still open when the input
//! ends is handed back by [`Joiner::finish`] with its bytes and the position it began at.
//!
//! Not supported: other separators or quote characters, and a quote character inside an
//! unquoted field that changes the parity of a line's quotes (it is read as opening a
//! quoted field that continues on the next line).

use std::borrow::Cow;

use super::{DecodeError, ErrorReason, Unfinished};
use crate::event::SourcePos;

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
    /// Where the open record began; `None` while no record is open.
    start: Option<SourcePos>,
}

impl Joiner {
    /// Feeds one line read at `pos`: returns the record it completes, or `None` while a
    /// quoted field is still open (the line is kept until the field closes).
    pub fn push<'a>(&'a mut self, line: &'a str, pos: &SourcePos) -> Result<Option<Cow<'a, str>>, DecodeError> {
        let odd = line.bytes().filter(|&b| b == b'"').count() % 2 == 1;
        if self.start.is_none() {
            if !odd {
                return Ok(Some(Cow::Borrowed(line)));
            }
            self.pending.clear();
            self.pending.push_str(line);
            self.start = Some(pos.clone());
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
            self.start = None;
            return Ok(Some(Cow::Owned(std::mem::take(&mut self.pending))));
        }
        Ok(None)
    }

    /// True while an earlier line left a quoted field open.
    pub fn is_open(&self) -> bool {
        self.start.is_some()
    }

    /// Where the record an earlier line left open began, if one is open.
    pub fn open_at(&self) -> Option<&SourcePos> {
        self.start.as_ref()
    }

    /// Drops a record left open (a truncated line).
    pub fn abandon(&mut self) {
        self.pending.clear();
        self.start = None;
    }

    /// The input ended: a record still open is reported (`syntax`) with its bytes and the
    /// position it began at.
    pub fn finish(&mut self) -> Result<(), Unfinished> {
        let Some(pos) = self.start.take() else { return Ok(()) };
        let raw = std::mem::take(&mut self.pending).into_bytes();
        let error = DecodeError::new(
            ErrorReason::Syntax,
            format!("the input ended inside a quoted CSV field of the record that began at {pos}"),
        );
        Err(Unfinished { pos, raw, error })
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

    fn pos(line: u64) -> SourcePos {
        SourcePos::line("t".into(), line)
    }

    #[test]
    fn a_quoted_line_break_joins_two_lines() {
        let mut j = Joiner::default();
        assert_eq!(j.push(r#"1,"first"#, &pos(1)).unwrap(), None);
        assert_eq!(j.open_at(), Some(&pos(1)));
        let rec = j.push(r#"second",3"#, &pos(2)).unwrap().unwrap().into_owned();
        assert_eq!(fields(&rec), ["1", "first\nsecond", "3"]);
        assert_eq!(j.push("4,5", &pos(3)).unwrap().as_deref(), Some("4,5"));
        assert_eq!(j.finish(), Ok(()), "nothing held");
    }

    #[test]
    fn a_record_that_never_closes_is_bounded() {
        let mut j = Joiner::default();
        j.push("\"open", &pos(1)).unwrap();
        let long = "x".repeat(1024);
        let err = (0..100).find_map(|_| j.push(&long, &pos(2)).err()).unwrap();
        assert_eq!(err.reason, ErrorReason::Syntax);
        assert!(j.open_at().is_none());
    }

    #[test]
    fn a_record_open_at_the_end_is_handed_back_with_its_start_and_bytes() {
        let mut j = Joiner::default();
        j.push("a,b", &pos(1)).unwrap();
        j.push("c,\"half", &pos(2)).unwrap();
        j.push("more", &pos(3)).unwrap();
        let u = j.finish().unwrap_err();
        assert_eq!((u.pos, u.raw.as_slice(), u.error.reason), (pos(2), b"c,\"half\nmore".as_slice(), ErrorReason::Syntax));
        assert!(u.error.detail.contains("t:2"), "{}", u.error.detail);
        assert_eq!(j.finish(), Ok(()), "reported once");
    }
}
