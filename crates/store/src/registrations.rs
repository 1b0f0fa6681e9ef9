//! XEP-0357 registrations (p2 role): the `registrations` table.

use async_trait::async_trait;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row as _, Transaction};

use pushgate_core::{
    AccountTag, DeviceHash, Node, PushService, Registration, RegistrationRequest,
    RegistrationStore, Secret, StoreError, UnixMillis,
};

use crate::sql_store::{SqlStore, retry_conflicts, store_error};
use crate::statements::Statements;

impl SqlStore {
    pub(crate) async fn upsert_registration(
        &self,
        request: &RegistrationRequest,
    ) -> Result<Registration, StoreError> {
        let account = self.account_key.tag(&request.account);
        let known = self
            .registration_of_device(request.service, &request.device)
            .await?;
        // Clients register again on every connect (Conversations does), nearly always with
        // what is stored already. Those are answered from a read and write nothing: on SQLite
        // even an update that changes nothing adds whole pages to the write-ahead log, and on
        // every backend it takes a write lock. `updated_at` therefore dates the last change.
        if let Some((stored, stored_account)) = &known
            && stored.domain == request.domain
            && stored.token == request.token
            && stored.dead_since.is_none()
            && stored_account.as_deref() == Some(account.as_str())
        {
            return Ok(stored.clone());
        }
        // A device already registered is never refused: only a new one counts against the
        // limit. MySQL/InnoDB may report a deadlock between twin registrations of one device;
        // the retry then finds the row.
        let row = if known.is_some() {
            retry_conflicts(|| self.upsert_registration_once(request, &account))
                .await
                .map(Some)
        } else {
            retry_conflicts(|| self.register_new_device(request, &account)).await
        };
        match row {
            Ok(Some(row)) => registration_from_row(&row),
            Ok(None) => Err(StoreError::TooManyDevices(request.max_devices_per_account)),
            Err(error) => Err(store_error(error)),
        }
    }

    /// Inserts or updates the row; one statement decides between the two, so two
    /// registrations of the same new device at once both end on the row the first inserted.
    async fn upsert_registration_once(
        &self,
        request: &RegistrationRequest,
        account: &AccountTag,
    ) -> Result<AnyRow, sqlx::Error> {
        if self.statements.returning {
            // Read to the end, not `fetch_one`: SQLite runs its automatic checkpoint only when
            // a statement outside a transaction steps to its end. One dropped after its first
            // row commits on reset, which skips the checkpoint, and the WAL then grows without
            // bound.
            return upsert_query(self.statements, request, account)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .next()
                .ok_or(sqlx::Error::RowNotFound);
        }
        let mut transaction = self.begin_write().await?;
        let row = self.upsert_in(&mut transaction, request, account).await?;
        transaction.commit().await?;
        Ok(row)
    }

    /// Registers a device not seen before, unless its account already has the most live
    /// devices allowed (then `None`). The count and the insert share one transaction, and
    /// that transaction holds the account key's row lock where the backend needs one, so two
    /// new devices of one account cannot both take the last place.
    async fn register_new_device(
        &self,
        request: &RegistrationRequest,
        account: &AccountTag,
    ) -> Result<Option<AnyRow>, sqlx::Error> {
        let statements = self.statements;
        let mut transaction = self.begin_write().await?;
        if let Some(lock) = &statements.lock_account_key {
            sqlx::query(lock.as_str())
                .fetch_all(&mut *transaction)
                .await?;
        }
        // The device may have registered since the first look (a twin request, or another
        // instance on the same database): then it is known, and not refused.
        let registered_meanwhile = sqlx::query(statements.find_device.as_str())
            .bind(request.service.as_str())
            .bind(request.device.as_str())
            .fetch_all(&mut *transaction)
            .await?;
        if registered_meanwhile.is_empty() {
            let live: i64 = sqlx::query(statements.count_account_devices.as_str())
                .bind(account.as_str())
                .fetch_one(&mut *transaction)
                .await?
                .try_get(0)?;
            if live >= i64::from(request.max_devices_per_account) {
                transaction.rollback().await?;
                return Ok(None);
            }
        }
        let row = self.upsert_in(&mut transaction, request, account).await?;
        transaction.commit().await?;
        Ok(Some(row))
    }

    /// Runs the upsert in `transaction` and reads the row back.
    async fn upsert_in(
        &self,
        transaction: &mut Transaction<'static, Any>,
        request: &RegistrationRequest,
        account: &AccountTag,
    ) -> Result<AnyRow, sqlx::Error> {
        let statements = self.statements;
        let upsert = upsert_query(statements, request, account);
        if statements.returning {
            // Read to the end, not `fetch_one`: a statement dropped after its first row
            // leaves SQLite's statement unfinished.
            return upsert
                .fetch_all(&mut **transaction)
                .await?
                .into_iter()
                .next()
                .ok_or(sqlx::Error::RowNotFound);
        }
        upsert.execute(&mut **transaction).await?;
        sqlx::query(statements.find_device.as_str())
            .bind(request.service.as_str())
            .bind(request.device.as_str())
            .fetch_one(&mut **transaction)
            .await
    }

    /// The stored registration of (service, device), if any, with its account tag (none for
    /// a row from before accounts were kept).
    async fn registration_of_device(
        &self,
        service: PushService,
        device: &DeviceHash,
    ) -> Result<Option<(Registration, Option<String>)>, StoreError> {
        let row = sqlx::query(self.statements.find_device.as_str())
            .bind(service.as_str())
            .bind(device.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let account: Option<String> = row.try_get("account").map_err(store_error)?;
        Ok(Some((registration_from_row(&row)?, account)))
    }

    /// Stores `registration` as it is (device, domain, token, node, secret and times; live, as
    /// `dead_since` is not taken), unless a registration of its (service, device) is stored
    /// already, which is then left untouched: it may be newer than the one offered. Returns
    /// whether a row was inserted.
    ///
    /// For registrations kept from another app server (`pushgate import-p2`), whose clients
    /// already hold the node and secret. The row gets no account tag (`account` is NULL): the
    /// JID behind it was never stored, so it cannot be keyed. A publish finds it by (domain,
    /// node) like any other row; the limit on devices per account counts only tagged rows
    /// (`account = ?`), so it neither counts nor blocks it; and when the device registers again
    /// its row is found by (service, device), keeps its node and secret, and gets its tag.
    pub async fn insert_registration_if_absent(
        &self,
        registration: &Registration,
    ) -> Result<bool, StoreError> {
        let outcome = sqlx::query(self.statements.insert_registration_if_absent.as_str())
            .bind(registration.service.as_str())
            .bind(registration.device.as_str())
            .bind(registration.domain.as_str())
            .bind(registration.token.as_str())
            .bind(registration.node.as_str())
            .bind(registration.secret.expose())
            .bind(registration.created_at)
            .bind(registration.updated_at)
            .execute(&self.pool)
            .await;
        match outcome {
            Ok(result) => Ok(result.rows_affected() > 0),
            // MySQL's statement has no "do nothing" clause: its duplicate key is the answer
            // "already present" (the primary key is (service, device), the only unique key).
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Ok(false),
            Err(error) => Err(store_error(error)),
        }
    }

    pub(crate) async fn delete_registration(
        &self,
        service: PushService,
        device: &DeviceHash,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(self.statements.unregister.as_str())
            .bind(service.as_str())
            .bind(device.as_str())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }

    pub(crate) async fn registration_by_node(
        &self,
        domain: &str,
        node: &str,
    ) -> Result<Option<Registration>, StoreError> {
        let row = sqlx::query(self.statements.find_registration.as_str())
            .bind(domain)
            .bind(node)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(registration_from_row).transpose()
    }

    pub(crate) async fn set_token_dead(
        &self,
        service: PushService,
        device: &DeviceHash,
        token: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(self.statements.mark_token_dead.as_str())
            .bind(now)
            .bind(service.as_str())
            .bind(device.as_str())
            .bind(token)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }

    pub(crate) async fn delete_dead_registrations(
        &self,
        dead_before: UnixMillis,
    ) -> Result<u64, StoreError> {
        let result = sqlx::query(self.statements.purge_dead_registrations.as_str())
            .bind(dead_before)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected())
    }
}

/// The upsert of `request`'s row.
fn upsert_query<'q>(
    statements: &'static Statements,
    request: &'q RegistrationRequest,
    account: &'q AccountTag,
) -> Query<'q, Any, AnyArguments> {
    sqlx::query(statements.register.as_str())
        .bind(request.service.as_str())
        .bind(request.device.as_str())
        .bind(request.domain.as_str())
        .bind(request.token.as_str())
        .bind(request.fresh_node.as_str())
        .bind(request.fresh_secret.expose())
        .bind(request.now)
        .bind(request.now)
        .bind(account.as_str())
}

/// Reads a `registrations` row (columns in `registration_columns!` order and names).
fn registration_from_row(row: &AnyRow) -> Result<Registration, StoreError> {
    let service: String = row.try_get("service").map_err(store_error)?;
    let device: String = row.try_get("device").map_err(store_error)?;
    Ok(Registration {
        service: PushService::parse(&service)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown push service {service:?}")))?,
        device: DeviceHash::from_hex(&device)
            .ok_or_else(|| StoreError::Corrupt("device hash is not 40 hex digits".to_owned()))?,
        domain: row.try_get("domain").map_err(store_error)?,
        token: row.try_get("token").map_err(store_error)?,
        node: Node::new(row.try_get::<String, _>("node").map_err(store_error)?),
        secret: Secret::new(row.try_get::<String, _>("secret").map_err(store_error)?),
        created_at: row.try_get("created_at").map_err(store_error)?,
        updated_at: row.try_get("updated_at").map_err(store_error)?,
        dead_since: row.try_get("dead_since").map_err(store_error)?,
    })
}

#[async_trait]
impl RegistrationStore for SqlStore {
    async fn register_device(
        &self,
        request: RegistrationRequest,
    ) -> Result<Registration, StoreError> {
        self.upsert_registration(&request).await
    }

    async fn unregister_device(
        &self,
        service: PushService,
        device: &DeviceHash,
    ) -> Result<bool, StoreError> {
        self.delete_registration(service, device).await
    }

    async fn find_registration(
        &self,
        domain: &str,
        node: &str,
    ) -> Result<Option<Registration>, StoreError> {
        self.registration_by_node(domain, node).await
    }

    async fn mark_token_dead(
        &self,
        service: PushService,
        device: &DeviceHash,
        token: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.set_token_dead(service, device, token, now).await
    }

    async fn purge_dead_registrations(&self, dead_before: UnixMillis) -> Result<u64, StoreError> {
        self.delete_dead_registrations(dead_before).await
    }
}
