//! The organisation's domains and the one question the rules ask of them: is an address
//! inside the organisation?
//!
//! Guarantees: matching is case-insensitive, subdomain-aware (`skola.exempel.se` is inside
//! when `exempel.se` is configured) and IDN-safe (Unicode domains are compared in their
//! ASCII/punycode form, so `kommun.åre.se` and `kommun.xn--re-xia.se` are the same). A
//! label boundary is required: `notexempel.se` is outside.
//! An address without a domain (an Exchange object name such as `Anna Andersson`) cannot
//! leave the organisation and counts as inside.

use std::borrow::Cow;

/// The configured organisation domains, in ASCII form.
#[derive(Debug, Clone, Default)]
pub struct OrgDomains {
    ascii: Vec<String>,
}

impl OrgDomains {
    /// Builds the set; fails with the offending domain when one is not a valid domain name.
    pub fn new<S: AsRef<str>>(domains: &[S]) -> Result<Self, String> {
        let ascii = domains
            .iter()
            .map(|d| to_ascii(d.as_ref()).map(Cow::into_owned))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OrgDomains { ascii })
    }

    /// True when the address (or bare domain) belongs to the organisation.
    pub fn is_internal(&self, address: &str) -> bool {
        let Some(domain) = crate::event::domain_of(address) else { return true };
        match to_ascii(domain) {
            Ok(d) => self.ascii.iter().any(|org| is_same_or_sub(&d, org)),
            Err(_) => false,
        }
    }

    /// True when the address is outside the organisation.
    pub fn is_external(&self, address: &str) -> bool {
        !self.is_internal(address)
    }
}

/// The answers of [`OrgDomains::is_internal`] by domain, for one thread that asks about
/// the same few hundred domains again and again (the router: callgrind counted about 250
/// instructions a question without it, for the domain's checks and the suffix matches).
/// Bounded: it starts afresh when full, so a stream of ever new domains cannot grow it.
#[derive(Debug, Default)]
pub struct InternalCache {
    known: std::collections::HashMap<Box<str>, bool, foldhash::fast::RandomState>,
}

impl InternalCache {
    /// Domains remembered at most.
    const CAPACITY: usize = 4096;

    /// [`OrgDomains::is_internal`], remembered by the address's domain (which alone decides).
    pub fn is_internal(&mut self, org: &OrgDomains, address: &str) -> bool {
        let Some(domain) = crate::event::domain_of(address) else { return true };
        if let Some(&known) = self.known.get(domain) {
            return known;
        }
        let answer = org.is_internal(address);
        if self.known.len() >= Self::CAPACITY {
            self.known.clear();
        }
        self.known.insert(domain.into(), answer);
        answer
    }
}

fn is_same_or_sub(domain: &str, org: &str) -> bool {
    domain == org
        || (domain.len() > org.len()
            && domain.ends_with(org)
            && domain.as_bytes()[domain.len() - org.len() - 1] == b'.')
}

/// Lower-cased ASCII (punycode) form of a domain; plain ASCII domains are not reallocated
/// unless they contain upper case.
pub fn to_ascii(domain: &str) -> Result<Cow<'_, str>, String> {
    let d = domain.trim().trim_end_matches('.');
    if d.is_empty() {
        return Err(format!("{domain:?} is not a domain name"));
    }
    match plain_lower_ascii(d) {
        Some(true) => Ok(Cow::Borrowed(d)),
        Some(false) => Err(format!("{domain:?} is not a domain name")),
        None => idna::domain_to_ascii(d).map(Cow::Owned).map_err(|_| format!("{domain:?} is not a valid domain name")),
    }
}

/// One pass over a domain with neither upper case nor non-ASCII (the common case, on
/// every address of every event): `Some(valid)`, where valid means non-empty labels of
/// `a-z0-9-_`; `None` when it needs lower-casing or IDNA.
fn plain_lower_ascii(d: &str) -> Option<bool> {
    let (mut valid, mut label) = (true, 0usize);
    for &b in d.as_bytes() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => label += 1,
            b'.' => {
                valid &= label > 0;
                label = 0;
            }
            b'A'..=b'Z' | 0x80.. => return None,
            _ => valid = false,
        }
    }
    Some(valid && label > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> OrgDomains {
        OrgDomains::new(&["exempel.se", "kommun.åre.se"]).unwrap()
    }

    #[test]
    fn subdomain_of_the_organisation_is_internal() {
        assert!(org().is_internal("elev@skola.exempel.se"));
        assert!(org().is_internal("Anna@EXEMPEL.SE"));
    }

    #[test]
    fn gmail_and_lookalikes_are_external() {
        assert!(org().is_external("anna@gmail.com"));
        assert!(org().is_external("anna@notexempel.se"));
        assert!(org().is_external("anna@exempel.se.evil.com"));
    }

    #[test]
    fn unicode_and_punycode_domains_are_the_same() {
        assert!(org().is_internal("a@kommun.xn--re-xia.se"));
        assert!(org().is_internal("a@Kommun.Åre.se"));
    }

    #[test]
    fn object_names_without_domain_stay_inside() {
        assert!(org().is_internal("anna andersson"));
    }

    #[test]
    fn invalid_domain_is_refused() {
        assert!(OrgDomains::new(&["exa mple.se"]).is_err());
    }

    #[test]
    fn the_cache_answers_as_the_domains_do_and_stays_bounded() {
        let (org, mut cache) = (org(), InternalCache::default());
        let addresses = ["a@exempel.se", "b@Skola.Exempel.se", "c@notexempel.se", "d@kommun.åre.se", "Anna Andersson", "e@gmail.com", "f@exempel.se.", "g@"];
        for _ in 0..2 {
            for a in addresses {
                assert_eq!(cache.is_internal(&org, a), org.is_internal(a), "{a}");
            }
        }
        for i in 0..2 * InternalCache::CAPACITY {
            assert!(!cache.is_internal(&org, &format!("x@d{i}.example")));
            assert!(cache.known.len() <= InternalCache::CAPACITY);
        }
    }
}
