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
    // `init` writes the file rather than reading one, so the file is located only for the rest.
    let file = || SettingsFile::locate(cli.config.as_deref());
    match cli.command {
        Command::Init(args) => pushgate::commands::init::run(cli.config.as_deref(), &args),
        Command::CheckConfig => cli::check_config(&file()),
        Command::Serve => pushgate::serve::run(&file()),
        Command::Keygen(args) => pushgate::commands::keygen::run(&args),
        Command::Endpoint(command) => pushgate::commands::endpoint::run(&file(), &command),
        Command::Stats(args) => pushgate::commands::stats::run(&file(), &args),
        Command::TestPush(args) => pushgate::commands::test_push::run(&file(), &args),
        Command::Trace(args) => pushgate::commands::trace::run(&file(), &args),
        Command::ImportP2(args) => pushgate::commands::import_p2::run(&file(), &args),
    }
}
