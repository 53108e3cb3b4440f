//! Every way a run can fail, and the exit code each one means: 2 for usage and configuration (fix the command
//! line or the file), 1 for login and API failures (the provider or the API said no, or could not be reached).

use crate::{api::ApiError, auth::AuthError, config::ConfigError, net};

/// A failed run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings are incomplete or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP client cannot be built (a bad CA bundle), which is a configuration problem too.
    #[error(transparent)]
    Http(#[from] net::ClientError),
    /// No access token could be had.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The API call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// The user pressed Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::Http(_) => 2,
            Self::Auth(_) | Self::Api(_) | Self::Runtime(_) => 1,
            Self::Interrupted => 130,
        }
    }
}
