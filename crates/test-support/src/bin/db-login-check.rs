//! `db-login-check URL`: can the test suites log in to the database server at URL? `./scripts/test` asks before
//! running an engine's suite, so a server that answers but refuses the login is named with the login tried,
//! instead of failing every test with a driver panic.

use std::process::ExitCode;

use sea_orm::{ConnectionTrait, Database};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: db-login-check URL");
        return ExitCode::from(2);
    };
    let checked = async {
        let db = Database::connect(url.as_str()).await?;
        db.execute_unprepared("SELECT 1").await?;
        db.close().await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(10), checked).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) => {
            println!("{error}");
            ExitCode::FAILURE
        }
        Err(_) => {
            println!("no answer within 10 s");
            ExitCode::FAILURE
        }
    }
}
