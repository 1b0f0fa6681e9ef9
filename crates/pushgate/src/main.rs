//! pushgate: the binary.

fn main() {}
