//! `pushgate endpoint inspect|revoke URL|TOKEN`: what an endpoint token holds, and taking one
//! out of service.
//!
//! The owner's JID is in the token; only its domain is printed unless `--reveal` asks for
//! the rest, so a ticket or a terminal log holds no user's address by default.

use std::process::ExitCode;

use pushgate_core::unified_push::iso8601_utc;
use pushgate_core::{
    Clock as _, EndpointClaims, EndpointId, MessageStore as _, OwnerKey, RevocationStore as _,
    SystemClock, TokenError,
};
use serde::Serialize;

use super::{StoreCommandError, on_store};
use crate::settings::{Settings, SettingsError, SettingsFile};

/// Exit code for a token none of the configured keys opens.
pub const EXIT_NOT_OURS: u8 = 3;

/// The `endpoint` subcommands.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum EndpointCommand {
    /// Which key opens the endpoint, its expiry, its application and instance, the owner's
    /// domain, and whether it is revoked.
    Inspect(EndpointArgs),
    /// Revoke the endpoint: POSTs to it get 404 from now on (a running pushgate sees it
    /// within `[database] cache_ttl`), and its kept messages are deleted.
    Revoke(EndpointArgs),
}

/// The arguments of both.
#[derive(Clone, Debug, clap::Args)]
pub struct EndpointArgs {
    /// The endpoint URL (`{public_url}/push/{token}`) or the bare token.
    pub endpoint: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print the owner's whole JID, not only its domain.
    #[arg(long)]
    pub reveal: bool,
}

/// Why the command did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// No key opens the token.
    #[error("no configured key opens this endpoint ({0}): not one of ours")]
    NotOurs(TokenError),
    /// The settings or the database.
    #[error(transparent)]
    Store(#[from] StoreCommandError),
}

impl From<SettingsError> for EndpointError {
    fn from(error: SettingsError) -> Self {
        Self::Store(error.into())
    }
}

impl EndpointError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::NotOurs(_) => EXIT_NOT_OURS,
            Self::Store(error) => error.exit_code(),
        }
    }
}

/// What `inspect` and `revoke` print.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointReport {
    /// The index in `[unified_push] keys` of the key that opens it.
    pub key_index: usize,
    /// When it expires, RFC 3339 UTC.
    pub expires_at: String,
    /// Whether it has expired.
    pub expired: bool,
    /// The UnifiedPush application id (a hash).
    pub application: String,
    /// The UnifiedPush instance id (a hash).
    pub instance: String,
    /// The owner's domain.
    pub owner_domain: String,
    /// The owner's whole JID, with `--reveal` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Whether it is revoked (after `revoke`: true).
    pub revoked: bool,
    /// With `revoke`: stored messages deleted with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_deleted: Option<u64>,
}

/// Runs `endpoint inspect|revoke`.
pub fn run(file: &SettingsFile, command: &EndpointCommand) -> ExitCode {
    let (args, revoke) = match command {
        EndpointCommand::Inspect(args) => (args, false),
        EndpointCommand::Revoke(args) => (args, true),
    };
    match run_inner(file, args, revoke) {
        Ok(report) => {
            print_report(&report, args.json, revoke);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pushgate: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn run_inner(
    file: &SettingsFile,
    args: &EndpointArgs,
    revoke: bool,
) -> Result<EndpointReport, EndpointError> {
    let settings = Settings::load(file)?;
    let keys = settings
        .unified_push
        .endpoint_keys()
        .map_err(|_| EndpointError::NotOurs(TokenError::WrongKeyOrTampered))?;
    let token = token_of(&args.endpoint);
    let (key_index, claims) = keys.inspect(token).map_err(EndpointError::NotOurs)?;
    Ok(on_store(&settings, async |store| {
        let now = SystemClock.now();
        let id = EndpointId::of_token(token);
        let mut messages_deleted = None;
        if revoke {
            // Kept until the token itself expires: after that it is refused anyway.
            store.revoke_endpoint(&id, claims.expires_at).await?;
            messages_deleted = Some(
                store
                    .delete_endpoint_messages(
                        &OwnerKey::of_jid(&claims.owner),
                        claims.application.as_str(),
                        claims.instance.as_str(),
                    )
                    .await?,
            );
        }
        let revoked = store.is_endpoint_revoked(&id, now).await?;
        Ok(report(
            key_index,
            &claims,
            now,
            revoked,
            messages_deleted,
            args.reveal,
        ))
    })?)
}

/// The token of an endpoint URL (after its last `/push/`, without a query), or the argument
/// itself.
pub(crate) fn token_of(endpoint: &str) -> &str {
    let token = endpoint
        .rsplit_once("/push/")
        .map_or(endpoint, |(_, token)| token);
    token.split(['?', '#']).next().unwrap_or(token).trim()
}

fn report(
    key_index: usize,
    claims: &EndpointClaims,
    now: pushgate_core::UnixMillis,
    revoked: bool,
    messages_deleted: Option<u64>,
    reveal: bool,
) -> EndpointReport {
    let bare = claims.owner.split('/').next().unwrap_or_default();
    let owner_domain = bare.rsplit('@').next().unwrap_or(bare).to_owned();
    EndpointReport {
        key_index,
        expires_at: iso8601_utc(claims.expires_at),
        expired: claims.expires_at <= now,
        application: claims.application.as_str().to_owned(),
        instance: claims.instance.as_str().to_owned(),
        owner_domain,
        owner: reveal.then(|| claims.owner.clone()),
        revoked,
        messages_deleted,
    }
}

fn print_report(report: &EndpointReport, json: bool, revoke: bool) {
    if json {
        println!("{}", serde_json::to_string(report).unwrap_or_default());
        return;
    }
    if revoke {
        println!(
            "revoked: POSTs to this endpoint get 404 (a running pushgate sees it within \
             [database] cache_ttl); {} kept message(s) deleted",
            report.messages_deleted.unwrap_or(0)
        );
    }
    println!("opened by:   [unified_push] keys[{}]", report.key_index);
    println!(
        "expires:     {}{}",
        report.expires_at,
        if report.expired { " (expired)" } else { "" }
    );
    println!("application: {}", report.application);
    println!("instance:    {}", report.instance);
    match &report.owner {
        Some(owner) => println!("owner:       {owner}"),
        None => println!(
            "owner:       …@{} (--reveal shows the whole JID)",
            report.owner_domain
        ),
    }
    println!("revoked:     {}", if report.revoked { "yes" } else { "no" });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_out_of_a_url_or_is_given_as_it_is() {
        assert_eq!(
            token_of("https://up.example.org/push/v2.local.abc"),
            "v2.local.abc"
        );
        assert_eq!(
            token_of("https://up.example.org/up/push/v2.local.abc?x=1"),
            "v2.local.abc"
        );
        assert_eq!(token_of(" v2.local.abc\n"), "v2.local.abc");
    }
}
