-- Every stored message wrote five index entries. With `owner_totals` the per-owner cap counts
-- an owner's messages only near its cap, where the (owner, id) index serves, so the
-- (owner, expires_at) index goes. (MySQL has no partial indexes: the topic index stays whole.)
ALTER TABLE stored_messages DROP INDEX stored_messages_owner_expires_at;
