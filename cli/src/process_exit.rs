//! Ending the process once the node has stopped.
//!
//! mediasoup's workers are threads of this process running C++. `exit()` runs
//! the C++ destructors of static objects those threads still use, so a worker
//! thread still handling a request while the process exits crashes it
//! (SIGSEGV at exit, seen in CI after a SIGINT). The node closes its own
//! workers when it stops; this waits for every worker thread of the process
//! (an app's session may still hold some) and, if one is still running after
//! the wait, ends the process without running exit handlers.

use std::io::Write;
use std::time::{Duration, Instant};

use mafalda_media::running_worker_threads;

/// How long the process waits for mediasoup worker threads before it exits anyway.
const WORKER_WAIT: Duration = Duration::from_secs(1);

/// Ends the process with `code` once no mediasoup worker thread runs, waiting
/// at most [`WORKER_WAIT`]; output is flushed either way.
pub fn exit(code: u8) -> ! {
    let deadline = Instant::now() + WORKER_WAIT;
    let mut running = running_worker_threads();
    while running > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        running = running_worker_threads();
    }
    let _ = std::io::stdout().flush();
    if running == 0 {
        std::process::exit(code.into());
    }
    tracing::warn!(running, wait = ?WORKER_WAIT, "mediasoup workers still running (an app session or a leak holds them): exiting without exit handlers");
    let _ = std::io::stderr().flush();
    exit_without_handlers(code.into())
}

/// `_exit(2)`: the process ends now, no `atexit` handler or static destructor
/// runs (the project's only unsafe code; see the module doc for why).
#[allow(unsafe_code)]
fn exit_without_handlers(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions; it never returns and touches no
    // memory of this process (the kernel ends every thread).
    unsafe { libc::_exit(code) }
}
