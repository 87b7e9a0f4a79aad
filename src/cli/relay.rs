//! `rollgate relay`: starts logging and the runtime, then the relay until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use crate::relay::{Relay, RelayArgs};

/// Exit 2 on bad settings, 1 on any other failure to start or serve.
pub fn run(args: RelayArgs) -> ExitCode {
    super::operator::init_logging(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rollgate relay: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let mut relay = match Relay::start(args).await {
            Ok(relay) => relay,
            Err(error) => {
                tracing::error!(%error, category = error.category(), "relay did not start");
                return match error {
                    crate::relay::RelayError::Config(_) => {
                        ExitCode::from(super::exit::EXIT_BAD_INPUT)
                    }
                    _ => ExitCode::FAILURE,
                };
            }
        };
        tokio::select! {
            result = relay.wait() => {
                if let Err(error) = result {
                    tracing::error!(%error, "relay stopped");
                    return ExitCode::FAILURE;
                }
                ExitCode::SUCCESS
            }
            () = shutdown_signal() => {
                tracing::info!("stopping: finishing requests in flight");
                match relay.shutdown().await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(error) => {
                        tracing::error!(%error, "relay stopped with an error");
                        ExitCode::FAILURE
                    }
                }
            }
        }
    })
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
