//! Postfix lines (from [`syslog`](super::syslog)): delivery lines become `mail.message`
//! events; the sender and Message-ID logged earlier for the same queue id are joined in.
//!
//! | line (`QUEUEID: …`) | program | used as |
//! |---|---|---|
//! | `message-id=<…>` | `postfix/cleanup` | `message_id` of later deliveries |
//! | `from=<…>, size=…` | `postfix/qmgr` | `sender` of later deliveries (`<>` → empty) |
//! | `to=<…>, [orig_to=<…>,] relay=…, …, status=sent (…)` | `postfix/smtp`, `lmtp`, `local`, `virtual`, `pipe` … | one `mail.message` |
//! | `removed` | `postfix/qmgr` | forgets the queue id |
//! | anything else (`smtpd`, `NOQUEUE`, `status=deferred`/`bounced` …) | | skipped |
//!
//! Delivery line → event:
//!
//! | field | event field |
//! |---|---|
//! | `to` | `recipients` (one) |
//! | `orig_to` differing from `to` | action `forward`, `original_recipient` = `orig_to` (alias, virtual alias or `.forward` expansion) |
//! | else service `local`/`virtual`/`lmtp`, or `relay=local`/`relay=virtual` | action `deliver` |
//! | else | action `relay` |
//! | syslog host | `server` |
//!
//! Only `status=sent` is a transfer. Multi-instance names (`postfix-out/smtp`) and
//! nested service names (`postfix/submission/smtpd`) are read by their last part.
//!
//! Bounded: at most [`QUEUE_CAPACITY`] queue ids are remembered; beyond that the oldest is
//! forgotten (its later deliveries then have an empty sender and Message-ID). A queue id
//! reused after `removed` starts afresh.
//!
//! Not supported: the sender of a message whose `qmgr` line came before the input's first
//! line, and subjects (Postfix logs none unless a header check does; such text is ignored).

use std::collections::{HashMap, VecDeque};

use super::mail::{direction, message_id};
use super::syslog::{field, Context};
use super::DecodeError;
use crate::event::{addr, Action, Encryption, Event, EventBody, MailMessage, Text};

/// How many queue ids the correlation remembers per input.
pub const QUEUE_CAPACITY: usize = 20_000;

/// The service of a Postfix program name (`postfix/smtp` → `smtp`).
pub fn service(program: &str) -> Option<&str> {
    program.starts_with("postfix").then(|| program.rsplit_once('/').map(|(_, s)| s)).flatten()
}

/// What is known of one queued message.
#[derive(Debug, Default, Clone)]
struct Queued {
    seq: u64,
    sender: Text,
    message_id: Text,
}

/// The bounded queue-id → message correlation of one input.
#[derive(Debug, Default)]
pub struct Queue {
    by_id: HashMap<String, Queued>,
    order: VecDeque<(u64, String)>,
    next_seq: u64,
}

impl Queue {
    /// Handles one Postfix line of `service`.
    pub fn line(&mut self, service: &str, msg: &str, cx: &Context, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        let Some((id, text)) = msg.split_once(": ") else { return Ok(()) };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Ok(());
        }
        if let Some(v) = text.strip_prefix("message-id=") {
            self.entry(id).message_id = message_id(v.split(' ').next().unwrap_or(""));
        } else if text.starts_with("from=") {
            self.entry(id).sender = addr::normalize(field(text, "from").unwrap_or(""));
        } else if text == "removed" {
            self.by_id.remove(id);
        } else if text.starts_with("to=") && field(text, "status") == Some("sent") {
            cx.emit(self.delivery(service, id, text, cx), out)?;
        }
        Ok(())
    }

    /// The entry of a queue id, made (evicting the oldest when full) if new.
    fn entry(&mut self, id: &str) -> &mut Queued {
        let seq = match self.by_id.get(id) {
            Some(q) => q.seq,
            None => self.register(id),
        };
        self.by_id.entry(id.to_owned()).or_insert_with(|| Queued { seq, ..Queued::default() })
    }

    /// Records a new queue id in insertion order, forgetting the oldest beyond the bound.
    fn register(&mut self, id: &str) -> u64 {
        while self.order.len() >= QUEUE_CAPACITY {
            let Some((seq, old)) = self.order.pop_front() else { break };
            if self.by_id.get(&old).is_some_and(|q| q.seq == seq) {
                self.by_id.remove(&old);
            }
        }
        self.next_seq += 1;
        self.order.push_back((self.next_seq, id.to_owned()));
        self.next_seq
    }

    fn delivery(&self, service: &str, id: &str, text: &str, cx: &Context) -> EventBody {
        let to = addr::normalize(field(text, "to").unwrap_or(""));
        let orig = field(text, "orig_to").map(addr::normalize).filter(|o| !o.is_empty() && *o != to);
        let relay = field(text, "relay").unwrap_or("");
        let local = ["local", "virtual", "lmtp"].contains(&service)
            || relay.eq_ignore_ascii_case("local")
            || relay.eq_ignore_ascii_case("virtual");
        let action = match (&orig, local) {
            (Some(_), _) => Action::Forward,
            (None, true) => Action::Deliver,
            (None, false) => Action::Relay,
        };
        let queued = self.by_id.get(id);
        let sender = queued.map_or_else(Text::default, |q| q.sender.clone());
        let recipients = smallvec::smallvec![to];
        EventBody::Message(MailMessage {
            message_id: queued.map_or_else(Text::default, |q| q.message_id.clone()),
            direction: direction(cx.org, cx.org.is_external(&sender), &recipients),
            sender,
            recipients,
            action,
            original_recipient: orig,
            server: cx.server(),
            subject_len: None,
            subject_hash: None,
            classification: None,
            encryption: Encryption::None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_of_program_names() {
        assert_eq!(service("postfix/smtp"), Some("smtp"));
        assert_eq!(service("postfix-out/smtp"), Some("smtp"));
        assert_eq!(service("postfix/submission/smtpd"), Some("smtpd"));
        assert_eq!(service("postfix"), None);
        assert_eq!(service("dovecot"), None);
    }

    #[test]
    fn the_correlation_is_bounded_and_evicts_the_oldest() {
        let mut q = Queue::default();
        for i in 0..QUEUE_CAPACITY + 10 {
            q.entry(&format!("Q{i}")).sender = format!("s{i}@x.se").into();
        }
        assert_eq!(q.by_id.len(), QUEUE_CAPACITY);
        assert!(q.order.len() <= QUEUE_CAPACITY);
        assert!(!q.by_id.contains_key("Q0"));
        assert!(q.by_id.contains_key(&format!("Q{}", QUEUE_CAPACITY + 9)));
    }

    #[test]
    fn removed_ids_do_not_grow_the_order_past_the_bound() {
        let mut q = Queue::default();
        for i in 0..QUEUE_CAPACITY * 2 {
            let id = format!("R{i}");
            q.entry(&id);
            q.by_id.remove(&id);
        }
        assert!(q.order.len() <= QUEUE_CAPACITY);
    }
}
