//! TLS of the replication connection with the same trust as pgdr's own connections
//! ([`super::tls`]). The `pgwire-replication` crate builds its rustls config itself and takes
//! roots only as a PEM file path (no file: Mozilla's built-in roots). So:
//! - `sslrootcert=PATH` (or libpq's default file) is checked by pgdr's own loader first, so a
//!   missing or empty file fails with the same one-line error, then handed over as it is;
//! - `sslrootcert=system` means the operating system's store (rustls-native-certs, as pgdr's
//!   connections), written as PEM into a private temporary file the crate reads at connect;
//!   the file lives as long as the connection ([`RootsFile`]);
//! - verify-full to an IP address: the crate refuses an IP host unless the TLS server name is
//!   set; setting it to that address makes rustls check the IP subjectAltName, as pgdr's own
//!   connection does (and libpq).

use std::io::Write;

use pgwire_replication::{SslMode, TlsConfig};

use crate::config::{Database, Roots, VerifyMode};
use crate::error::{PgdrError, Result};

/// A temporary PEM file of the system's roots; removed when dropped. Keep it alive until the
/// connection is up (the crate reads the file during its TLS handshake).
pub(crate) type RootsFile = Option<tempfile::TempPath>;

/// pgdr's sslmode (and sslrootcert) as the crate's TLS settings, for a connection to `host`.
pub(crate) fn tls(db: &Database, host: &str) -> Result<(TlsConfig, RootsFile)> {
    use tokio_postgres::config::SslMode as Pg;
    let Some(check) = &db.cert_check else {
        return Ok((
            match db.conn.get_ssl_mode() {
                Pg::Disable => TlsConfig::disabled(),
                Pg::Require => TlsConfig::require(),
                _ => TlsConfig {
                    mode: SslMode::Prefer,
                    ..TlsConfig::default()
                },
            },
            None,
        ));
    };
    // The same errors as pgdr's own connection for a missing, unreadable or empty root file.
    super::tls::load_roots(check)?;
    let (path, file) = match &check.roots {
        Roots::File(p) | Roots::Default(p) => (p.clone(), None),
        Roots::System => {
            let file = system_roots_file()?;
            (file.to_path_buf(), Some(file))
        }
    };
    let mut cfg = match check.mode {
        VerifyMode::Ca => TlsConfig::verify_ca(Some(path)),
        VerifyMode::Full => TlsConfig::verify_full(Some(path)),
    };
    if check.mode == VerifyMode::Full && host.parse::<std::net::IpAddr>().is_ok() {
        cfg.sni_hostname = Some(host.to_string());
    }
    Ok((cfg, file))
}

/// The system trust store as a PEM file (0600, in the temporary directory). Root
/// certificates are public: nothing secret is written.
fn system_roots_file() -> Result<tempfile::TempPath> {
    let found = rustls_native_certs::load_native_certs();
    let fail = |e: std::io::Error| {
        PgdrError::config(format!(
            "sslrootcert=system: cannot write the system's CA certificates for the replication connection: {e}"
        ))
        .hint("check that TMPDIR (or /tmp) is writable")
    };
    let mut f = tempfile::Builder::new()
        .prefix("pgdr-roots-")
        .suffix(".pem")
        .tempfile()
        .map_err(fail)?;
    for cert in &found.certs {
        f.write_all(pem(cert).as_bytes()).map_err(fail)?;
    }
    f.flush().map_err(fail)?;
    Ok(f.into_temp_path())
}

/// One DER certificate as a PEM block.
fn pem(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len() * 4 / 3 + 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("ascii"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    #[test]
    fn pem_blocks_read_back_as_the_same_der() {
        for len in [0usize, 1, 2, 3, 4, 47, 48, 49, 1000] {
            let der: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let text = pem(&der);
            let back: Vec<CertificateDer> = CertificateDer::pem_slice_iter(text.as_bytes())
                .collect::<std::result::Result<_, _>>()
                .unwrap();
            assert_eq!(back.len(), 1, "{text}");
            assert_eq!(back[0].as_ref(), &der[..], "{len}");
            assert!(text.lines().all(|l| l.len() <= 64));
        }
    }

    #[test]
    fn system_roots_are_the_native_store_not_the_crates_builtin_list() {
        let native = rustls_native_certs::load_native_certs().certs;
        assert!(
            !native.is_empty(),
            "this test needs the ca-certificates package"
        );
        let path = system_roots_file().unwrap();
        let back: Vec<CertificateDer> = CertificateDer::pem_file_iter(&path)
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!(back, native);
        let p = path.to_path_buf();
        drop(path);
        assert!(
            !p.exists(),
            "the temporary roots file is removed with its guard"
        );
    }
}
