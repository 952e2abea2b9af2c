//! The command line, declared with clap. Parsing and validation of
//! arguments happen here; the commands do the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Amana: an offline-first, end-to-end-encrypted case log.
#[derive(Debug, Parser)]
#[command(
    name = "amana",
    version,
    about = "Amana: an offline-first, end-to-end-encrypted case log",
    after_help = "Exit codes: 0 ok, 1 failure, 2 invalid input, 3 wrong or missing passphrase, \
4 relay unreachable (retry later), 5 refused (not approved, revoked, invite used or expired, \
not permitted), 6 integrity alarm (tell the office)."
)]
pub struct Cli {
    /// Where this device keeps its encrypted data.
    #[arg(long, global = true, env = "AMANA_HOME", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print listings as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Language of labels and messages.
    #[arg(
        long,
        global = true,
        env = "AMANA_LANG",
        value_enum,
        default_value = "en"
    )]
    pub lang: LangArg,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Interface language.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LangArg {
    /// English.
    En,
    /// Arabic.
    Ar,
}

/// Device roles an invite can grant.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    /// Office: reads and edits every case.
    Office,
    /// Field officer: reads and edits every case of the team.
    Field,
    /// Community volunteer or hotline: submits cases, reads nothing.
    Intake,
    /// Auditor: verifies the relay, reads nothing.
    Auditor,
    /// Another admin device (office).
    Admin,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set up this device: keys and a passphrase.
    Init(KdfArgs),
    /// Create and manage a team (admin devices).
    #[command(subcommand)]
    Team(TeamCommand),
    /// Join a team with an invite code from the office.
    Join {
        /// The invite code (`amana2-…`), or `-` to read it from standard input.
        code: String,
    },
    /// Record a new intake (interactive, or from a file).
    Intake(IntakeArgs),
    /// List, show and update cases.
    #[command(subcommand)]
    Cases(CasesCommand),
    /// Referrals.
    #[command(subcommand)]
    Referral(ReferralCommand),
    /// Follow-ups.
    #[command(subcommand)]
    Followup(FollowupCommand),
    /// Notes.
    #[command(subcommand)]
    Note(NoteCommand),
    /// Send local changes and receive the team's, through the relay.
    Sync,
    /// Show this device, its team and what waits to be synced (exit 6
    /// while an integrity alarm is open).
    Status,
    /// Integrity alarms: list them with what each means and what to do
    /// (exit 6 while any is open), or acknowledge them (admin devices).
    Alarms {
        /// What to do (list when omitted).
        #[command(subcommand)]
        command: Option<AlarmsCommand>,
    },
    /// Audit the relay through its API: every envelope, chain and head,
    /// and replayed receipts; writes a signed JSON report (exit 6 on findings).
    Audit(AuditArgs),
    /// This device's relay receipts, for an audit to replay.
    #[command(subcommand)]
    Receipts(ReceiptsCommand),
    /// Change this device's passphrase.
    Passphrase(KdfArgs),
    /// Set or remove the duress passphrase: typed at any passphrase prompt,
    /// it wipes this device and answers as if it were a typo.
    #[command(subcommand)]
    Duress(DuressCommand),
    /// Wipe this device after a number of wrong passphrases in a row.
    Lockout(LockoutArgs),
    /// Destroy this device's keys and data now (no passphrase needed).
    Wipe {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Run the whole flow on a throwaway relay and devices (nothing is kept).
    Demo(DemoArgs),
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `amana alarms …`.
#[derive(Debug, Subcommand)]
pub enum AlarmsCommand {
    /// List every alarm, open ones first.
    List {
        /// Include acknowledged alarms.
        #[arg(long)]
        all: bool,
    },
    /// Acknowledge open alarms by id (the first characters are enough).
    /// On an admin device, after the office has looked into them; the
    /// acknowledgement reaches the devices that raised them at their next
    /// sync.
    Ack {
        /// Alarm ids (or their first characters).
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

/// `amana audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The relay's address, if not the one this device joined (its TLS key
    /// must still match the pin).
    #[arg(long, value_name = "URL")]
    pub relay: Option<String>,
    /// A receipts file exported by a device (`amana receipts export`); repeatable.
    #[arg(long = "receipts", value_name = "FILE")]
    pub receipts: Vec<PathBuf>,
    /// Where to write the signed JSON report.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `amana receipts …`.
#[derive(Debug, Subcommand)]
pub enum ReceiptsCommand {
    /// Write every receipt the relay gave this device, with the relay key it pinned.
    Export {
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// The scrypt cost of a new keystore or duress slot.
#[derive(Debug, Args)]
pub struct KdfArgs {
    /// scrypt work factor (log2); only for test setups. By default it is
    /// calibrated to about a second on this machine.
    #[arg(long, hide = true, value_parser = clap::value_parser!(u8).range(10..=22))]
    pub kdf_log_n: Option<u8>,
}

/// `amana duress …`.
#[derive(Debug, Subcommand)]
pub enum DuressCommand {
    /// Choose the duress passphrase.
    Set(KdfArgs),
    /// Remove it (the slot stays, sealed to a random passphrase).
    Off(KdfArgs),
}

/// `amana lockout`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct LockoutArgs {
    /// Wipe after this many wrong passphrases in a row.
    #[arg(long, value_parser = clap::value_parser!(u32).range(3..=100))]
    pub wipe_after: Option<u32>,
    /// Never wipe on wrong passphrases (the default).
    #[arg(long)]
    pub off: bool,
}

/// `amana team …`.
#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Create a team on a relay, with this device as its first admin.
    Create {
        /// The relay, e.g. https://relay.example.org:8443.
        #[arg(long)]
        relay: String,
        /// The relay's TLS key pin (from `amana-relay pin`); required for https.
        #[arg(long)]
        relay_pin: Option<String>,
        /// A name for this device, seen only by the team.
        #[arg(long, default_value = "Office")]
        label: String,
        /// A file holding the team token from the relay's operator
        /// (`amana-relay team-token`); without it the token is asked for at
        /// the terminal.
        #[arg(long)]
        token_file: Option<std::path::PathBuf>,
    },
    /// Issue a one-time invite code for a new device.
    Invite {
        /// The role the device will have.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// A name for the device (e.g. "Field officer 2"), seen only by the team.
        #[arg(long)]
        label: String,
        /// How long the code stays valid, in hours.
        #[arg(long, default_value_t = 72, value_parser = clap::value_parser!(u64).range(1..=720))]
        expires_in_hours: u64,
    },
    /// List devices waiting for approval, with their safety numbers.
    Pending,
    /// Approve a waiting device after comparing its safety number.
    Approve {
        /// The device id, or its first characters.
        device: String,
        /// The safety number shown on the device's screen.
        #[arg(long)]
        safety_number: String,
    },
    /// List the team's devices.
    Devices,
    /// Revoke a lost, seized or retired device, and rotate the team key so
    /// it can read nothing written from now on.
    Revoke {
        /// The device id (or its first characters), or its label.
        device: String,
        /// Revoke at what this device verified even if the relay holds more
        /// of the device's log: every device then refuses the rest.
        #[arg(long)]
        drop_unverified: bool,
    },
    /// Start a new team key (epoch) and deliver it to every active device.
    Rotate,
}

/// `amana intake`.
#[derive(Debug, Args)]
pub struct IntakeArgs {
    /// Read the intake from a JSON or TOML file instead of asking.
    #[arg(long, value_name = "PATH")]
    pub from_file: Option<PathBuf>,
    /// Survivor code prefix for a generated code.
    #[arg(long, default_value = "NP-QAY")]
    pub code_prefix: String,
    /// Seconds without an answer after which the interactive intake is
    /// discarded and the screen cleared.
    #[arg(long, env = "AMANA_IDLE_SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=7200))]
    pub idle_secs: u64,
}

/// `amana cases …`.
#[derive(Debug, Subcommand)]
pub enum CasesCommand {
    /// List the cases on this device.
    List,
    /// Show one case, with any conflicting values.
    Show {
        /// Case id (or its first characters).
        id: String,
    },
    /// Set one field of a case.
    Update {
        /// Case id (or its first characters).
        id: String,
        /// Field path, e.g. risk.level (see `amana cases fields`).
        field: String,
        /// New value: a code, its English or Arabic label, yes/no, a date, or `none`.
        value: String,
    },
    /// List the editable fields and their accepted values.
    Fields,
    /// Destroy a case on every device and at the relay, for good (admin
    /// device only; needs the relay). Only a tombstone remains: the case
    /// id, who shredded it, when, and the reason code.
    Shred {
        /// Case id (or its first characters).
        id: String,
        /// Why.
        #[arg(long, value_enum)]
        reason: ShredReasonArg,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// List the shredded cases (the audit trail that remains).
    Shredded,
}

/// Why a case is shredded.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ShredReasonArg {
    /// The survivor withdrew consent to keeping the record.
    ConsentWithdrawn,
    /// The survivor asked to be forgotten.
    SurvivorRequest,
    /// Keeping the record endangers someone.
    SafetyRisk,
    /// Recorded by mistake.
    EnteredInError,
    /// Duplicates another case.
    Duplicate,
}

/// `amana referral …`.
#[derive(Debug, Subcommand)]
pub enum ReferralCommand {
    /// Add a referral to a case.
    Add(ReferralArgs),
}

/// `amana referral add`.
#[derive(Debug, Args)]
pub struct ReferralArgs {
    /// Case id (or its first characters).
    pub id: String,
    /// Service type (e.g. mhpss, police, legal).
    #[arg(long)]
    pub service: String,
    /// Recipient type, which decides the consent that applies.
    #[arg(long)]
    pub recipient: String,
    /// Receiving organisation code, e.g. MHPSS-01.
    #[arg(long)]
    pub organisation: String,
    /// Date of the referral (YYYY-MM-DD); today by default.
    #[arg(long)]
    pub date: Option<String>,
    /// Staff accompanied the survivor.
    #[arg(long)]
    pub accompanied: bool,
    /// Office only: refer without recorded consent, with this reason.
    #[arg(long)]
    pub override_reason: Option<String>,
    /// Staff code of who decided the override.
    #[arg(long)]
    pub override_staff: Option<String>,
}

/// `amana followup …`.
#[derive(Debug, Subcommand)]
pub enum FollowupCommand {
    /// Add a follow-up to a case.
    Add(FollowupArgs),
}

/// `amana followup add`.
#[derive(Debug, Args)]
pub struct FollowupArgs {
    /// Case id (or its first characters).
    pub id: String,
    /// Kind of follow-up (e.g. phone, visit).
    #[arg(long = "type")]
    pub kind: String,
    /// Outcome, briefly (no names or numbers).
    #[arg(long)]
    pub outcome: String,
    /// Date (YYYY-MM-DD); today by default.
    #[arg(long)]
    pub date: Option<String>,
    /// When the next follow-up is due.
    #[arg(long)]
    pub next_due: Option<String>,
}

/// `amana note …`.
#[derive(Debug, Subcommand)]
pub enum NoteCommand {
    /// Add a note to a case; the text is read from standard input (never
    /// from the command line, which shells keep in their history).
    Add {
        /// Case id (or its first characters).
        id: String,
        /// Your staff code.
        #[arg(long)]
        staff: String,
    },
}

/// `amana demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's directory instead of deleting it.
    #[arg(long)]
    pub keep: bool,
}
