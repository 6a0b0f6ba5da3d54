//! Empty library target: lets `profiler` name this crate as a build
//! dependency, so cargo rebuilds it when the kernel programs change. The
//! programs themselves are the `profiler` binary target (src/main.rs).
#![no_std]
