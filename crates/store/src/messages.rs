//! UnifiedPush store and forward: the `stored_messages` table.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row as _, Transaction};

use pushgate_core::{
    NewStoredMessage, OwnerKey, StoreError, StoredMessage, StoredMessageId, UnixMillis,
};

use crate::sql_store::{SqlStore, retry_conflicts, store_error};

impl SqlStore {
    /// Adds `delta` to the stored-message total inside `transaction`; the new total.
    pub(crate) async fn add_to_total(
        &self,
        transaction: &mut Transaction<'static, Any>,
        delta: i64,
    ) -> Result<u64, sqlx::Error> {
        let statements = self.statements;
        let add = sqlx::query(statements.add_to_total.as_str()).bind(delta);
        let row = if statements.returning {
            add.fetch_optional(&mut **transaction).await?
        } else {
            add.execute(&mut **transaction).await?;
            // The row as this transaction left it: locked by the update, so no one else's.
            sqlx::query(statements.read_total.as_str())
                .fetch_optional(&mut **transaction)
                .await?
        };
        // The migration inserts the row and nothing deletes it.
        let row = row.ok_or_else(|| {
            sqlx::Error::Protocol("the stored-message total row is missing".to_owned())
        })?;
        counted(&row)
    }

    /// Runs a deletion of stored messages and takes what it removed off the total, in one
    /// transaction, retried on a conflict. How many it removed.
    async fn delete_counted(
        &self,
        delete: impl Fn() -> Query<'static, Any, AnyArguments>,
    ) -> Result<u64, StoreError> {
        retry_conflicts(|| async {
            let mut transaction = self.begin_write().await?;
            let removed = delete().execute(&mut *transaction).await?.rows_affected();
            if removed > 0 {
                self.add_to_total(&mut transaction, -count_delta(removed))
                    .await?;
            }
            transaction.commit().await?;
            Ok(removed)
        })
        .await
        .map_err(store_error)
    }

    pub(crate) async fn owner_messages(
        &self,
        owner: &OwnerKey,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = sqlx::query(self.statements.messages_for_owner.as_str())
            .bind(owner.as_str())
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(message_from_row).collect()
    }

    pub(crate) async fn messages_page(
        &self,
        after: StoredMessageId,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = sqlx::query(self.statements.messages_after.as_str())
            .bind(after)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(message_from_row).collect()
    }

    pub(crate) async fn delete_message_by_id(
        &self,
        id: StoredMessageId,
    ) -> Result<bool, StoreError> {
        let removed = self
            .delete_counted(|| sqlx::query(self.statements.delete_message.as_str()).bind(id))
            .await?;
        Ok(removed > 0)
    }

    pub(crate) async fn delete_expired_messages(&self, now: UnixMillis) -> Result<u64, StoreError> {
        self.delete_counted(|| sqlx::query(self.statements.purge_messages.as_str()).bind(now))
            .await
    }

    pub(crate) async fn delete_messages_of_endpoint(
        &self,
        owner: &OwnerKey,
        application: &str,
        instance: &str,
    ) -> Result<u64, StoreError> {
        self.delete_counted(|| {
            sqlx::query(self.statements.delete_endpoint_messages.as_str())
                .bind(owner.as_str())
                .bind(application)
                .bind(instance)
        })
        .await
    }
}

/// A count read inside a transaction (errors stay driver errors, so conflicts retry).
fn counted(row: &AnyRow) -> Result<u64, sqlx::Error> {
    let count: i64 = row.try_get(0)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// A number of rows as a change to the total (no statement removes 2^63 rows).
fn count_delta(rows: u64) -> i64 {
    i64::try_from(rows).unwrap_or(i64::MAX)
}

/// Reads a `stored_messages` row (columns in `message_columns!` order and names).
fn message_from_row(row: &AnyRow) -> Result<StoredMessage, StoreError> {
    let owner: String = row.try_get("owner").map_err(store_error)?;
    Ok(StoredMessage {
        id: row.try_get("id").map_err(store_error)?,
        message: NewStoredMessage {
            owner: OwnerKey::from_stored(owner),
            endpoint_token: row.try_get("endpoint_token").map_err(store_error)?,
            application: row.try_get("application").map_err(store_error)?,
            instance: row.try_get("instance").map_err(store_error)?,
            topic: row.try_get("topic").map_err(store_error)?,
            urgency: row.try_get("urgency").map_err(store_error)?,
            body: row.try_get("body").map_err(store_error)?,
            received_at: row.try_get("received_at").map_err(store_error)?,
            expires_at: row.try_get("expires_at").map_err(store_error)?,
        },
    })
}
