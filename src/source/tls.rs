//! TLS for pgdr's own database connections, with libpq's semantics: `prefer` and `require`
//! encrypt but do not authenticate the server (managed services such as Supabase and RDS sign
//! their certificates with their own CAs, so checking against public roots would refuse servers
//! that pg_dump itself connects to); `verify-ca` checks the chain against the given roots and
//! `verify-full` the host name too. Certificates are parsed and checked by rustls/webpki only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{CertCheck, Roots, VerifyMode};
use crate::error::{PgdrError, Result};

/// Accepts the server's certificate as libpq's sslmode=require does, still checking that the
/// handshake signatures are valid for the certificate presented.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// sslmode=verify-ca: webpki's full check, except that a certificate valid for another name
/// is accepted. webpki checks the name only after the chain, validity dates and key usage
/// have passed, so a name error means everything else was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The connector for a database: encrypt-only for sslmode=prefer/require, checking the
/// certificate for verify-ca/verify-full. Errors are about the root certificates (missing,
/// unreadable, empty); the caller names the database.
pub fn connector(check: Option<&CertCheck>) -> Result<MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        None => Arc::new(EncryptOnly(provider.clone())),
        Some(check) => {
            let roots = load_roots(check)?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| {
                        PgdrError::config(format!("root certificates {}: {e}", check.roots))
                    })?;
            match check.mode {
                VerifyMode::Full => webpki,
                VerifyMode::Ca => Arc::new(ChainOnly(webpki)),
            }
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

pub const SUPABASE_HINT: &str = "for Supabase, download the CA certificate from the dashboard's database settings (SSL configuration)";

/// Read the trusted roots, re-read at each connect so a renewed CA file is picked up.
pub(crate) fn load_roots(check: &CertCheck) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    let path = match &check.roots {
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(PgdrError::config(
                    "sslrootcert=system: no CA certificates found in the system trust store",
                )
                .hint("install the ca-certificates package, or give sslrootcert=/path/to/ca.crt"));
            }
            return Ok(store);
        }
        Roots::Default(p) if !p.exists() => {
            return Err(PgdrError::config(format!(
                "sslmode={} needs the CA certificate that signed the server's: {} does not exist",
                check.mode.as_str(),
                p.display()
            ))
            .hint(format!(
                "add sslrootcert=/path/to/ca.crt to the URL; {SUPABASE_HINT}"
            )));
        }
        Roots::File(p) | Roots::Default(p) => p,
    };
    let unreadable = |e: rustls::pki_types::pem::Error| {
        let reason = match e {
            rustls::pki_types::pem::Error::Io(io) => plain_io(&io),
            other => other.to_string(),
        };
        PgdrError::config(format!(
            "sslrootcert {}: cannot read: {reason}",
            path.display()
        ))
        .hint(format!(
            "give sslrootcert=/path/to/ca.crt, a PEM file of the CA; {SUPABASE_HINT}"
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(unreadable)?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(PgdrError::config(format!(
            "sslrootcert {}: holds no PEM certificate",
            path.display()
        ))
        .hint("give the CA certificate in PEM form (-----BEGIN CERTIFICATE-----)"));
    }
    Ok(store)
}

/// "No such file or directory", without Rust's " (os error 2)".
fn plain_io(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.split(" (os error").next().unwrap_or(&s).to_string()
}

/// PGSSLROOTCERT for libpq children. A file is passed as it is; `system` is spelled as the
/// distribution's CA bundle when there is one, because libpq before 16 (the pg_dump 15 this
/// repo tests with may load such a libpq) reads "system" as a file name. The bundle is what
/// OpenSSL's default store holds on Debian/Ubuntu/RHEL/Alpine; without one, "system" is left
/// to libpq 16+.
pub fn libpq_root_cert(roots: &Roots) -> PathBuf {
    match roots {
        Roots::File(p) | Roots::Default(p) => p.clone(),
        Roots::System => {
            let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
            env.into_iter()
                .chain(
                    [
                        "/etc/ssl/certs/ca-certificates.crt",
                        "/etc/pki/tls/certs/ca-bundle.crt",
                        "/etc/ssl/cert.pem",
                    ]
                    .map(PathBuf::from),
                )
                .find(|p| p.is_file())
                .unwrap_or_else(|| Path::new("system").to_path_buf())
        }
    }
}

/// A certificate rejected during the handshake, if that is why `e` failed: rustls' error
/// travels inside tokio-rustls' io::Error, which `source()` skips over.
pub fn certificate_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a CertificateError> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let tls = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(c)) = tls {
            return Some(c);
        }
        cur = err.source();
    }
    None
}
