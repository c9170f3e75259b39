//! `retract-migrate`: applies or inspects retract's schema migrations, for operators who do not
//! let the service migrate on start (`--migrate-on-start=false`).

use clap::{Parser, Subcommand};
use retract_migrations::{Migrator, migrate};
use sea_orm_migration::{MigratorTrait, sea_orm::Database};

/// Applies or inspects retract's database migrations.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Database URL: `sqlite://retract.db?mode=rwc` or `postgres://user@host/db`.
    #[arg(
        long,
        env = "RETRACT_DATABASE_URL",
        default_value = "sqlite://retract.db?mode=rwc"
    )]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Applies every pending migration (under a PostgreSQL advisory lock).
    Up,
    /// Lists every migration and whether it is applied.
    Status,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let db = Database::connect(&cli.database_url).await?;
    match cli.command {
        Command::Up => {
            migrate(&db).await?;
            println!("all migrations applied");
        }
        Command::Status => {
            let applied = Migrator::get_applied_migrations(&db).await?;
            let pending = Migrator::get_pending_migrations(&db).await?;
            for m in applied {
                println!("applied  {}", m.name());
            }
            for m in pending {
                println!("pending  {}", m.name());
            }
        }
    }
    Ok(())
}
