//! Binding the listening socket and hearing the signals that stop the server.

use std::{future::Future, io, net::SocketAddr};

use tokio::net::TcpListener;

/// Why the server cannot listen; the environment refused (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The host name does not resolve.
    #[error("cannot resolve host '{host}': {source}")]
    Resolve {
        /// The configured host.
        host: String,
        /// What the resolver said.
        source: io::Error,
    },
    /// No resolved address could be bound (port in use, address not on this machine, no permission).
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The last address tried.
        address: String,
        /// What the OS said.
        source: io::Error,
    },
}

/// Resolves `host` and binds the first address that accepts, so `localhost` works on IPv4-only and IPv6-only hosts.
pub async fn bind(host: &str, port: u16) -> Result<TcpListener, ListenError> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| ListenError::Resolve { host: host.to_owned(), source })?
        .collect();
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "the host resolved to no address");
    let mut last_address = format!("{host}:{port}");
    for address in addresses {
        match TcpListener::bind(address).await {
            Ok(listener) => return Ok(listener),
            Err(error) => (last_error, last_address) = (error, address.to_string()),
        }
    }
    Err(ListenError::Bind { address: last_address, source: last_error })
}

/// Listens for SIGINT (Ctrl-C) and SIGTERM (Kubernetes, systemd) from the moment it is called, so a signal that
/// arrives while the server is still starting is not lost; the returned future completes on the first of them.
#[cfg(unix)]
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("Received SIGINT"),
            _ = terminate.recv() => tracing::info!("Received SIGTERM"),
        }
    })
}

/// Listens for Ctrl-C; the returned future completes when it arrives.
#[cfg(not(unix))]
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Received Ctrl-C");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_in_use_is_named_in_one_line() {
        let taken = bind("127.0.0.1", 0).await.expect("a free port");
        let port = taken.local_addr().expect("bound").port();
        let error = bind("127.0.0.1", port).await.expect_err("in use").to_string();
        assert!(error.starts_with(&format!("cannot listen on 127.0.0.1:{port}: ")), "{error}");
        assert!(!error.contains('\n'));
    }
}
