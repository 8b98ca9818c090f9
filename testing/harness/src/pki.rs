//! Test certificates, made at run time and written as PEM files into a
//! temp dir: a CA, a server certificate for `localhost` / 127.0.0.1 / ::1,
//! two client certificates (for mutual TLS) named [`CLIENT_NAME`] and
//! [`GUEST_NAME`], and a second CA with a client certificate of its own
//! (one the server must refuse).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::temp::TempDir;

/// The DNS name in the test client certificate's subject alternative names.
pub const CLIENT_NAME: &str = "client.lenproto.test";
/// The DNS name of a second client certificate of the same CA: verified
/// like [`CLIENT_NAME`], but another identity.
pub const GUEST_NAME: &str = "guest.lenproto.test";
/// The name the server certificate is for.
pub const SERVER_NAME: &str = "localhost";

/// The files of a test PKI (removed with it).
#[derive(Debug)]
pub struct TestPki {
    dir: TempDir,
}

impl TestPki {
    /// Makes every certificate and key.
    pub fn new() -> Result<Self, String> {
        let dir = TempDir::new("pki")?;
        let pki = Self { dir };
        let e = |e: rcgen::Error| format!("making the test certificates: {e}");
        let issuer = pki.make_ca("ca", "lenproto test CA")?;
        let server = leaf(
            SERVER_NAME,
            vec![
                SanType::DnsName(SERVER_NAME.try_into().map_err(e)?),
                SanType::IpAddress([127, 0, 0, 1].into()),
                SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()),
            ],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
        .map_err(e)?;
        pki.write_leaf("server", server, &issuer)?;
        for (file, cn, dns) in [
            ("client", "lenproto test client", CLIENT_NAME),
            ("guest", "lenproto test guest", GUEST_NAME),
        ] {
            let sans = vec![SanType::DnsName(dns.try_into().map_err(e)?)];
            let cert = leaf(cn, sans, ExtendedKeyUsagePurpose::ClientAuth).map_err(e)?;
            pki.write_leaf(file, cert, &issuer)?;
        }
        let (mut expired, expired_key) = leaf(
            SERVER_NAME,
            vec![SanType::DnsName(SERVER_NAME.try_into().map_err(e)?)],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
        .map_err(e)?;
        expired.not_before = rcgen::date_time_ymd(2000, 1, 1);
        expired.not_after = rcgen::date_time_ymd(2001, 1, 1);
        pki.write_leaf("expired", (expired, expired_key), &issuer)?;
        let other_issuer = pki.make_ca("other-ca", "another CA")?;
        let stranger = leaf(
            "stranger",
            vec![SanType::DnsName("stranger.test".try_into().map_err(e)?)],
            ExtendedKeyUsagePurpose::ClientAuth,
        )
        .map_err(e)?;
        pki.write_leaf("stranger", stranger, &other_issuer)?;
        Ok(pki)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    /// The CA certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir().join("ca.pem")
    }
    /// Another CA, which signed nothing the server holds.
    pub fn other_ca(&self) -> PathBuf {
        self.dir().join("other-ca.pem")
    }
    /// The server's certificate (PEM).
    pub fn server_cert(&self) -> PathBuf {
        self.dir().join("server.pem")
    }
    /// The server's key (PEM).
    pub fn server_key(&self) -> PathBuf {
        self.dir().join("server-key.pem")
    }
    /// The client's certificate, signed by [`ca`](Self::ca).
    pub fn client_cert(&self) -> PathBuf {
        self.dir().join("client.pem")
    }
    /// The client's key.
    pub fn client_key(&self) -> PathBuf {
        self.dir().join("client-key.pem")
    }
    /// The guest's certificate ([`GUEST_NAME`]), signed by [`ca`](Self::ca).
    pub fn guest_cert(&self) -> PathBuf {
        self.dir().join("guest.pem")
    }
    /// The guest's key.
    pub fn guest_key(&self) -> PathBuf {
        self.dir().join("guest-key.pem")
    }
    /// A server certificate for [`SERVER_NAME`] that expired in 2001.
    pub fn expired_cert(&self) -> PathBuf {
        self.dir().join("expired.pem")
    }
    /// Its key.
    pub fn expired_key(&self) -> PathBuf {
        self.dir().join("expired-key.pem")
    }
    /// A client certificate signed by [`other_ca`](Self::other_ca).
    pub fn stranger_cert(&self) -> PathBuf {
        self.dir().join("stranger.pem")
    }
    /// Its key.
    pub fn stranger_key(&self) -> PathBuf {
        self.dir().join("stranger-key.pem")
    }

    /// Makes a CA named `cn`, writes its certificate as `<file>.pem`.
    fn make_ca(&self, file: &str, cn: &str) -> Result<Issuer<'static, KeyPair>, String> {
        let e = |e: rcgen::Error| format!("making the test CA {cn:?}: {e}");
        let (params, key) = ca(cn).map_err(e)?;
        let cert = params.self_signed(&key).map_err(e)?;
        self.put(&format!("{file}.pem"), &cert.pem())?;
        Ok(Issuer::new(params, key))
    }

    fn write_leaf(
        &self,
        name: &str,
        (params, key): (CertificateParams, KeyPair),
        issuer: &Issuer<'_, KeyPair>,
    ) -> Result<(), String> {
        let cert = params
            .signed_by(&key, issuer)
            .map_err(|e| format!("signing the test {name} certificate: {e}"))?;
        self.put(&format!("{name}.pem"), &cert.pem())?;
        self.put(&format!("{name}-key.pem"), &key.serialize_pem())
    }

    fn put(&self, name: &str, text: &str) -> Result<(), String> {
        let path = self.dir().join(name);
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

fn ca(name: &str) -> Result<(CertificateParams, KeyPair), rcgen::Error> {
    let mut params = CertificateParams::new(Vec::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok((params, KeyPair::generate()?))
}

fn leaf(
    name: &str,
    sans: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
) -> Result<(CertificateParams, KeyPair), rcgen::Error> {
    let mut params = CertificateParams::new(Vec::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    Ok((params, KeyPair::generate()?))
}
