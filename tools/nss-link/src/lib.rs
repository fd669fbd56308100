//! Link-only crate: depending on it (`use mafalda_nss_link as _;`) makes the final
//! binary link `nss3` and `nspr4`, which Debian's static `libsrtp2.a` needs.
//! See `tools/mediasoup-offline/README.md`.
#![no_std]
