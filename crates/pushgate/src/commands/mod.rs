//! The one-off commands beside `serve`: each runs to its end and gives an exit code.

pub mod import_p2;
pub mod init;
