//! Reading fields of a classic tracepoint's record.
//!
//! The record is the program's context, which the verifier lets a
//! tracepoint program load from directly (aligned, at most 8 bytes), so no
//! `bpf_probe_read` helper call is paid per field.

use aya_ebpf::{EbpfContext, programs::TracePointContext};

/// Reads the field of type `T` at byte `offset` of the record. `offset`
/// must be a multiple of `size_of::<T>()` (the verifier checks).
#[inline(always)]
pub fn field<T: Copy>(ctx: &TracePointContext, offset: usize) -> T {
    // SAFETY: the context is the tracepoint record; the offsets come from
    // `profiler_common::tp`, checked against tracefs by userspace.
    unsafe { core::ptr::read_volatile(ctx.as_ptr().cast::<u8>().add(offset).cast::<T>()) }
}
