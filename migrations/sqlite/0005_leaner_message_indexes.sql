-- Every stored message wrote five index entries. With `owner_totals` the per-owner cap counts
-- an owner's messages only near its cap, where the (owner, id) index serves, so the
-- (owner, expires_at) index goes. The topic index serves only messages that have a topic
-- (a replacement deletes by owner, application, instance and topic; a revocation's deletion by
-- owner, application and instance finds the owner's rows through (owner, id)), so it now
-- holds only those.
DROP INDEX stored_messages_owner_expires_at;
DROP INDEX stored_messages_topic;
CREATE INDEX stored_messages_topic ON stored_messages (owner, application, instance, topic)
    WHERE topic IS NOT NULL;
