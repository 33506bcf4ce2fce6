//! `pgdr config check`: every problem with the settings, each named, without backing up.

use crate::codec;
use crate::config::Settings;
use crate::error::PgdrError;
use crate::source::{self, tools};

#[derive(Debug, serde::Serialize)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

/// Runs all checks and reports each; never stops at the first failure.
pub async fn run(settings: &Settings) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut push = |what: String, r: Result<String, PgdrError>| {
        checks.push(match r {
            Ok(detail) => Check {
                what,
                ok: true,
                detail,
            },
            Err(e) => Check {
                what,
                ok: false,
                detail: e.to_string(),
            },
        })
    };

    push(
        "recipients".into(),
        codec::parse_recipients(&settings.recipients)
            .map(|r| format!("{} age recipient(s)", r.len())),
    );
    for id in &settings.identities {
        push(
            format!("identity {}", id.display()),
            codec::load_identities(id).map(|ids| {
                let pubs: Vec<String> = ids.iter().map(|i| i.to_public().to_string()).collect();
                let matching = pubs
                    .iter()
                    .filter(|p| settings.recipients.contains(p))
                    .count();
                format!(
                    "{} identity(ies), {matching} matching a configured recipient",
                    ids.len()
                )
            }),
        );
    }
    for (what, r) in repository(settings).await {
        push(what, r);
    }

    if settings.databases.is_empty() {
        push(
            "databases".into(),
            Err(PgdrError::config("no database configured")
                .hint("add a [[database]] with url = \"postgres://...\" or pass --source")),
        );
    }
    for db in &settings.databases {
        let r = async {
            let client = source::connect(db).await?;
            let info = source::server_info(&client).await?;
            let dump = tools::find("pg_dump", info.major(), settings.pg_bin_dir.as_deref())?;
            tools::find("pg_dumpall", info.major(), settings.pg_bin_dir.as_deref())?;
            Ok(format!(
                "{} reachable, PostgreSQL {}, pg_dump {} at {}{}",
                db.describe(),
                info.server_version,
                dump.version,
                dump.path.display(),
                if info.is_superuser {
                    ""
                } else {
                    "; not a superuser: roles are saved without passwords"
                }
            ))
        }
        .await;
        push(format!("database '{}'", db.name), r);
    }
    checks
}

/// The repository is writable; then, for a bucket, how it protects its objects.
async fn repository(settings: &Settings) -> Vec<(String, Result<String, PgdrError>)> {
    let opened = crate::catalog::Repository::open(settings).await;
    let repo = async {
        let s = opened.as_ref().map_err(Clone::clone)?;
        s.check_writable().await?;
        Ok(format!("{} is writable", s.describe()))
    }
    .await;
    let reachable = repo.is_ok();
    let mut out = vec![("repository".to_string(), repo)];
    if let (true, Ok(s)) = (reachable, &opened) {
        if let Some(r) = bucket_protection(settings, s).await {
            out.push(("bucket protection".into(), r));
        }
    }
    out
}

/// The bucket's versioning, Object Lock and default retention; a failure when the settings ask
/// for Object Lock and the bucket cannot do it. `None` for a local repository.
async fn bucket_protection(
    settings: &Settings,
    repo: &crate::catalog::Repository,
) -> Option<Result<String, PgdrError>> {
    let p = match repo.protection().await {
        Ok(p) => p?,
        Err(e) => return Some(Err(e)),
    };
    let detail = format!(
        "versioning {}, Object Lock {}, default retention {}",
        p.versioning,
        if p.object_lock {
            "enabled"
        } else {
            "not enabled"
        },
        p.default_retention.as_deref().unwrap_or("none")
    );
    Some(match settings.s3.object_lock {
        Some(mode) if !p.object_lock => Err(PgdrError::config(format!(
            "repository.s3.object_lock = \"{}\" but the bucket has no Object Lock ({detail})",
            mode.as_str()
        ))
        .hint("Object Lock can only be enabled on a bucket (versioned) at or after creation: create one with Object Lock, or remove object_lock")),
        Some(mode) => Ok(format!("{detail}; pgdr locks backups and segments in {} mode", mode.as_str())),
        None => Ok(detail),
    })
}
