//! The schema migrations of each backend, compiled into the binary and run at connect.

use sqlx::SqlSafeStr as _;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::setup::Backend;

/// One migration: its version, its name, and its SQL for each backend.
struct Step {
    version: i64,
    description: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
    mysql: &'static str,
}

// Append only: an applied migration must never change (sqlx checks the checksum).
const STEPS: &[Step] = &[
    Step {
        version: 1,
        description: "initial",
        sqlite: include_str!("../../../migrations/sqlite/0001_initial.sql"),
        postgres: include_str!("../../../migrations/postgres/0001_initial.sql"),
        mysql: include_str!("../../../migrations/mysql/0001_initial.sql"),
    },
    Step {
        version: 2,
        description: "message totals",
        sqlite: include_str!("../../../migrations/sqlite/0002_message_totals.sql"),
        postgres: include_str!("../../../migrations/postgres/0002_message_totals.sql"),
        mysql: include_str!("../../../migrations/mysql/0002_message_totals.sql"),
    },
    Step {
        version: 3,
        description: "registration accounts",
        sqlite: include_str!("../../../migrations/sqlite/0003_registration_accounts.sql"),
        postgres: include_str!("../../../migrations/postgres/0003_registration_accounts.sql"),
        mysql: include_str!("../../../migrations/mysql/0003_registration_accounts.sql"),
    },
    Step {
        version: 4,
        description: "owner totals",
        sqlite: include_str!("../../../migrations/sqlite/0004_owner_totals.sql"),
        postgres: include_str!("../../../migrations/postgres/0004_owner_totals.sql"),
        mysql: include_str!("../../../migrations/mysql/0004_owner_totals.sql"),
    },
    Step {
        version: 5,
        description: "leaner message indexes",
        sqlite: include_str!("../../../migrations/sqlite/0005_leaner_message_indexes.sql"),
        postgres: include_str!("../../../migrations/postgres/0005_leaner_message_indexes.sql"),
        mysql: include_str!("../../../migrations/mysql/0005_leaner_message_indexes.sql"),
    },
];

/// The migrator for `backend`.
pub(crate) fn migrator(backend: Backend) -> Migrator {
    let migrations = STEPS
        .iter()
        .map(|step| {
            let sql = match backend {
                Backend::Sqlite => step.sqlite,
                Backend::Postgres => step.postgres,
                Backend::MySql => step.mysql,
            };
            Migration::new(
                step.version,
                step.description.into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_has_every_version() {
        for backend in [Backend::Sqlite, Backend::Postgres, Backend::MySql] {
            let versions: Vec<i64> = migrator(backend).iter().map(|m| m.version).collect();
            let expected: Vec<i64> = (1..=STEPS.len() as i64).collect();
            assert_eq!(versions, expected, "{backend}");
        }
        // Each step's files say what the step is for, on every backend.
        let marks = [
            (1, "CREATE TABLE stored_messages"),
            (2, "CREATE TABLE message_totals"),
            (3, "CREATE TABLE registration_account_key"),
            (4, "CREATE TABLE owner_totals"),
            (5, "DROP INDEX stored_messages_owner_expires_at"),
        ];
        assert_eq!(marks.len(), STEPS.len());
        for (step, (version, mark)) in STEPS.iter().zip(marks) {
            assert_eq!(step.version, version);
            for sql in [step.sqlite, step.postgres, step.mysql] {
                assert!(sql.contains(mark), "{}", step.description);
            }
        }
    }
}
