//! Pseudonymised alerts: people in alerts are replaced by keyed hashes, so only the holder
//! of the key can re-identify them.
//!
//! With `[privacy] pseudonymize = true` every alert passes through [`Pseudonymizer`] before
//! it is written:
//! - `mailbox` becomes `ps:<key id>:<HMAC-SHA-256(key, address), 24 hex digits>`;
//! - in forwarding targets and message recipients only the local part is replaced
//!   (`ps:…@gmail.com`): the domain is what the rule is about, the person is not;
//! - `id` and `finding` are re-keyed the same way, because the plain ids are hashes of
//!   guessable inputs (rule, address, day) and could otherwise be reversed by trying every
//!   address of the roster. They stay deterministic for a given key.
//!
//! Kept in clear: the nearest manager and the org unit, which route the alert (the
//! manager is the one person entitled to follow it up), and source positions.
//! The key comes from a file; the key id (first 8 hex digits of SHA-256 of the key) is
//! part of every pseudonym, so a rotated key is visible and old and new never collide.
//! The key itself is never logged or printed.

use std::path::Path;

use anyhow::{bail, Context, Result};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::AlertSink;
use crate::alert::Alert;

/// Replaces people with keyed pseudonyms.
pub struct Pseudonymizer {
    key: Vec<u8>,
    key_id: String,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pseudonymizer").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl Pseudonymizer {
    /// A pseudonymizer with `key` (at least 16 bytes).
    pub fn new(key: Vec<u8>) -> Result<Self> {
        if key.len() < 16 {
            bail!("the pseudonymisation key must be at least 16 bytes");
        }
        let key_id = hex(&Sha256::digest(&key)[..4]);
        Ok(Pseudonymizer { key, key_id })
    }

    /// Reads the key from a file (surrounding white space is ignored).
    pub fn from_file(path: &Path) -> Result<Self> {
        let raw = std::fs::read(path).with_context(|| format!("pseudonymisation key file {}", path.display()))?;
        Self::new(raw.trim_ascii().to_vec()).with_context(|| path.display().to_string())
    }

    /// The pseudonym of an id.
    pub fn pseudonym(&self, id: &str) -> String {
        format!("ps:{}:{}", self.key_id, &self.mac(id)[..24])
    }

    /// An address with its local part pseudonymised and its domain kept.
    pub fn address(&self, address: &str) -> String {
        match address.rsplit_once('@') {
            Some((local, domain)) => format!("{}@{domain}", self.pseudonym(local)),
            None => self.pseudonym(address),
        }
    }

    /// Rewrites an alert in place.
    pub fn apply(&self, a: &mut Alert) {
        a.mailbox = self.pseudonym(&a.mailbox);
        a.id = self.mac(&a.id)[..32].to_string();
        a.finding = self.mac(&a.finding)[..32].to_string();
        for t in &mut a.evidence.targets {
            *t = self.address(t);
        }
    }

    fn mac(&self, data: &str) -> String {
        let mut m = <Hmac<Sha256>>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        m.update(data.as_bytes());
        hex(&m.finalize().into_bytes())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A sink that pseudonymises every alert before handing it on.
pub struct PseudonymSink {
    inner: Box<dyn AlertSink>,
    p: Pseudonymizer,
}

impl PseudonymSink {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn AlertSink>, p: Pseudonymizer) -> Self {
        PseudonymSink { inner, p }
    }
}

impl AlertSink for PseudonymSink {
    fn write(&mut self, alert: &Alert) -> Result<()> {
        let mut a = alert.clone();
        self.p.apply(&mut a);
        self.inner.write(&a)
    }

    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }

    fn hand_on(&mut self) -> Result<()> {
        self.inner.hand_on()
    }

    fn position(&self) -> u64 {
        self.inner.position()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Evidence, Rule, Severity, Status};

    fn alert() -> Alert {
        Alert {
            id: crate::alert::alert_id(&["external_forwarding", "anna@exempel.se"]),
            finding: crate::alert::alert_id(&["external_forwarding", "anna@exempel.se"]),
            rule: Rule::ExternalForwarding,
            severity: Severity::High,
            status: Status::Open,
            time: chrono::DateTime::UNIX_EPOCH,
            mailbox: "anna@exempel.se".into(),
            manager: Some("chef@exempel.se".into()),
            org_unit: Some("Kansliet".into()),
            day: None,
            evidence: Evidence { targets: vec!["anna.privat@gmail.com".into()], ..Evidence::default() },
            policy: "p".into(),
        }
    }

    #[test]
    fn the_person_disappears_but_the_external_domain_and_the_routing_stay() {
        let p = Pseudonymizer::new(b"0123456789abcdef-test-key".to_vec()).unwrap();
        let mut a = alert();
        p.apply(&mut a);
        let text = serde_json::to_string(&a).unwrap();
        assert!(!text.contains("anna"), "{text}");
        assert!(a.mailbox.starts_with("ps:"));
        assert!(a.evidence.targets[0].ends_with("@gmail.com"));
        assert_eq!(a.manager.as_deref(), Some("chef@exempel.se"));
        assert_eq!(a.id.len(), 32);
    }

    #[test]
    fn pseudonyms_are_stable_per_key_and_change_with_a_rotated_key() {
        let k1 = Pseudonymizer::new(b"0123456789abcdef-key-one".to_vec()).unwrap();
        let k2 = Pseudonymizer::new(b"0123456789abcdef-key-two".to_vec()).unwrap();
        assert_eq!(k1.pseudonym("anna@exempel.se"), k1.pseudonym("anna@exempel.se"));
        assert_ne!(k1.pseudonym("anna@exempel.se"), k2.pseudonym("anna@exempel.se"));
        assert_ne!(k1.key_id, k2.key_id);
    }

    #[test]
    fn a_short_key_is_refused_and_the_key_is_never_printed() {
        assert!(Pseudonymizer::new(b"short".to_vec()).is_err());
        let p = Pseudonymizer::new(b"0123456789abcdef-secret".to_vec()).unwrap();
        assert!(!format!("{p:?}").contains("secret"));
    }
}
