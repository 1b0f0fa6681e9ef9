-- The limit on devices per account needs to know which registrations share an account. Each
-- row gets the account's keyed hash (32 hex digits); rows from before this step have none
-- until the device registers again, and do not count meanwhile.
ALTER TABLE registrations ADD COLUMN account TEXT;
CREATE INDEX registrations_account ON registrations (account);

-- One row: the installation's random key for those hashes (64 hex digits), drawn by pushgate
-- the first time it opens the database. Without the key a hash cannot be matched to a JID.
CREATE TABLE registration_account_key (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    key_hex TEXT    NOT NULL
);
