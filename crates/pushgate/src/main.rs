//! pushgate: the binary.

use std::process::ExitCode;

use clap::Parser;
use pushgate::cli::{self, Cli, Command};
use pushgate::settings::SettingsFile;

/// mimalloc rather than the system allocator: each wake-up allocates and frees many small
/// blocks across the runtime's threads, which glibc serves from per-thread arenas that it
/// rarely returns; mimalloc costs less CPU per wake-up and keeps RSS lower under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let file = SettingsFile::locate(cli.config.as_deref());
    match cli.command {
        Command::CheckConfig => cli::check_config(&file),
        Command::Serve => pushgate::serve::run(&file),
        Command::ImportP2(args) => pushgate::commands::import_p2::run(&file, &args),
    }
}
