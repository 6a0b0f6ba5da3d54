//! `profiler`: an eBPF profiler for the threads of a Linux process.
//!
//! Data flows one way, one module per arrow (see ARCHITECTURE.md):
//! [`kernel`] (load/attach/seed/poll/collect, decode ring-buffer records) ->
//! [`model`] (pure aggregation from recorded events, no aya) ->
//! [`profile`] (the saved, versioned `profile.json`) -> [`render`] (text
//! report, JSON). [`cli`] wires them for the commands; [`session`] runs a
//! recording.
pub mod btf;
pub mod cli;
pub mod diff;
pub mod duration;
pub mod error;
pub mod golang;
pub mod kernel;
pub mod load;
pub mod model;
pub mod output;
pub mod preflight;
pub mod profile;
pub mod render;
pub mod roles;
pub mod session;
pub mod spawn;
pub mod symbolize;
pub mod syscalls;
pub mod target;
pub mod units;
