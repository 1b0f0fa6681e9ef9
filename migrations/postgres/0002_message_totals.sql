-- Storing a message checks two caps. The per-owner count reads this index alone; the total is
-- kept in `message_totals`, which the store updates in the transaction of every statement that
-- inserts or deletes stored messages, instead of counting the table on every store.
CREATE INDEX stored_messages_owner_expires_at ON stored_messages (owner, expires_at);

-- One row: how many rows `stored_messages` holds, expired ones included until deleted.
CREATE TABLE message_totals (
    id     SMALLINT NOT NULL PRIMARY KEY CHECK (id = 1),
    stored BIGINT   NOT NULL
);
INSERT INTO message_totals (id, stored) SELECT 1, COUNT(*) FROM stored_messages;
