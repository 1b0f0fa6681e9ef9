//! Every SQL text the store runs, built once per backend.
//!
//! Statements are written once with `?` placeholders; PostgreSQL gets them renumbered to `$1`,
//! `$2`, …. Only where the dialects really differ (upserts, reading back a new id) does a
//! statement have a per-backend form.

use std::sync::LazyLock;

use crate::setup::Backend;

macro_rules! registration_columns {
    () => {
        "service, device, domain, token, node, secret, created_at, updated_at, dead_since"
    };
}

macro_rules! message_columns {
    () => {
        "id, owner, endpoint_token, application, instance, topic, urgency, body, received_at, \
         expires_at"
    };
}

/// The SQL of one backend. Fields are `&'static str` through [`Statements::of`], which the
/// driver takes without copying.
pub(crate) struct Statements {
    /// Opens a transaction that writes (SQLite takes the write lock at once, so a transaction
    /// that reads first cannot fail later with a busy snapshot).
    pub begin_write: Option<String>,
    pub ping: String,

    /// Whether the statements that can answer with a row do (`RETURNING`: SQLite and
    /// PostgreSQL). MySQL has none: there the row is read back in the same transaction.
    pub returning: bool,

    /// Inserts or updates a registration, answering with the row where `returning`.
    pub register: String,
    /// The registration of a (service, device), and its account tag.
    pub find_device: String,
    /// How many live registrations an account tag has.
    pub count_account_devices: String,
    /// Stores the installation's account key unless one is stored already.
    pub insert_account_key: String,
    pub read_account_key: String,
    /// Locks the account key's row for the rest of the transaction, serialising the
    /// registration of new devices (PostgreSQL and MySQL; SQLite's `BEGIN IMMEDIATE` already
    /// serialises every write).
    pub lock_account_key: Option<String>,
    /// Inserts a registration kept from elsewhere (`pushgate import-p2`) with no account
    /// tag, unless its (service, device) is stored already: SQLite and PostgreSQL do nothing
    /// then; MySQL fails with a duplicate key, which the caller reads as "already present".
    pub insert_registration_if_absent: String,
    pub unregister: String,
    pub find_registration: String,
    pub mark_token_dead: String,
    pub purge_dead_registrations: String,

    pub revoke: String,
    pub is_revoked: String,
    pub purge_revocations: String,

    pub delete_topic: String,
    /// Adds to the stored-message total, answering with the new total where `returning`.
    pub add_to_total: String,
    pub read_total: String,
    pub messages_for_owner: String,
    pub messages_after: String,
    pub delete_message: String,
    pub purge_messages: String,
    pub delete_endpoint_messages: String,
    /// Deletes a message by id answering with its owner where `returning`; on MySQL, locks
    /// the row and reads its owner, for `delete_message` to delete.
    pub remove_message: String,
    /// `purge_messages` answering with the owner of each row deleted where `returning`; on
    /// MySQL, locks the expired rows and reads their owners, for `purge_messages` to delete.
    pub remove_expired: String,
    /// Takes a number of removed messages off an owner's total.
    pub subtract_from_owner_total: String,
    /// Drops the totals of owners that have no messages left.
    pub drop_empty_owner_totals: String,
}

static SQLITE: LazyLock<Statements> = LazyLock::new(|| Statements::build(Backend::Sqlite));
static POSTGRES: LazyLock<Statements> = LazyLock::new(|| Statements::build(Backend::Postgres));
static MYSQL: LazyLock<Statements> = LazyLock::new(|| Statements::build(Backend::MySql));

const REGISTER_ON_CONFLICT: &str = concat!(
    "INSERT INTO registrations (",
    registration_columns!(),
    ", account) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?) \
     ON CONFLICT (service, device) DO UPDATE SET domain = excluded.domain, \
     token = excluded.token, updated_at = excluded.updated_at, dead_since = NULL, \
     account = excluded.account \
     RETURNING ",
    registration_columns!()
);

// MariaDB lacks MySQL 8's `AS new` row alias; `VALUES(col)` works on both.
const REGISTER_ON_DUPLICATE_KEY: &str = concat!(
    "INSERT INTO registrations (",
    registration_columns!(),
    ", account) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?) \
     ON DUPLICATE KEY UPDATE domain = VALUES(domain), token = VALUES(token), \
     updated_at = VALUES(updated_at), dead_since = NULL, account = VALUES(account)"
);

/// A registration kept from elsewhere, with no account tag (see
/// `SqlStore::insert_registration_if_absent`).
const IMPORT_REGISTRATION: &str = concat!(
    "INSERT INTO registrations (",
    registration_columns!(),
    ", account) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)"
);

const ADD_TO_TOTAL: &str = "UPDATE message_totals SET stored = stored + ? WHERE id = 1";

const INSERT_MESSAGES: &str = "INSERT INTO stored_messages (owner, endpoint_token, application, \
     instance, topic, urgency, body, received_at, expires_at) VALUES ";

/// The values of one stored message, in `INSERT_MESSAGES`' column order.
const MESSAGE_VALUES: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Inserts `rows` messages in one statement (values in `INSERT_MESSAGES`' column order,
/// row after row), answering with their ids where the backend has `RETURNING`; on MySQL the
/// first id comes with the result (`LAST_INSERT_ID()`).
pub(crate) fn insert_messages(backend: Backend, rows: usize) -> String {
    let values = vec![MESSAGE_VALUES; rows.max(1)].join(", ");
    let returning = if backend == Backend::MySql {
        ""
    } else {
        " RETURNING id"
    };
    placeholders(backend, &format!("{INSERT_MESSAGES}{values}{returning}"))
}

/// Reads the kept totals of `owners` owners, one row (owner, stored) each that has one.
pub(crate) fn read_owner_totals(backend: Backend, owners: usize) -> String {
    let list = vec!["?"; owners.max(1)].join(", ");
    placeholders(
        backend,
        &format!("SELECT owner, stored FROM owner_totals WHERE owner IN ({list})"),
    )
}

/// Adds to the totals of `owners` distinct owners (bind owner, then the number, per owner),
/// creating the rows not there yet.
pub(crate) fn add_to_owner_totals(backend: Backend, owners: usize) -> String {
    let values = vec!["(?, ?)"; owners.max(1)].join(", ");
    let update = if backend == Backend::MySql {
        "ON DUPLICATE KEY UPDATE stored = stored + VALUES(stored)"
    } else {
        "ON CONFLICT (owner) DO UPDATE SET stored = owner_totals.stored + excluded.stored"
    };
    placeholders(
        backend,
        &format!("INSERT INTO owner_totals (owner, stored) VALUES {values} {update}"),
    )
}

/// Counts the unexpired messages of `owners` owners, one row (owner, count) each that has
/// any: bind the time, then the owners.
pub(crate) fn count_owners_messages(backend: Backend, owners: usize) -> String {
    let list = vec!["?"; owners.max(1)].join(", ");
    placeholders(
        backend,
        &format!(
            "SELECT owner, COUNT(*) FROM stored_messages \
             WHERE expires_at > ? AND owner IN ({list}) GROUP BY owner"
        ),
    )
}

impl Statements {
    /// The statements of `backend`.
    pub fn of(backend: Backend) -> &'static Statements {
        match backend {
            Backend::Sqlite => &SQLITE,
            Backend::Postgres => &POSTGRES,
            Backend::MySql => &MYSQL,
        }
    }

    fn build(backend: Backend) -> Self {
        let sql = |text: &str| placeholders(backend, text);
        let mysql = backend == Backend::MySql;
        let later_expiry = match backend {
            Backend::Sqlite => "MAX(revocations.expires_at, excluded.expires_at)",
            Backend::Postgres => "GREATEST(revocations.expires_at, excluded.expires_at)",
            Backend::MySql => "GREATEST(expires_at, VALUES(expires_at))",
        };
        let revoke = if mysql {
            format!(
                "INSERT INTO revocations (endpoint_id, expires_at) VALUES (?, ?) \
                 ON DUPLICATE KEY UPDATE expires_at = {later_expiry}"
            )
        } else {
            format!(
                "INSERT INTO revocations (endpoint_id, expires_at) VALUES (?, ?) \
                 ON CONFLICT (endpoint_id) DO UPDATE SET expires_at = {later_expiry}"
            )
        };
        Self {
            begin_write: (backend == Backend::Sqlite).then(|| "BEGIN IMMEDIATE".to_owned()),
            ping: "SELECT 1".to_owned(),
            returning: !mysql,

            register: sql(if mysql {
                REGISTER_ON_DUPLICATE_KEY
            } else {
                REGISTER_ON_CONFLICT
            }),
            find_device: sql(concat!(
                "SELECT ",
                registration_columns!(),
                ", account FROM registrations WHERE service = ? AND device = ?"
            )),
            count_account_devices: sql(
                "SELECT COUNT(*) FROM registrations WHERE account = ? AND dead_since IS NULL",
            ),
            insert_account_key: sql(if mysql {
                "INSERT IGNORE INTO registration_account_key (id, key_hex) VALUES (1, ?)"
            } else {
                "INSERT INTO registration_account_key (id, key_hex) VALUES (1, ?) \
                 ON CONFLICT (id) DO NOTHING"
            }),
            read_account_key: sql("SELECT key_hex FROM registration_account_key WHERE id = 1"),
            lock_account_key: (backend != Backend::Sqlite).then(|| {
                "SELECT key_hex FROM registration_account_key WHERE id = 1 FOR UPDATE".to_owned()
            }),
            // MySQL gets a plain INSERT, not `INSERT IGNORE`: IGNORE would also turn a value too
            // long for its column into a warning and store it cut short.
            insert_registration_if_absent: if mysql {
                sql(IMPORT_REGISTRATION)
            } else {
                sql(&format!(
                    "{IMPORT_REGISTRATION} ON CONFLICT (service, device) DO NOTHING"
                ))
            },
            unregister: sql("DELETE FROM registrations WHERE service = ? AND device = ?"),
            // Nodes are random (72 bits), so a (domain, node) pair names one row in practice.
            find_registration: sql(concat!(
                "SELECT ",
                registration_columns!(),
                " FROM registrations WHERE domain = ? AND node = ? LIMIT 1"
            )),
            // `dead_since IS NULL`: the first report dates the death, and "a row changed" then
            // means the same on MySQL (changed rows) as elsewhere (matched rows).
            mark_token_dead: sql("UPDATE registrations SET dead_since = ? \
                 WHERE service = ? AND device = ? AND token = ? AND dead_since IS NULL"),
            purge_dead_registrations: sql(
                "DELETE FROM registrations WHERE dead_since IS NOT NULL AND dead_since < ?",
            ),

            revoke: sql(&revoke),
            is_revoked: sql(
                "SELECT COUNT(*) FROM revocations WHERE endpoint_id = ? AND expires_at > ?",
            ),
            purge_revocations: sql("DELETE FROM revocations WHERE expires_at <= ?"),

            delete_topic: sql("DELETE FROM stored_messages \
                 WHERE owner = ? AND application = ? AND instance = ? AND topic = ?"),
            add_to_total: if mysql {
                sql(ADD_TO_TOTAL)
            } else {
                sql(&format!("{ADD_TO_TOTAL} RETURNING stored"))
            },
            read_total: sql("SELECT stored FROM message_totals WHERE id = 1"),
            messages_for_owner: sql(concat!(
                "SELECT ",
                message_columns!(),
                " FROM stored_messages WHERE owner = ? AND expires_at > ? ORDER BY id LIMIT ?"
            )),
            messages_after: sql(concat!(
                "SELECT ",
                message_columns!(),
                " FROM stored_messages WHERE id > ? AND expires_at > ? ORDER BY id LIMIT ?"
            )),
            delete_message: sql("DELETE FROM stored_messages WHERE id = ?"),
            purge_messages: sql("DELETE FROM stored_messages WHERE expires_at <= ?"),
            delete_endpoint_messages: sql(
                "DELETE FROM stored_messages WHERE owner = ? AND application = ? AND instance = ?",
            ),
            remove_message: sql(if mysql {
                "SELECT owner FROM stored_messages WHERE id = ? FOR UPDATE"
            } else {
                "DELETE FROM stored_messages WHERE id = ? RETURNING owner"
            }),
            remove_expired: sql(if mysql {
                "SELECT owner FROM stored_messages WHERE expires_at <= ? FOR UPDATE"
            } else {
                "DELETE FROM stored_messages WHERE expires_at <= ? RETURNING owner"
            }),
            subtract_from_owner_total: sql(
                "UPDATE owner_totals SET stored = stored - ? WHERE owner = ?",
            ),
            drop_empty_owner_totals: sql("DELETE FROM owner_totals WHERE stored <= 0"),
        }
    }
}

/// `text` with its `?` placeholders in the backend's form. The statements above hold no `?`
/// inside string literals, so every `?` is a placeholder.
pub(crate) fn placeholders(backend: Backend, text: &str) -> String {
    if backend != Backend::Postgres {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut number = 0;
    for c in text.chars() {
        if c == '?' {
            number += 1;
            out.push('$');
            out.push_str(&number.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered() {
        assert_eq!(
            placeholders(Backend::Postgres, "a = ? AND b = ? LIMIT ?"),
            "a = $1 AND b = $2 LIMIT $3"
        );
        assert_eq!(placeholders(Backend::MySql, "a = ?"), "a = ?");
        assert_eq!(placeholders(Backend::Sqlite, "a = ?"), "a = ?");
    }

    #[test]
    fn batch_statements_have_a_value_list_per_row_and_number_postgres_placeholders() {
        let sqlite = insert_messages(Backend::Sqlite, 3);
        assert_eq!(sqlite.matches("(?, ?, ?, ?, ?, ?, ?, ?, ?)").count(), 3);
        let postgres = insert_messages(Backend::Postgres, 2);
        assert!(postgres.contains("($10, $11,"), "{postgres}");
        assert!(postgres.ends_with("$18) RETURNING id"), "{postgres}");
        let count = count_owners_messages(Backend::Postgres, 3);
        assert!(
            count.contains("expires_at > $1 AND owner IN ($2, $3, $4)"),
            "{count}"
        );
        let add = add_to_owner_totals(Backend::Postgres, 2);
        assert!(
            add.contains("VALUES ($1, $2), ($3, $4) ON CONFLICT"),
            "{add}"
        );
        assert!(add_to_owner_totals(Backend::MySql, 1).contains("ON DUPLICATE KEY"));
        assert!(read_owner_totals(Backend::Postgres, 2).ends_with("IN ($1, $2)"));
    }

    #[test]
    fn every_backend_builds_distinct_upserts() {
        let postgres = Statements::of(Backend::Postgres);
        assert!(
            postgres.register.contains("$8, NULL, $9)"),
            "{}",
            postgres.register
        );
        assert!(!postgres.register.contains('?'));
        assert!(postgres.returning);
        let mysql = Statements::of(Backend::MySql);
        assert!(mysql.register.contains("ON DUPLICATE KEY UPDATE"));
        assert!(mysql.insert_account_key.starts_with("INSERT IGNORE"));
        assert!(mysql.lock_account_key.is_some() && postgres.lock_account_key.is_some());
        assert!(!mysql.returning);
        assert!(!insert_messages(Backend::MySql, 2).contains("RETURNING"));
        assert!(!mysql.add_to_total.contains("RETURNING"));
        assert!(mysql.remove_message.ends_with("FOR UPDATE"));
        assert!(postgres.remove_expired.ends_with("RETURNING owner"));
        let sqlite = Statements::of(Backend::Sqlite);
        assert_eq!(sqlite.begin_write.as_deref(), Some("BEGIN IMMEDIATE"));
        assert!(sqlite.lock_account_key.is_none());
        assert!(insert_messages(Backend::Sqlite, 1).ends_with("RETURNING id"));
        assert!(sqlite.add_to_total.ends_with("RETURNING stored"));
    }
}
