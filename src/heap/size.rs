//! Object sizes: `sys.getsizeof` recomputed per type and version, and the real footprint (buffers the object alone
//! owns that `getsizeof` leaves out). See docs/size-model.md.

use super::ctx::{Ctx, flags};
use super::decode::keys_info;
use super::types::{Kind, TypeInfo};

/// The GC header and pre-header that `sys.getsizeof` adds to `__sizeof__`.
pub fn header(ctx: &Ctx, ti: &TypeInfo) -> u64 {
    preheader(ctx.minor, ti.flags)
}

/// Bytes in front of an object of a type with these flags: the GC head, and the 3.11 managed-dict / 3.12+
/// managed-dict-or-weakref words. Its allocation starts at `address - preheader`.
pub fn preheader(minor: u8, tp_flags: u64) -> u64 {
    let mut h = if tp_flags & flags::HAVE_GC != 0 {
        16
    } else {
        0
    };
    let managed = if minor >= 12 {
        flags::MANAGED_DICT | flags::MANAGED_WEAKREF
    } else if minor == 11 {
        flags::MANAGED_DICT
    } else {
        0
    };
    if tp_flags & managed != 0 {
        h += 16;
    }
    h
}

/// Size of a dict keys object as `_PyDict_KeysSize` computes it.
pub fn keys_size(ctx: &Ctx, keys: u64) -> u64 {
    let Some(ki) = keys_info(ctx, keys) else {
        return 0;
    };
    let usable = ki.size * 2 / 3;
    ctx.o.sizeof_keys + ki.index_bytes + usable * ki.entry_size
}

fn dict_sizeof(ctx: &Ctx, d: u64, basicsize: u64) -> u64 {
    let o = &ctx.o;
    let mut res = basicsize;
    let keys = ctx.ptr(d + o.ma_keys);
    let values = ctx.ptr(d + o.ma_values);
    let Some(ki) = keys_info(ctx, keys) else {
        return res;
    };
    if values != 0 {
        res += if ctx.at_least(11) {
            (ki.nentries + ki.usable) * 8
        } else {
            (ki.size * 2 / 3) * 8
        };
    }
    if ctx.u64(keys) == Some(1) {
        res += keys_size(ctx, keys);
    }
    res
}

fn str_sizeof(ctx: &Ctx, s: u64) -> u64 {
    let o = &ctx.o;
    let m = ctx.mem;
    let state = m.u8(s + o.str_state).unwrap_or(0);
    let len = m.u64(s + o.str_length).unwrap_or(0);
    let kind = ((state >> 2) & 7) as u64;
    let compact = state & 0x20 != 0;
    let ascii = state & 0x40 != 0;
    let mut size = if compact {
        if ascii {
            o.ascii_size + len + 1
        } else {
            o.compact_size + (len + 1) * kind
        }
    } else {
        let data = ctx.ptr(s + o.ustr_data);
        o.unicode_size + if data != 0 { (len + 1) * kind } else { 0 }
    };
    // a cached UTF-8 copy, unless it is the data itself (compact ASCII)
    if !(compact && ascii) {
        let utf8 = ctx.ptr(s + o.utf8);
        let data = if compact {
            s + o.compact_size
        } else {
            ctx.ptr(s + o.ustr_data)
        };
        if utf8 != 0 && utf8 != data {
            size += ctx.ptr(s + o.utf8_length) + 1;
        }
    }
    // <= 3.11: a wchar_t copy
    if o.wstr != u64::MAX {
        let wstr = ctx.ptr(s + o.wstr);
        let data = if compact {
            s + if ascii { o.ascii_size } else { o.compact_size }
        } else {
            ctx.ptr(s + o.ustr_data)
        };
        if wstr != 0 && wstr != data {
            let wlen = if compact && ascii {
                len
            } else {
                ctx.ptr(s + o.wstr_length)
            };
            size += (wlen + 1) * 4;
        }
    }
    size
}

/// Slots a frame of this code object needs: locals, cells, free variables and the value stack
/// (`co_nlocalsplus + co_stacksize`, i.e. `co_framesize - FRAME_SPECIALS_SIZE` on 3.12+).
fn frame_slots(ctx: &Ctx, code: u64) -> u64 {
    let o = &ctx.o;
    if code == 0 {
        return 0;
    }
    let nlp = ctx.mem.i32(code + o.co_nlocalsplus).unwrap_or(0).max(0) as u64;
    let stack = ctx.mem.i32(code + o.co_stacksize).unwrap_or(0).max(0) as u64;
    nlp + stack
}

/// `sys.getsizeof(obj)`.
pub fn getsizeof(ctx: &Ctx, a: u64, ti: &TypeInfo) -> u64 {
    let o = &ctx.o;
    let m = ctx.mem;
    let basic = ti.basicsize as u64;
    let ob_size = || m.i64(a + 16).unwrap_or(0).unsigned_abs();
    let body = match ti.kind {
        Kind::Int => {
            let n = if ctx.at_least(12) {
                ctx.ptr(a + o.lv_tag) >> 3
            } else {
                ob_size()
            };
            let n = if ctx.at_least(11) { n.max(1) } else { n };
            24 + 4 * n
        }
        Kind::Str => str_sizeof(ctx, a),
        Kind::List => basic + ctx.ptr(a + o.list_allocated) * 8,
        Kind::Dict => dict_sizeof(ctx, a, basic),
        Kind::Set => {
            let table = ctx.ptr(a + o.set_table);
            basic
                + if table != a + o.set_smalltable {
                    (ctx.ptr(a + o.set_mask) + 1) * 16
                } else {
                    0
                }
        }
        Kind::ByteArray => {
            let alloc = ctx.ptr(a + o.ba_alloc);
            if o.ba_bytes_object != u64::MAX {
                basic + if alloc > 0 { 33 + alloc } else { 0 }
            } else {
                basic + alloc
            }
        }
        Kind::Type => {
            if ti.is_heap || ctx.u64(a + ctx.tp_flags).unwrap_or(0) & flags::HEAPTYPE != 0 {
                let keys = ctx.ptr(a + ctx.ht_cached_keys);
                o.sizeof_heaptype + if keys != 0 { keys_size(ctx, keys) } else { 0 }
            } else {
                basic
            }
        }
        Kind::Frame if !ctx.at_least(11) => basic + ob_size().saturating_sub(1) * 8,
        Kind::Frame => {
            // offsetof(_f_frame_data) + offsetof(localsplus) + slots of the code object
            let iframe = ctx.ptr(a + o.f_frame);
            let code = super::decode::stackref(ctx, ctx.ptr(iframe + o.if_executable));
            o.f_frame_data + o.if_localsplus + frame_slots(ctx, code) * 8
        }
        Kind::Gen if ctx.at_least(11) => {
            let code = if o.gi_code != u64::MAX {
                ctx.ptr(a + o.gi_code)
            } else {
                super::decode::stackref(ctx, ctx.ptr(a + o.gi_iframe + o.if_executable))
            };
            o.gi_iframe + o.if_localsplus + frame_slots(ctx, code) * 8
        }
        _ => {
            if ti.itemsize != 0 && ob_size() < (1 << 32) {
                basic + ob_size() * ti.itemsize as u64
            } else {
                basic
            }
        }
    };
    let is_type_obj = ti.kind == Kind::Type;
    let gc_header = if is_type_obj {
        // type objects: heap types are GC objects, static ones are not
        if ctx.u64(a + ctx.tp_flags).unwrap_or(0) & flags::HEAPTYPE != 0 {
            header(ctx, ti)
        } else {
            0
        }
    } else {
        header(ctx, ti)
    };
    body + gc_header
}

/// Bytes the object really occupies: `getsizeof` plus buffers it alone owns that `getsizeof` omits
/// (3.11/3.12 instance values arrays, 3.13+ inline values). A dict whose values are embedded in its owner does not
/// count them again.
pub fn footprint(ctx: &Ctx, a: u64, ti: &TypeInfo, getsizeof: u64) -> u64 {
    let m = ctx.mem;
    if ti.is_heap && ctx.at_least(11) && ti.flags & flags::MANAGED_DICT != 0 {
        if ctx.at_least(13) {
            if ti.flags & flags::INLINE_VALUES != 0 {
                let cap = m.u8(a + ti.basicsize as u64).unwrap_or(0) as u64;
                return getsizeof + ((cap + 7) & !7) + (cap + 1) * 8;
            }
        } else {
            let values = super::decode::values_array(ctx, a);
            if values != 0 {
                let prefix = m.u8(values.wrapping_sub(1)).unwrap_or(0) as u64;
                let keys = ctx.ptr(ti.addr + ctx.ht_cached_keys);
                let n = keys_info(ctx, keys)
                    .map(|k| k.nentries + k.usable)
                    .unwrap_or(0);
                return getsizeof + prefix + n * 8;
            }
        }
    }
    if ti.kind == Kind::Dict && ctx.at_least(13) {
        let values = ctx.ptr(a + ctx.o.ma_values);
        if values != 0 && m.u8(values + 2) == Some(1) {
            // embedded in the owning instance, which already counts them
            if let Some(k) = keys_info(ctx, ctx.ptr(a + ctx.o.ma_keys)) {
                return getsizeof.saturating_sub((k.nentries + k.usable) * 8);
            }
        }
    }
    getsizeof
}
