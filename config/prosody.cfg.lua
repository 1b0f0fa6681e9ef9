-- Adding pushgate to Prosody (0.12): append to /etc/prosody/prosody.cfg.lua, or drop into
-- /etc/prosody/conf.d/pushgate.cfg.lua, then `prosodyctl reload`.
--
-- The component JID and secret must equal [component] jid and secret in pushgate.toml.
-- Prosody accepts one connection per component JID. Several pushgate instances on one
-- PostgreSQL database take turns (`mode = "single"`: one holds the link, the others stand by);
-- for them, also set `component_conflict_resolve = "kick_old"` in the global section, so a
-- new holder can replace the connection of one that hangs (docs/several-instances.md).

-- Listen for components on loopback only (the default port is 5347).
component_ports = { 5347 }
component_interfaces = { "127.0.0.1" }

Component "push.example.org"
    component_secret = "change-me"

-- For your users to get XEP-0357 wake-ups through pushgate, the VirtualHost needs the
-- server side of XEP-0357 (mod_cloud_notify, from prosody-modules) and XEP-0198:
--
-- modules_enabled = { …; "smacks"; "cloud_notify"; }
-- push_notification_with_body = false     -- keep message bodies away from push services
-- push_notification_with_sender = false
