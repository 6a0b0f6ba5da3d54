//! Interning of symbolized stacks: each distinct frame and each distinct
//! stack (root-first list of frame indices) is stored once, and samples
//! refer to stacks by index, as `profile.json` stores them.

use std::collections::HashMap;

use crate::symbolize::{Frame, Symbolize, attach::AttachStack};

/// Functions at the bottom of every stack of their thread. The Go runtime
/// starts new threads without clearing the frame pointer, so a walk goes
/// on past `runtime.mstart` into the creator's frames: stop there.
const ROOTS: &[&str] = &["runtime.goexit", "runtime.mstart", "runtime.rt0_go"];

/// Drops frames older than the first root function (leaf-first input).
pub fn truncate_at_root(frames: &mut Vec<Frame>) {
    if let Some(i) = frames.iter().position(|f| ROOTS.contains(&f.name.as_str())) {
        frames.truncate(i + 1);
    }
}

/// Frames and stacks of a profile, built from raw kernel stacks.
#[derive(Debug, Default)]
pub struct StackTable {
    pub frames: Vec<Frame>,
    frame_idx: HashMap<Frame, u32>,
    pub stacks: Vec<Vec<u32>>,
    stack_idx: HashMap<Vec<u32>, u32>,
    resolved: HashMap<(u32, Option<u32>, Option<u32>), u32>,
}

impl StackTable {
    /// Stores a root-first list of frames; returns its index.
    pub fn intern(&mut self, frames: Vec<Frame>) -> u32 {
        let idx: Vec<u32> = frames
            .into_iter()
            .map(|f| match self.frame_idx.get(&f) {
                Some(&i) => i,
                None => {
                    let i = self.frames.len() as u32;
                    self.frames.push(f.clone());
                    self.frame_idx.insert(f, i);
                    i
                }
            })
            .collect();
        match self.stack_idx.get(&idx) {
            Some(&i) => i,
            None => {
                let i = self.stacks.len() as u32;
                self.stacks.push(idx.clone());
                self.stack_idx.insert(idx, i);
                i
            }
        }
    }

    /// A user stack given as addresses (leaf first).
    pub fn resolve_ips(&mut self, sym: &mut dyn Symbolize, pid: u32, ips: &[u64]) -> u32 {
        let mut u = if ips.is_empty() {
            Vec::new()
        } else {
            sym.user(pid, ips)
        };
        truncate_at_root(&mut u);
        u.reverse();
        self.intern(u)
    }

    /// A stack read from /proc at attach: user addresses and kernel names.
    pub fn resolve_attach(&mut self, sym: &mut dyn Symbolize, pid: u32, a: &AttachStack) -> u32 {
        let mut frames = if a.user.is_empty() {
            Vec::new()
        } else {
            sym.user(pid, &a.user)
        };
        frames.reverse();
        frames.extend(a.kernel.iter().rev().map(|name| Frame {
            name: name.clone(),
            module: "[kernel]".into(),
            kernel: true,
        }));
        self.intern(frames)
    }

    /// The stack made of raw user stack `ustack` of process `pid` and raw
    /// kernel stack `kstack`, symbolized: user frames root-first, then
    /// kernel frames.
    pub fn resolve(
        &mut self,
        sym: &mut dyn Symbolize,
        raw: &HashMap<u32, Vec<u64>>,
        pid: u32,
        ustack: Option<u32>,
        kstack: Option<u32>,
    ) -> u32 {
        if let Some(&i) = self.resolved.get(&(pid, ustack, kstack)) {
            return i;
        }
        let mut frames = Vec::new();
        if let Some(ips) = ustack.and_then(|id| raw.get(&id)) {
            let mut u = sym.user(pid, ips);
            // A frame-pointer walk that left mapped code (through code
            // built without frame pointers) yields garbage from there on.
            if let Some(cut) = u
                .iter()
                .skip(1)
                .position(|f| f.name == "[unknown]" && f.module.is_empty())
            {
                u.truncate(cut + 1);
            }
            truncate_at_root(&mut u);
            u.reverse();
            frames.extend(u);
        }
        if let Some(ips) = kstack.and_then(|id| raw.get(&id)) {
            let mut k = sym.kernel(ips);
            k.reverse();
            frames.extend(k);
        }
        let i = self.intern(frames);
        self.resolved.insert((pid, ustack, kstack), i);
        i
    }
}
