//! Dovecot lines (from [`syslog`](super::syslog), tag `dovecot`, or Dovecot's own log file):
//! logins become `mailbox.access`, sieve redirects become `mail.message`.
//!
//! | process: text | event |
//! |---|---|
//! | `imap-login: Login: user=<u>, method=…, rip=…` | `mailbox.access` mailbox = user = `u`, protocol imap, success |
//! | `pop3-login: Login: user=<u>, …` | the same with protocol pop3 |
//! | `imap-login`/`pop3-login`: `Aborted login …`, `Login aborted …`, or any text with `auth failed` / `auth_failed`, with `user=<u>` | `mailbox.access` failure |
//! | `lmtp(u)…` or `lda(u)…`: `… sieve: msgid=<m>: [redirect action: ]forwarded to <t>` | `mail.message` action `redirect`, recipients `[t]`, `original_recipient` `u`, `message_id` `m` |
//! | anything else (`Disconnected`, `stored mail into mailbox`, `auth:` …) | skipped |
//!
//! The user is the text inside `lmtp(…)`/`lda(…)` (in Dovecot 2.2's `lmtp(pid, user)` the
//! part after the comma); a process with only a pid names no user and is skipped. A login
//! line with an empty `user=<>` (no credentials given) is skipped. An `Info: ` level prefix
//! (Dovecot's own log file) is ignored.
//!
//! Not supported: the sender of a sieve redirect (Dovecot does not log it: `sender` is
//! empty), `vacation`/`notify` actions, `submission-login` and `managesieve-login`.

use super::mail::{direction, message_id};
use super::syslog::{field, Context};
use super::DecodeError;
use crate::event::{addr, AccessResult, Action, Encryption, Event, EventBody, MailMessage, MailboxAccess, Protocol, Text};

/// Dovecot process names this module reads when they appear as a syslog tag.
const PROCESSES: [&str; 4] = ["imap-login", "pop3-login", "lmtp", "lda"];

/// True for a Dovecot process name used as a tag (`imap-login`, `lmtp(anna)<12><s>`).
pub fn is_process(program: &str) -> bool {
    PROCESSES.contains(&base(program))
}

/// The process name without `(user)`, `<pid>` and `[pid]`.
fn base(process: &str) -> &str {
    process.split(['(', '<', '[']).next().unwrap_or(process)
}

/// Handles one Dovecot line: `process` is `imap-login`, `lmtp(anna@exempel.se)<12><s>` …
pub fn line(process: &str, text: &str, cx: &Context, out: &mut Vec<Event>) -> Result<(), DecodeError> {
    let text = text.strip_prefix("Info: ").unwrap_or(text);
    let body = match base(process) {
        "imap-login" => login(Protocol::Imap, text),
        "pop3-login" => login(Protocol::Pop3, text),
        "lmtp" | "lda" => sieve_redirect(process, text, cx),
        _ => None,
    };
    body.map_or(Ok(()), |b| cx.emit(b, out))
}

fn login(protocol: Protocol, text: &str) -> Option<EventBody> {
    let result = if text.starts_with("Login: ") {
        AccessResult::Success
    } else if ["Aborted login", "Login aborted"].iter().any(|p| text.starts_with(p))
        || text.contains("auth failed")
        || text.contains("auth_failed")
    {
        AccessResult::Failure
    } else {
        return None;
    };
    let user = addr::normalize(field(text, "user")?);
    (!user.is_empty()).then(|| EventBody::Access(MailboxAccess { mailbox: user.clone(), user, protocol, result }))
}

fn sieve_redirect(process: &str, text: &str, cx: &Context) -> Option<EventBody> {
    let user = process.split_once('(')?.1.split_once(')')?.0;
    let user = addr::normalize(user.rsplit_once(", ").map_or(user, |(_, u)| u));
    if user.is_empty() || user.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let after = text.split_once("sieve: ")?.1;
    let msgid = after.strip_prefix("msgid=").map_or("", |m| m.split_once(": ").map_or(m, |(id, _)| id));
    let target = addr::normalize(after.split_once("forwarded to <")?.1.split_once('>')?.0);
    let recipients = smallvec::smallvec![target];
    Some(EventBody::Message(MailMessage {
        message_id: if msgid == "unspecified" { Text::default() } else { message_id(msgid) },
        sender: Text::default(),
        direction: direction(cx.org, false, &recipients),
        recipients,
        action: Action::Redirect,
        original_recipient: Some(user),
        server: cx.server(),
        subject_len: None,
        subject_hash: None,
        classification: None,
        encryption: Encryption::None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_names() {
        assert!(is_process("imap-login"));
        assert!(is_process("lmtp(anna@exempel.se)<12><abc>"));
        assert!(!is_process("imap(anna)"));
        assert!(!is_process("auth"));
    }

    #[test]
    fn empty_user_and_plain_disconnects_are_skipped() {
        assert_eq!(login(Protocol::Imap, "Aborted login (no auth attempts in 0 secs): user=<>, rip=1.2.3.4"), None);
        assert_eq!(login(Protocol::Imap, "Disconnected (no auth attempts in 2 secs): user=<>, rip=1.2.3.4"), None);
        assert!(matches!(
            login(Protocol::Pop3, "Disconnected (auth failed, 1 attempts in 2 secs): user=<Anna>, method=PLAIN"),
            Some(EventBody::Access(MailboxAccess { result: AccessResult::Failure, .. }))
        ));
    }
}
