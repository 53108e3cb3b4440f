//! `rust-api-axum db upgrade|downgrade|status|history`: the original's `flask db ...` over the one migration
//! history. Results go to the given writer (standard output), progress to the log.

use std::io::Write;

use migration::{MigrationStatus, Migrator, MigratorTrait};
use sea_orm::{DatabaseConnection, DbErr};

use crate::cli::DbCommand;

/// Why a `db` command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The migration machinery failed.
    #[error("{0}")]
    Database(#[from] DbErr),
    /// The output could not be written.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs `command` against `db`, writing its report to `out`.
pub async fn run(db: &DatabaseConnection, command: DbCommand, out: &mut impl Write) -> Result<(), CommandError> {
    match command {
        DbCommand::Upgrade => {
            let pending = Migrator::get_pending_migrations(db).await?.len();
            Migrator::up(db, None).await?;
            writeln!(out, "Applied {pending} migration(s); the schema is up to date.")?;
        }
        DbCommand::Downgrade { steps } => {
            let applied = Migrator::get_applied_migrations(db).await?.len();
            let steps = steps.min(u32::try_from(applied).unwrap_or(u32::MAX));
            if steps > 0 {
                Migrator::down(db, Some(steps)).await?;
            }
            let current = Migrator::get_applied_migrations(db).await?;
            let now_at = current.last().map_or("no migration (empty schema)", |m| m.name());
            writeln!(out, "Reverted {steps} migration(s); now at {now_at}.")?;
        }
        DbCommand::Status => {
            let migrations = Migrator::get_migration_with_status_read_only(db).await?;
            let mut applied = 0;
            for migration in &migrations {
                let status = migration.status();
                applied += usize::from(status == MigrationStatus::Applied);
                let status = match status {
                    MigrationStatus::Applied => "applied",
                    MigrationStatus::Pending => "pending",
                };
                writeln!(out, "{:<40} {status}", migration.name())?;
            }
            writeln!(out, "{applied} applied, {} pending", migrations.len() - applied)?;
        }
        DbCommand::History => {
            let migrations = Migrator::get_migration_with_status_read_only(db).await?;
            let current = migrations.iter().rposition(|m| m.status() == MigrationStatus::Applied);
            for (index, migration) in migrations.iter().enumerate() {
                let mut marks = Vec::new();
                if index + 1 == migrations.len() {
                    marks.push("head");
                }
                if Some(index) == current {
                    marks.push("current");
                }
                let marks = if marks.is_empty() { String::new() } else { format!(" ({})", marks.join(", ")) };
                writeln!(out, "{}{marks}", migration.name())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::DatabaseSettings, db::connect};

    async fn report(db: &DatabaseConnection, command: DbCommand) -> String {
        let mut out = Vec::new();
        run(db, command, &mut out).await.expect("command runs");
        String::from_utf8(out).expect("utf-8")
    }

    /// Counts and names from the Migrator, so the test holds for every migration an entity adds.
    #[tokio::test]
    async fn status_history_upgrade_and_downgrade_report_what_they_did() {
        let names: Vec<String> = Migrator::migrations().iter().map(|migration| migration.name().to_owned()).collect();
        let all = names.len();
        assert!(all >= 2, "the history has at least its first two revisions: {names:?}");
        let history = |current: Option<usize>| {
            let line = |index: usize, name: &String| match (index + 1 == all, Some(index) == current) {
                (true, true) => format!("{name} (head, current)\n"),
                (true, false) => format!("{name} (head)\n"),
                (false, true) => format!("{name} (current)\n"),
                (false, false) => format!("{name}\n"),
            };
            names.iter().enumerate().map(|(index, name)| line(index, name)).collect::<String>()
        };
        let config = DatabaseSettings { db_url: Some("sqlite::memory:".into()), ..DatabaseSettings::default() };
        let db = connect(&config).await.expect("connects");
        let status = report(&db, DbCommand::Status).await;
        assert!(status.contains("m0001_resources"), "{status}");
        assert!(status.ends_with(&format!("0 applied, {all} pending\n")), "{status}");
        assert_eq!(
            report(&db, DbCommand::Upgrade).await,
            format!("Applied {all} migration(s); the schema is up to date.\n")
        );
        assert!(report(&db, DbCommand::Status).await.ends_with(&format!("{all} applied, 0 pending\n")));
        assert_eq!(report(&db, DbCommand::History).await, history(Some(all - 1)));
        assert_eq!(
            report(&db, DbCommand::Downgrade { steps: 1 }).await,
            format!("Reverted 1 migration(s); now at {}.\n", names[all - 2])
        );
        assert_eq!(report(&db, DbCommand::History).await, history(Some(all - 2)));
        let steps = u32::try_from(all).expect("a few migrations");
        assert_eq!(
            report(&db, DbCommand::Downgrade { steps }).await,
            format!("Reverted {} migration(s); now at no migration (empty schema).\n", all - 1)
        );
    }
}
