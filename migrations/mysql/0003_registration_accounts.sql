-- The limit on devices per account needs to know which registrations share an account. Each
-- row gets the account's keyed hash (32 hex digits); rows from before this step have none
-- until the device registers again, and do not count meanwhile.
ALTER TABLE registrations
    ADD COLUMN account CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
    ADD INDEX registrations_account (account);

-- One row: the installation's random key for those hashes (64 hex digits), drawn by pushgate
-- the first time it opens the database. Without the key a hash cannot be matched to a JID.
-- Registering a new device locks this row, so two new devices of one account cannot both
-- pass the limit.
CREATE TABLE registration_account_key (
    id      TINYINT NOT NULL PRIMARY KEY,
    key_hex CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL
) ENGINE = InnoDB;
