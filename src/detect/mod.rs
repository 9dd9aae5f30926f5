//! Detectors: one rule each, one file each, behind the [`Detector`] trait.
//!
//! A detector sees one mailbox at a time: the routed event, that mailbox's roster entry
//! (if any) and *its own* slice of the mailbox's state, declared up front as
//! `Detector::State`. The shard that owns the mailbox calls the hooks; a detector never
//! takes a lock and never sees another mailbox. Hooks have no-op defaults, so a detector
//! implements only what its rule needs.
//!
//! Guarantees: given the same sequence of hook calls a detector produces the same alerts
//! (no clocks, no randomness, no iteration over unordered collections).
//! Adding a rule: a new file here and one line in the `detectors!` list below.

pub mod classification;
pub mod forwarding;
pub mod reading_duty;

use std::sync::Arc;

use chrono::NaiveDate;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::alert::{Alert, Evidence, Rule, Severity, Status};
use crate::config::Settings;
use crate::event::Event;
use crate::roster::{Roster, RosterEntry};

/// What an event means for the mailbox it was routed to (a bit set: one event can play
/// several roles for the same mailbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Roles(u8);

impl Roles {
    /// The mailbox received the message (only a mailbox off the roster is sent a copy
    /// for this role alone: see [`concerns_a_rule`]).
    pub const RECIPIENT: Roles = Roles(1);
    /// The message was addressed to this mailbox and the server re-addressed it.
    pub const FORWARDED_FOR: Roles = Roles(2);
    /// This mailbox answers for the message's classification (local sender, else first
    /// local recipient).
    pub const CLASSIFIED_OWNER: Roles = Roles(4);
    /// A forwarding configuration of this mailbox changed.
    pub const CONFIG: Roles = Roles(8);
    /// Someone entitled to read this mailbox (owner, delegate, member) read it.
    pub const READ: Roles = Roles(16);

    /// True when every bit of `other` is set.
    pub fn has(self, other: Roles) -> bool {
        self.0 & other.0 == other.0
    }

    /// Adds the bits of `other`.
    pub fn insert(&mut self, other: Roles) {
        self.0 |= other.0;
    }

    /// The bits of both.
    pub const fn with(self, other: Roles) -> Roles {
        Roles(self.0 | other.0)
    }

    /// True when any bit of `other` is set.
    pub fn any_of(self, other: Roles) -> bool {
        self.0 & other.0 != 0
    }
}

/// An event routed to one mailbox.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// What the event means for it.
    pub roles: Roles,
    /// The event (shared between the mailboxes it was routed to).
    pub event: Arc<Event>,
}

/// A mailbox as the router names it: by its position in the roster the router used when
/// it is on it (the router's rule), so nothing is copied and the shard finds the mailbox's
/// state without hashing and comparing its address; by its primary address otherwise.
/// The roster changes only at a stream position, for the router and the shards alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxId {
    /// The primary address of this entry of the roster.
    Roster(u32),
    /// A mailbox that is not on the roster.
    Address(Box<str>),
}

impl MailboxId {
    /// The mailbox's primary address, read from `roster` (the roster the router used).
    pub fn address<'a>(&'a self, roster: &'a Roster) -> &'a str {
        match self {
            MailboxId::Roster(p) => roster.entries().get(*p as usize).map_or("", |e| e.address.as_str()),
            MailboxId::Address(a) => a,
        }
    }
}

/// Shared, read-only context of a shard.
pub struct Ctx<'a> {
    /// Validated configuration.
    pub settings: &'a Settings,
    /// The first local day not yet judged (days before it are closed).
    pub first_open_day: NaiveDate,
    /// The first day of the stream: roster mailboxes are held to the duty from it.
    pub first_day: NaiveDate,
}

/// The mailbox a hook is about.
#[derive(Clone, Copy)]
pub struct Mailbox<'a> {
    /// Primary address.
    pub address: &'a str,
    /// Its roster entry, if on the roster.
    pub entry: Option<&'a RosterEntry>,
}

impl Mailbox<'_> {
    /// A new finding about this mailbox, routed to its manager and unit.
    pub fn open(&self, rule: Rule, severity: Severity, id: String, time: chrono::DateTime<chrono::Utc>, evidence: Evidence) -> Alert {
        Alert {
            finding: id.clone(),
            id,
            rule,
            severity,
            status: Status::Open,
            time,
            mailbox: self.address.to_string(),
            manager: self.entry.and_then(|e| e.manager.clone()),
            org_unit: self.entry.and_then(|e| e.org_unit.clone()),
            day: None,
            evidence,
            policy: policy(rule).into(),
        }
    }

    /// The follow-up that closes the finding `open_id`.
    pub fn resolved(&self, rule: Rule, open_id: String, time: chrono::DateTime<chrono::Utc>, evidence: Evidence) -> Alert {
        let mut a = self.open(rule, Severity::Low, crate::alert::resolved_id(&open_id), time, evidence);
        a.status = Status::Resolved;
        a.finding = open_id;
        a
    }
}

/// The rule texts quoted in alerts.
pub fn policy(rule: Rule) -> &'static str {
    match rule {
        Rule::ExternalForwarding => "Mail must never be forwarded automatically to a mail system outside the organisation.",
        Rule::MailboxNotRead => "Every mailbox must be read at least once on every required reading day (Mon–Fri except public holidays, Midsummer Eve, Christmas Eve and New Year's Eve); a delegate's or member's read counts.",
        Rule::ClassifiedMail => "Class 2 information may be mailed only with approved message encryption; class 3 information must not be mailed at all.",
    }
}

/// One rule.
pub trait Detector: Send + Sync + Sized {
    /// The per-mailbox state this rule needs (kept small: it exists for every mailbox).
    type State: Default + Clone + Serialize + DeserializeOwned + Send + 'static;

    /// The roles this rule acts on in an event routed to a mailbox on the roster. The
    /// router makes no copy for a roster mailbox that no rule acts on (a message merely
    /// delivered to it, most of the mail): see [`concerns_a_rule`].
    const ROLES: Roles;

    /// Builds the detector from the validated configuration.
    fn new(settings: &Settings) -> Self;

    /// An event was routed to the mailbox.
    fn on_event(&self, _ctx: &Ctx, _mb: Mailbox, _st: &mut Self::State, _ev: &Routed, _out: &mut Vec<Alert>) {}

    /// The watermark passed the end of `day`; `required` says whether it was a required
    /// reading day. Called once per day per mailbox, in day order, never twice for a day.
    fn on_day_closed(&self, _ctx: &Ctx, _mb: Mailbox, _st: &mut Self::State, _day: NaiveDate, _required: bool, _out: &mut Vec<Alert>) {}

    /// Whether the state holds nothing worth keeping (the mailbox can be forgotten).
    fn is_idle(_st: &Self::State) -> bool {
        true
    }
}

macro_rules! detectors {
    ($($field:ident : $ty:ty),* $(,)?) => {
        /// Everything brevvakt keeps about one mailbox: one slice per detector.
        #[derive(Debug, Clone, Default, Serialize, Deserialize)]
        pub struct MailboxState {
            /// The newest (UTC) day an event was routed to this mailbox, or it left the
            /// roster: drives retention.
            pub last_seen: Option<NaiveDate>,
            $(
            #[doc = concat!("State of `", stringify!($ty), "`.")]
            pub $field: <$ty as Detector>::State,
            )*
        }

        /// One instance of every detector.
        pub struct Detectors { $( $field: $ty, )* }

        impl Detectors {
            /// The roles any rule acts on for a mailbox on the roster.
            pub const ROLES: Roles = Roles(0) $( .with(<$ty as Detector>::ROLES) )*;

            /// Builds every detector.
            pub fn new(settings: &Settings) -> Self {
                Detectors { $( $field: <$ty as Detector>::new(settings), )* }
            }

            /// Calls every detector's `on_event`.
            pub fn on_event(&self, ctx: &Ctx, mb: Mailbox, st: &mut MailboxState, ev: &Routed, out: &mut Vec<Alert>) {
                $( self.$field.on_event(ctx, mb, &mut st.$field, ev, out); )*
            }

            /// Calls every detector's `on_day_closed`.
            pub fn on_day_closed(&self, ctx: &Ctx, mb: Mailbox, st: &mut MailboxState, day: NaiveDate, required: bool, out: &mut Vec<Alert>) {
                $( self.$field.on_day_closed(ctx, mb, &mut st.$field, day, required, out); )*
            }

            /// True when no detector keeps anything for the mailbox.
            pub fn is_idle(st: &MailboxState) -> bool {
                true $( && <$ty as Detector>::is_idle(&st.$field) )*
            }
        }
    };
}

detectors! {
    forwarding: forwarding::ExternalForwarding,
    reading: reading_duty::ReadingDuty,
    classification: classification::ClassifiedMail,
}

/// Whether a routed copy with `roles` for a mailbox (on the roster or not) can matter to
/// a rule; the router and the decode pool's [`crate::decode::Interest`] both ask. A copy
/// for a mailbox off the roster always can: whatever concerns it keeps its state from
/// expiring (`state.retention`), and a message it receives may make it a discovered
/// mailbox. A copy for a roster mailbox can only through its roles ([`Detector::ROLES`]);
/// roster mailboxes never expire.
pub fn concerns_a_rule(on_roster: bool, roles: Roles) -> bool {
    !on_roster || roles.any_of(Detectors::ROLES)
}

/// An `Evidence` for one event.
pub fn evidence_of(ev: &Event) -> Evidence {
    Evidence { events: vec![ev.source.clone()], count: 1, ..Evidence::default() }
}

