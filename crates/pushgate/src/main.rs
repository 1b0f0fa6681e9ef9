//! pushgate: the binary.

use std::process::ExitCode;

use clap::Parser;
use pushgate::cli::{self, Cli, Command};
use pushgate::settings::SettingsFile;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let file = SettingsFile::locate(cli.config.as_deref());
    match cli.command {
        Command::CheckConfig => cli::check_config(&file),
        Command::Serve => pushgate::serve::run(&file),
    }
}
