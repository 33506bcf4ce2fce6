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
    let repo = async {
        let s = crate::catalog::Repository::open(settings).await?;
        s.check_writable().await?;
        Ok(format!("{} is writable", s.describe()))
    }
    .await;
    push("repository".into(), repo);

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
