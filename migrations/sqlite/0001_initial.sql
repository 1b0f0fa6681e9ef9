-- pushgate schema, SQLite. Times are epoch milliseconds.

-- XEP-0357 registrations (p2 role): one row per (service, device).
CREATE TABLE registrations (
    service    TEXT    NOT NULL,
    device     TEXT    NOT NULL,
    domain     TEXT    NOT NULL,
    token      TEXT    NOT NULL,
    node       TEXT    NOT NULL,
    secret     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    dead_since INTEGER,
    PRIMARY KEY (service, device)
);
CREATE INDEX registrations_domain_node ON registrations (domain, node);
CREATE INDEX registrations_dead_since ON registrations (dead_since);

-- UnifiedPush endpoints answered as gone, kept until the token itself expires.
CREATE TABLE revocations (
    endpoint_id TEXT    NOT NULL PRIMARY KEY,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX revocations_expires_at ON revocations (expires_at);

-- UnifiedPush messages waiting for their owner. AUTOINCREMENT: ids are never reused, so a
-- reader paging by id never skips a message that took a deleted message's id.
CREATE TABLE stored_messages (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    owner          TEXT    NOT NULL,
    endpoint_token TEXT    NOT NULL,
    application    TEXT    NOT NULL,
    instance       TEXT    NOT NULL,
    topic          TEXT,
    urgency        TEXT,
    body           BLOB    NOT NULL,
    received_at    INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX stored_messages_owner_id ON stored_messages (owner, id);
CREATE INDEX stored_messages_expires_at ON stored_messages (expires_at);
CREATE INDEX stored_messages_topic ON stored_messages (owner, application, instance, topic);
