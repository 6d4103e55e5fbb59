//! Progress of long operations: a bar (`indicatif`) when stderr is a terminal, plain
//! lines (at most one every two seconds, and one at the end) otherwise, so logs and CI
//! output stay readable.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Progress of one operation, on stderr.
pub struct Progress {
    what: String,
    total: Option<u64>,
    done: u64,
    bar: Option<indicatif::ProgressBar>,
    last_line: Instant,
}

impl Progress {
    /// Start reporting `what` (e.g. "exported postings") out of `total` steps if known.
    pub fn new(what: &str, total: Option<u64>) -> Progress {
        Self::with_terminal(what, total, std::io::stderr().is_terminal())
    }

    /// As [`Progress::new`], deciding between bar and lines explicitly.
    pub fn with_terminal(what: &str, total: Option<u64>, terminal: bool) -> Progress {
        let bar = terminal.then(|| {
            let bar = match total {
                Some(n) => indicatif::ProgressBar::new(n),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let template = if total.is_some() {
                "{msg} [{bar:40}] {pos}/{len} ({eta})"
            } else {
                "{spinner} {msg} {pos}"
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what.to_string());
            bar
        });
        Progress {
            what: what.to_string(),
            total,
            done: 0,
            bar,
            last_line: Instant::now(),
        }
    }

    /// `n` more steps done.
    pub fn inc(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(b) => b.inc(n),
            None => {
                if self.last_line.elapsed() >= Duration::from_secs(2) {
                    eprintln!("{}", self.line());
                    self.last_line = Instant::now();
                }
            }
        }
    }

    /// Steps done so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    fn line(&self) -> String {
        match self.total {
            Some(t) => format!("{}: {}/{t}", self.what, self.done),
            None => format!("{}: {}", self.what, self.done),
        }
    }

    /// The operation ended: clear the bar, or print the final count as a line.
    pub fn finish(self) {
        match &self.bar {
            Some(b) => b.finish_and_clear(),
            None => eprintln!("{}", self.line()),
        }
    }
}
