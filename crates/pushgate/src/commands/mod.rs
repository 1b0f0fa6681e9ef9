//! The one-off commands beside `serve`: each runs to its end and gives an exit code.

pub mod endpoint;
pub mod import_p2;
pub mod init;
pub mod keygen;
pub mod stats;
pub mod test_push;
pub mod trace;

use pushgate_store::{SqlStore, StoreSetupError};

use crate::cli::{EXIT_CONFIG, EXIT_RUNTIME};
use crate::settings::{Settings, SettingsError};

/// What a command that reads the settings and opens the database can fail on.
#[derive(Debug, thiserror::Error)]
pub enum StoreCommandError {
    /// The settings cannot be used.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The database could not be opened.
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreSetupError),
    /// The database failed.
    #[error("the database failed: {0}")]
    Database(#[from] pushgate_core::StoreError),
    /// The async runtime could not be started.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl StoreCommandError {
    /// 2 for the settings, 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Settings(_) => EXIT_CONFIG,
            Self::Store(_) | Self::Database(_) | Self::Runtime(_) => EXIT_RUNTIME,
        }
    }
}

/// Opens the database of `settings` on a one-thread runtime and runs `work` on it.
pub(crate) fn on_store<T>(
    settings: &Settings,
    work: impl AsyncFnOnce(SqlStore) -> Result<T, StoreCommandError>,
) -> Result<T, StoreCommandError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StoreCommandError::Runtime)?;
    runtime.block_on(async {
        let store = SqlStore::connect(&settings.database.store_config()).await?;
        work(store).await
    })
}
