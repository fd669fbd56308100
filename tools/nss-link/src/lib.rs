//! Links `nss3` and `nspr4` into every binary that embeds the offline mediasoup
//! worker (Debian's static `libsrtp2.a` does its crypto with NSS; see
//! `tools/mediasoup-offline/README.md`), and keeps NSS loaded while the
//! process lives ([`hold_nss_open`]).
//!
//! Why hold it: libsrtp2's NSS backend opens an NSS context for every cipher
//! it makes and closes it with the cipher. When the last SRTP session of the
//! process closes (the last pipe or WebRTC transport), NSS shuts down and
//! unloads its softoken; the next SRTP session loads and initialises it
//! again. On this project's 2-core machine that made the first pipe connect
//! after such a lull take 0.75 ms with the worker busy on nothing else (1.4 ms
//! after an idle spell) against 0.09 ms (0.26 ms) with NSS held open
//! (`cargo bench -p mafalda-tests --bench pipe_setup`).
#![no_std]
// The two NSS entry points below are the crate's only unsafe code.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicBool, Ordering};

unsafe extern "C" {
    /// Opens an NSS context (initialising NSS if no context is open), as
    /// libsrtp2 does for each cipher; null when NSS could not initialise.
    fn NSS_InitContext(
        configdir: *const core::ffi::c_char,
        cert_prefix: *const core::ffi::c_char,
        key_prefix: *const core::ffi::c_char,
        secmod_name: *const core::ffi::c_char,
        init_params: *mut core::ffi::c_void,
        flags: u32,
    ) -> *mut core::ffi::c_void;
    /// Whether NSS is initialised (`PR_TRUE`, 1) or not.
    fn NSS_IsInitialized() -> i32;
}

/// The flags libsrtp2's NSS backend opens its contexts with: no databases,
/// read-only, no root certificates, small tables.
const LIBSRTP_CONTEXT_FLAGS: u32 = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20;

/// Whether this process holds its NSS context already.
static HELD: AtomicBool = AtomicBool::new(false);

/// Opens one NSS context for the whole process, kept until it exits, so NSS
/// stays loaded when libsrtp2's last context closes. It is the context
/// libsrtp2 opens itself (same empty paths and flags), so its ciphers work
/// the same. Idempotent and thread-safe; returns whether the context is
/// held. Mediasoup's SRTP works either way: this only spares each SRTP
/// session after a lull the reload.
pub fn hold_nss_open() -> bool {
    if HELD.load(Ordering::Acquire) {
        return true;
    }
    let empty = c"".as_ptr();
    // SAFETY: NSS copies the (empty, NUL-terminated) strings it is given and
    // takes its own init lock; null init parameters are documented as
    // accepted. The context is never closed, so nothing frees it under NSS.
    let context = unsafe { NSS_InitContext(empty, empty, empty, empty, core::ptr::null_mut(), LIBSRTP_CONTEXT_FLAGS) };
    if context.is_null() {
        return false;
    }
    // Two threads racing here each hold a context: harmless, both are kept.
    HELD.store(true, Ordering::Release);
    true
}

/// Whether NSS is initialised in this process right now.
pub fn nss_is_initialized() -> bool {
    // SAFETY: a read of NSS's init state under its lock, with no arguments.
    unsafe { NSS_IsInitialized() == 1 }
}
