//! UnifiedPush store and forward: the `stored_messages` table.

use async_trait::async_trait;
use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};

use pushgate_core::{
    MessageStore, MessageStoreLimits, NewStoredMessage, OwnerKey, StoreError, StoredMessage,
    StoredMessageId, UnixMillis,
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

    /// Runs `removal` and settles the totals, in one transaction, retried on a conflict. How
    /// many messages it removed.
    async fn delete_counted(&self, removal: Removal<'_>) -> Result<u64, StoreError> {
        retry_conflicts(|| async {
            let mut transaction = self.begin_write().await?;
            let removed = self.remove(&mut transaction, removal).await?;
            self.settle_removed(&mut transaction, &removed).await?;
            if matches!(removal, Removal::Expired { .. }) {
                sqlx::query(self.statements.drop_empty_owner_totals.as_str())
                    .execute(&mut *transaction)
                    .await?;
            }
            transaction.commit().await?;
            Ok(removed.values().sum())
        })
        .await
        .map_err(store_error)
    }

    /// Deletes the messages `removal` names inside `transaction`: how many of each owner.
    pub(crate) async fn remove(
        &self,
        transaction: &mut Transaction<'static, Any>,
        removal: Removal<'_>,
    ) -> Result<BTreeMap<String, u64>, sqlx::Error> {
        let statements = self.statements;
        let mut removed = BTreeMap::new();
        match removal {
            Removal::Endpoint {
                owner,
                application,
                instance,
            } => {
                let rows = sqlx::query(statements.delete_endpoint_messages.as_str())
                    .bind(owner)
                    .bind(application)
                    .bind(instance)
                    .execute(&mut **transaction)
                    .await?
                    .rows_affected();
                if rows > 0 {
                    removed.insert(owner.to_owned(), rows);
                }
            }
            Removal::Message { id } => {
                let owners = sqlx::query(statements.remove_message.as_str())
                    .bind(id)
                    .fetch_all(&mut **transaction)
                    .await?;
                if !statements.returning {
                    // MySQL: the row is locked and read; delete it now.
                    sqlx::query(statements.delete_message.as_str())
                        .bind(id)
                        .execute(&mut **transaction)
                        .await?;
                }
                tally(&mut removed, &owners)?;
            }
            Removal::Expired { now } => {
                let owners = sqlx::query(statements.remove_expired.as_str())
                    .bind(now)
                    .fetch_all(&mut **transaction)
                    .await?;
                if !statements.returning {
                    sqlx::query(statements.purge_messages.as_str())
                        .bind(now)
                        .execute(&mut **transaction)
                        .await?;
                }
                tally(&mut removed, &owners)?;
            }
        }
        Ok(removed)
    }

    /// Takes `removed` off the total and off each owner's total. The total's row is locked
    /// first, as every writer does, then the owners' in order, so writers never wait on each
    /// other in a circle.
    pub(crate) async fn settle_removed(
        &self,
        transaction: &mut Transaction<'static, Any>,
        removed: &BTreeMap<String, u64>,
    ) -> Result<(), sqlx::Error> {
        let all: u64 = removed.values().sum();
        if all == 0 {
            return Ok(());
        }
        self.add_to_total(transaction, -count_delta(all)).await?;
        for (owner, count) in removed {
            sqlx::query(self.statements.subtract_from_owner_total.as_str())
                .bind(count_delta(*count))
                .bind(owner.as_str())
                .execute(&mut **transaction)
                .await?;
        }
        Ok(())
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
        let removed = self.delete_counted(Removal::Message { id }).await?;
        Ok(removed > 0)
    }

    pub(crate) async fn delete_expired_messages(&self, now: UnixMillis) -> Result<u64, StoreError> {
        self.delete_counted(Removal::Expired { now }).await
    }

    pub(crate) async fn delete_messages_of_endpoint(
        &self,
        owner: &OwnerKey,
        application: &str,
        instance: &str,
    ) -> Result<u64, StoreError> {
        self.delete_counted(Removal::Endpoint {
            owner: owner.as_str(),
            application,
            instance,
        })
        .await
    }
}

/// Which stored messages a deletion removes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Removal<'a> {
    /// One message, delivered.
    Message { id: StoredMessageId },
    /// Every message expired at `now`.
    Expired { now: UnixMillis },
    /// Every message of one endpoint (revoked).
    Endpoint {
        owner: &'a str,
        application: &'a str,
        instance: &'a str,
    },
}

/// Counts the owners of `rows` (one `owner` column each) into `removed`.
fn tally(removed: &mut BTreeMap<String, u64>, rows: &[AnyRow]) -> Result<(), sqlx::Error> {
    for row in rows {
        let owner: String = row.try_get(0)?;
        *removed.entry(owner).or_insert(0) += 1;
    }
    Ok(())
}

/// A count read inside a transaction (errors stay driver errors, so conflicts retry).
fn counted(row: &AnyRow) -> Result<u64, sqlx::Error> {
    let count: i64 = row.try_get(0)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// A number of rows as a change to a total (no statement removes 2^63 rows).
pub(crate) fn count_delta(rows: u64) -> i64 {
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

#[async_trait]
impl MessageStore for SqlStore {
    async fn store_message(
        &self,
        message: NewStoredMessage,
        limits: MessageStoreLimits,
    ) -> Result<StoredMessageId, StoreError> {
        match &self.writer {
            Some(writer) => writer.store(message, limits).await,
            // Only the writer task's own handle has none, and it stores nothing.
            None => Err(StoreError::Unavailable(
                "this store handle has no message writer".to_owned(),
            )),
        }
    }

    async fn messages_for_owner(
        &self,
        owner: &OwnerKey,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.owner_messages(owner, now, limit).await
    }

    async fn messages_after(
        &self,
        after: StoredMessageId,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.messages_page(after, now, limit).await
    }

    async fn delete_message(&self, id: StoredMessageId) -> Result<bool, StoreError> {
        self.delete_message_by_id(id).await
    }

    async fn purge_expired_messages(&self, now: UnixMillis) -> Result<u64, StoreError> {
        self.delete_expired_messages(now).await
    }

    async fn delete_endpoint_messages(
        &self,
        owner: &OwnerKey,
        application: &str,
        instance: &str,
    ) -> Result<u64, StoreError> {
        self.delete_messages_of_endpoint(owner, application, instance)
            .await
    }
}
