//! Child processes a test starts (ffmpeg, browser drivers): killed and
//! reaped when dropped, so a failed assertion (a panic) leaves none behind.

use std::process::{Child, Command};

/// The child processes of a test.
#[derive(Default)]
pub struct Children(pub Vec<Child>);

impl Children {
    /// Starts `command` (`what` names it in the panic if it cannot start).
    pub fn spawn(&mut self, what: &str, command: &mut Command) -> &mut Child {
        let child = command.spawn().unwrap_or_else(|e| panic!("start {what} ({e}): scripts/setup.sh installs it"));
        self.0.push(child);
        self.0.last_mut().expect("just pushed")
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
