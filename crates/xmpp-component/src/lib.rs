//! pushgate's XEP-0114 component link and the stanza handlers of both roles
