//! The commands, each thin over `amana-core`.

pub mod alarms;
pub mod audit;
pub mod cases;
pub mod device;
pub mod intake;
pub mod security;
pub mod team;

use clap::CommandFactory;

use crate::app::App;
use crate::cli::{Cli, Command, FollowupCommand, NoteCommand, ReceiptsCommand, ReferralCommand};

/// Runs the parsed command.
pub fn run(app: &App, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(args) => device::init(app, args.kdf_log_n),
        Command::Team(command) => team::run(app, command),
        Command::Join { code } => device::join(app, &code),
        Command::Intake(args) => intake::run(app, args),
        Command::Cases(command) => cases::run(app, command),
        Command::Referral(ReferralCommand::Add(args)) => cases::add_referral(app, args),
        Command::Followup(FollowupCommand::Add(args)) => cases::add_followup(app, args),
        Command::Note(NoteCommand::Add { id, staff }) => cases::add_note(app, &id, &staff),
        Command::Sync => device::sync_now(app),
        Command::Status => device::status(app),
        Command::Alarms { command } => alarms::run(app, command),
        Command::Audit(args) => audit::remote(app, args),
        Command::Receipts(ReceiptsCommand::Export { out }) => audit::export_receipts(app, &out),
        Command::Passphrase(args) => security::change_passphrase(app, args.kdf_log_n),
        Command::Duress(command) => security::duress(app, command),
        Command::Lockout(args) => security::lockout(app, args),
        Command::Wipe { yes } => security::wipe(app, yes),
        Command::Demo(args) => crate::demo::run(args.keep),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "amana", &mut std::io::stdout());
            Ok(())
        }
    }
}
