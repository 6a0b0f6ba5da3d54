//! Ring-buffer records to model [`Event`]s. Each record is checked for
//! length before it is read (with `read_unaligned`, so alignment of the
//! byte slice does not matter); unknown or short records are errors the
//! caller counts, never a panic.

use std::mem::size_of;

use profiler_common::{
    EventHeader, ExecEvent, SegmentEvent, TaskExitEvent, TaskNewEvent, TaskRenameEvent,
    ThreadFinalEvent, event_kind,
};

use super::counters_of;
use crate::model::{Event, RawSegment};

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than {need}")]
    Short { len: usize, need: usize },
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
}

fn read<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::Short {
            len: bytes.len(),
            need: size_of::<T>(),
        });
    }
    // SAFETY: length checked; `T` is a plain `#[repr(C)]` integer struct for
    // which every bit pattern is valid.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// A NUL-terminated kernel string to `String` (lossy).
pub fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let hdr: EventHeader = read(bytes)?;
    Ok(match hdr.kind {
        event_kind::TASK_NEW => {
            let e: TaskNewEvent = read(bytes)?;
            Event::New {
                ts: hdr.ts,
                tid: hdr.tid,
                tgid: hdr.tgid,
                parent_tid: e.parent_tid,
                parent_tgid: e.parent_tgid,
                comm: cstr(&e.comm),
                process: hdr.tgid != e.parent_tgid,
                stack: u32::try_from(e.stack).ok(),
                snapshot: (e.stack_copy_len > 0).then(|| {
                    let n = (e.stack_copy_len as usize).min(e.stack_copy.len());
                    (e.user_ip, e.user_sp, e.stack_copy[..n].to_vec())
                }),
            }
        }
        event_kind::TASK_EXIT => {
            let e: TaskExitEvent = read(bytes)?;
            Event::Exit {
                ts: hdr.ts,
                tid: hdr.tid,
                comm: cstr(&e.comm),
            }
        }
        event_kind::TASK_RENAME => {
            let e: TaskRenameEvent = read(bytes)?;
            Event::Rename {
                ts: hdr.ts,
                tid: hdr.tid,
                comm: cstr(&e.newcomm),
            }
        }
        event_kind::EXEC => {
            let e: ExecEvent = read(bytes)?;
            Event::Exec {
                ts: hdr.ts,
                tid: hdr.tid,
                old_tid: e.old_tid,
                filename: cstr(&e.filename),
            }
        }
        event_kind::THREAD_FINAL => {
            let e: ThreadFinalEvent = read(bytes)?;
            Event::Final {
                ts: hdr.ts,
                tid: hdr.tid,
                counters: counters_of(&e.rec),
            }
        }
        event_kind::SEGMENT => {
            let e: SegmentEvent = read(bytes)?;
            let nz = |v: u64| (v != 0).then_some(v);
            Event::Segment(RawSegment {
                tid: hdr.tid,
                on_start: e.on_start,
                off_start: e.off_start,
                wake: nz(e.wake),
                end: hdr.ts,
                reason: (e.reason != u32::MAX).then(|| super::reason_of(e.reason)),
                syscall: u32::try_from(e.syscall).ok(),
                ustack: u32::try_from(e.ustack).ok(),
            })
        }
        k => return Err(DecodeError::UnknownKind(k)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use profiler_common::ThreadRec;

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: test-only view of a plain struct's bytes.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    fn hdr(kind: u32, tid: u32) -> EventHeader {
        EventHeader {
            kind,
            tid,
            tgid: 7,
            cpu: 1,
            ts: 99,
        }
    }

    #[test]
    fn decodes_each_kind_even_misaligned() {
        let mut comm = [0u8; 16];
        comm[..6].copy_from_slice(b"worker");
        let ev = TaskNewEvent {
            hdr: hdr(event_kind::TASK_NEW, 8),
            parent_tid: 7,
            parent_tgid: 7,
            clone_flags: 0x3d0f00,
            comm,
            stack: 5,
            stack_copy_len: 0,
            user_ip: 0,
            user_sp: 0,
            stack_copy: [0; profiler_common::STACK_COPY_LEN],
        };
        let mut b = vec![0u8];
        b.extend(bytes_of(&ev));
        assert_eq!(
            decode(&b[1..]).unwrap(),
            Event::New {
                ts: 99,
                tid: 8,
                tgid: 7,
                parent_tid: 7,
                parent_tgid: 7,
                comm: "worker".into(),
                process: false,
                stack: Some(5),
                snapshot: None,
            }
        );
        let fin = ThreadFinalEvent {
            hdr: hdr(event_kind::THREAD_FINAL, 8),
            rec: ThreadRec {
                on_cpu_ns: 5,
                voluntary: 2,
                ..ThreadRec::default()
            },
        };
        match decode(&bytes_of(&fin)).unwrap() {
            Event::Final { counters, .. } => {
                assert_eq!(counters.on_cpu_ns, 5);
                assert_eq!(counters.voluntary, 2);
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        assert!(matches!(decode(&[1, 2, 3]), Err(DecodeError::Short { .. })));
        let h = hdr(event_kind::EXEC, 1);
        assert!(matches!(
            decode(&bytes_of(&h)),
            Err(DecodeError::Short { .. })
        ));
        let h = hdr(77, 1);
        assert_eq!(decode(&bytes_of(&h)), Err(DecodeError::UnknownKind(77)));
    }
}
