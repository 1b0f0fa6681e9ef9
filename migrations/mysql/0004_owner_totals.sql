-- Storing a message checks its owner's cap. Counting the owner's messages every time took time
-- in proportion to what the owner holds (at ~3,000 messages an owner: 2,816 stores/s on SQLite,
-- 293/s on PostgreSQL). Each owner's count is kept here instead, changed in the transaction of
-- every statement that adds or deletes stored messages. It counts expired messages not yet
-- purged too, so it is never below the real count: an owner under the cap here is under it,
-- and only an owner near its cap is counted exactly.
CREATE TABLE owner_totals (
    owner  CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    stored BIGINT   NOT NULL
) ENGINE = InnoDB;
INSERT INTO owner_totals (owner, stored)
    SELECT owner, COUNT(*) FROM stored_messages GROUP BY owner;
