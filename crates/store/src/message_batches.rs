//! Group commit for stored messages: the messages stored at the same time share one
//! transaction.
//!
//! During an XMPP outage every POST must be stored, and one transaction per message made the
//! database's commit rate the ceiling of the whole service (326 stores/s on SQLite). Stores
//! now go to one writer task: it takes the first message waiting, every other one waiting
//! behind it (up to [`MAX_BATCH`]), and writes them in one transaction with a few statements
//! for the whole batch. Nothing waits on purpose: a lone message is written at once, and
//! messages arriving while a batch commits form the next one. Durability is kept: each caller
//! is answered only after the commit that holds its message (so the 201 comes after it), and a
//! failed transaction fails every message in it.

use std::collections::{BTreeMap, HashMap};

use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};
use tokio::sync::{mpsc, oneshot};

use pushgate_core::{
    MessageStoreLimits, NewStoredMessage, StoreError, StoreFullScope, StoredMessageId,
};

use crate::messages::{Removal, count_delta};
use crate::sql_store::{SqlStore, retry_conflicts, store_error};
use crate::statements::{
    add_to_owner_totals, count_owners_messages, insert_messages, read_owner_totals,
};

/// The most messages written in one transaction.
pub(crate) const MAX_BATCH: usize = 256;
/// The most message bytes written in one transaction (a batch also ends at [`MAX_BATCH`]).
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Rows per multi-row statement: 9 values a row stays far under every backend's limit on
/// bound values (SQLite's 32,766 the smallest).
const ROWS_PER_STATEMENT: usize = 64;
/// Messages waiting for the writer at most; a store past it waits for room.
const QUEUE: usize = 4 * MAX_BATCH;

/// What one message came to.
type Outcome = Result<StoredMessageId, StoreError>;

struct Pending {
    message: NewStoredMessage,
    limits: MessageStoreLimits,
    answer: oneshot::Sender<Outcome>,
}

/// The way to the writer task; the task ends when the last handle is dropped.
pub(crate) struct MessageWriter {
    queue: mpsc::Sender<Pending>,
}

impl MessageWriter {
    /// Starts the writer task on `store` (a clone without a writer of its own, so the task
    /// does not keep itself alive).
    pub(crate) fn start(store: SqlStore) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(store, pending));
        Self { queue }
    }

    /// Stores `message` under `limits`; answered once the transaction that holds it committed.
    pub(crate) async fn store(
        &self,
        message: NewStoredMessage,
        limits: MessageStoreLimits,
    ) -> Outcome {
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            message,
            limits,
            answer,
        };
        let stopped = || StoreError::Unavailable("the message writer has stopped".to_owned());
        self.queue.send(pending).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

async fn write_batches(store: SqlStore, mut pending: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // A message that starts the next batch: it replaces one in the batch before it.
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(first) => first,
            None => match pending.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut bytes = first.message.body.len();
        batch.push(first);
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            let Ok(next) = pending.try_recv() else { break };
            // A batch deletes the older messages of its topics before it inserts: a second
            // message with the same topic must come after the first is written.
            if replaces_one_in(&next, &batch) {
                carried = Some(next);
                break;
            }
            bytes += next.message.body.len();
            batch.push(next);
        }
        let written = retry_conflicts(|| write_once(&store, &batch)).await;
        match written {
            Ok(outcomes) => {
                for (pending, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = pending.answer.send(outcome.map_err(StoreError::Full));
                }
            }
            Err(error) => {
                let error = store_error(error);
                for pending in batch.drain(..) {
                    let _ = pending.answer.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Whether `next` has the topic of a message of `batch` (same owner and endpoint).
fn replaces_one_in(next: &Pending, batch: &[Pending]) -> bool {
    let Some(topic) = &next.message.topic else {
        return false;
    };
    batch.iter().any(|pending| {
        let message = &pending.message;
        message.topic.as_ref() == Some(topic)
            && message.owner == next.message.owner
            && message.application == next.message.application
            && message.instance == next.message.instance
    })
}

/// One attempt at writing `batch`: per message, its id or the cap that refused it.
async fn write_once(
    store: &SqlStore,
    batch: &[Pending],
) -> Result<Vec<Result<StoredMessageId, StoreFullScope>>, sqlx::Error> {
    let statements = store.statements;
    let mut transaction = store.begin_write().await?;
    // Whatever the clocks of the callers said, the batch counts expiry at its latest.
    let now = batch
        .iter()
        .map(|pending| pending.message.received_at)
        .max()
        .unwrap_or_default();

    // RFC 8030 §5.4: an older message with the same topic goes first, so the new one does not
    // count it against the caps. (It only frees room, so no message that replaced one is
    // refused below, and no deletion has to be undone.)
    let mut replaced = vec![0u64; batch.len()];
    let mut replaced_of: HashMap<&str, u64> = HashMap::new();
    for (index, pending) in batch.iter().enumerate() {
        if let Some(topic) = &pending.message.topic {
            let owner = pending.message.owner.as_str();
            replaced[index] = sqlx::query(statements.delete_topic.as_str())
                .bind(owner)
                .bind(pending.message.application.as_str())
                .bind(pending.message.instance.as_str())
                .bind(topic.as_str())
                .execute(&mut *transaction)
                .await?
                .rows_affected();
            *replaced_of.entry(owner).or_insert(0) += replaced[index];
        }
    }

    // The per-owner cap: each owner's messages as `owner_totals` keeps them (never fewer than
    // the unexpired ones), counted exactly only for an owner this batch could take past its
    // cap; then this batch's own added in order.
    let mut owned = owner_counts(store, &mut transaction, batch, now, &replaced_of).await?;
    let mut outcomes: Vec<Result<StoredMessageId, StoreFullScope>> =
        Vec::with_capacity(batch.len());
    for pending in batch {
        let count = owned.entry(pending.message.owner.as_str()).or_insert(0);
        if *count >= u64::from(pending.limits.max_per_owner) {
            outcomes.push(Err(StoreFullScope::Owner));
        } else {
            *count += 1;
            // A placeholder until the insert below gives the id.
            outcomes.push(Ok(0));
        }
    }

    // The total cap: counting the table on every store took time in proportion to what it
    // holds (from 871 stores/s empty to 200/s at 100,000). The count is kept instead in the one
    // row of `message_totals`, changed in the transaction of every statement that adds or
    // deletes messages, so it is exact and costs one row. Its lock orders the writers on every
    // backend (other instances' too), so this cap is never passed. It counts expired rows not
    // yet purged too: while it is within the cap, the unexpired are; past it, the expired rows
    // are deleted now (they are gone to every reader already) and what is left decides, the
    // newest of the batch's additions being refused and taken back off.
    let added = outcomes.iter().filter(|outcome| outcome.is_ok()).count() as i64;
    let freed: u64 = replaced.iter().sum();
    let max_total = batch
        .iter()
        .map(|pending| pending.limits.max_total)
        .min()
        .unwrap_or(0);
    let mut total = store
        .add_to_total(&mut transaction, added - freed as i64)
        .await?;
    if total > max_total {
        let expired = store
            .remove(&mut transaction, Removal::Expired { now })
            .await?;
        store.settle_removed(&mut transaction, &expired).await?;
        total = total.saturating_sub(expired.values().sum());
    }
    if total > max_total {
        let mut excess = total - max_total;
        let mut refused = 0i64;
        for (index, outcome) in outcomes.iter_mut().enumerate().rev() {
            if excess == 0 {
                break;
            }
            // A message that replaced one added nothing to the total.
            if outcome.is_ok() && replaced[index] == 0 {
                *outcome = Err(StoreFullScope::Total);
                excess -= 1;
                refused += 1;
            }
        }
        if refused > 0 {
            store.add_to_total(&mut transaction, -refused).await?;
        }
    }

    // Each owner's total moves by what it keeps of this batch less what that replaced.
    let mut owner_deltas: BTreeMap<&str, i64> = BTreeMap::new();
    for (pending, outcome) in batch.iter().zip(&outcomes) {
        if outcome.is_ok() {
            *owner_deltas
                .entry(pending.message.owner.as_str())
                .or_insert(0) += 1;
        }
    }
    for (owner, freed) in &replaced_of {
        *owner_deltas.entry(owner).or_insert(0) -= count_delta(*freed);
    }
    owner_deltas.retain(|_, delta| *delta != 0);
    let deltas: Vec<(&str, i64)> = owner_deltas.into_iter().collect();
    for chunk in deltas.chunks(ROWS_PER_STATEMENT) {
        let text = add_to_owner_totals(store.backend, chunk.len());
        let mut query = sqlx::query(sqlx::AssertSqlSafe(text));
        for (owner, delta) in chunk {
            query = query.bind(*owner).bind(*delta);
        }
        query.execute(&mut *transaction).await?;
    }

    let kept: Vec<usize> = (0..batch.len()).filter(|i| outcomes[*i].is_ok()).collect();
    for rows in kept.chunks(ROWS_PER_STATEMENT) {
        let ids = insert_rows(store, &mut transaction, batch, rows).await?;
        for (index, id) in rows.iter().zip(ids) {
            outcomes[*index] = Ok(id);
        }
    }
    transaction.commit().await?;
    if freed > 0 {
        // Only this transaction knows a message replaced an older one (docs/metrics.md).
        metrics::counter!("pushgate_up_deliveries_total", "outcome" => "replaced_topic")
            .increment(freed);
    }
    Ok(outcomes)
}

/// For each owner of `batch`: a number of messages never below its unexpired ones (the kept
/// total less what the batch just replaced), or the exact count where that number and the
/// batch's messages for the owner would pass its cap.
async fn owner_counts<'b>(
    store: &SqlStore,
    transaction: &mut Transaction<'static, Any>,
    batch: &'b [Pending],
    now: i64,
    replaced_of: &HashMap<&str, u64>,
) -> Result<HashMap<&'b str, u64>, sqlx::Error> {
    // Per owner: how many messages of the batch, and the smallest cap among them.
    let mut wanted: HashMap<&str, (u64, u64)> = HashMap::new();
    for pending in batch {
        let entry = wanted
            .entry(pending.message.owner.as_str())
            .or_insert((0, u64::MAX));
        entry.0 += 1;
        entry.1 = entry.1.min(u64::from(pending.limits.max_per_owner));
    }
    let mut owners: Vec<&str> = wanted.keys().copied().collect();
    owners.sort_unstable();
    let mut counts = HashMap::with_capacity(owners.len());
    for chunk in owners.chunks(ROWS_PER_STATEMENT) {
        let text = read_owner_totals(store.backend, chunk.len());
        let mut query = sqlx::query(sqlx::AssertSqlSafe(text));
        for owner in chunk {
            query = query.bind(*owner);
        }
        for row in query.fetch_all(&mut **transaction).await? {
            let owner: String = row.try_get(0)?;
            let stored: i64 = row.try_get(1)?;
            if let Some(key) = chunk.iter().find(|key| **key == owner) {
                let freed = replaced_of.get(key).copied().unwrap_or(0);
                let stored = u64::try_from(stored).unwrap_or(0).saturating_sub(freed);
                counts.insert(*key, stored);
            }
        }
    }
    let near_cap: Vec<&str> = owners
        .iter()
        .copied()
        .filter(|owner| {
            let (messages, cap) = wanted[owner];
            counts.get(owner).copied().unwrap_or(0) + messages > cap
        })
        .collect();
    for chunk in near_cap.chunks(ROWS_PER_STATEMENT) {
        let text = count_owners_messages(store.backend, chunk.len());
        let mut query = sqlx::query(sqlx::AssertSqlSafe(text)).bind(now);
        for owner in chunk {
            query = query.bind(*owner);
        }
        for owner in chunk {
            counts.insert(*owner, 0);
        }
        for row in query.fetch_all(&mut **transaction).await? {
            let owner: String = row.try_get(0)?;
            let count: i64 = row.try_get(1)?;
            if let Some(key) = chunk.iter().find(|key| **key == owner) {
                counts.insert(*key, u64::try_from(count).unwrap_or(0));
            }
        }
    }
    Ok(counts)
}

/// Inserts the messages of `batch` at `rows` with one statement; their ids, in that order.
async fn insert_rows(
    store: &SqlStore,
    transaction: &mut Transaction<'static, Any>,
    batch: &[Pending],
    rows: &[usize],
) -> Result<Vec<StoredMessageId>, sqlx::Error> {
    let returning = store.statements.returning;
    let text = insert_messages(store.backend, rows.len());
    let mut query = sqlx::query(sqlx::AssertSqlSafe(text));
    for index in rows {
        let message = &batch[*index].message;
        query = query
            .bind(message.owner.as_str())
            .bind(message.endpoint_token.as_str())
            .bind(message.application.as_str())
            .bind(message.instance.as_str())
            .bind(message.topic.as_deref())
            .bind(message.urgency.as_deref())
            .bind(message.body.as_slice())
            .bind(message.received_at)
            .bind(message.expires_at);
    }
    // One statement numbers its rows in the order of its VALUES: SQLite gives each new row
    // the next rowid, PostgreSQL evaluates the id sequence row by row, and MySQL/MariaDB hand
    // a multi-row insert of known size consecutive auto-increment values starting at
    // LAST_INSERT_ID(). The rows RETURNING lists are not promised in that order, so the ids
    // are sorted.
    let mut ids: Vec<StoredMessageId> = if returning {
        query
            .fetch_all(&mut **transaction)
            .await?
            .iter()
            .map(|row: &AnyRow| row.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?
    } else {
        let result = query.execute(&mut **transaction).await?;
        let first = result.last_insert_id().ok_or_else(|| {
            sqlx::Error::Protocol("the server did not report the new message ids".to_owned())
        })?;
        (0..rows.len() as i64)
            .map(|offset| first + offset)
            .collect()
    };
    if ids.len() != rows.len() {
        return Err(sqlx::Error::Protocol(format!(
            "{} rows inserted, {} ids returned",
            rows.len(),
            ids.len()
        )));
    }
    ids.sort_unstable();
    Ok(ids)
}
