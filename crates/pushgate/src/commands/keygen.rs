//! `pushgate keygen`: a new UnifiedPush endpoint key, and how to rotate it in.

use std::process::ExitCode;

use crate::first_run::new_endpoint_key;

/// The arguments of `keygen`.
#[derive(Clone, Debug, clap::Args)]
pub struct KeygenArgs {
    /// Print `{"key": "…"}` instead of the key and the advice.
    #[arg(long)]
    pub json: bool,
}

/// How a new key goes in without breaking the endpoints apps hold.
const ROTATION: &str = "\
To rotate it in: put it first in [unified_push] keys (it seals new endpoints from then on),
keep the old keys after it (they still open the endpoints they sealed), and remove an old key
once registration_ttl (default 7 days) has passed since the new one went in.";

/// Runs `keygen`: the key on standard output (the advice on standard error, so that
/// `$(pushgate keygen)` is the key alone).
pub fn run(args: &KeygenArgs) -> ExitCode {
    let key = new_endpoint_key();
    if args.json {
        println!("{}", serde_json::json!({ "key": key }));
    } else {
        println!("{key}");
        eprintln!("{ROTATION}");
    }
    ExitCode::SUCCESS
}
