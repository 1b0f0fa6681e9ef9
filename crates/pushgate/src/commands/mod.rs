//! The one-off commands beside `serve`: each runs to its end and gives an exit code.

pub mod endpoint;
pub mod import_p2;
pub mod init;
pub mod keygen;
pub mod stats;
pub mod test_push;
