-- pushgate schema, MySQL/MariaDB. Times are epoch milliseconds. Binary collations: nodes,
-- secrets and base64 ids are case-sensitive, and the other backends compare bytes too.

-- XEP-0357 registrations (p2 role): one row per (service, device).
CREATE TABLE registrations (
    service    VARCHAR(8)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    device     CHAR(40)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    domain     VARCHAR(1023) NOT NULL,
    token      VARCHAR(4096) NOT NULL,
    node       CHAR(12)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    secret     CHAR(24)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at BIGINT        NOT NULL,
    updated_at BIGINT        NOT NULL,
    dead_since BIGINT        NULL,
    PRIMARY KEY (service, device),
    -- InnoDB keys are at most 3072 bytes: a prefix of the domain is enough next to a random node.
    INDEX registrations_domain_node (domain(191), node),
    INDEX registrations_dead_since (dead_since)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- UnifiedPush endpoints answered as gone, kept until the token itself expires.
CREATE TABLE revocations (
    endpoint_id CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    expires_at  BIGINT   NOT NULL,
    INDEX revocations_expires_at (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- UnifiedPush messages waiting for their owner.
CREATE TABLE stored_messages (
    id             BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    owner          CHAR(64)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    endpoint_token VARCHAR(4096) NOT NULL,
    application    VARCHAR(255)  NOT NULL,
    instance       VARCHAR(255)  NOT NULL,
    topic          VARCHAR(255)  NULL,
    urgency        VARCHAR(16)   NULL,
    body           LONGBLOB      NOT NULL,
    received_at    BIGINT        NOT NULL,
    expires_at     BIGINT        NOT NULL,
    INDEX stored_messages_owner_id (owner, id),
    INDEX stored_messages_expires_at (expires_at),
    -- 64 + 3 x 255 x 4 bytes would pass 3072; prefixes keep the key short and still selective.
    INDEX stored_messages_topic (owner, application(64), instance(64), topic(64))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
