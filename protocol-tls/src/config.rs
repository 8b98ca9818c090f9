//! TLS settings from PEM files: checked once, before anything starts,
//! with errors that name the file and what is wrong with it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use protocol::{ClientConnection, ServerConnection};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;

use crate::layer::Tls;
use crate::sides::{TlsClient, TlsServer};

/// The ALPN protocol id of this protocol over TLS.
pub const ALPN: &[u8] = b"lenproto/1";

/// Which PEM file a [`TlsConfigError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemRole {
    /// The local certificate chain.
    Certificate,
    /// The local private key.
    Key,
    /// The CA that client certificates must chain to (server, mutual TLS).
    ClientCa,
    /// The CA the server's certificate must chain to (client).
    ServerCa,
}

impl fmt::Display for PemRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Certificate => "certificate",
            Self::Key => "private key",
            Self::ClientCa => "client CA",
            Self::ServerCa => "CA",
        })
    }
}

/// TLS settings that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsConfigError {
    /// The file cannot be read.
    #[error("{role} file {}: cannot read it: {error}", .path.display())]
    Unreadable {
        /// Which file.
        role: PemRole,
        /// Its path.
        path: PathBuf,
        /// The system's error.
        error: String,
    },
    /// The file holds no PEM certificate.
    #[error("{role} file {}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)", .path.display())]
    NoCertificate {
        /// Which file.
        role: PemRole,
        /// Its path.
        path: PathBuf,
    },
    /// The file holds no PEM private key.
    #[error("private key file {}: no PEM private key in it (PKCS#8, PKCS#1 or SEC1)", .path.display())]
    NoKey {
        /// Its path.
        path: PathBuf,
    },
    /// The file is not valid PEM.
    #[error("{role} file {}: not valid PEM: {error}", .path.display())]
    BadPem {
        /// Which file.
        role: PemRole,
        /// Its path.
        path: PathBuf,
        /// What the parser found.
        error: String,
    },
    /// The key is not the certificate's.
    #[error("private key {} does not match certificate {}", .key.display(), .cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// A client certificate without its key, or the other way round.
    #[error("a client certificate needs its key: give both or neither")]
    HalfClientIdentity,
    /// The server name is not a DNS name or an IP address.
    #[error("server name {name:?} is not a DNS name or an IP address")]
    BadServerName {
        /// The name.
        name: String,
    },
    /// rustls refused the settings.
    #[error("TLS settings refused: {error}")]
    Refused {
        /// rustls' error.
        error: String,
    },
}

fn read(role: PemRole, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|e| TlsConfigError::Unreadable {
        role,
        path: path.to_owned(),
        error: e.to_string(),
    })
}

/// Every certificate of a PEM file (at least one).
fn certificates(
    role: PemRole,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = read(role, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::BadPem {
            role,
            path: path.to_owned(),
            error: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            role,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let pem = read(PemRole::Key, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsConfigError::NoKey {
            path: path.to_owned(),
        },
        e => TlsConfigError::BadPem {
            role: PemRole::Key,
            path: path.to_owned(),
            error: e.to_string(),
        },
    })
}

fn roots(role: PemRole, path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(role, path)? {
        roots.add(cert).map_err(|e| TlsConfigError::BadPem {
            role,
            path: path.to_owned(),
            error: e.to_string(),
        })?;
    }
    Ok(roots)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn refused(e: rustls::Error) -> TlsConfigError {
    TlsConfigError::Refused {
        error: e.to_string(),
    }
}

/// Certificates of `chain` (read from `path`) whose validity is over or
/// not yet begun, as warnings.
fn validity_warnings(chain: &[CertificateDer<'_>], path: &Path) -> Vec<String> {
    let mut warnings = Vec::new();
    for (i, der) in chain.iter().enumerate() {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            continue;
        };
        if !cert.validity().is_valid() {
            warnings.push(format!(
                "certificate {} of {} ({}) is not valid now: valid from {} to {}",
                i + 1,
                path.display(),
                cert.subject(),
                cert.validity().not_before,
                cert.validity().not_after
            ));
        }
    }
    warnings
}

/// A server's TLS settings, loaded: [`accept`](Self::accept) starts a
/// connection's TLS side.
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    warnings: Vec<String>,
}

impl ServerTls {
    /// Loads the certificate chain and key (PEM) and, for mutual TLS, the
    /// CA that client certificates must chain to. ALPN is [`ALPN`].
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<Self, TlsConfigError> {
        let chain = certificates(PemRole::Certificate, cert)?;
        let warnings = validity_warnings(&chain, cert);
        let private = private_key(key)?;
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(refused)?;
        let builder = match client_ca {
            Some(ca) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots(PemRole::ClientCa, ca)?),
                    provider,
                )
                .build()
                .map_err(|e| TlsConfigError::Refused {
                    error: e.to_string(),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, private)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => TlsConfigError::KeyMismatch {
                    cert: cert.to_owned(),
                    key: key.to_owned(),
                },
                e => refused(e),
            })?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(Self::from_config(Arc::new(config)).with_warnings(warnings))
    }

    /// Settings made by the application (its ALPN list is kept as is).
    pub fn from_config(config: Arc<rustls::ServerConfig>) -> Self {
        Self {
            config,
            warnings: Vec::new(),
        }
    }

    fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }

    /// What loading found questionable but workable (an expired
    /// certificate): for the log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The rustls settings.
    pub fn config(&self) -> &Arc<rustls::ServerConfig> {
        &self.config
    }

    /// The TLS side of a connection accepted at `now` around `core`: the
    /// core's handshake timeout starts now.
    pub fn accept(
        &self,
        mut core: ServerConnection,
        now: Instant,
    ) -> Result<TlsServer, rustls::Error> {
        let tls = rustls::ServerConnection::new(Arc::clone(&self.config))?;
        core.expect_handshake(now);
        Ok(Tls::new(tls, core))
    }
}

/// A client's TLS settings, loaded: [`connect`](Self::connect) starts a
/// connection's TLS side.
#[derive(Debug, Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl ClientTls {
    /// Trusts the CA in `ca` (PEM), expects the server to prove it is
    /// `server_name`, and, for mutual TLS, proves itself with `identity`
    /// (certificate chain and key, PEM).
    pub fn from_pem_files(
        ca: &Path,
        server_name: &str,
        identity: Option<(&Path, &Path)>,
    ) -> Result<Self, TlsConfigError> {
        let roots = roots(PemRole::ServerCa, ca)?;
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(refused)?
            .with_root_certificates(roots);
        let mut config = match identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(certificates(PemRole::Certificate, cert)?, private_key(key)?)
                .map_err(|e| match e {
                    rustls::Error::InconsistentKeys(_) => TlsConfigError::KeyMismatch {
                        cert: cert.to_owned(),
                        key: key.to_owned(),
                    },
                    e => refused(e),
                })?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN.to_vec()];
        Self::from_config(Arc::new(config), server_name)
    }

    /// Settings made by the application.
    pub fn from_config(
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Result<Self, TlsConfigError> {
        let server_name = ServerName::try_from(server_name.to_owned()).map_err(|_| {
            TlsConfigError::BadServerName {
                name: server_name.to_owned(),
            }
        })?;
        Ok(Self {
            config,
            server_name,
        })
    }

    /// The rustls settings.
    pub fn config(&self) -> &Arc<rustls::ClientConfig> {
        &self.config
    }

    /// The TLS side of a new connection around `core`: its ClientHello is
    /// in [`Tls::transmit_buf`] at once.
    pub fn connect(&self, core: ClientConnection) -> Result<TlsClient, rustls::Error> {
        let tls =
            rustls::ClientConnection::new(Arc::clone(&self.config), self.server_name.clone())?;
        Ok(Tls::new(tls, core))
    }
}
