//! Who a verified client certificate names.

use protocol::PeerIdentity;
use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

/// The identity of the end-entity certificate (the first of `chain`): its
/// first DNS name (or e-mail, or URI) in the subject alternative names,
/// else its subject's common name, else its whole subject.
pub(crate) fn peer_identity(chain: &[CertificateDer<'_>]) -> Option<PeerIdentity> {
    let (_, cert) = x509_parser::parse_x509_certificate(chain.first()?).ok()?;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                    return Some(PeerIdentity::new(s));
                }
                _ => {}
            }
        }
    }
    let subject = cert.subject();
    if let Some(cn) = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
    {
        return Some(PeerIdentity::new(cn));
    }
    Some(PeerIdentity::new(&subject.to_string()))
}
