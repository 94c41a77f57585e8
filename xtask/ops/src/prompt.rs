//! Confirmations that never wait for an answer that cannot come: `--yes` asks nothing, and
//! without a terminal a command that needs one stops and says to pass `--yes`.

use anyhow::{Result, bail};
use std::io::{BufRead, IsTerminal, Write};

/// Asks `question`; true to go ahead.
pub fn confirm(question: &str, yes: bool) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!("{question}: there is no terminal to ask on; pass --yes to go ahead without asking");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// Whether a question can be asked at all.
pub fn can_ask() -> bool {
    std::io::stdin().is_terminal()
}

/// Whether progress can be drawn on one rewritten line.
pub fn is_tty() -> bool {
    std::io::stderr().is_terminal()
}
