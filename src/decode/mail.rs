//! Helpers shared by the decoders that produce `mail.message` events from server logs
//! (Exchange message tracking, Postfix, Dovecot sieve).
//!
//! | question | answer |
//! |---|---|
//! | direction | `outbound` when any recipient is outside the organisation, else `inbound` when the sender is outside, else `internal` |
//! | "outside" | per [`DecodeOptions::org_domains`](super::DecodeOptions); an address without a domain is inside |
//! | recipient lists | split on `;` or `,`, each normalised, empty items dropped |
//!
//! A forwarded or redirected copy is judged by where it goes, so a message that came in
//! from outside and is forwarded out again is `outbound`.

use crate::domains::OrgDomains;
use crate::event::{addr, Addresses, Direction, Text};

/// The direction of one transfer; `sender_outside` is decided by the caller (a log may
/// say it better than the sender's domain can).
pub fn direction(org: &OrgDomains, sender_outside: bool, recipients: &[Text]) -> Direction {
    if recipients.iter().any(|r| org.is_external(r)) {
        Direction::Outbound
    } else if sender_outside {
        Direction::Inbound
    } else {
        Direction::Internal
    }
}

/// Splits a `;`- or `,`-separated address list into normalised addresses.
pub fn address_list(s: &str) -> Addresses {
    s.split([';', ',']).map(addr::normalize).filter(|a| !a.is_empty()).collect()
}

/// A Message-ID without its angle brackets and surrounding blanks.
pub fn message_id(s: &str) -> Text {
    Text::new(s.trim().trim_start_matches('<').trim_end_matches('>'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_copy_to_gmail_is_outbound_even_from_outside() {
        let org = OrgDomains::new(&["exempel.se"]).unwrap();
        assert_eq!(direction(&org, true, &["anna@gmail.com".into()]), Direction::Outbound);
        assert_eq!(direction(&org, true, &["anna@exempel.se".into()]), Direction::Inbound);
        assert_eq!(direction(&org, false, &["anna@skola.exempel.se".into()]), Direction::Internal);
    }

    #[test]
    fn address_lists_are_split_and_normalised() {
        assert_eq!(address_list(" <A@Exempel.se>;b@x.se,, ").as_slice(), ["a@exempel.se", "b@x.se"]);
        assert_eq!(message_id(" <abc@host> "), "abc@host");
    }
}
