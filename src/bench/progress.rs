//! A progress bar on standard error, drawn only when standard error is a terminal (etcd's
//! `benchmark` always draws one; a script's log gets none).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A shared, cheaply cloned progress counter.
#[derive(Debug, Clone)]
pub struct Progress(ProgressBar);

impl Progress {
    /// A bar of `total` steps labelled `label`; hidden when stderr is not a terminal.
    pub fn new(total: u64, label: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(ProgressBar::hidden());
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) =
            ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} [{elapsed_precise}] {per_sec}")
        {
            bar.set_style(style);
        }
        bar.set_message(label.to_string());
        Progress(bar)
    }

    /// Advances by one step.
    pub fn inc(&self) {
        self.0.inc(1);
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}
