//! Developer automation.

fn main() {}
