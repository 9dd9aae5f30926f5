//! `brevvakt generate`: a synthetic but realistic normalized event stream for the sample
//! organisation *Exempel kommun* (the built-in default configuration: domain `exempel.se`
//! with internal subdomains such as `skola.exempel.se`, webmail `webmail.exempel.se/owa`,
//! approved encryption `smime`, `pgp`, `gateway:sefos`), with the roster it needs and the
//! ground truth of what the rules must find in it.
//!
//! **The stream** (JSON Lines, every `time` RFC 3339 with the Europe/Stockholm offset,
//! lines in non-decreasing time order) holds all five event types: inbound, outbound and
//! internal `mail.message` traffic (subjects only as `subject_len` or `subject_hash`;
//! some class-1/2 mail with approved encryption, most unclassified); reads as
//! `mailbox.access` (imap, owa, ews, activesync, mapi; a few failed logins, which are not
//! reads) during local working hours 07–17 on required reading days, webmail reads as
//! `proxy.request` to `webmail.exempel.se/owa/…`, and ordinary browsing to other hosts;
//! function and authority mailboxes read by their members; a few mailboxes read by a
//! delegate granted with `mailbox.delegation` at the start; a person on leave whose
//! roster exemption names a delegate who reads meanwhile; a union representative's
//! mailbox exempt for the whole period and never read; occasional reads on weekends and
//! other non-required days; manual forwards (a person mailing their private address),
//! internal forwarding, and a fraction of malformed lines (truncated JSON, invalid UTF-8,
//! a missing `time`, a time without offset, the unknown type `mail.fax`). A malformed line
//! is always an *extra* corrupted copy of the good line just before it, so it never
//! carries the only evidence of anything.
//!
//! **The roster** is CSV with the header
//! `address,kind,owners,members,manager,org_unit,aliases,exemptions` and lists every
//! local mailbox that sends or receives mail.
//!
//! **The truth file** lists exactly the open alerts the rules must raise, one JSON object
//! per line, sorted bytewise: `{"rule":"mailbox_not_read","mailbox":…,"day":…}`,
//! `{"rule":"external_forwarding","mailbox":…,"target":…}` (one per mailbox and target,
//! target lower-cased) and `{"rule":"classified_mail","message_id":…,"level":…}`. On a
//! day a mailbox is planned unread, none of its owners, delegates or members accesses it
//! successfully or requests webmail, and its owner sends nothing. Unread days are planned
//! only on required reading days and never on the stream's last day (whose judgement
//! depends on how far the replay's watermark is declared to reach); every other
//! monitored mailbox is read on every required day.
//!
//! **Determinism:** the same options give byte-identical output, forever. Randomness comes
//! only from the splitmix64 generator defined here (a fixed, published algorithm — not the
//! `rand` crate, whose generators are not promised stable across versions), iteration is
//! over vectors and ordered sets only, and floating-point use is limited to exactly
//! specified IEEE operations.

use std::collections::{BTreeSet, HashSet};
use std::io::{self, BufWriter, Write};

use chrono::{DateTime, Days, NaiveDate, NaiveTime, SecondsFormat, TimeZone, Utc};
use serde::Serialize;

use crate::calendar::{Calendar, TZ};
use crate::event::{
    AccessResult, Action, ConfigState, DelegationChange, Direction, Encryption, EventBody, ForwardingChange, GrantState,
    MailMessage, MailboxAccess, Mechanism, Protocol, ProxyRequest, Text,
};

/// The smallest organisation the generator builds (every scenario needs a few people).
pub const MIN_MAILBOXES: usize = 20;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenOptions {
    /// Mailboxes on the roster, the five function/authority/union mailboxes included.
    pub mailboxes: usize,
    /// Local days to cover, starting with `start`.
    pub days: u32,
    /// Seed: the same options give byte-identical output.
    pub seed: u64,
    /// The first local day.
    pub start: NaiveDate,
    /// Fraction of output lines that are malformed, in `[0, 1)`.
    pub malformed: f64,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            mailboxes: 300,
            days: 7,
            seed: 1,
            // The week of Midsummer Eve (Friday 2026-06-19, not a required reading day).
            start: NaiveDate::from_ymd_opt(2026, 6, 15).expect("a valid constant date"),
            malformed: 0.002,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GenStats {
    /// Well-formed event lines.
    pub events: u64,
    /// Malformed lines.
    pub malformed: u64,
    /// Lines of the truth file (expected open alerts).
    pub violations: u64,
}

/// Writes the event stream, the roster CSV and the ground truth (expected open alerts,
/// JSON Lines). Fails with `InvalidInput` for fewer than [`MIN_MAILBOXES`] mailboxes, zero
/// days, a malformed fraction outside `[0, 1)` or days outside the calendar's years.
pub fn generate(
    opts: &GenOptions,
    events: &mut dyn Write,
    roster: &mut dyn Write,
    truth: &mut dyn Write,
) -> io::Result<GenStats> {
    let days = calendar_days(opts)?;
    let org = Org::new(opts, &days);
    write_roster(&org, roster)?;
    let mut out = Output::new(events, opts);
    for di in 0..days.len() {
        out.write_day(DayGen::new(&org, &days, di, opts.seed).run())?;
    }
    let violations = write_truth(&org, &days, truth)?;
    out.finish(violations)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// One local day of the stream.
#[derive(Debug, Clone, Copy)]
struct CalDay {
    date: NaiveDate,
    required: bool,
}

fn calendar_days(opts: &GenOptions) -> io::Result<Vec<CalDay>> {
    if opts.mailboxes < MIN_MAILBOXES {
        return Err(invalid(format!("at least {MIN_MAILBOXES} mailboxes are needed, got {}", opts.mailboxes)));
    }
    if opts.days == 0 {
        return Err(invalid("at least one day is needed".into()));
    }
    if !(0.0..1.0).contains(&opts.malformed) {
        return Err(invalid(format!("malformed fraction {} is not in [0, 1)", opts.malformed)));
    }
    let calendar = Calendar::swedish();
    (0..opts.days)
        .map(|i| {
            let date = opts.start.checked_add_days(Days::new(i.into())).ok_or_else(|| invalid("date out of range".into()))?;
            let required = calendar.is_required(date).map_err(|e| invalid(e.to_string()))?;
            Ok(CalDay { date, required })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Randomness

/// splitmix64 (Steele, Lea & Flood, 2014): tiny, fast, and fixed forever.
struct Rng(u64);

impl Rng {
    /// An independent stream for `stream` under `seed`.
    fn new(seed: u64, stream: u64) -> Self {
        let mut r = Rng(seed);
        let s = r.next() ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        Rng(s)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below((hi - lo + 1) as usize) as u32
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            xs.swap(i, self.below(i + 1));
        }
    }

    /// Up to `k` distinct elements of `xs`.
    fn sample(&mut self, xs: &[usize], k: usize) -> Vec<usize> {
        let mut v = xs.to_vec();
        self.shuffle(&mut v);
        v.truncate(k);
        v
    }
}

// ---------------------------------------------------------------------------------------
// The organisation and its scenario

const DOMAIN: &str = "exempel.se";
const WEBMAIL_HOST: &str = "webmail.exempel.se";

const FIRST: [&str; 40] = [
    "anna", "erik", "maria", "lars", "karin", "anders", "eva", "johan", "sara", "per", "lena", "mikael", "emma", "karl",
    "ingrid", "nils", "sofia", "olof", "elin", "gustav", "frida", "magnus", "hanna", "peter", "linnea", "jonas", "ida",
    "fredrik", "malin", "henrik", "ulla", "stefan", "maja", "oskar", "kerstin", "david", "elsa", "hugo", "astrid", "axel",
];
const LAST: [&str; 40] = [
    "andersson", "johansson", "karlsson", "nilsson", "eriksson", "larsson", "olsson", "persson", "svensson",
    "gustafsson", "pettersson", "jonsson", "jansson", "hansson", "bengtsson", "lindberg", "lindqvist", "lindgren",
    "berg", "axelsson", "lundberg", "lundgren", "mattsson", "berglund", "fredriksson", "sandberg", "henriksson",
    "forsberg", "sjoberg", "wallin", "engstrom", "eklund", "danielsson", "lundin", "hakansson", "bjork", "bergstrom",
    "soderberg", "nyberg", "holm",
];

/// Organisational units; persons 1–4 head units 1–4, person 0 heads unit 0 and everyone.
const UNITS: [&str; 6] = [
    "Kommunstyrelseförvaltningen",
    "Socialförvaltningen",
    "Barn- och utbildningsförvaltningen",
    "Miljö- och byggförvaltningen",
    "Kultur- och fritidsförvaltningen",
    "Överförmyndarenheten",
];
/// Per staffed unit: the subdomain part of its staff is on, and how large a part.
const SUBDOMAINS: [Option<(&str, f64)>; 5] =
    [None, Some(("socialtjanst.exempel.se", 0.5)), Some(("skola.exempel.se", 0.6)), None, None];

/// Function and authority mailboxes: local part, kind, unit, number of members.
const SHARED: [(&str, Kind, usize, usize); 4] = [
    ("registrator", Kind::Function, 0, 3),
    ("info", Kind::Function, 0, 2),
    ("kundtjanst", Kind::Function, 3, 3),
    ("overformyndare", Kind::Authority, 5, 2),
];
const UNION_MAILBOX: &str = "fackligt.ombud";
/// Mailboxes that are not a person's own: the shared ones plus the union mailbox.
const NOT_PERSONAL: usize = SHARED.len() + 1;

const PRIVATE_DOMAINS: [&str; 6] = ["gmail.com", "hotmail.com", "outlook.com", "yahoo.se", "icloud.com", "telia.com"];
const PARTNER_DOMAINS: [&str; 8] = [
    "skatteverket.se", "forsakringskassan.se", "lansstyrelsen.se", "regionen.se", "leverantor.se", "bygg-ab.se",
    "konsultbolaget.se", "grannkommun.se",
];
const PARTNER_ROLES: [&str; 6] = ["info", "registrator", "kundservice", "noreply", "handlaggare", "faktura"];
const OTHER_HOSTS: [&str; 8] = [
    "www.google.se", "intranet.exempel.se", "www.skatteverket.se", "login.microsoftonline.com", "www.dn.se",
    "cdn.jsdelivr.net", "www.riksdagen.se", "teams.microsoft.com",
];
const OTHER_PATHS: [&str; 6] = ["/", "/search", "/nyheter/2026/06", "/api/v1/status", "/favicon.ico", "/sok"];
const WEBMAIL_PATHS: [&str; 3] = ["/owa/", "/owa/service.svc", "/owa/attachment.ashx"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Individual,
    Function,
    Authority,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Individual => "individual",
            Kind::Function => "function",
            Kind::Authority => "authority",
        }
    }
}

/// How a person reads their own mail.
#[derive(Debug, Clone, Copy)]
enum Style {
    /// A mail client only.
    Client(Protocol),
    /// Outlook on the web only (seen in the proxy log).
    Webmail,
    /// A client and sometimes webmail.
    Both(Protocol),
}

struct Person {
    address: String,
    first: &'static str,
    last: &'static str,
    style: Style,
    /// Day indices on which the person does nothing (leave, away with a delegate).
    absent: Vec<usize>,
}

struct Exemption {
    from: NaiveDate,
    to: NaiveDate,
    reason: &'static str,
    delegate: Option<usize>,
}

struct Mailbox {
    address: String,
    kind: Kind,
    /// The owning person (a person's own mailbox).
    owner: Option<usize>,
    /// Standing delegates (individual) or members (function/authority).
    members: Vec<usize>,
    manager: Option<usize>,
    unit: usize,
    alias: Option<String>,
    exemption: Option<Exemption>,
    /// A delegate granted by a `mailbox.delegation` event on the first day.
    granted: Option<usize>,
}

/// A forwarding configuration change to emit.
struct ConfigForward {
    mailbox: usize,
    day: usize,
    mechanism: Mechanism,
    target: String,
    keep_copy: bool,
    external: bool,
}

/// Messages the server re-addressed from a mailbox to targets.
struct Flow {
    mailbox: usize,
    day: usize,
    action: Action,
    targets: Vec<String>,
    messages: u32,
    external: bool,
}

/// A classified message that breaks the rule.
struct Classified {
    sender: usize,
    day: usize,
    level: u8,
    encryption: Encryption,
    recipient: String,
    message_id: String,
}

/// A person mailing their own private address (not a violation).
struct ManualForward {
    sender: usize,
    day: usize,
}

struct Org {
    people: Vec<Person>,
    /// `mailboxes[i]` is person `i`'s own for `i < people.len()`, then the shared ones.
    mailboxes: Vec<Mailbox>,
    /// (day, mailbox) pairs planned unread.
    not_read: BTreeSet<(usize, usize)>,
    /// (day, person): related to a mailbox planned unread that day, so no webmail.
    quiet: HashSet<(usize, usize)>,
    forwards: Vec<ConfigForward>,
    flows: Vec<Flow>,
    classified: Vec<Classified>,
    manual: Vec<ManualForward>,
}

impl Org {
    fn new(opts: &GenOptions, days: &[CalDay]) -> Org {
        let mut rng = Rng::new(opts.seed, 0);
        let people_count = opts.mailboxes - NOT_PERSONAL;
        let (people, mailboxes) = people(&mut rng, people_count);
        let mut pool: Vec<usize> = (0..people_count).collect();
        rng.shuffle(&mut pool);
        let mut org = Org {
            people,
            mailboxes,
            not_read: BTreeSet::new(),
            quiet: HashSet::new(),
            forwards: Vec::new(),
            flows: Vec::new(),
            classified: Vec::new(),
            manual: Vec::new(),
        };
        org.absences(&mut rng, &mut pool, days);
        org.mailboxes.extend(shared_mailboxes(&mut rng, &pool, days));
        org.standing_delegate(&mut rng, &pool);
        org.plan_unread(&mut rng, &pool, days, opts.mailboxes);
        let active: Vec<usize> = pool.iter().copied().filter(|p| !org.not_read.iter().any(|(_, m)| m == p)).collect();
        org.plan_violations(&mut rng, active, days, opts.mailboxes);
        org
    }

    /// Takes the person on leave (days 2–4, a delegate in the roster exemption) and the
    /// persons away on a few required days (a delegate granted by event) out of the pool.
    fn absences(&mut self, rng: &mut Rng, pool: &mut Vec<usize>, days: &[CalDay]) {
        let grants = (pool.len() / 75).max(2);
        let special: Vec<usize> = pool.split_off(pool.len() - 1 - grants);
        let start = days[0].date;
        let (leave, away) = (special[0], &special[1..]);
        let delegate = *rng.pick(pool);
        self.mailboxes[leave].exemption = Some(Exemption {
            from: start + Days::new(1),
            to: start + Days::new(3),
            reason: "Föräldraledig",
            delegate: Some(delegate),
        });
        self.people[leave].absent = (1..=3).filter(|&d| d < days.len()).collect();
        let required: Vec<usize> = (0..days.len()).filter(|&d| days[d].required).collect();
        for &p in away {
            self.mailboxes[p].granted = Some(*rng.pick(pool));
            let count = rng.range(1, 2) as usize;
            let mut absent = rng.sample(&required, count);
            absent.sort_unstable();
            self.people[p].absent = absent;
        }
    }

    /// The head of the organisation has a standing delegate (an assistant).
    fn standing_delegate(&mut self, rng: &mut Rng, pool: &[usize]) {
        let assistants: Vec<usize> = pool.iter().copied().filter(|&p| p != 0).collect();
        self.mailboxes[0].members.push(*rng.pick(&assistants));
    }

    /// Persons whose reads count for mailbox `mb`.
    fn readers(&self, mb: usize) -> impl Iterator<Item = usize> + '_ {
        let m = &self.mailboxes[mb];
        let delegate = m.exemption.as_ref().and_then(|e| e.delegate);
        m.owner.into_iter().chain(m.members.iter().copied()).chain(delegate).chain(m.granted)
    }

    /// Plans the (day, mailbox) pairs nobody reads (about 1 % of the judged mailbox-days):
    /// first a shared mailbox, then any ordinary one; never on the last day or a day that
    /// is not required.
    fn plan_unread(&mut self, rng: &mut Rng, pool: &[usize], days: &[CalDay], n: usize) {
        let eligible: Vec<usize> = (0..days.len() - 1).filter(|&d| days[d].required).collect();
        if eligible.is_empty() {
            return;
        }
        let shared: Vec<usize> = (self.people.len()..self.people.len() + SHARED.len()).collect();
        let candidates: Vec<usize> = pool.iter().copied().chain(shared.iter().copied()).collect();
        let wanted = (n * eligible.len() / 100).max(2);
        self.not_read.insert((*rng.pick(&eligible), *rng.pick(&shared)));
        for _ in 0..wanted * 50 {
            if self.not_read.len() >= wanted {
                break;
            }
            self.not_read.insert((*rng.pick(&eligible), *rng.pick(&candidates)));
        }
        let quiet: Vec<(usize, usize)> =
            self.not_read.iter().flat_map(|&(d, mb)| self.readers(mb).map(move |p| (d, p))).collect();
        self.quiet.extend(quiet);
    }

    /// Plans forwarding (configured and seen in mail flow), classified mail and manual
    /// forwards, each mailbox from `active` (people who are present every day).
    fn plan_violations(&mut self, rng: &mut Rng, mut active: Vec<usize>, days: &[CalDay], n: usize) {
        rng.shuffle(&mut active);
        let mut next = active.iter().copied();
        let all_days: Vec<usize> = (0..days.len()).collect();
        let required: Vec<usize> = all_days.iter().copied().filter(|&d| days[d].required).collect();
        let work_days = if required.is_empty() { &all_days } else { &required };
        for (i, mb) in next.by_ref().take((n / 50).max(3)).enumerate() {
            let target = self.private_target(rng, mb, i);
            let mechanism = match i {
                0 => Mechanism::SieveRedirect,
                _ if i % 2 == 1 => Mechanism::InboxRule,
                _ => Mechanism::MailboxForwarding,
            };
            let (day, keep_copy) = (*rng.pick(&all_days), rng.chance(0.5));
            self.forwards.push(ConfigForward { mailbox: mb, day, mechanism, target, keep_copy, external: true });
        }
        let colleagues = self.subdomain_people();
        for mb in next.by_ref().take((n / 100).max(1)) {
            let target = capitalize(&self.people[colleague(rng, &colleagues, mb)].address);
            let day = *rng.pick(&all_days);
            let mechanism = Mechanism::InboxRule;
            self.forwards.push(ConfigForward { mailbox: mb, day, mechanism, target, keep_copy: true, external: false });
        }
        for (i, mb) in next.by_ref().take((n / 50).max(3)).enumerate() {
            let p = &self.people[mb];
            let mut targets = vec![format!("{}.{}.hemma@{}", p.first, p.last, PRIVATE_DOMAINS[(i + 3) % 6])];
            if i == 0 {
                targets.push(format!("{}{}@telia.com", p.first, rng.range(10, 99)));
            }
            let action = [Action::Redirect, Action::Forward, Action::Expand][i % 3];
            let (day, messages) = (*rng.pick(&all_days), rng.range(2, 6));
            self.flows.push(Flow { mailbox: mb, day, action, targets, messages, external: true });
        }
        for mb in next.by_ref().take((n / 150).max(1)) {
            let targets = vec![self.people[colleague(rng, &colleagues, mb)].address.clone()];
            let (day, messages) = (*rng.pick(&all_days), rng.range(1, 3));
            self.flows.push(Flow { mailbox: mb, day, action: Action::Forward, targets, messages, external: false });
        }
        for sender in next.take((n / 50).max(2)) {
            self.manual.push(ManualForward { sender, day: *rng.pick(work_days) });
        }
        self.plan_classified(rng, &active, work_days, n);
    }

    fn plan_classified(&mut self, rng: &mut Rng, active: &[usize], work_days: &[usize], n: usize) {
        let class2 = (0..(n / 50).max(3)).map(|i| (2, if i % 2 == 0 { Encryption::None } else { Encryption::Tls }));
        let class3 = (0..(n / 100).max(2)).map(|i| (3, if i % 2 == 0 { Encryption::Smime } else { Encryption::None }));
        for (i, (level, encryption)) in class2.chain(class3).enumerate() {
            let recipient = format!("{}@{}", rng.pick(&PARTNER_ROLES), rng.pick(&PARTNER_DOMAINS));
            let message_id = format!("{:016X}.k{i}@exch01.{DOMAIN}", rng.next());
            let (sender, day) = (*rng.pick(active), *rng.pick(work_days));
            self.classified.push(Classified { sender, day, level, encryption, recipient, message_id });
        }
    }

    /// An external private address for person `p`, in one of a few styles (some mixed case).
    fn private_target(&self, rng: &mut Rng, p: usize, i: usize) -> String {
        let Person { first, last, .. } = self.people[p];
        match i % 4 {
            0 => format!("{first}.privat@gmail.com"),
            1 => format!("{first}{}{}@hotmail.com", &last[..1], rng.range(10, 99)),
            2 => format!("{}.{}@GMail.com", capitalize(first), capitalize(last)),
            _ => format!("{first}.{last}@outlook.com"),
        }
    }

    /// People on an internal subdomain (everyone when there are fewer than two).
    fn subdomain_people(&self) -> Vec<usize> {
        let on_sub: Vec<usize> = (0..self.people.len()).filter(|&p| !self.people[p].address.ends_with("@exempel.se")).collect();
        if on_sub.len() < 2 {
            (0..self.people.len()).collect()
        } else {
            on_sub
        }
    }

    fn absent(&self, day: usize, p: usize) -> bool {
        self.people[p].absent.contains(&day)
    }

    /// Whether mailbox `mb`'s owner is present and reads it on `day`.
    fn active(&self, day: usize, mb: usize) -> bool {
        !self.not_read.contains(&(day, mb)) && !self.mailboxes[mb].owner.is_some_and(|p| self.absent(day, p))
    }
}

/// Someone from `colleagues` other than `p` (`colleagues` has at least two people).
fn colleague(rng: &mut Rng, colleagues: &[usize], p: usize) -> usize {
    let c = *rng.pick(colleagues);
    if c == p {
        colleagues[(colleagues.iter().position(|&x| x == p).unwrap_or(0) + 1) % colleagues.len()]
    } else {
        c
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// The people and their own mailboxes.
fn people(rng: &mut Rng, n: usize) -> (Vec<Person>, Vec<Mailbox>) {
    let mut taken = HashSet::new();
    let mut people = Vec::with_capacity(n);
    let mut mailboxes = Vec::with_capacity(n + NOT_PERSONAL);
    for i in 0..n {
        let unit = if i < 5 { i } else { random_unit(rng) };
        let (first, last) = (*rng.pick(&FIRST), *rng.pick(&LAST));
        let domain = match SUBDOMAINS[unit] {
            Some((sub, share)) if i >= 5 && rng.chance(share) => sub,
            _ => DOMAIN,
        };
        let address = unique(&mut taken, &format!("{first}.{last}"), domain);
        let short = format!("{}.{last}", &first[..1]);
        let alias = (rng.chance(0.3) && taken.insert(short.clone())).then(|| format!("{short}@{DOMAIN}"));
        let manager = match i {
            0 => None,
            1..=4 => Some(0),
            _ => Some(unit),
        };
        let style = match rng.unit() {
            x if x < 0.60 => Style::Client(Protocol::Mapi),
            x if x < 0.65 => Style::Client(Protocol::Imap),
            x if x < 0.70 => Style::Client(Protocol::Ews),
            x if x < 0.85 => Style::Webmail,
            _ => Style::Both(Protocol::Mapi),
        };
        people.push(Person { address: address.clone(), first, last, style, absent: Vec::new() });
        let (members, exemption, granted) = (Vec::new(), None, None);
        let kind = Kind::Individual;
        mailboxes.push(Mailbox { address, kind, owner: Some(i), members, manager, unit, alias, exemption, granted });
    }
    (people, mailboxes)
}

fn random_unit(rng: &mut Rng) -> usize {
    match rng.unit() {
        x if x < 0.15 => 0,
        x if x < 0.45 => 1,
        x if x < 0.75 => 2,
        x if x < 0.88 => 3,
        _ => 4,
    }
}

/// `base@domain`, or `base2@domain`, `base3@domain`, … when the local part is taken on
/// any domain (`taken` holds local parts).
fn unique(taken: &mut HashSet<String>, base: &str, domain: &str) -> String {
    let mut local = base.to_string();
    let mut k = 2;
    while !taken.insert(local.clone()) {
        local = format!("{base}{k}");
        k += 1;
    }
    format!("{local}@{domain}")
}

/// The function and authority mailboxes (members from `pool`) and the union mailbox,
/// exempt for the whole period.
fn shared_mailboxes(rng: &mut Rng, pool: &[usize], days: &[CalDay]) -> Vec<Mailbox> {
    let mut out: Vec<Mailbox> = SHARED
        .iter()
        .map(|&(local, kind, unit, members)| Mailbox {
            address: format!("{local}@{DOMAIN}"),
            kind,
            owner: None,
            members: rng.sample(pool, members),
            manager: Some(if unit < 5 { unit } else { 0 }),
            unit,
            alias: None,
            exemption: None,
            granted: None,
        })
        .collect();
    let (first, last) = (days[0].date, days[days.len() - 1].date);
    out.push(Mailbox {
        address: format!("{UNION_MAILBOX}@{DOMAIN}"),
        kind: Kind::Individual,
        owner: None,
        members: Vec::new(),
        manager: Some(0),
        unit: 0,
        alias: None,
        exemption: Some(Exemption { from: first, to: last, reason: "Fackligt uppdrag", delegate: None }),
        granted: None,
    });
    out
}

// ---------------------------------------------------------------------------------------
// One day's events

struct DayGen<'a> {
    org: &'a Org,
    day: usize,
    date: NaiveDate,
    required: bool,
    rng: Rng,
    events: Vec<(DateTime<Utc>, EventBody)>,
}

impl<'a> DayGen<'a> {
    fn new(org: &'a Org, days: &[CalDay], day: usize, seed: u64) -> Self {
        let CalDay { date, required } = days[day];
        DayGen { org, day, date, required, rng: Rng::new(seed, day as u64 + 1), events: Vec::new() }
    }

    /// The day's events, in the order generated (the writer sorts them by time).
    fn run(mut self) -> Vec<(DateTime<Utc>, EventBody)> {
        if self.day == 0 {
            self.grants();
        }
        for p in 0..self.org.people.len() {
            self.personal_mail(p);
            self.own_reads(p);
            self.stand_in_reads(p);
            self.browsing(p);
        }
        for mb in self.org.people.len()..self.org.mailboxes.len() {
            self.shared_mail(mb);
            self.shared_reads(mb);
        }
        self.planned();
        self.events
    }

    // --- time

    /// The instant `secs` after local midnight (only 05:00–24:00 is used, so the DST gap
    /// at 02:00–03:00 is never hit).
    fn at(&self, secs: u32) -> DateTime<Utc> {
        let local = self.date.and_time(NaiveTime::from_num_seconds_from_midnight_opt(secs, 0).unwrap_or_default());
        TZ.from_local_datetime(&local).earliest().map_or_else(|| Utc.from_utc_datetime(&local), |t| t.with_timezone(&Utc))
    }

    fn work_time(&mut self) -> u32 {
        self.rng.range(7 * 3600, 17 * 3600 - 1)
    }

    fn any_time(&mut self) -> u32 {
        self.rng.range(5 * 3600, 24 * 3600 - 1)
    }

    fn push(&mut self, secs: u32, body: EventBody) {
        let t = self.at(secs);
        self.events.push((t, body));
    }

    // --- mail

    fn address(&self, mb: usize) -> String {
        self.org.mailboxes[mb].address.clone()
    }

    fn external(&mut self) -> String {
        if self.rng.chance(0.5) {
            let (f, l, n) = (*self.rng.pick(&FIRST), *self.rng.pick(&LAST), self.rng.below(100));
            format!("{f}.{l}{n}@{}", self.rng.pick(&PRIVATE_DOMAINS))
        } else {
            format!("{}@{}", self.rng.pick(&PARTNER_ROLES), self.rng.pick(&PARTNER_DOMAINS))
        }
    }

    /// An unclassified message with transport-typical encryption; `sender` decides the
    /// Message-ID's host.
    fn message(&mut self, sender: String, recipients: Vec<String>, direction: Direction, action: Action) -> MailMessage {
        let host = sender.rsplit_once('@').map_or(DOMAIN, |(_, d)| d);
        let message_id = format!("{:016X}.{}.{}@{host}", self.rng.next(), self.day, self.events.len());
        let server = match direction {
            Direction::Inbound => ["mx1.exempel.se", "mx2.exempel.se"][self.rng.below(2)],
            _ => ["exch01.exempel.se", "exch02.exempel.se"][self.rng.below(2)],
        };
        let (subject_len, subject_hash) = match self.rng.chance(0.5) {
            true => (Some(self.rng.range(3, 90)), None),
            false => (None, Some(format!("{:016x}", self.rng.next()))),
        };
        let encryption = match direction != Direction::Internal && self.rng.chance(0.7) {
            true => Encryption::Tls,
            false => Encryption::None,
        };
        MailMessage {
            message_id: message_id.into(),
            sender: sender.into(),
            recipients: recipients.into_iter().map(Text::from).collect(),
            direction,
            action,
            original_recipient: None,
            server: Some(server.into()),
            subject_len,
            subject_hash: subject_hash.map(Text::from),
            classification: None,
            encryption,
        }
    }

    /// Ordinary traffic: mostly unclassified, some class 0, some class 1–2 with approved
    /// encryption (never a violation).
    fn ordinary(&mut self, secs: u32, sender: String, recipients: Vec<String>, direction: Direction) {
        let action = if direction == Direction::Outbound { Action::Relay } else { Action::Deliver };
        let mut m = self.message(sender, recipients, direction, action);
        match self.rng.unit() {
            x if x < 0.04 => {
                m.classification = Some(1 + self.rng.below(2) as u8);
                m.encryption = match self.rng.below(3) {
                    0 => Encryption::Smime,
                    1 => Encryption::Pgp,
                    _ => Encryption::Gateway("sefos".into()),
                };
            }
            x if x < 0.08 => m.classification = Some(0),
            _ => {}
        }
        self.push(secs, EventBody::Message(m));
    }

    fn inbound(&mut self, mb: usize) {
        let (secs, sender, to) = (self.any_time(), self.external(), self.address(mb));
        self.ordinary(secs, sender, vec![to], Direction::Inbound);
    }

    /// Working hours on required days, any waking hour otherwise.
    fn activity_time(&mut self) -> u32 {
        if self.required {
            self.work_time()
        } else {
            self.any_time()
        }
    }

    fn personal_mail(&mut self, p: usize) {
        for _ in 0..if self.required { self.rng.range(2, 6) } else { self.rng.range(0, 1) } {
            self.inbound(p);
        }
        if !self.org.active(self.day, p) {
            return;
        }
        let (internal, outbound) = match self.required {
            true => (self.rng.range(0, 3), self.rng.range(0, 2)),
            false => (u32::from(self.rng.chance(0.1)), 0),
        };
        for _ in 0..internal {
            let secs = self.activity_time();
            let recipients = self.colleagues(p);
            self.ordinary(secs, self.address(p), recipients, Direction::Internal);
        }
        for _ in 0..outbound {
            let (secs, to) = (self.activity_time(), self.external());
            self.ordinary(secs, self.address(p), vec![to], Direction::Outbound);
        }
    }

    /// One to three other mailboxes (people or shared ones).
    fn colleagues(&mut self, except: usize) -> Vec<String> {
        let total = self.org.mailboxes.len();
        let mut picked: Vec<usize> = Vec::new();
        for _ in 0..self.rng.range(1, 3) {
            let mb = (except + 1 + self.rng.below(total - 1)) % total;
            if !picked.contains(&mb) {
                picked.push(mb);
            }
        }
        picked.into_iter().map(|mb| self.address(mb)).collect()
    }

    fn shared_mail(&mut self, mb: usize) {
        // Among the mailboxes that are not a person's own, only the union one is individual.
        let is_union = self.org.mailboxes[mb].kind == Kind::Individual;
        let inbound = match (self.required, is_union) {
            (true, false) => self.rng.range(3, 10),
            _ => self.rng.range(0, 2),
        };
        for _ in 0..inbound {
            self.inbound(mb);
        }
        if is_union || !self.required || !self.org.active(self.day, mb) {
            return;
        }
        for _ in 0..self.rng.range(0, 3) {
            let (secs, to) = (self.work_time(), self.external());
            self.ordinary(secs, self.address(mb), vec![to], Direction::Outbound);
        }
    }

    // --- reads

    /// A successful access (now and then after a failed one) at a working-hours time.
    fn access(&mut self, mb: usize, user: usize, protocol: Protocol) {
        let secs = self.work_time();
        if self.rng.chance(0.04) {
            self.failed_access(secs.saturating_sub(40), mb, user, protocol);
        }
        let (mailbox, user) = (self.address(mb), self.org.people[user].address.clone());
        self.push(secs, EventBody::Access(MailboxAccess { mailbox: mailbox.into(), user: user.into(), protocol, result: AccessResult::Success }));
    }

    fn failed_access(&mut self, secs: u32, mb: usize, user: usize, protocol: Protocol) {
        let (mailbox, user) = (self.address(mb), self.org.people[user].address.clone());
        self.push(secs, EventBody::Access(MailboxAccess { mailbox: mailbox.into(), user: user.into(), protocol, result: AccessResult::Failure }));
    }

    /// A few webmail requests within minutes, by `user`.
    fn webmail(&mut self, user: usize) {
        let mut secs = self.work_time();
        for _ in 0..self.rng.range(2, 5) {
            let path = (*self.rng.pick(&WEBMAIL_PATHS)).to_string();
            let user = Some(self.org.people[user].address.as_str().into());
            let req = ProxyRequest { user, host: WEBMAIL_HOST.into(), path: path.into(), method: "GET".into(), status: 200 };
            self.push(secs, EventBody::Proxy(req));
            secs = (secs + self.rng.range(5, 120)).min(17 * 3600 - 1);
        }
    }

    /// Person `p` reads their own mailbox (a quiet person avoids webmail).
    fn own_reads(&mut self, p: usize) {
        if self.org.absent(self.day, p) {
            return;
        }
        if self.org.not_read.contains(&(self.day, p)) {
            if self.rng.chance(0.4) {
                let secs = self.work_time();
                self.failed_access(secs, p, p, Protocol::Mapi);
            }
            return;
        }
        let sessions = match self.required {
            true => self.rng.range(1, 3),
            false => u32::from(self.rng.chance(0.1)),
        };
        let webmail_ok = !self.org.quiet.contains(&(self.day, p));
        for _ in 0..sessions {
            match self.org.people[p].style {
                Style::Client(protocol) => self.access(p, p, protocol),
                Style::Webmail if webmail_ok => self.webmail(p),
                Style::Webmail => self.access(p, p, Protocol::Owa),
                Style::Both(_) if webmail_ok && self.rng.chance(0.5) => self.webmail(p),
                Style::Both(protocol) => self.access(p, p, protocol),
            }
        }
        if sessions > 0 && !matches!(self.org.people[p].style, Style::Webmail) && self.rng.chance(0.3) {
            self.access(p, p, Protocol::Activesync);
        }
    }

    /// The leave delegate or granted delegate reads the mailbox of an absent owner.
    fn stand_in_reads(&mut self, mb: usize) {
        let m = &self.org.mailboxes[mb];
        if !self.required || !m.owner.is_some_and(|p| self.org.absent(self.day, p)) {
            return;
        }
        let by_exemption = m.exemption.as_ref().filter(|e| e.from <= self.date && self.date <= e.to).and_then(|e| e.delegate);
        if let Some(delegate) = by_exemption.or(m.granted) {
            for _ in 0..self.rng.range(1, 2) {
                let protocol = *self.rng.pick(&[Protocol::Mapi, Protocol::Owa]);
                self.access(mb, delegate, protocol);
            }
        }
    }

    /// A member reads a function or authority mailbox (the union mailbox is never read).
    fn shared_reads(&mut self, mb: usize) {
        let members = &self.org.mailboxes[mb].members;
        if members.is_empty() {
            return;
        }
        let member = *self.rng.pick(members);
        let sessions = match (self.org.not_read.contains(&(self.day, mb)), self.required) {
            (true, _) => {
                if self.rng.chance(0.4) {
                    let secs = self.work_time();
                    self.failed_access(secs, mb, member, Protocol::Owa);
                }
                0
            }
            (false, true) => self.rng.range(1, 3),
            (false, false) => u32::from(self.rng.chance(0.15)),
        };
        for _ in 0..sessions {
            let protocol = *self.rng.pick(&[Protocol::Mapi, Protocol::Owa, Protocol::Ews]);
            self.access(mb, member, protocol);
        }
    }

    /// Ordinary web traffic to hosts other than webmail (never a read).
    fn browsing(&mut self, p: usize) {
        if self.org.absent(self.day, p) {
            return;
        }
        let n = if self.required { self.rng.range(1, 4) } else { u32::from(self.rng.chance(0.1)) };
        for _ in 0..n {
            let secs = self.activity_time();
            let user = self.rng.chance(0.85).then(|| self.org.people[p].address.clone());
            let host = (*self.rng.pick(&OTHER_HOSTS)).to_string();
            let path = (*self.rng.pick(&OTHER_PATHS)).to_string();
            let method = if self.rng.chance(0.85) { "GET" } else { "POST" }.to_string();
            let status = *self.rng.pick(&[200, 200, 200, 304, 302, 404]);
            self.push(secs, EventBody::Proxy(ProxyRequest { user: user.map(Text::from), host: host.into(), path: path.into(), method: method.into(), status }));
        }
    }

    // --- the planned scenario

    /// Delegations granted at the start of the stream.
    fn grants(&mut self) {
        let granted: Vec<(usize, usize)> =
            (0..self.org.mailboxes.len()).filter_map(|mb| self.org.mailboxes[mb].granted.map(|d| (mb, d))).collect();
        for (i, (mb, delegate)) in granted.into_iter().enumerate() {
            let (mailbox, delegate) = (self.address(mb), self.org.people[delegate].address.clone());
            let actor = Some(mailbox.clone());
            let change = DelegationChange { mailbox: mailbox.into(), delegate: delegate.into(), state: GrantState::Granted, actor: actor.map(Text::from) };
            self.push(6 * 3600 + 7 * i as u32, EventBody::Delegation(change));
        }
    }

    fn planned(&mut self) {
        let (org, day) = (self.org, self.day);
        for f in org.forwards.iter().filter(|f| f.day == day) {
            self.forwarding(f);
        }
        for f in org.flows.iter().filter(|f| f.day == day) {
            self.flow(f);
        }
        for c in org.classified.iter().filter(|c| c.day == day) {
            self.classified(c);
        }
        for m in org.manual.iter().filter(|m| m.day == day) {
            let p = &org.people[m.sender];
            let (secs, private) = (self.activity_time(), format!("{}.{}@gmail.com", p.first, p.last));
            let msg = self.message(p.address.clone(), vec![private], Direction::Outbound, Action::Relay);
            self.push(secs, EventBody::Message(msg));
        }
    }

    fn forwarding(&mut self, f: &ConfigForward) {
        let (secs, mailbox) = (self.work_time(), self.address(f.mailbox));
        let rule = match f.mechanism {
            Mechanism::InboxRule => Some("Vidarebefordra allt".to_string()),
            Mechanism::SieveRedirect => Some("redirect".to_string()),
            _ => None,
        };
        let change = ForwardingChange {
            mailbox: Some(mailbox.as_str().into()),
            actor: Some(mailbox.into()),
            mechanism: f.mechanism,
            rule: rule.map(Text::from),
            targets: smallvec::smallvec![f.target.as_str().into()],
            keep_copy: Some(f.keep_copy),
            state: ConfigState::Enabled,
        };
        self.push(secs, EventBody::Forwarding(change));
    }

    /// Messages for the mailbox, re-addressed by the server within a few hours; a forward
    /// keeps a copy, so the delivery is logged too.
    fn flow(&mut self, f: &Flow) {
        let mut secs = self.rng.range(7 * 3600, 15 * 3600);
        // A re-addressed hop from an external sender: out again, or in to a colleague.
        let direction = if f.external { Direction::Outbound } else { Direction::Inbound };
        for k in 0..f.messages as usize {
            let (sender, mailbox) = (self.external(), self.address(f.mailbox));
            let target = f.targets[k % f.targets.len()].clone();
            let mut m = self.message(sender, vec![target], direction, f.action);
            m.original_recipient = Some(mailbox.as_str().into());
            if f.action == Action::Forward {
                let mut delivered = m.clone();
                (delivered.recipients, delivered.direction, delivered.action) = (smallvec::smallvec![mailbox.into()], Direction::Inbound, Action::Deliver);
                delivered.original_recipient = None;
                self.push(secs, EventBody::Message(delivered));
            }
            self.push(secs + 1, EventBody::Message(m));
            secs += self.rng.range(300, 2400);
        }
    }

    fn classified(&mut self, c: &Classified) {
        let (secs, sender) = (self.work_time(), self.address(c.sender));
        let mut m = self.message(sender, vec![c.recipient.clone()], Direction::Outbound, Action::Relay);
        m.message_id = c.message_id.as_str().into();
        m.classification = Some(c.level);
        m.encryption = c.encryption.clone();
        self.push(secs, EventBody::Message(m));
    }
}

// ---------------------------------------------------------------------------------------
// Output

/// Writes event lines, mixing in malformed copies at the requested rate.
struct Output<'w> {
    w: BufWriter<&'w mut dyn Write>,
    rng: Rng,
    /// Malformed lines per good line: f / (1 − f), so they are f of all lines.
    ratio: f64,
    owed: f64,
    stats: GenStats,
}

impl<'w> Output<'w> {
    fn new(w: &'w mut dyn Write, opts: &GenOptions) -> Self {
        let ratio = opts.malformed / (1.0 - opts.malformed);
        Output { w: BufWriter::new(w), rng: Rng::new(opts.seed, u64::MAX), ratio, owed: 0.0, stats: GenStats::default() }
    }

    fn write_day(&mut self, mut events: Vec<(DateTime<Utc>, EventBody)>) -> io::Result<()> {
        events.sort_by_key(|(t, _)| *t);
        for (t, body) in &events {
            self.event(*t, body)?;
        }
        Ok(())
    }

    fn event(&mut self, t: DateTime<Utc>, body: &EventBody) -> io::Result<()> {
        let time = t.with_timezone(&TZ).to_rfc3339_opts(SecondsFormat::Secs, false);
        let good = render(body.type_name(), Some(&time), body)?;
        self.line(good.as_bytes())?;
        self.stats.events += 1;
        self.owed += self.ratio * 2.0 * self.rng.unit();
        while self.owed >= 1.0 {
            self.owed -= 1.0;
            let bad = self.malformed(t, &time, good.as_bytes(), body)?;
            self.line(&bad)?;
            self.stats.malformed += 1;
        }
        Ok(())
    }

    /// A corrupted copy of `good`.
    fn malformed(&mut self, t: DateTime<Utc>, time: &str, good: &[u8], body: &EventBody) -> io::Result<Vec<u8>> {
        Ok(match self.rng.below(5) {
            0 => good[..good.len() / 3 + self.rng.below(good.len() / 2)].to_vec(),
            1 => {
                let mut b = good.to_vec();
                let mid = b.len() / 2;
                b.splice(mid..mid, [0xC3, 0x28]);
                b
            }
            2 => render(body.type_name(), None, body)?.into_bytes(),
            3 => {
                let naive = t.with_timezone(&TZ).naive_local().format("%Y-%m-%dT%H:%M:%S").to_string();
                render(body.type_name(), Some(&naive), body)?.into_bytes()
            }
            _ => render("mail.fax", Some(time), body)?.into_bytes(),
        })
    }

    fn line(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w.write_all(bytes)?;
        self.w.write_all(b"\n")
    }

    fn finish(mut self, violations: u64) -> io::Result<GenStats> {
        self.w.flush()?;
        Ok(GenStats { violations, ..self.stats })
    }
}

/// `{"type":…,"time":…,…fields}`; without `time` when `time` is `None`.
fn render(type_name: &str, time: Option<&str>, body: &EventBody) -> io::Result<String> {
    let tagged = serde_json::to_string(body)?;
    let tag = format!("{{\"type\":\"{}\"", body.type_name());
    let fields = tagged.strip_prefix(&tag).ok_or_else(|| io::Error::other("event type tag is not serialized first"))?;
    let time = time.map(|t| format!(",\"time\":\"{t}\"")).unwrap_or_default();
    Ok(format!("{{\"type\":\"{type_name}\"{time}{fields}"))
}

fn write_roster(org: &Org, w: &mut dyn Write) -> io::Result<()> {
    let mut w = BufWriter::new(w);
    writeln!(w, "address,kind,owners,members,manager,org_unit,aliases,exemptions")?;
    let addr = |p: usize| org.people[p].address.clone();
    for m in &org.mailboxes {
        let exemption = m.exemption.as_ref().map(|e| {
            let delegate = e.delegate.map(|d| format!(" delegate={}", addr(d))).unwrap_or_default();
            format!("{}..{} {}{delegate}", e.from, e.to, e.reason)
        });
        let fields = [
            m.address.clone(),
            m.kind.as_str().to_string(),
            m.owner.map(addr).unwrap_or_default(),
            m.members.iter().map(|&p| addr(p)).collect::<Vec<_>>().join(";"),
            m.manager.map(addr).unwrap_or_default(),
            UNITS[m.unit].to_string(),
            m.alias.clone().unwrap_or_default(),
            exemption.unwrap_or_default(),
        ];
        writeln!(w, "{}", fields.map(|f| csv_field(&f)).join(","))?;
    }
    w.flush()
}

/// A CSV field, quoted when it must be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One expected open alert.
#[derive(Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
enum Truth<'a> {
    ClassifiedMail { message_id: &'a str, level: u8 },
    ExternalForwarding { mailbox: &'a str, target: String },
    MailboxNotRead { mailbox: &'a str, day: NaiveDate },
}

fn write_truth(org: &Org, days: &[CalDay], w: &mut dyn Write) -> io::Result<u64> {
    let address = |mb: usize| org.mailboxes[mb].address.as_str();
    let forwarding = |mb: usize, target: &str| Truth::ExternalForwarding { mailbox: address(mb), target: target.to_lowercase() };
    let mut truth = Vec::new();
    truth.extend(org.classified.iter().map(|c| Truth::ClassifiedMail { message_id: &c.message_id, level: c.level }));
    truth.extend(org.forwards.iter().filter(|f| f.external).map(|f| forwarding(f.mailbox, &f.target)));
    truth.extend(org.flows.iter().filter(|f| f.external).flat_map(|f| f.targets.iter().map(|t| forwarding(f.mailbox, t))));
    truth.extend(org.not_read.iter().map(|&(d, mb)| Truth::MailboxNotRead { mailbox: address(mb), day: days[d].date }));
    let lines = truth.iter().map(serde_json::to_string).collect::<Result<BTreeSet<String>, _>>()?;
    let mut w = BufWriter::new(w);
    for l in &lines {
        writeln!(w, "{l}")?;
    }
    w.flush()?;
    Ok(lines.len() as u64)
}
