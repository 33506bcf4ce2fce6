//! `pgdr cat`: decrypt one object of a backup to a file or stdout, checked against the
//! manifest. The manual escape hatch: `pgdr cat ID | pg_restore ...`.

use std::path::Path;
use std::sync::Arc;

use crate::catalog::{self, Catalog, Manifest, Pick};
use crate::codec::{self, DecodeStats};
use crate::config::Settings;
use crate::error::{PgdrError, Result};
use crate::pipeline;

pub async fn run(
    settings: &Settings,
    database: Option<&str>,
    id: &str,
    object: &str,
    out: Option<&Path>,
) -> Result<(Manifest, DecodeStats)> {
    let ids = Arc::new(codec::require_identities(&settings.identities)?);
    let catalog = Catalog::open(settings).await?;
    let m = catalog.select(database, Pick::Id(id)).await?.manifest;
    // Prune keeps it while it is read; the mark goes when this function returns.
    let _in_use = catalog.mark_in_use(&m.database, &m.id, "cat").await?;
    let rec = m.object(object).cloned().ok_or_else(|| {
        let have: Vec<&str> = m.objects.iter().map(|o| o.name.as_str()).collect();
        PgdrError::usage(format!("backup {} has no object '{object}'", m.id))
            .hint(format!("objects: {}", have.join(", ")))
    })?;
    let key = catalog::Key::object(&m.database, &m.id, &rec.file);
    let stats = match out {
        Some(p) => {
            let tmp = OutFile::create(p)?;
            let stats = pipeline::download_to(
                &catalog,
                &key,
                Some(rec.sha256_stored.clone()),
                ids,
                tmp.writer()?,
            )
            .await?;
            check_plain(&stats, &rec.sha256_plain, &key.to_string())?;
            tmp.finish()?;
            stats
        }
        None => {
            // On stdout the bytes are gone already: the check can only fail the exit status.
            let stats = pipeline::download(
                &catalog,
                &key,
                Some(rec.sha256_stored.clone()),
                ids,
                std::io::stdout(),
            )
            .await?
            .0;
            check_plain(&stats, &rec.sha256_plain, &key.to_string())?;
            stats
        }
    };
    Ok((m, stats))
}

fn check_plain(stats: &DecodeStats, expected: &str, key: &str) -> Result<()> {
    if stats.plain_sha256 != expected {
        return Err(PgdrError::corrupt(format!(
            "object {key}: decrypted content does not match the manifest's sha256"
        )));
    }
    Ok(())
}

/// `--out`: the decrypted dump is written 0600 to a hidden temp file beside the target and
/// renamed onto it only once complete and checked, so a damaged backup or an interrupt
/// leaves no file (the temp file is removed when dropped) and nobody else can read it.
struct OutFile {
    tmp: tempfile::NamedTempFile,
    path: std::path::PathBuf,
}

impl OutFile {
    fn create(path: &Path) -> Result<Self> {
        let cannot =
            |e: std::io::Error| PgdrError::usage(format!("cannot create {}: {e}", path.display()));
        let name = path.file_name().ok_or_else(|| {
            PgdrError::usage(format!("--out {}: not a file name", path.display()))
        })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        // tempfile creates its files 0600 with O_EXCL, whatever the umask.
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(cannot)?;
        Ok(OutFile {
            tmp,
            path: path.to_path_buf(),
        })
    }

    fn writer(&self) -> Result<tokio::fs::File> {
        let f = self.tmp.reopen().map_err(|e| {
            PgdrError::usage(format!("cannot write {}: {e}", self.tmp.path().display()))
        })?;
        Ok(tokio::fs::File::from_std(f))
    }

    fn finish(self) -> Result<()> {
        let what = self.path.display().to_string();
        self.tmp
            .as_file()
            .sync_all()
            .map_err(|e| PgdrError::usage(format!("cannot write {what}: {e}")))?;
        self.tmp
            .persist(&self.path)
            .map_err(|e| PgdrError::usage(format!("cannot write {what}: {}", e.error)))?;
        Ok(())
    }
}
