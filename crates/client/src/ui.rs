//! What a person sees on standard error while the client works: the device login prompt, a spinner with the
//! time left while waiting for approval (only on a terminal), and short notes. Results go to standard output
//! through `output`, so scripts can read them apart from all this.

use std::{
    io::{IsTerminal as _, Write as _},
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::{auth::oauth::DeviceAuthorization, output::printable};

/// How chatty to be on standard error.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    quiet: bool,
    spinner: bool,
}

impl Ui {
    /// `quiet` keeps standard error to the essentials; the spinner appears only on a terminal and not under
    /// `-d`, whose log lines it would garble.
    pub fn new(quiet: bool, debug: bool) -> Self {
        Self { quiet, spinner: !quiet && !debug && std::io::stderr().is_terminal() }
    }

    /// A short note for people, e.g. that a login happened; suppressed by `-q`.
    pub fn note(&self, message: &str) {
        if !self.quiet {
            say(message);
        }
    }

    /// A warning a person must see (a setting that exposes their tokens): printed even under `-q`.
    pub fn warn(&self, message: &str) {
        say(&format!("warning: {message}"));
    }

    /// Tells the person where to approve the login. Printed even under `-q`: without it nobody can log in.
    pub fn device_prompt(&self, device: &DeviceAuthorization, lifetime: Duration) {
        say(&format!(
            "To log in, open {} in a browser and enter the code {}",
            device.verification_uri, device.user_code
        ));
        if let Some(complete) = &device.verification_uri_complete {
            say(&format!("(or open {complete}, which has the code filled in)."));
        }
        say(&format!("The code expires in {}.", human_duration(lifetime)));
    }

    /// Shows that the client is waiting for approval until the returned guard is dropped.
    pub fn waiting(&self, deadline: Instant) -> Waiting {
        if !self.spinner {
            self.note("Waiting for the login to be approved...");
            return Waiting(None);
        }
        let remaining = move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
            let left = deadline.saturating_duration_since(Instant::now()).as_secs();
            let _ = write!(w, "{}:{:02}", left / 60, left % 60);
        };
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} Waiting for the login to be approved ({remaining} left)")
        {
            bar.set_style(style.with_key("remaining", remaining));
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Waiting(Some(bar))
    }
}

/// The spinner while waiting for approval; cleared when dropped.
pub struct Waiting(Option<ProgressBar>);

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// One line on standard error, [`printable`] (the login prompt's code and URLs and the user's name come from the
/// provider); a closed standard error is ignored rather than a panic.
fn say(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{}", printable(text));
}

/// "10 minutes", "1 minute 30 seconds", "45 seconds".
pub fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let unit = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match (secs / 60, secs % 60) {
        (0, s) => unit(s, "second"),
        (m, 0) => unit(m, "minute"),
        (m, s) => format!("{} {}", unit(m, "minute"), unit(s, "second")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
        assert_eq!(human_duration(Duration::from_secs(90)), "1 minute 30 seconds");
        assert_eq!(human_duration(Duration::from_secs(1)), "1 second");
        assert_eq!(human_duration(Duration::from_secs(61)), "1 minute 1 second");
    }
}
