//! `amana`: the field officer's, office's and auditor's tool.
//!
//! The binary parses and checks its arguments, then calls `amana-core`;
//! it holds no logic of its own beyond prompts and display. Exit codes are
//! listed in [`exit`] and in `amana --help`.

#![forbid(unsafe_code)]

mod app;
mod cli;
mod commands;
mod demo;
mod exit;
mod passphrase;
mod render;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let app = match app::App::new(&cli) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("amana: {e:#}");
            return ExitCode::from(2);
        }
    };
    let lang = app.lang;
    match commands::run(&app, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("amana: {}", exit::message(&e, lang));
            ExitCode::from(exit::code(&e))
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
