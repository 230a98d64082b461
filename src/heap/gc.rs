//! The garbage collector's object lists (generations, or young/old on 3.14.0–3.14.4, plus the permanent
//! generation): enumeration with link validation, and the "inside a collection" check.

use super::HeapError;
use super::ctx::Ctx;
use crate::layout::GcKind;

/// Address of the GC state (`struct _gc_runtime_state`).
pub fn gc_state(ctx: &Ctx) -> Result<u64, HeapError> {
    if let Some(o) = ctx.off("interp.gc") {
        Ok(ctx.interp + o)
    } else if let Some(o) = ctx.off("rt.gc") {
        Ok(ctx.runtime + o)
    } else {
        Err(HeapError::Invalid(
            "no GC state offset in the layout".into(),
        ))
    }
}

/// List heads: (label, head address).
pub fn list_heads(ctx: &Ctx) -> Result<Vec<(&'static str, u64)>, HeapError> {
    let gc = gc_state(ctx)?;
    let mut v = vec![];
    match ctx.layout.gc_kind {
        GcKind::Generational => {
            let g = ctx.req("gc.generations")?;
            for (i, name) in ["generation 0", "generation 1", "generation 2"]
                .into_iter()
                .enumerate()
            {
                v.push((name, gc + g + 24 * i as u64));
            }
        }
        GcKind::Incremental => {
            v.push(("young", gc + ctx.req("gc.young")?));
            let old = ctx.req("gc.old")?;
            v.push(("old 0", gc + old));
            v.push(("old 1", gc + old + 24));
        }
    }
    v.push(("permanent", gc + ctx.req("gc.permanent_generation")?));
    Ok(v)
}

/// Fail if a collection is running: its lists are being rearranged and `_gc_prev` holds refcounts.
pub fn check_not_collecting(ctx: &Ctx) -> Result<(), HeapError> {
    let gc = gc_state(ctx)?;
    let c = ctx
        .mem
        .i32(gc + ctx.req("gc.collecting")?)
        .ok_or(HeapError::Unreadable {
            what: "gc.collecting",
            addr: gc,
        })?;
    if c != 0 {
        Err(HeapError::Collecting)
    } else {
        Ok(())
    }
}

/// Push every object on every GC list (object address = GC head + 16). Every `next` link is checked against the
/// following node's `prev`; a mismatch means the copy caught a list mid-update.
pub fn gc_objects(ctx: &Ctx, out: &mut Vec<u64>) -> Result<usize, HeapError> {
    check_not_collecting(ctx)?;
    let mut total = 0;
    for (_name, head) in list_heads(ctx)? {
        let first = ctx.u64(head).ok_or(HeapError::Unreadable {
            what: "GC list head",
            addr: head,
        })? & !3;
        let mut prev = head;
        let mut g = first;
        let mut n = 0usize;
        while g != head {
            let Some(b) = ctx.mem.bytes(g, 16) else {
                return Err(HeapError::Torn { addr: g });
            };
            let next = u64::from_le_bytes(b[..8].try_into().unwrap()) & !3;
            let back = u64::from_le_bytes(b[8..].try_into().unwrap()) & !3;
            if back != prev || next == 0 {
                return Err(HeapError::Torn { addr: g });
            }
            out.push(g + 16);
            prev = g;
            g = next;
            n += 1;
            if n > 1 << 32 {
                return Err(HeapError::Torn { addr: g });
            }
        }
        // the head's prev must close the ring
        if ctx.u64(head + 8).map(|p| p & !3) != Some(prev) {
            return Err(HeapError::Torn { addr: head });
        }
        total += n;
    }
    Ok(total)
}
