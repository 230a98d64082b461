//! Roots of the object graph beyond the GC lists: interpreters, modules, sys/builtins, threads (their frames,
//! locals, exceptions, thread-locals), interned strings, static type dicts, small-int caches.

use super::ctx::Ctx;
use super::decode::{dict_items, iframe_refs};
use super::label::{Label, Sink};

/// Every interpreter state (the main one first).
pub fn interpreters(ctx: &Ctx) -> Vec<u64> {
    let mut v = vec![];
    let next = ctx.off("interp.next").unwrap_or(0);
    let mut i = ctx.interp;
    while i != 0 && v.len() < 256 && !v.contains(&i) {
        v.push(i);
        i = ctx.ptr(i + next);
    }
    v
}

/// Thread states of an interpreter.
pub fn threads(ctx: &Ctx, interp: u64) -> Vec<u64> {
    let mut v = vec![];
    let (Some(head), Some(next)) = (
        ctx.off("interp.tstate_head/threads.head"),
        ctx.off("ts.next"),
    ) else {
        return v;
    };
    let mut t = ctx.ptr(interp + head);
    while t != 0 && v.len() < 100_000 && !v.contains(&t) {
        v.push(t);
        t = ctx.ptr(t + next);
    }
    v
}

/// The innermost interpreter frame (3.11+) of a thread, or the frame object (<= 3.10).
pub fn thread_frame(ctx: &Ctx, ts: u64) -> u64 {
    if let Some(f) = ctx.off("ts.current_frame") {
        return ctx.ptr(ts + f);
    }
    // (3.10 has a cframe too, but it only carries use_tracing; its frames hang off tstate->frame)
    if ctx.at_least(11)
        && let Some(cf) = ctx.off("ts.cframe")
    {
        let cframe = ctx.ptr(ts + cf);
        return ctx.ptr(cframe + ctx.off("cframe.current_frame").unwrap_or(0));
    }
    ctx.ptr(ts + ctx.off("ts.frame").unwrap_or(24))
}

/// The chain of interpreter frames (3.11+) from `f` outwards.
pub fn iframes(ctx: &Ctx, f: u64) -> Vec<u64> {
    let prev = ctx.off("iframe.previous").unwrap_or(8);
    let mut v = vec![];
    let mut f = f;
    while f != 0 && v.len() < 100_000 {
        v.push(f);
        f = ctx.ptr(f + prev);
    }
    v
}

/// Dict of a static builtin type (3.12+ keeps it in the interpreter, indexed by `tp_subclasses - 1`).
pub fn static_type_dict(ctx: &Ctx, t: u64) -> Option<u64> {
    let types = ctx.off("interp.types")?;
    let idx = ctx.ptr(t + ctx.tp_subclasses);
    if idx == 0 || idx > 1024 {
        return None;
    }
    let (stride, dict_off) = if ctx.at_least(13) { (48, 24) } else { (40, 16) };
    let e = ctx.interp + types + 98320 + (idx - 1) * stride;
    (ctx.ptr(e) == t)
        .then(|| ctx.ptr(e + dict_off))
        .filter(|&d| d != 0)
}

/// All root references. Pointers are validated by the walker.
pub fn roots(ctx: &Ctx, out: &mut Vec<u64>) {
    roots_with(ctx, out, true)
}

/// Root references; thread stacks only if `with_threads`.
pub fn roots_with(ctx: &Ctx, out: &mut Vec<u64>, with_threads: bool) {
    let mut items = vec![];
    for interp in interpreters(ctx) {
        for l in [
            "interp.modules",
            "interp.sysdict",
            "interp.builtins",
            "interp.dict",
        ] {
            if let Some(o) = ctx.off(l) {
                out.push(ctx.ptr(interp + o));
            }
        }
        if let Some(gc) = ctx.off("interp.gc").or(ctx.off("rt.gc")) {
            let base = if ctx.off("interp.gc").is_some() {
                interp
            } else {
                ctx.runtime
            };
            for l in ["gc.garbage", "gc.callbacks"] {
                if let Some(o) = ctx.off(l) {
                    out.push(ctx.ptr(base + gc + o));
                }
            }
        }
        // 3.9/3.10: per-interpreter small ints are heap objects held by an array of pointers
        if let Some(si) = ctx.off("interp.small_ints") {
            for i in 0..262 {
                out.push(ctx.ptr(interp + si + 8 * i));
            }
        }
        // 3.12+: dynamically interned strings (a dict)
        if let Some(o) = ctx.off("interp.cached_objects.interned_strings") {
            let d = ctx.ptr(interp + o);
            items.clear();
            dict_items(ctx, d, &mut items);
            out.extend(items.iter().map(|&(k, _)| k));
        }
        // 3.12+: the dicts of static builtin types
        if let Some(types) = ctx.off("interp.types") {
            let (stride, dict_off) = if ctx.at_least(13) { (48, 24) } else { (40, 16) };
            for i in 0..512u64 {
                let e = interp + types + 98320 + i * stride;
                if ctx.ptr(e) == 0 {
                    break;
                }
                out.push(ctx.ptr(e + dict_off));
            }
        }
        if with_threads {
            for ts in threads(ctx, interp) {
                thread_roots(ctx, ts, out);
            }
        }
    }
    // 3.8-3.11: the `interned` dict (file-local symbol)
    if let Some(sym) = ctx.interned_sym {
        let d = ctx.ptr(sym);
        if d != 0 {
            items.clear();
            dict_items(ctx, d, &mut items);
            out.extend(items.iter().map(|&(k, _)| k));
        }
    }
    // 3.12+: statically interned strings (a _Py_hashtable_t of str keys)
    if let Some(o) = ctx.off("rt.cached_objects.interned_strings") {
        hashtable_keys(ctx, ctx.ptr(ctx.runtime + o), out);
    }
}

fn hashtable_keys(ctx: &Ctx, ht: u64, out: &mut Vec<u64>) {
    if ht == 0 {
        return;
    }
    let nbuckets = ctx.ptr(ht + 8);
    let buckets = ctx.ptr(ht + 16);
    if nbuckets == 0 || nbuckets > (1 << 24) {
        return;
    }
    let mut n = 0;
    for b in 0..nbuckets {
        let mut e = ctx.ptr(buckets + 8 * b);
        while e != 0 && n < (1 << 24) {
            out.push(ctx.ptr(e + 16));
            e = ctx.ptr(e);
            n += 1;
        }
    }
}

/// What a thread state itself holds: `threading.local` storage, the exception being raised (<= 3.11
/// `curexc_*`, 3.12+ `current_exception`), the exception being handled, a pending async exception.
pub fn thread_state_refs<S: Sink>(ctx: &Ctx, ts: u64, out: &mut S) {
    if let Some(o) = ctx.off("ts.dict") {
        out.add(ctx.ptr(ts + o), Label::Field("thread-local data"));
    }
    for l in ["ts.async_exc", "ts.current_exception"] {
        if let Some(o) = ctx.off(l) {
            out.add(ctx.ptr(ts + o), Label::Field("exception"));
        }
    }
    if let Some(o) = ctx.off("ts.curexc_type") {
        for i in 0..3 {
            out.add(ctx.ptr(ts + o + 8 * i), Label::Field("exception"));
        }
    }
    if let Some(es) = ctx.off("ts.exc_state") {
        let (base, n) = if ctx.at_least(11) {
            (ts + es + ctx.off("errstack.exc_value").unwrap_or(0), 1)
        } else {
            (ts + es, 3)
        };
        for i in 0..n {
            out.add(ctx.ptr(base + 8 * i), Label::Field("handled exception"));
        }
    }
}

/// A thread's Python frames, innermost first: interpreter frames (3.11+) or frame objects (<= 3.10).
pub fn thread_frames(ctx: &Ctx, ts: u64) -> Vec<u64> {
    let f = thread_frame(ctx, ts);
    if ctx.at_least(11) {
        return iframes(ctx, f);
    }
    let back = ctx.off("frameobj.f_back").unwrap_or(24);
    let mut v = vec![];
    let mut x = f;
    while x != 0 && v.len() < 100_000 {
        v.push(x);
        x = ctx.ptr(x + back);
    }
    v
}

/// What one thread keeps alive: its frames and their locals, exceptions, and `threading.local` storage.
pub fn thread_roots(ctx: &Ctx, ts: u64, out: &mut Vec<u64>) {
    thread_state_refs(ctx, ts, out);
    let f = thread_frame(ctx, ts);
    if !ctx.at_least(11) {
        out.push(f); // a frame object: the walker follows f_back
        return;
    }
    for f in iframes(ctx, f) {
        iframe_refs(ctx, f, out);
    }
}
