//! The roster: which mailboxes must be read, by whom, and to whom a finding is routed.
//!
//! Formats: CSV with the header `address,kind,owners,members,manager,org_unit,aliases,exemptions`
//! (multi-valued fields separated by `;`), or JSON Lines with the same field names (lists
//! as JSON arrays, exemptions as objects `{from, to, reason, delegate?}`). In CSV an
//! exemption is `FROM..TO reason text` or `FROM..TO reason text delegate=USER`.
//!
//! | field | meaning |
//! |---|---|
//! | address | the mailbox's primary address |
//! | kind | `individual`, `function` or `authority` |
//! | owners | user ids of the owner(s); the mailbox address itself always counts as owner |
//! | members | standing delegates (individual) or members (function/authority): their reads count |
//! | manager | nearest manager: where a finding is routed |
//! | org_unit | organisational unit, for routing and reports |
//! | aliases | other addresses of the same mailbox |
//! | exemptions | date ranges (inclusive) with a reason; *without* a delegate the duty is lifted (e.g. a union representative whose mail cannot be delegated); *with* a delegate the duty stays and the delegate's reads count (absence alone never lifts it) |
//!
//! Guarantees: a roster is loaded whole or refused with the line and reason of the first
//! problem (a refused *reload* leaves the previous roster in force); it is reloaded on
//! SIGHUP and when its file changes ([`Reloader`]); addresses and user ids are normalised like event addresses. Not guaranteed:
//! that the roster is complete — mailboxes missing from it can be discovered from the
//! stream (see `reading.discover_mailboxes`).

use std::collections::HashMap;
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::event::addr::normalize;

/// Kind of mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailboxKind {
    /// A person's own mailbox.
    #[default]
    Individual,
    /// A function mailbox (registrator, info, …), read by its members.
    Function,
    /// An authority's mailbox, read by its members.
    Authority,
}

/// A period during which the duty is lifted or carried by a delegate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    /// First day (inclusive).
    pub from: NaiveDate,
    /// Last day (inclusive).
    pub to: NaiveDate,
    /// Why.
    pub reason: String,
    /// A colleague given proxy access for the period, if any.
    #[serde(default)]
    pub delegate: Option<String>,
}

impl Exemption {
    fn covers(&self, day: NaiveDate) -> bool {
        self.from <= day && day <= self.to
    }
}

/// One mailbox on the roster.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterEntry {
    /// Primary address.
    pub address: String,
    /// Kind of mailbox.
    #[serde(default)]
    pub kind: MailboxKind,
    /// Owner user ids.
    #[serde(default)]
    pub owners: Vec<String>,
    /// Delegates or members.
    #[serde(default)]
    pub members: Vec<String>,
    /// Nearest manager.
    #[serde(default)]
    pub manager: Option<String>,
    /// Organisational unit.
    #[serde(default)]
    pub org_unit: Option<String>,
    /// Other addresses of this mailbox.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Exemptions.
    #[serde(default)]
    pub exemptions: Vec<Exemption>,
}

/// How a user relates to a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// The owner.
    Owner,
    /// A delegate (standing, from an exemption, or granted by a delegation event).
    Delegate,
    /// A member of a function or authority mailbox.
    Member,
}

impl RosterEntry {
    /// How `user` relates to this mailbox on `day`, if at all.
    pub fn relation(&self, user: &str, day: NaiveDate) -> Option<Relation> {
        if user == self.address || self.owners.iter().any(|o| o == user) {
            Some(Relation::Owner)
        } else if self.members.iter().any(|m| m == user) {
            Some(match self.kind {
                MailboxKind::Individual => Relation::Delegate,
                MailboxKind::Function | MailboxKind::Authority => Relation::Member,
            })
        } else if self.exemptions.iter().any(|e| e.covers(day) && e.delegate.as_deref() == Some(user)) {
            Some(Relation::Delegate)
        } else {
            None
        }
    }

    /// True when an exemption without a delegate lifts the duty on `day`.
    pub fn exempt_on(&self, day: NaiveDate) -> bool {
        self.exemptions.iter().any(|e| e.delegate.is_none() && e.covers(day))
    }

    /// Every user whose reads can count for this mailbox, on some day.
    fn readers(&self) -> impl Iterator<Item = &str> {
        let delegates = self.exemptions.iter().filter_map(|e| e.delegate.as_deref());
        std::iter::once(self.address.as_str())
            .chain(self.owners.iter().map(String::as_str))
            .chain(self.members.iter().map(String::as_str))
            .chain(delegates)
    }

    fn normalized(mut self) -> Self {
        self.address = normalize(&self.address).into();
        for list in [&mut self.owners, &mut self.members, &mut self.aliases] {
            list.iter_mut().for_each(|s| *s = normalize(s).into());
            list.retain(|s| !s.is_empty());
        }
        self.manager = self.manager.map(|m| normalize(&m).to_string()).filter(|m| !m.is_empty());
        for e in &mut self.exemptions {
            e.delegate = e.delegate.take().map(|d| normalize(&d).into());
        }
        self
    }
}

/// A roster problem: where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct RosterError {
    /// The roster file.
    pub file: String,
    /// 1-based line (0 when the file could not be read).
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

/// The loaded roster with its indexes.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    entries: Vec<RosterEntry>,
    /// Address or alias → the entry's position, and whether it is the entry's primary
    /// address (then a lookup answers with the address it was given: the entry itself,
    /// likely not in the cache, is not read).
    by_address: FastMap<Key, (u32, bool)>,
    by_reader: FastMap<Key, Vec<u32>>,
}

/// The roster's indexes are looked up for nearly every event on the routing thread:
/// foldhash instead of SipHash (the roster is the operator's own file, so hash flooding
/// is not a concern). With SipHash, `perf` on a replay found a quarter of the routing
/// thread's time in these lookups.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Bytes of an index key kept in the table's own slot.
const INLINE: usize = 54;

/// An index key (an address), kept in the table's slot when it is short enough — nearly
/// every address is — so that a lookup compares bytes it has already loaded instead of
/// following a pointer to another allocation. With `String` keys, `perf` had that compare
/// (`memcmp` under `Roster::resolve`) at 6–7 % of a replay's samples while it was 0.5 % of
/// its instructions: the keys' cache misses.
#[derive(Debug, Clone)]
enum Key {
    /// The address's length and bytes.
    Inline(u8, [u8; INLINE]),
    /// A longer address.
    Heap(Box<[u8]>),
}

impl Key {
    fn new(address: &str) -> Self {
        let b = address.as_bytes();
        match u8::try_from(b.len()).ok().filter(|&n| usize::from(n) <= INLINE) {
            Some(n) => {
                let mut bytes = [0; INLINE];
                bytes[..b.len()].copy_from_slice(b);
                Key::Inline(n, bytes)
            }
            None => Key::Heap(b.into()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Key::Inline(n, bytes) => &bytes[..usize::from(*n)],
            Key::Heap(b) => b,
        }
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.bytes()
    }
}

// Hash and equality are those of the bytes, as `Borrow` requires.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.bytes().hash(h);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Key {}

impl Roster {
    /// Builds the indexes over the entries.
    pub fn new(entries: Vec<RosterEntry>) -> Self {
        let entries: Vec<_> = entries.into_iter().map(RosterEntry::normalized).collect();
        let mut by_address = FastMap::default();
        let mut by_reader: FastMap<Key, Vec<u32>> = FastMap::default();
        for (i, e) in entries.iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 roster entries");
            for (n, a) in std::iter::once(&e.address).chain(&e.aliases).enumerate() {
                by_address.insert(Key::new(a), (i, n == 0));
            }
            for r in e.readers() {
                let list = by_reader.entry(Key::new(r)).or_default();
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }
        Roster { entries, by_address, by_reader }
    }

    /// Loads a `.csv` or `.jsonl` roster (decided by the extension; `.json` is JSON Lines).
    pub fn load(path: &Path) -> Result<Self, RosterError> {
        let file = path.display().to_string();
        let err = |line, reason: String| RosterError { file: file.clone(), line, reason };
        let text = std::fs::read_to_string(path).map_err(|e| err(0, e.to_string()))?;
        let entries = match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => parse_csv(&text),
            Some("jsonl" | "json" | "ndjson") => parse_jsonl(&text),
            _ => Err((0, "roster must be .csv or .jsonl".into())),
        }
        .map_err(|(line, reason)| err(line, reason))?;
        Ok(Roster::new(entries))
    }

    /// The entry for an address or alias.
    pub fn get(&self, address: &str) -> Option<&RosterEntry> {
        self.by_address.get(address.as_bytes()).map(|&(i, _)| &self.entries[i as usize])
    }

    /// The primary address for an address or alias (the address itself when unknown).
    pub fn canonical<'a>(&'a self, address: &'a str) -> &'a str {
        self.resolve(address).0
    }

    /// The primary address for an address or alias, with its position in
    /// [`Roster::entries`]; the address itself and `None` when it is not on the roster.
    pub fn resolve<'a>(&'a self, address: &'a str) -> (&'a str, Option<u32>) {
        match self.by_address.get(address.as_bytes()) {
            Some(&(i, true)) => (address, Some(i)),
            Some(&(i, false)) => (self.entries[i as usize].address.as_str(), Some(i)),
            None => (address, None),
        }
    }

    /// Mailboxes whose reads `user` may carry (owner, member, delegate on some day).
    pub fn readable_by(&self, user: &str) -> impl Iterator<Item = &RosterEntry> {
        self.readable_at(user).map(|(_, e)| e)
    }

    /// [`Roster::readable_by`], with each entry's position in [`Roster::entries`].
    pub fn readable_at(&self, user: &str) -> impl Iterator<Item = (u32, &RosterEntry)> {
        self.by_reader.get(user.as_bytes()).into_iter().flatten().map(|&i| (i, &self.entries[i as usize]))
    }

    /// Every entry.
    pub fn entries(&self) -> &[RosterEntry] {
        &self.entries
    }
}

/// Watches the roster file: a reload is due after SIGHUP or when the file's modification
/// time changes (checked at most once a second, so the hot path pays nothing).
pub struct Reloader {
    path: std::path::PathBuf,
    hup: std::sync::Arc<std::sync::atomic::AtomicBool>,
    modified: Option<std::time::SystemTime>,
    checked: std::time::Instant,
}

impl Reloader {
    /// Watches `path` and listens for SIGHUP.
    pub fn new(path: std::path::PathBuf) -> std::io::Result<Self> {
        let hup = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
        let modified = modified(&path);
        Ok(Reloader { path, hup, modified, checked: std::time::Instant::now() })
    }

    /// The new roster when a reload is due and the file loads; a file that does not load
    /// is reported and the previous roster stays in force.
    pub fn poll(&mut self) -> Option<Roster> {
        let signalled = self.hup.swap(false, std::sync::atomic::Ordering::Relaxed);
        if !signalled && self.checked.elapsed() < std::time::Duration::from_secs(1) {
            return None;
        }
        self.checked = std::time::Instant::now();
        let now = modified(&self.path);
        if !signalled && now == self.modified {
            return None;
        }
        self.modified = now;
        match Roster::load(&self.path) {
            Ok(r) => {
                tracing::info!(roster = %self.path.display(), mailboxes = r.entries().len(), "roster reloaded");
                Some(r)
            }
            Err(e) => {
                tracing::error!(error = %e, "roster reload refused; the previous roster stays in force");
                None
            }
        }
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn parse_jsonl(text: &str) -> Result<Vec<RosterEntry>, (u64, String)> {
    let lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    lines.map(|(i, l)| serde_json::from_str(l).map_err(|e| (i as u64 + 1, e.to_string()))).collect()
}

const CSV_HEADER: [&str; 8] = ["address", "kind", "owners", "members", "manager", "org_unit", "aliases", "exemptions"];

fn parse_csv(text: &str) -> Result<Vec<RosterEntry>, (u64, String)> {
    let mut rdr = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let header = rdr.headers().map_err(|e| (1, e.to_string()))?;
    if header.iter().ne(CSV_HEADER) {
        return Err((1, format!("header must be exactly {}", CSV_HEADER.join(","))));
    }
    rdr.records().map(|r| csv_entry(r.map_err(|e| (e.position().map_or(0, |p| p.line()), e.to_string()))?)).collect()
}

fn csv_entry(r: csv::StringRecord) -> Result<RosterEntry, (u64, String)> {
    let line = r.position().map_or(0, |p| p.line());
    let field = |i: usize| r.get(i).unwrap_or("").trim();
    let list = |i: usize| field(i).split(';').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    let opt = |i: usize| Some(field(i).to_string()).filter(|s| !s.is_empty());
    let kind = serde_json::from_value(serde_json::Value::String(field(1).to_string()))
        .map_err(|_| (line, format!("kind {:?} is not individual, function or authority", field(1))))?;
    if field(0).is_empty() {
        return Err((line, "address is empty".into()));
    }
    let exemptions = field(7)
        .split(';')
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_exemption(s).map_err(|e| (line, e)))
        .collect::<Result<_, _>>()?;
    Ok(RosterEntry {
        address: field(0).into(),
        kind,
        owners: list(2),
        members: list(3),
        manager: opt(4),
        org_unit: opt(5),
        aliases: list(6),
        exemptions,
    })
}

/// Parses `FROM..TO reason text [delegate=USER]`.
fn parse_exemption(s: &str) -> Result<Exemption, String> {
    let s = s.trim();
    let (range, rest) = s.split_once(' ').unwrap_or((s, ""));
    let (from, to) = range.split_once("..").ok_or_else(|| format!("exemption {s:?} must start with FROM..TO"))?;
    let date = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| format!("{d:?} is not a date YYYY-MM-DD"));
    let (from, to) = (date(from)?, date(to)?);
    if to < from {
        return Err(format!("exemption {s:?} ends before it starts"));
    }
    let (reason, delegate) = match rest.rsplit_once("delegate=") {
        Some((r, d)) => (r.trim(), Some(d.trim().to_string())),
        None => (rest.trim(), None),
    };
    if reason.is_empty() {
        return Err(format!("exemption {s:?} has no reason"));
    }
    Ok(Exemption { from, to, reason: reason.into(), delegate })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "address,kind,owners,members,manager,org_unit,aliases,exemptions\n\
        anna@exempel.se,individual,anna@exempel.se,bo@exempel.se,chef@exempel.se,Socialförvaltningen,a.a@exempel.se,2026-07-01..2026-07-31 semester delegate=cia@exempel.se\n\
        registrator@exempel.se,function,,\"bo@exempel.se;dan@exempel.se\",chef@exempel.se,Kansliet,,\n\
        facklig@exempel.se,individual,,,chef@exempel.se,Kansliet,,2026-01-01..2026-12-31 facklig förtroendevald\n";

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn roster() -> Roster {
        Roster::new(parse_csv(CSV).unwrap())
    }

    /// Index keys are kept in the table up to 54 bytes and elsewhere beyond: addresses on
    /// both sides of that length, and one a byte off, resolve exactly.
    #[test]
    fn long_and_short_addresses_and_aliases_resolve_alike() {
        let long = format!("{}@socialforvaltningen.exempel.se", "a".repeat(30));
        let edge = format!("{}@exempel.se", "e".repeat(INLINE - "@exempel.se".len()));
        let entry = |a: &str, alias: &str, member: &str| RosterEntry { address: a.into(), aliases: vec![alias.into()], members: vec![member.into()], ..RosterEntry::default() };
        let r = Roster::new(vec![entry(&long, &edge, &long), entry("kort@exempel.se", &format!("x{long}"), &edge)]);
        assert!(long.len() > INLINE && edge.len() == INLINE);
        assert_eq!(r.resolve(&long), (long.as_str(), Some(0)));
        assert_eq!(r.resolve(&edge), (long.as_str(), Some(0)));
        assert_eq!(r.resolve(&format!("x{long}")), ("kort@exempel.se", Some(1)));
        assert_eq!(r.resolve(&long[1..]), (&long[1..], None), "a key one byte shorter is another key");
        assert_eq!(r.resolve(&edge[..INLINE - 1]), (&edge[..INLINE - 1], None));
        assert_eq!(r.readable_at(&edge).map(|(p, _)| p).collect::<Vec<_>>(), [1]);
        assert_eq!(r.readable_at(&long).map(|(p, _)| p).collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn standing_delegate_and_leave_delegate_relations() {
        let r = roster();
        let anna = r.get("a.a@exempel.se").unwrap();
        assert_eq!(anna.relation("bo@exempel.se", day("2026-03-02")), Some(Relation::Delegate));
        assert_eq!(anna.relation("cia@exempel.se", day("2026-07-02")), Some(Relation::Delegate));
        assert_eq!(anna.relation("cia@exempel.se", day("2026-08-02")), None);
        assert!(!anna.exempt_on(day("2026-07-02")), "leave with a delegate does not lift the duty");
    }

    #[test]
    fn function_mailbox_members_and_reverse_index() {
        let r = roster();
        let reg = r.get("registrator@exempel.se").unwrap();
        assert_eq!(reg.relation("dan@exempel.se", day("2026-03-02")), Some(Relation::Member));
        let of_bo: Vec<_> = r.readable_by("bo@exempel.se").map(|e| e.address.as_str()).collect();
        assert_eq!(of_bo, ["anna@exempel.se", "registrator@exempel.se"]);
    }

    #[test]
    fn exemption_without_delegate_lifts_the_duty() {
        assert!(roster().get("facklig@exempel.se").unwrap().exempt_on(day("2026-05-05")));
    }

    #[test]
    fn bad_rows_are_refused_with_line() {
        let bad = "address,kind,owners,members,manager,org_unit,aliases,exemptions\nx@e.se,robot,,,,,,\n";
        assert_eq!(parse_csv(bad).unwrap_err().0, 2);
        assert!(parse_exemption("2026-02-01..2026-01-01 x").is_err());
    }
}
