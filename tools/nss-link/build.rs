//! Debian builds libsrtp2 against NSS, and our offline mediasoup worker links that
//! static libsrtp2. `cargo:rustc-link-arg` only reaches the crate that prints it, so a
//! crate of its own, depended on by every binary, puts these after mediasoup-sys.
fn main() {
    println!("cargo:rustc-link-lib=dylib=nss3");
    println!("cargo:rustc-link-lib=dylib=nspr4");
    println!("cargo:rerun-if-changed=build.rs");
}
