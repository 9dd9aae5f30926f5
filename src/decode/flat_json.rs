//! A strict scanner for the flat JSON objects of normalized records: one pass over the
//! line, no allocation, every key and string value borrowed from it.
//!
//! It hands each member to a callback as a [`Value`]: a string, a non-negative integer, a
//! boolean, `null`, or an array of strings. Members of any other shape are accepted only
//! where the caller lets them pass unread ([`Value::Other`]: nested objects and arrays,
//! negative or fractional numbers), after checking their syntax.
//!
//! Guarantee: it accepts only text that is a valid JSON object with nothing but whitespace
//! after it, so whatever it accepts `serde_json` accepts too. It refuses (returns `None`)
//! whenever it is in doubt: a string with an escape sequence (its value would not be a
//! slice of the line), nesting deeper than [`MAX_DEPTH`], an integer above `u64`, another
//! number beyond ±1e300 (serde_json refuses those that overflow `f64`), and any syntax
//! error. A refused line goes to the general `serde_json` path, which alone writes
//! error messages.

/// How deep [`Value::Other`] members may nest (`serde_json` allows 128).
pub const MAX_DEPTH: usize = 64;

/// One member's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// A string without escapes.
    Str(&'a str),
    /// A non-negative integer.
    UInt(u64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An array whose elements are all strings without escapes.
    Strs(Strs<'a>),
    /// Anything else that is valid JSON (syntax checked, content not read).
    Other,
}

impl<'a> Value<'a> {
    /// The string, if the value is one.
    pub fn as_str(self) -> Option<&'a str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// An array of strings without escapes, already checked: its text from `[` to `]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strs<'a>(&'a str);

impl<'a> Strs<'a> {
    /// The elements, in order.
    pub fn iter(self) -> impl Iterator<Item = &'a str> {
        let text = self.0;
        let mut at = 1;
        std::iter::from_fn(move || {
            let start = at + text.as_bytes()[at..].iter().position(|&c| c == b'"')? + 1;
            let end = string_end(text.as_bytes(), start)?;
            at = end + 1;
            Some(&text[start..end])
        })
    }
}

/// Scans `text` as one JSON object, calling `member` for each key and value in order.
/// `None` if the text is not an object this scanner accepts, or if `member` returns `None`.
pub fn scan<'a>(text: &'a str, mut member: impl FnMut(&'a str, Value<'a>) -> Option<()>) -> Option<()> {
    let b = text.as_bytes();
    let mut i = ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            let (key, after) = string(text, i)?;
            i = ws(b, after);
            if b.get(i) != Some(&b':') {
                return None;
            }
            let (value, after) = value(text, ws(b, i + 1))?;
            member(key, value)?;
            i = ws(b, after);
            match b.get(i) {
                Some(b',') => i = ws(b, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (ws(b, i) == b.len()).then_some(())
}

/// The index of the first byte at or after `i` that is not JSON whitespace. Compact JSON
/// has none between tokens: one comparison says so (the loop's four cost callgrind 2 % of
/// a replay's instructions).
fn ws(b: &[u8], mut i: usize) -> usize {
    if b.get(i).is_some_and(|&c| c > b' ') {
        return i;
    }
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// A string starting at `i` (its opening quote): the contents and the index after it.
fn string(text: &str, i: usize) -> Option<(&str, usize)> {
    if text.as_bytes().get(i) != Some(&b'"') {
        return None;
    }
    let end = string_end(text.as_bytes(), i + 1)?;
    Some((&text[i + 1..end], end + 1))
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The index of the closing quote of a string whose contents start at `i`; `None` at a
/// backslash, a control character or the end of the text. Sixteen bytes at a time where
/// SSE2 is (every x86-64 core), then eight at a time in a word: a word's lowest flagged
/// byte is exact (borrows only flag bytes above a true match).
#[inline]
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    while let Some(chunk) = b.get(i..i + 16) {
        let hits = sse2::specials(chunk.try_into().ok()?);
        if hits != 0 {
            let at = i + hits.trailing_zeros() as usize;
            return (b[at] == b'"').then_some(at);
        }
        i += 16;
    }
    while let Some(chunk) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().ok()?);
        let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
        let hits = zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS);
        if hits != 0 {
            let at = i + (hits.trailing_zeros() / 8) as usize;
            return (b[at] == b'"').then_some(at);
        }
        i += 8;
    }
    let at = i + b.get(i..)?.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    (b[at] == b'"').then_some(at)
}

/// Sixteen bytes compared at once with SSE2, which every x86-64 target has.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};

    /// A bit per byte of `chunk` that is a quote, a backslash or a control character, the
    /// first byte's lowest.
    #[inline]
    pub fn specials(chunk: &[u8; 16]) -> u32 {
        // SAFETY: SSE2 is enabled for the whole build (the module's `cfg`), which is all
        // `flagged` asks of its caller.
        unsafe { flagged(chunk) }
    }

    #[target_feature(enable = "sse2")]
    fn flagged(chunk: &[u8; 16]) -> u32 {
        // SAFETY: `chunk` is sixteen readable bytes, and an unaligned load needs no more.
        let v = unsafe { _mm_loadu_si128(chunk.as_ptr().cast()) };
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // A byte at most 0x1f is its own maximum with 0x1f.
        let control = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    }
}

/// A value starting at `i`: what it is and the index after it.
fn value(text: &str, i: usize) -> Option<(Value<'_>, usize)> {
    let b = text.as_bytes();
    match *b.get(i)? {
        b'"' => string(text, i).map(|(s, end)| (Value::Str(s), end)),
        b'0'..=b'9' => uint(b, i),
        b't' => literal(b, i, b"true", Value::Bool(true)),
        b'f' => literal(b, i, b"false", Value::Bool(false)),
        b'n' => literal(b, i, b"null", Value::Null),
        b'[' => strings(text, i).or_else(|| skip(b, i, 0).map(|end| (Value::Other, end))),
        _ => skip(b, i, 0).map(|end| (Value::Other, end)),
    }
}

fn literal<'a>(b: &[u8], i: usize, word: &[u8], v: Value<'a>) -> Option<(Value<'a>, usize)> {
    b.get(i..i + word.len()).filter(|w| *w == word).map(|_| (v, i + word.len()))
}

/// A non-negative integer; a fraction or exponent after it is left for [`skip`] (`Other`).
fn uint(b: &[u8], i: usize) -> Option<(Value<'static>, usize)> {
    let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if matches!(b.get(i + digits), Some(b'.' | b'e' | b'E')) {
        return skip(b, i, 0).map(|end| (Value::Other, end));
    }
    if digits > 1 && b[i] == b'0' {
        return None;
    }
    let n = b[i..i + digits].iter().try_fold(0u64, |n, &c| n.checked_mul(10)?.checked_add(u64::from(c - b'0')))?;
    Some((Value::UInt(n), i + digits))
}

/// An array of strings only; `None` if it holds anything else (or is not valid).
fn strings(text: &str, i: usize) -> Option<(Value<'_>, usize)> {
    let b = text.as_bytes();
    let mut at = ws(b, i + 1);
    if b.get(at) != Some(&b']') {
        loop {
            let (_, after) = string(text, at)?;
            at = ws(b, after);
            match b.get(at) {
                Some(b',') => at = ws(b, at + 1),
                Some(b']') => break,
                _ => return None,
            }
        }
    }
    Some((Value::Strs(Strs(&text[i..=at])), at + 1))
}

/// Checks the syntax of any value starting at `i` and returns the index after it.
fn skip(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i + 1).map(|end| end + 1),
        b'-' | b'0'..=b'9' => number(b, i),
        b't' => literal(b, i, b"true", Value::Null).map(|(_, end)| end),
        b'f' => literal(b, i, b"false", Value::Null).map(|(_, end)| end),
        b'n' => literal(b, i, b"null", Value::Null).map(|(_, end)| end),
        b'[' if depth < MAX_DEPTH => container(b, i, b']', |b, at| skip(b, at, depth + 1)),
        b'{' if depth < MAX_DEPTH => container(b, i, b'}', |b, at| {
            let key_end = string_end(b, b.get(at).filter(|c| **c == b'"').map(|_| at + 1)?)?;
            let colon = ws(b, key_end + 1);
            (b.get(colon) == Some(&b':')).then_some(())?;
            skip(b, ws(b, colon + 1), depth + 1)
        }),
        _ => None,
    }
}

/// A bracketed, comma-separated run of elements read by `element`.
fn container(b: &[u8], i: usize, close: u8, element: impl Fn(&[u8], usize) -> Option<usize>) -> Option<usize> {
    let mut at = ws(b, i + 1);
    if b.get(at) == Some(&close) {
        return Some(at + 1);
    }
    loop {
        at = ws(b, element(b, at)?);
        match b.get(at) {
            Some(b',') => at = ws(b, at + 1),
            Some(c) if *c == close => return Some(at + 1),
            _ => return None,
        }
    }
}

/// A JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, whose magnitude stays
/// well inside `f64` (serde_json refuses a number that overflows it, `1e400`; near the
/// limit its rounding and Rust's could differ, so anything above 1e300 is refused too).
fn number(b: &[u8], start: usize) -> Option<usize> {
    let end = number_syntax(b, start)?;
    let value: f64 = std::str::from_utf8(&b[start..end]).ok()?.parse().ok()?;
    (value.abs() <= 1e300).then_some(end)
}

/// The end of a number's text (its syntax only).
fn number_syntax(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |i: usize| b.get(i..).map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count());
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let int = digits(i);
    if int == 0 || (int > 1 && b[i] == b'0') {
        return None;
    }
    i += int;
    if b.get(i) == Some(&b'.') {
        let frac = digits(i + 1);
        (frac > 0).then_some(())?;
        i += 1 + frac;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let exp = digits(i);
        (exp > 0).then_some(())?;
        i += exp;
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn members(text: &str) -> Option<Vec<(&str, Value<'_>)>> {
        let mut out = Vec::new();
        scan(text, |k, v| {
            out.push((k, v));
            Some(())
        })?;
        Some(out)
    }

    #[test]
    fn members_of_a_flat_record_are_borrowed_in_order() {
        let m = members(r#" {"type":"mail.message", "n" : 42,"ok":true,"no":false,"x":null,"to":["a@b.se" , "c@d.se"],"e":[]} "#).unwrap();
        assert_eq!(m[0], ("type", Value::Str("mail.message")));
        assert_eq!(m[1], ("n", Value::UInt(42)));
        assert_eq!(m[2..5], [("ok", Value::Bool(true)), ("no", Value::Bool(false)), ("x", Value::Null)]);
        let Value::Strs(to) = m[5].1 else { panic!("{:?}", m[5]) };
        assert_eq!(to.iter().collect::<Vec<_>>(), ["a@b.se", "c@d.se"]);
        let Value::Strs(e) = m[6].1 else { panic!("{:?}", m[6]) };
        assert_eq!(e.iter().count(), 0);
        assert_eq!(members("{}").unwrap(), []);
    }

    #[test]
    fn other_values_are_checked_but_not_read() {
        let m = members(r#"{"a":{"b":[1,-2.5e3,{"c":"d"}],"e":{}},"f":[1,"x"],"g":-1,"h":1.5,"i":"åäö"}"#).unwrap();
        let kinds: Vec<_> = m.iter().map(|(_, v)| *v).collect();
        assert_eq!(kinds, [Value::Other, Value::Other, Value::Other, Value::Other, Value::Str("åäö")]);
    }

    #[test]
    fn doubtful_text_is_refused() {
        for text in [
            r#"{"a":"x\"y"}"#,
            r#"{"a\u0062":1}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":99999999999999999999}"#,
            r#"{"a":[2602e314112310332779]}"#,
            r#"{"a":-1e400}"#,
            r#"{"a":1,}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":1} x"#,
            r#"{"a":tru}"#,
            r#"{"a":truex}"#,
            r#"{"a" 1}"#,
            r#"{"a":"open"#,
            r#"["a"]"#,
            "\u{feff}{}",
            "",
        ] {
            assert_eq!(members(text), None, "{text}");
        }
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(members(&deep), None);
    }

    /// Each byte of a string is checked, wherever it falls in the sixteen- and eight-byte
    /// steps and the bytewise tail: a quote there ends it, a backslash or a control
    /// character anywhere refuses the line.
    #[test]
    fn every_byte_of_a_long_string_is_checked() {
        for len in 0..40 {
            let plain = "é".repeat(len / 2) + &"a".repeat(len % 2);
            assert_eq!(members(&format!(r#"{{"k":"{plain}"}}"#)).unwrap(), [("k", Value::Str(plain.as_str()))], "{len}");
            for at in 0..len {
                let mut bytes = "a".repeat(len).into_bytes();
                for bad in [b'\\', b'\n', 0x1f, 0] {
                    bytes[at] = bad;
                    let text = format!(r#"{{"k":"{}"}}"#, std::str::from_utf8(&bytes).unwrap());
                    assert_eq!(members(&text), None, "{text:?}");
                }
                bytes[at] = b'"';
                let cut = std::str::from_utf8(&bytes).unwrap();
                assert_eq!(members(&format!(r#"{{"k":"{cut}"}}"#)), None, "a quote at {at} of {len} ends the string early");
                assert_eq!(string_end(cut.as_bytes(), 0), Some(at));
            }
        }
    }

    /// A JSON value of any shape, as text.
    fn json() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            "[a-z\"\\\\ \t\u{1}é]{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| f.to_string()),
            Just("true".to_string()),
            Just("null".to_string()),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))), object(inner)]
        })
    }

    /// An object whose members are drawn from `member`.
    fn object(member: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
        prop::collection::vec(("[a-z]{1,2}", member), 0..5)
            .prop_map(|v| format!("{{{}}}", v.iter().map(|(k, v)| format!("{k:?}:{v}")).collect::<Vec<_>>().join(", ")))
    }

    proptest! {
        /// Whatever the scanner accepts is an object serde_json accepts, with the same
        /// strings and integers.
        #[test]
        fn accepted_text_is_json_with_the_same_members(text in object(json()), cut in 0usize..64, junk in "[ ,:\\]\\[{}\"0-9a-z\\\\-]{0,2}") {
            let mut variants = vec![text.clone()];
            let mut cut_at = cut.min(text.len());
            while !text.is_char_boundary(cut_at) { cut_at -= 1; }
            variants.push(format!("{}{junk}{}", &text[..cut_at], &text[cut_at..]));
            for t in variants {
                let parsed = serde_json::from_str::<serde_json::Value>(&t);
                if let Some(m) = members(&t) {
                    let obj = parsed.unwrap_or_else(|e| panic!("{t}: {e}"));
                    let obj = obj.as_object().expect("an object");
                    for &(k, v) in &m {
                        if m.iter().filter(|(other, _)| *other == k).count() > 1 {
                            continue; // serde_json keeps the last of duplicate keys
                        }
                        let want = &obj[k];
                        match v {
                            Value::Str(s) => prop_assert_eq!(want.as_str(), Some(s)),
                            Value::UInt(n) => prop_assert_eq!(want.as_u64(), Some(n)),
                            Value::Bool(x) => prop_assert_eq!(want.as_bool(), Some(x)),
                            Value::Null => prop_assert!(want.is_null()),
                            Value::Strs(s) => prop_assert_eq!(Some(s.iter().map(serde_json::Value::from).collect::<Vec<_>>()), want.as_array().cloned()),
                            Value::Other => {}
                        }
                    }
                }
            }
        }
    }
}
