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

use std::cell::Cell;

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
        let line = Line::new(self.0);
        let mut at = 1;
        std::iter::from_fn(move || {
            let text = line.text;
            let start = at + text.as_bytes()[at..].iter().position(|&c| c == b'"')? + 1;
            let end = line.string_end(start)?;
            at = end + 1;
            Some(&text[start..end])
        })
    }
}

/// Scans `text` as one JSON object, calling `member` for each key and value in order.
/// `None` if the text is not an object this scanner accepts, or if `member` returns `None`.
#[inline(always)]
pub fn scan<'a>(text: &'a str, mut member: impl FnMut(&'a str, Value<'a>) -> Option<()>) -> Option<()> {
    let (l, b) = (&Line::new(text), text.as_bytes());
    let mut i = ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            let (key, after) = string(l, i)?;
            i = ws(b, after);
            if b.get(i) != Some(&b':') {
                return None;
            }
            let (value, after) = value(l, ws(b, i + 1))?;
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

/// The text being scanned, and where the bytes that can end a string are in the 64-byte
/// block of it last looked at: its quotes, backslashes and control characters, a bit
/// each. A block is compared once, whichever of its strings asks; searched string by
/// string (sixteen bytes at a time), the same compares cost a line of about 24 strings
/// some 800 instructions, 13 % of a replay's (callgrind).
struct Line<'a> {
    text: &'a str,
    /// Which block `specials` is of (`usize::MAX` before the first).
    block: Cell<usize>,
    specials: Cell<u64>,
}

impl<'a> Line<'a> {
    fn new(text: &'a str) -> Self {
        Line { text, block: Cell::new(usize::MAX), specials: Cell::new(0) }
    }

    /// The specials of block `n` (bytes `64 n` to `64 n + 63`), the first byte's lowest;
    /// where the text has ended, every byte counts as one. Out of line: the compares'
    /// registers would make every [`Line::string_end`] save and restore them.
    #[inline(never)]
    fn load(&self, n: usize) -> u64 {
        let specials = block_specials(self.text.as_bytes(), n * 64);
        self.block.set(n);
        self.specials.set(specials);
        specials
    }

    /// The index of the closing quote of a string whose contents start at `i`; `None` at
    /// a backslash, a control character or the end of the text.
    #[inline(always)]
    fn string_end(&self, i: usize) -> Option<usize> {
        let b = self.text.as_bytes();
        if i >= b.len() {
            return None;
        }
        let mut n = i / 64;
        let specials = if self.block.get() == n { self.specials.get() } else { self.load(n) };
        let mut found = specials & (!0 << (i % 64));
        // A block that holds the text's end has its last bits set: the search stops there.
        while found == 0 {
            n += 1;
            found = self.load(n);
        }
        let at = n * 64 + found.trailing_zeros() as usize;
        (b.get(at) == Some(&b'"')).then_some(at)
    }
}

/// The specials of the 64 bytes of `b` from `start` ([`Line::load`]). A block the
/// text ends in is read as the text's last 64 bytes, shifted into place (a copy into a
/// padded block cost as much as the compares); only a text shorter than that is copied.
fn block_specials(b: &[u8], start: usize) -> u64 {
    let rest = &b[start..];
    if let Some(block) = rest.first_chunk::<64>() {
        return specials64(block);
    }
    if rest.is_empty() {
        return !0;
    }
    let past_end = !0 << rest.len();
    match b.last_chunk::<64>() {
        Some(last) => specials64(last) >> (64 - rest.len()) | past_end,
        None => {
            let mut block = [0; 64];
            block[..rest.len()].copy_from_slice(rest);
            specials64(&block) | past_end
        }
    }
}

/// Whether a byte can end a string: a quote, a backslash or a control character.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn specials64(block: &[u8; 64]) -> u64 {
    block.iter().enumerate().fold(0, |bits, (k, &c)| bits | (u64::from(c == b'"' || c == b'\\' || c < 0x20) << k))
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
use sse2::specials64;

/// Sixteen bytes compared at once with SSE2, which every x86-64 target has.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};

    /// A bit per byte of `block` that is a quote, a backslash or a control character, the
    /// first byte's lowest.
    #[inline]
    pub fn specials64(block: &[u8; 64]) -> u64 {
        // SAFETY: SSE2 is enabled for the whole build (the module's `cfg`), which is all
        // `flagged` asks of its caller.
        unsafe { flagged(block) }
    }

    #[target_feature(enable = "sse2")]
    fn flagged(block: &[u8; 64]) -> u64 {
        let mut bits = 0;
        for k in 0..4 {
            let sixteen = &block[16 * k..16 * k + 16];
            // SAFETY: `sixteen` is sixteen readable bytes, and an unaligned load needs no more.
            let v = unsafe { _mm_loadu_si128(sixteen.as_ptr().cast()) };
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            // A byte at most 0x1f is its own maximum with 0x1f.
            let control = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
            bits |= u64::from(_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u16) << (16 * k);
        }
        bits
    }
}

/// A string starting at `i` (its opening quote): the contents and the index after it.
#[inline(always)]
fn string<'a>(l: &Line<'a>, i: usize) -> Option<(&'a str, usize)> {
    if l.text.as_bytes().get(i) != Some(&b'"') {
        return None;
    }
    let end = l.string_end(i + 1)?;
    Some((&l.text[i + 1..end], end + 1))
}

/// A value starting at `i`: what it is and the index after it.
#[inline(always)]
fn value<'a>(l: &Line<'a>, i: usize) -> Option<(Value<'a>, usize)> {
    let b = l.text.as_bytes();
    match *b.get(i)? {
        b'"' => string(l, i).map(|(s, end)| (Value::Str(s), end)),
        b'0'..=b'9' => uint(l, i),
        b't' => literal(b, i, b"true", Value::Bool(true)),
        b'f' => literal(b, i, b"false", Value::Bool(false)),
        b'n' => literal(b, i, b"null", Value::Null),
        b'[' => strings(l, i).or_else(|| skip(l, i, 0).map(|end| (Value::Other, end))),
        _ => skip(l, i, 0).map(|end| (Value::Other, end)),
    }
}

fn literal<'a>(b: &[u8], i: usize, word: &[u8], v: Value<'a>) -> Option<(Value<'a>, usize)> {
    b.get(i..i + word.len()).filter(|w| *w == word).map(|_| (v, i + word.len()))
}

/// A non-negative integer; a fraction or exponent after it is left for [`skip`] (`Other`).
fn uint(l: &Line, i: usize) -> Option<(Value<'static>, usize)> {
    let b = l.text.as_bytes();
    let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if matches!(b.get(i + digits), Some(b'.' | b'e' | b'E')) {
        return skip(l, i, 0).map(|end| (Value::Other, end));
    }
    if digits > 1 && b[i] == b'0' {
        return None;
    }
    let n = b[i..i + digits].iter().try_fold(0u64, |n, &c| n.checked_mul(10)?.checked_add(u64::from(c - b'0')))?;
    Some((Value::UInt(n), i + digits))
}

/// An array of strings only; `None` if it holds anything else (or is not valid).
fn strings<'a>(l: &Line<'a>, i: usize) -> Option<(Value<'a>, usize)> {
    let b = l.text.as_bytes();
    let mut at = ws(b, i + 1);
    if b.get(at) != Some(&b']') {
        loop {
            let (_, after) = string(l, at)?;
            at = ws(b, after);
            match b.get(at) {
                Some(b',') => at = ws(b, at + 1),
                Some(b']') => break,
                _ => return None,
            }
        }
    }
    Some((Value::Strs(Strs(&l.text[i..=at])), at + 1))
}

/// Checks the syntax of any value starting at `i` and returns the index after it.
fn skip(l: &Line, i: usize, depth: usize) -> Option<usize> {
    let b = l.text.as_bytes();
    match *b.get(i)? {
        b'"' => l.string_end(i + 1).map(|end| end + 1),
        b'-' | b'0'..=b'9' => number(b, i),
        b't' => literal(b, i, b"true", Value::Null).map(|(_, end)| end),
        b'f' => literal(b, i, b"false", Value::Null).map(|(_, end)| end),
        b'n' => literal(b, i, b"null", Value::Null).map(|(_, end)| end),
        b'[' if depth < MAX_DEPTH => container(l, i, b']', |at| skip(l, at, depth + 1)),
        b'{' if depth < MAX_DEPTH => container(l, i, b'}', |at| {
            let key_end = l.string_end(b.get(at).filter(|c| **c == b'"').map(|_| at + 1)?)?;
            let colon = ws(b, key_end + 1);
            (b.get(colon) == Some(&b':')).then_some(())?;
            skip(l, ws(b, colon + 1), depth + 1)
        }),
        _ => None,
    }
}

/// A bracketed, comma-separated run of elements read by `element`.
fn container(l: &Line, i: usize, close: u8, element: impl Fn(usize) -> Option<usize>) -> Option<usize> {
    let b = l.text.as_bytes();
    let mut at = ws(b, i + 1);
    if b.get(at) == Some(&close) {
        return Some(at + 1);
    }
    loop {
        at = ws(b, element(at)?);
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

    /// Each byte of a string is checked, wherever it falls among the 64-byte blocks and
    /// wherever the text ends (a block read whole, the text's last 64 bytes shifted into
    /// place, a short text copied): a quote there ends the string, a backslash or a
    /// control character anywhere refuses the line.
    #[test]
    fn every_byte_of_a_string_is_checked_wherever_it_falls() {
        for pad in [0, 1, 30, 50, 56, 57, 63, 64, 65, 120] {
            let pad = "p".repeat(pad);
            let line = |string: &str| format!(r#"{{"p":"{pad}","k":"{string}"}}"#);
            for len in 0..80 {
                let plain = "é".repeat(len / 2) + &"a".repeat(len % 2);
                assert_eq!(members(&line(&plain)).unwrap(), [("p", Value::Str(pad.as_str())), ("k", Value::Str(plain.as_str()))], "{len}");
                let open = format!(r#"{{"p":"{pad}","k":"{plain}"#);
                assert_eq!((members(&open), Line::new(&open).string_end(pad.len() + 13)), (None, None), "{open:?} ends inside a string");
                for at in 0..len {
                    let mut bytes = "a".repeat(len).into_bytes();
                    for bad in [b'\\', b'\n', 0x1f, 0] {
                        bytes[at] = bad;
                        let text = line(std::str::from_utf8(&bytes).unwrap());
                        assert_eq!(members(&text), None, "{text:?}");
                    }
                    bytes[at] = b'"';
                    let cut = std::str::from_utf8(&bytes).unwrap();
                    assert_eq!(members(&line(cut)), None, "a quote at {at} of {len} ends the string early");
                    assert_eq!(Line::new(&line(cut)).string_end(pad.len() + 13), Some(pad.len() + 13 + at));
                }
            }
        }
    }

    /// The vector compares flag the bytes the plain definition does.
    #[test]
    fn a_block_flags_quotes_backslashes_and_control_characters() {
        let block: [u8; 64] = std::array::from_fn(|k| [b'a', b'"', b'\\', 0, 0x1f, 0x20, 0x7f, 0x80, 0xff, b'\n'][k % 10]);
        let plain = block.iter().enumerate().fold(0u64, |bits, (k, &c)| bits | u64::from(c == b'"' || c == b'\\' || c < 0x20) << k);
        assert_eq!(specials64(&block), plain);
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
