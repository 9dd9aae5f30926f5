//! The decode pool: decodes the chunks of stateless formats on several threads between the
//! reader and the pipeline's stage, and hands every message on in the order the reader
//! sent it.
//!
//! Why: decoding is most of a replay's work (about half of its instructions, measured with
//! callgrind on the generator's normalized JSON), and the stage thread that routes events
//! to the shards used to do it alone, so it bounded the whole pipeline.
//!
//! ```text
//! reader ─▶ dispatcher ─┬─▶ decoder 1 ─┐
//!                       ├─▶ decoder k ─┤   (one reply slot per chunk)
//!                       └─ order queue ┴─▶ sequencer ─▶ stage
//! ```
//!
//! - The **dispatcher** sends each chunk of a stateless format ([`Format::stateless`]) to
//!   the decoders in turn, and puts a reply slot for it in the order queue. A batch of
//!   merged runs ([`SourceMsg::Batch`]) goes to a decoder whole: its chunks of stateless
//!   formats are decoded, and with routing its lines decoded upstream (the merge of
//!   several inputs decodes some for their times: [`SourceMsg::Decoded`]) are routed, as a
//!   lone decoded message is. Every other message (chunks of formats that keep state
//!   between lines, ends, barriers, rebalance messages) goes into the order queue as it is.
//! - A **decoder** decodes the whole chunk with a fresh decoder of the input's format and
//!   answers [`SourceMsg::Decoded`]: the chunk and, per line, the events and the result,
//!   exactly what the stage's own call of the decoder would have given. Given a
//!   [`Routing`], it then routes the chunk's events with a [`Resolver`] (the part of
//!   routing that needs no state) while they are still in its core's cache; the stage's router
//!   completes those copies. An event routed nowhere that the router could not complete
//!   either (most of the mail: see [`Observed`]) is freed right there: the stage gets its
//!   time and type alone. When the roster changed since, the stage decodes and routes the
//!   chunk again itself.
//! - The **sequencer** takes the order queue front to back, waiting for each reply, so the
//!   stage sees the reader's order: sequence numbers, watermarks, alerts and checkpoints
//!   are the same as without the pool.
//!
//! Memory stays bounded: the order queue holds at most [`IN_FLIGHT`] messages. A line cut
//! at the length limit is not decoded here (the stage dead-letters it as too long). When
//! the stage hangs up, the sequencer, the dispatcher and then the reader stop in turn; when
//! the reader ends, the pool drains and ends.

use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use chrono::{DateTime, Utc};

use super::{DecodeError, DecodeOptions, Everything, Format, Interest};
use crate::config::Settings;
use crate::detect::Routed;
use crate::event::Event;
use crate::pipeline::router::Resolver;
use crate::roster::Roster;
use crate::sources::{Chunk, SourceMsg};

/// Messages between the reader and the stage that may be in the pool at once.
pub const IN_FLIGHT: usize = 8;

/// What the decoders route with: the configuration, and the roster the stage routes with
/// now (the stage replaces it when it reloads the roster).
#[derive(Clone)]
pub struct Routing {
    settings: Arc<Settings>,
    roster: Arc<Mutex<Arc<Roster>>>,
}

impl Routing {
    /// Routing over `settings` and `roster`.
    pub fn new(settings: Arc<Settings>, roster: Arc<Roster>) -> Self {
        Routing { settings, roster: Arc::new(Mutex::new(roster)) }
    }

    /// The decoders route with `roster` from their next chunk on.
    pub fn set_roster(&self, roster: Arc<Roster>) {
        *self.roster.lock().unwrap_or_else(PoisonError::into_inner) = roster;
    }

    /// A resolver over the current roster: `cached` while its roster is still current.
    fn resolver<'a>(&self, cached: &'a mut Option<Resolver>) -> &'a Resolver {
        let roster = self.roster.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if !cached.as_ref().is_some_and(|r| Arc::ptr_eq(r.roster(), &roster)) {
            *cached = None;
        }
        cached.get_or_insert_with(|| Resolver::new(self.settings.clone(), roster))
    }
}

/// An event as the stage takes it: its time and type, which the stage reads of every
/// event (watermark, counts), and the event itself unless the decoder that routed it found
/// that it concerns no mailbox. Such an event never leaves the decoder's thread: it is
/// freed there, from that core's cache, and the stage does not touch it.
#[derive(Debug)]
pub struct Observed {
    /// When it happened.
    pub time: DateTime<Utc>,
    /// Its type's position in [`crate::event::EVENT_TYPES`].
    pub type_index: u8,
    /// The event, unless it concerns no mailbox.
    pub event: Option<Arc<Event>>,
}

impl From<Event> for Observed {
    fn from(ev: Event) -> Self {
        Observed { time: ev.time, type_index: ev.body.type_index() as u8, event: Some(Arc::new(ev)) }
    }
}

/// A chunk's decoded lines, taken by the stage line by line.
#[derive(Debug)]
pub struct Decoded {
    /// The events' times and types, and the events shared already here (the stage only
    /// moves pointers) unless they concern no mailbox.
    events: std::vec::IntoIter<Observed>,
    /// The events' copies routed by a [`Resolver`], in the events' order.
    routes: std::vec::IntoIter<Routed>,
    /// Per line: how many events, how many routed copies, and the result.
    lines: std::vec::IntoIter<(usize, usize, Result<(), DecodeError>)>,
    /// The roster the copies were routed with; `None` when they were not routed.
    routed_with: Option<Arc<Roster>>,
}

/// A [`Decoded`] being built line by line (its events are routed afterwards, if at all).
#[derive(Debug, Default)]
pub struct DecodedLines {
    events: Vec<Observed>,
    lines: Vec<(usize, usize, Result<(), DecodeError>)>,
}

impl DecodedLines {
    /// Room for about `lines` lines.
    pub fn with_capacity(lines: usize) -> Self {
        DecodedLines { events: Vec::with_capacity(lines), lines: Vec::with_capacity(lines) }
    }

    /// Adds the next line: its events and its result.
    pub fn push_line(&mut self, events: impl IntoIterator<Item = Event>, result: Result<(), DecodeError>) {
        let before = self.events.len();
        self.events.extend(events.into_iter().map(Observed::from));
        self.lines.push((self.events.len() - before, 0, result));
    }

    /// The lines, for the stage, not routed.
    pub fn done(self) -> Decoded {
        Decoded { events: self.events.into_iter(), routes: Vec::new().into_iter(), lines: self.lines.into_iter(), routed_with: None }
    }
}

impl Decoded {
    /// Decodes every line of `chunk` with `format` (cut lines are left to the stage),
    /// building the events that `interest` may need.
    fn of(chunk: &Chunk, format: Format, opts: &DecodeOptions, interest: &dyn Interest) -> Decoded {
        let mut decoder = format.decoder(opts);
        let mut out = DecodedLines::with_capacity(chunk.lines.len());
        let mut scratch = Vec::new();
        for (i, line) in chunk.lines.iter().enumerate() {
            let before = out.events.len();
            let result = match line.cut_from {
                Some(_) => Ok(()),
                None => decoder.decode_observed(&chunk.data[line.start..line.end], &chunk.pos(i), interest, &mut scratch, &mut out.events),
            };
            out.lines.push((out.events.len() - before, 0, result));
        }
        out.done()
    }

    /// The next line: its events appended to `out` and their routed copies to `routes`,
    /// and its result.
    pub fn next_line(&mut self, out: &mut Vec<Observed>, routes: &mut Vec<Routed>) -> Result<(), DecodeError> {
        let (count, routed, result) = self.lines.next().unwrap_or((0, 0, Ok(())));
        // The stage routes a later line's events: start loading them now.
        if let Some(ahead) = self.events.as_slice().get(count + crate::cache::AHEAD).and_then(|o| o.event.as_deref()) {
            crate::cache::prefetch(ahead);
        }
        out.extend(self.events.by_ref().take(count));
        routes.extend(self.routes.by_ref().take(routed));
        result
    }

    /// The roster the events' copies were routed with, if they were.
    pub fn routed_with(&self) -> Option<&Arc<Roster>> {
        self.routed_with.as_ref()
    }

    /// Routes the events not taken yet with `resolver` (lines decoded without routing),
    /// and lets go of those that concern no mailbox (they are freed on this thread).
    fn route(&mut self, resolver: &Resolver) {
        if self.routed_with.is_some() {
            return;
        }
        let mut routes = Vec::with_capacity(self.events.len());
        let mut events = self.events.as_mut_slice().iter_mut();
        for line in self.lines.as_mut_slice() {
            let before = routes.len();
            for ob in events.by_ref().take(line.0) {
                let copies = routes.len();
                let Some(ev) = &ob.event else { continue };
                resolver.route(ev, &mut routes);
                if routes.len() == copies && !resolver.may_complete(ev) {
                    ob.event = None;
                }
            }
            line.1 = routes.len() - before;
        }
        self.routes = routes.into_iter();
        self.routed_with = Some(resolver.roster().clone());
    }
}

/// Work for a decoder, and where to answer.
type Work = (Job, SyncSender<SourceMsg>);

/// What a decoder makes ready for the stage ([`prepare`]): one message, or a batch's
/// (runs of several merged inputs), each with the format to decode it with when it is a
/// chunk of a stateless format. Not boxed: a few are in flight at once, one per chunk.
#[allow(clippy::large_enum_variant)]
enum Job {
    One(SourceMsg, Option<Format>),
    Batch(Vec<(SourceMsg, Option<Format>)>),
}

/// One entry of the order queue (at most [`IN_FLIGHT`]: not boxed).
#[allow(clippy::large_enum_variant)]
enum Slot {
    /// A message handed on as it is.
    Now(SourceMsg),
    /// A chunk being decoded: its reply comes here.
    Later(Receiver<SourceMsg>),
}

/// Runs the pool with `threads` decoders (at least one) between `rx` and the returned
/// receiver. `formats` are the formats of inputs known at start (files), `default` the
/// format of the others until an [`SourceMsg::Opened`] names theirs.
pub fn spawn(rx: Receiver<SourceMsg>, formats: BTreeMap<usize, Format>, default: Format, opts: &DecodeOptions, threads: usize, routing: Option<Routing>) -> std::io::Result<(Receiver<SourceMsg>, Vec<JoinHandle<()>>)> {
    let (order_tx, order_rx) = sync_channel::<Slot>(IN_FLIGHT);
    let (out_tx, out_rx) = sync_channel::<SourceMsg>(1);
    let mut handles = Vec::new();
    let mut workers = Vec::new();
    for i in 0..threads.max(1) {
        let (tx, work_rx) = sync_channel::<Work>(1);
        let (opts, routing) = (opts.clone(), routing.clone());
        handles.push(thread::Builder::new().name(format!("decode-{i}")).spawn(move || decode_loop(&work_rx, &opts, routing.as_ref()))?);
        workers.push(tx);
    }
    let dispatcher = Dispatcher { formats, default, workers, next: 0, order: order_tx, routing: routing.is_some() };
    handles.push(thread::Builder::new().name("decode-dispatch".into()).spawn(move || dispatcher.run(&rx))?);
    handles.push(thread::Builder::new().name("decode-order".into()).spawn(move || sequence(&order_rx, &out_tx))?);
    Ok((out_rx, handles))
}

fn decode_loop(work: &Receiver<Work>, opts: &DecodeOptions, routing: Option<&Routing>) {
    let mut resolver = None;
    for (job, reply) in work {
        let resolver = routing.map(|r| r.resolver(&mut resolver));
        let msg = match job {
            Job::One(msg, format) => prepare(msg, format, opts, resolver),
            Job::Batch(msgs) => SourceMsg::Batch(msgs.into_iter().map(|(m, format)| prepare(m, format, opts, resolver)).collect()),
        };
        // The sequencer may have gone (the stage stopped): nothing left to do then.
        let _ = reply.send(msg);
    }
}

/// Makes one message ready for the stage: a chunk given a format is decoded (and routed
/// with `resolver`), lines decoded upstream are routed, anything else stays as it is.
fn prepare(msg: SourceMsg, format: Option<Format>, opts: &DecodeOptions, resolver: Option<&Resolver>) -> SourceMsg {
    match (msg, format) {
        (SourceMsg::Chunk(chunk), Some(format)) => {
            // What the resolver routes nowhere need not be built (routed with it below).
            let decoded = Decoded::of(&chunk, format, opts, resolver.map_or(&Everything as &dyn Interest, |r| r));
            SourceMsg::Decoded(chunk, routed(decoded, resolver))
        }
        (SourceMsg::Decoded(chunk, decoded), _) => SourceMsg::Decoded(chunk, routed(decoded, resolver)),
        (other, _) => other,
    }
}

/// `decoded`, routed with `resolver` if given. A chunk is decoded whole before it is
/// routed: the two loops each keep their own code and tables hot (CPU −4 % by the medians
/// of 10 interleaved CLI runs against routing each line right after decoding it).
fn routed(mut decoded: Decoded, resolver: Option<&Resolver>) -> Decoded {
    if let Some(r) = resolver {
        decoded.route(r);
    }
    decoded
}

fn sequence(order: &Receiver<Slot>, out: &SyncSender<SourceMsg>) {
    for slot in order {
        let msg = match slot {
            Slot::Now(msg) => msg,
            Slot::Later(reply) => match reply.recv() {
                Ok(msg) => msg,
                Err(_) => return, // a decoder died: the stage sees the pool end
            },
        };
        if out.send(msg).is_err() {
            return;
        }
    }
}

/// Sends chunks to the decoders and keeps the order.
struct Dispatcher {
    formats: BTreeMap<usize, Format>,
    default: Format,
    workers: Vec<SyncSender<Work>>,
    next: usize,
    /// Whether the decoders route (then lines decoded upstream go to them to be routed).
    routing: bool,
    order: SyncSender<Slot>,
}

impl Dispatcher {
    fn run(mut self, rx: &Receiver<SourceMsg>) {
        for msg in rx {
            if !self.dispatch(msg) {
                return;
            }
        }
    }

    /// The format of a chunk that a decoder decodes (of a stateless format).
    fn stateless(&self, c: &Chunk) -> Option<Format> {
        Some(self.formats.get(&c.input).copied().unwrap_or(self.default)).filter(|f| f.stateless())
    }

    /// The format to decode `msg` with, when it is a chunk a decoder decodes.
    fn decodable(&self, msg: &SourceMsg) -> Option<Format> {
        match msg {
            SourceMsg::Chunk(c) => self.stateless(c),
            _ => None,
        }
    }

    /// Hands one message on; `false` once the pool's far end is gone.
    fn dispatch(&mut self, msg: SourceMsg) -> bool {
        if let SourceMsg::Opened { input, format, .. } = &msg {
            self.formats.insert(*input, *format);
        }
        let job = match msg {
            SourceMsg::Chunk(c) => match self.stateless(&c) {
                Some(format) => Job::One(SourceMsg::Chunk(c), Some(format)),
                None => return self.order.send(Slot::Now(SourceMsg::Chunk(c))).is_ok(),
            },
            SourceMsg::Batch(msgs) if self.routing || msgs.iter().any(|m| self.decodable(m).is_some()) => {
                let with_formats = msgs.into_iter().map(|m| {
                    let format = self.decodable(&m);
                    (m, format)
                });
                Job::Batch(with_formats.collect())
            }
            decoded @ SourceMsg::Decoded(..) if self.routing => Job::One(decoded, None),
            other => return self.order.send(Slot::Now(other)).is_ok(),
        };
        let (reply_tx, reply_rx) = sync_channel(1);
        // The slot goes first: the sequencer waits for the reply in the reader's order.
        if self.order.send(Slot::Later(reply_rx)).is_err() {
            return false;
        }
        let worker = &self.workers[self.next % self.workers.len()];
        self.next += 1;
        worker.send((job, reply_tx)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventBody, EVENT_TYPES};
    use crate::sources::Line;
    use std::sync::Arc;

    fn chunk(input: usize, first_line: u64, lines: &[&str]) -> Chunk {
        let mut c = Chunk::new(input, "t".into(), first_line, None);
        for l in lines {
            let start = c.data.len();
            c.data.extend_from_slice(l.as_bytes());
            c.lines.push(Line { start, end: c.data.len(), cut_from: None });
        }
        c
    }

    fn access(minute: u32) -> String {
        format!(r#"{{"type":"mailbox.access","time":"2026-06-15T08:{minute:02}:00+02:00","mailbox":"anna@exempel.se","user":"anna@exempel.se","protocol":"imap","result":"success"}}"#)
    }

    /// Many chunks through four decoders come out in the reader's order, with every
    /// line's events and errors as the stage's own decoder would give them.
    #[test]
    fn chunks_decoded_on_several_threads_reach_the_stage_in_reader_order() {
        let (tx, rx) = sync_channel(2);
        let (out, handles) = spawn(rx, BTreeMap::new(), Format::Normalized, &DecodeOptions::default(), 4, None).unwrap();
        let feeder = thread::spawn(move || {
            for n in 0..200u64 {
                let good = access((n % 60) as u32);
                tx.send(SourceMsg::Chunk(chunk(0, n * 2 + 1, &[&good, "{not json"]))).unwrap();
                if n % 50 == 0 {
                    tx.send(SourceMsg::Tick).unwrap();
                }
            }
            tx.send(SourceMsg::End { input: 0, error: None }).unwrap();
        });
        let (mut next_line, mut ticks, mut ended) = (1u64, 0, false);
        for msg in out {
            match msg {
                SourceMsg::Decoded(c, mut d) => {
                    assert_eq!(c.first_line, next_line, "chunks stay in order");
                    next_line += 2;
                    let (mut events, mut routes) = (Vec::new(), Vec::new());
                    assert!(d.next_line(&mut events, &mut routes).is_ok());
                    assert_eq!(events.len(), 1);
                    assert_eq!(events[0].event.as_ref().unwrap().source.offset, c.first_line, "the event carries its own line");
                    assert!(d.next_line(&mut events, &mut routes).is_err(), "the bad line keeps its error");
                    assert_eq!(events.len(), 1);
                }
                SourceMsg::Tick => ticks += 1,
                SourceMsg::End { .. } => ended = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        feeder.join().unwrap();
        handles.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!((next_line, ticks, ended), (401, 4, true));
    }

    /// With routing, the events' copies come routed with the roster current when the chunk
    /// was decoded; a roster reload reaches the decoders from their next chunk on, and the
    /// stage can tell which roster routed a chunk (it routes again when it is not its own).
    #[test]
    fn decoders_route_with_the_roster_the_stage_last_set() {
        let entry = crate::roster::RosterEntry { address: "anna@exempel.se".into(), ..Default::default() };
        let (old, new) = (Arc::new(Roster::new(vec![entry.clone()])), Arc::new(Roster::new(vec![entry])));
        let routing = Routing::new(Arc::new(Settings::default_settings()), old.clone());
        let (tx, rx) = sync_channel(1);
        let (out, _handles) = spawn(rx, BTreeMap::new(), Format::Normalized, &DecodeOptions::default(), 2, Some(routing.clone())).unwrap();
        let next = |first_line| {
            tx.send(SourceMsg::Chunk(chunk(0, first_line, &[&access(1)]))).unwrap();
            match out.recv().unwrap() {
                SourceMsg::Decoded(_, mut d) => {
                    let (mut events, mut routes) = (Vec::new(), Vec::new());
                    d.next_line(&mut events, &mut routes).unwrap();
                    assert_eq!(routes.len(), 1, "anna's own read is routed to her mailbox");
                    assert!(Arc::ptr_eq(&routes[0].event, events[0].event.as_ref().unwrap()));
                    d.routed_with().cloned().unwrap()
                }
                other => panic!("unexpected {other:?}"),
            }
        };
        assert!(Arc::ptr_eq(&next(1), &old));
        routing.set_roster(new.clone());
        assert!(Arc::ptr_eq(&next(2), &new));
        assert!(Arc::ptr_eq(&next(3), &new));
    }

    /// The decoders let go of every event that concerns no mailbox — a message merely
    /// delivered to a roster mailbox, mail between outside addresses, a failed login,
    /// browsing that is not webmail — and hand the stage only its time and type. An event
    /// routed somewhere, or one the stage's router may still route (a successful access,
    /// whose user may be a delegate granted by an event; webmail use), goes on whole.
    #[test]
    fn events_that_concern_no_mailbox_reach_the_stage_as_time_and_type_alone() {
        let anna = crate::roster::RosterEntry { address: "anna@exempel.se".into(), owners: vec!["anna@exempel.se".into()], ..Default::default() };
        let routing = Routing::new(Arc::new(Settings::default_settings()), Arc::new(Roster::new(vec![anna])));
        let (tx, rx) = sync_channel(1);
        let (out, _handles) = spawn(rx, BTreeMap::new(), Format::Normalized, &DecodeOptions::default(), 2, Some(routing)).unwrap();
        let message = |to: &str, extra: &str| format!(r#"{{"type":"mail.message","time":"2026-06-15T08:00:00+02:00","message_id":"m","sender":"x@gmail.com","recipients":["{to}"],"direction":"inbound","action":"deliver"{extra}}}"#);
        let proxy = |host: &str| format!(r#"{{"type":"proxy.request","time":"2026-06-15T08:01:00+02:00","user":"anna@exempel.se","host":"{host}","path":"/owa/","method":"GET","status":200}}"#);
        let login = |user: &str, result: &str| format!(r#"{{"type":"mailbox.access","time":"2026-06-15T08:02:00+02:00","mailbox":"anna@exempel.se","user":"{user}","protocol":"imap","result":"{result}"}}"#);
        let lines = [
            (message("anna@exempel.se", ""), false),
            (message("bo@exempel.se", ""), true),
            (message("anna@exempel.se", r#","classification":3"#), true),
            (message("y@gmail.com", ""), false),
            (proxy("www.dn.se"), false),
            (proxy("webmail.exempel.se"), true),
            (login("anna@exempel.se", "failure"), false),
            (login("bo@exempel.se", "success"), true),
        ];
        let c = chunk(0, 1, &lines.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>());
        tx.send(SourceMsg::Chunk(c.clone())).unwrap();
        let SourceMsg::Decoded(_, mut d) = out.recv().unwrap() else { panic!("a decoded chunk") };
        for (line, kept) in &lines {
            let mut events = Vec::new();
            d.next_line(&mut events, &mut Vec::new()).unwrap();
            assert_eq!(events.len(), 1, "{line}");
            assert_eq!(events[0].event.is_some(), *kept, "{line}");
            let mut whole = Vec::new();
            Format::Normalized.decoder(&DecodeOptions::default()).decode(line.as_bytes(), &c.pos(0), &mut whole).unwrap();
            assert_eq!((events[0].time, usize::from(events[0].type_index)), (whole[0].time, whole[0].body.type_index()), "{line}");
        }
    }

    /// Over a generated fortnight (with malformed lines), decoding for the resolver
    /// changes nothing but what is built: every line gives the same result and the same
    /// events' times and types as a plain decode, an event left unbuilt is one the resolver
    /// routes nowhere and the router cannot complete, and every built one is the plain
    /// decode's event. Most of the mail, and the browsing that is not webmail use, is left
    /// unbuilt.
    #[test]
    fn decoding_for_the_resolver_leaves_out_only_what_it_routes_nowhere() {
        let dir = tempfile::tempdir().unwrap();
        let (mut lines, mut roster) = (Vec::new(), Vec::new());
        let gen = crate::generate::GenOptions { mailboxes: 200, days: 14, seed: 3, malformed: 0.01, ..Default::default() };
        crate::generate::generate(&gen, &mut lines, &mut roster, &mut std::io::sink()).unwrap();
        std::fs::write(dir.path().join("roster.csv"), roster).unwrap();
        let resolver = Resolver::new(Arc::new(Settings::default_settings()), Arc::new(Roster::load(&dir.path().join("roster.csv")).unwrap()));
        let (mut plain, mut observed) = (Format::Normalized.decoder(&DecodeOptions::default()), Format::Normalized.decoder(&DecodeOptions::default()));
        let (mut messages, mut unbuilt) = ([0; EVENT_TYPES.len()], [0; EVENT_TYPES.len()]);
        for (i, line) in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
            let pos = crate::event::SourcePos::line("t".into(), i as u64 + 1);
            let (mut want, mut got) = (Vec::new(), Vec::new());
            let results = (plain.decode(line, &pos, &mut want), observed.decode_observed(line, &pos, &resolver, &mut Vec::new(), &mut got));
            assert_eq!(results.0, results.1, "line {}", i + 1);
            assert_eq!(want.len(), got.len());
            for (w, g) in want.into_iter().zip(got) {
                assert_eq!((w.time, w.body.type_index()), (g.time, usize::from(g.type_index)));
                messages[w.body.type_index()] += 1;
                let w = Arc::new(w);
                match g.event {
                    Some(g) => assert_eq!(*g, *w),
                    None => {
                        unbuilt[w.body.type_index()] += 1;
                        let mut copies = Vec::new();
                        resolver.route(&w, &mut copies);
                        assert!(copies.is_empty() && !resolver.may_complete(&w), "left unbuilt, but it concerns a mailbox: {w:?}");
                    }
                }
            }
        }
        let (message, proxy) = (EventBody::MESSAGE_INDEX, EventBody::PROXY_INDEX);
        assert!(unbuilt[message] * 2 > messages[message], "{unbuilt:?} of {messages:?} left unbuilt");
        assert!(unbuilt[proxy] * 3 > messages[proxy], "{unbuilt:?} of {messages:?} left unbuilt");
    }

    /// A batch of merged runs: lines decoded upstream (the merge decoded them for their
    /// times) are routed by the decoders, and runs not decoded yet are decoded and routed;
    /// all keep their order among the rest.
    #[test]
    fn batched_runs_are_decoded_and_routed_by_the_decoders() {
        let entry = crate::roster::RosterEntry { address: "anna@exempel.se".into(), ..Default::default() };
        let routing = Routing::new(Arc::new(Settings::default_settings()), Arc::new(Roster::new(vec![entry])));
        let (tx, rx) = sync_channel(2);
        let (out, _handles) = spawn(rx, BTreeMap::new(), Format::Normalized, &DecodeOptions::default(), 2, Some(routing)).unwrap();
        let upstream = |first_line| {
            let c = chunk(0, first_line, &[&access(1), "{not json"]);
            let mut lines = DecodedLines::default();
            for (i, l) in c.lines.iter().enumerate() {
                let mut events = Vec::new();
                let result = Format::Normalized.decoder(&DecodeOptions::default()).decode(&c.data[l.start..l.end], &c.pos(i), &mut events);
                lines.push_line(events, result);
            }
            SourceMsg::Decoded(c, lines.done())
        };
        let not_decoded = SourceMsg::Chunk(chunk(0, 3, &[&access(1), "{not json"]));
        tx.send(SourceMsg::Batch(vec![upstream(1), SourceMsg::End { input: 1, error: None }, not_decoded])).unwrap();
        tx.send(SourceMsg::Chunk(chunk(0, 5, &[&access(2)]))).unwrap();
        drop(tx);
        let mut firsts = Vec::new();
        let mut check = |c: &Chunk, d: &mut Decoded| {
            let (mut events, mut routes) = (Vec::new(), Vec::new());
            assert!(d.routed_with().is_some(), "lines {}… are routed", c.first_line);
            assert!(d.next_line(&mut events, &mut routes).is_ok() && routes.len() == 1 && Arc::ptr_eq(&routes[0].event, events[0].event.as_ref().unwrap()));
            assert!(d.next_line(&mut events, &mut routes).is_err() && routes.len() == 1, "the bad line keeps its error");
            firsts.push(c.first_line);
        };
        for msg in out {
            match msg {
                SourceMsg::Batch(msgs) => msgs.into_iter().for_each(|m| match m {
                    SourceMsg::Decoded(c, mut d) => check(&c, &mut d),
                    SourceMsg::End { .. } => {}
                    other => panic!("unexpected in the batch: {other:?}"),
                }),
                SourceMsg::Decoded(c, mut d) => assert!(d.routed_with().is_some() && d.next_line(&mut Vec::new(), &mut Vec::new()).is_ok() && c.first_line == 5),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(firsts, [1, 3]);
    }

    /// A format that keeps state between lines (a tracking log's `#Fields:` header) is
    /// left to the stage's one decoder per input, in order.
    #[test]
    fn chunks_of_stateful_formats_pass_through_undecoded() {
        let (tx, rx) = sync_channel(2);
        let formats = BTreeMap::from([(1, Format::ExchangeTracking)]);
        let (out, _handles) = spawn(rx, formats, Format::Normalized, &DecodeOptions::default(), 2, None).unwrap();
        tx.send(SourceMsg::Chunk(chunk(1, 1, &["#Fields: date-time,event-id"]))).unwrap();
        tx.send(SourceMsg::Opened { input: 2, name: "t/0".into(), format: Format::Syslog }).unwrap();
        tx.send(SourceMsg::Chunk(chunk(2, 1, &["<22>Jun 15 08:00:00 mx postfix/smtp[1]: x"]))).unwrap();
        tx.send(SourceMsg::Chunk(chunk(0, 1, &[&access(1)]))).unwrap();
        drop(tx);
        let kinds: Vec<&str> = out
            .iter()
            .map(|m| match m {
                SourceMsg::Chunk(_) => "raw",
                SourceMsg::Decoded(..) => "decoded",
                SourceMsg::Opened { .. } => "opened",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["raw", "opened", "raw", "decoded"]);
    }

    /// The stage hanging up stops the pool and, through it, the reader's sends.
    #[test]
    fn the_stage_hanging_up_stops_the_pool() {
        let (tx, rx) = sync_channel(1);
        let (out, handles) = spawn(rx, BTreeMap::new(), Format::Normalized, &DecodeOptions::default(), 2, None).unwrap();
        drop(out);
        let mut sent = 0;
        while tx.send(SourceMsg::Chunk(chunk(0, 1, &[&access(1)]))).is_ok() {
            sent += 1;
            assert!(sent < 1000, "the reader is never told the pool stopped");
        }
        handles.into_iter().for_each(|h| h.join().unwrap());
    }
}
