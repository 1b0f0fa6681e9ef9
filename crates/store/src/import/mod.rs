//! Adapters that read another push server's database, for moving its registrations into
//! pushgate without the devices registering again.

pub mod p2;
