-- pushgate schema, PostgreSQL. Times are epoch milliseconds. VARCHAR rather than CHAR: the
-- runtime (Any) driver does not decode bpchar.

-- XEP-0357 registrations (p2 role): one row per (service, device).
CREATE TABLE registrations (
    service    VARCHAR(8)    NOT NULL,
    device     VARCHAR(40)   NOT NULL,
    domain     VARCHAR(1023) NOT NULL,
    token      VARCHAR(4096) NOT NULL,
    node       VARCHAR(12)   NOT NULL,
    secret     VARCHAR(24)   NOT NULL,
    created_at BIGINT        NOT NULL,
    updated_at BIGINT        NOT NULL,
    dead_since BIGINT,
    PRIMARY KEY (service, device)
);
CREATE INDEX registrations_domain_node ON registrations (domain, node);
CREATE INDEX registrations_dead_since ON registrations (dead_since);

-- UnifiedPush endpoints answered as gone, kept until the token itself expires.
CREATE TABLE revocations (
    endpoint_id VARCHAR(64) NOT NULL PRIMARY KEY,
    expires_at  BIGINT      NOT NULL
);
CREATE INDEX revocations_expires_at ON revocations (expires_at);

-- UnifiedPush messages waiting for their owner.
CREATE TABLE stored_messages (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner          VARCHAR(64)   NOT NULL,
    endpoint_token VARCHAR(4096) NOT NULL,
    application    VARCHAR(255)  NOT NULL,
    instance       VARCHAR(255)  NOT NULL,
    topic          VARCHAR(255),
    urgency        VARCHAR(16),
    body           BYTEA         NOT NULL,
    received_at    BIGINT        NOT NULL,
    expires_at     BIGINT        NOT NULL
);
CREATE INDEX stored_messages_owner_id ON stored_messages (owner, id);
CREATE INDEX stored_messages_expires_at ON stored_messages (expires_at);
CREATE INDEX stored_messages_topic ON stored_messages (owner, application, instance, topic);
