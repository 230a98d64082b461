//! Per-type reference decoding: which objects an object refers to (dict entries, list items, `__dict__`, slots,
//! frames and their locals, ...), and reading strings.

use super::ctx::{Ctx, flags};
use super::types::{Kind, TypeInfo};
use crate::layout::Layout;

pub use super::label::{Label, Sink};

const NONE: u64 = u64::MAX;

/// Offsets used while decoding, resolved once from the layout (`NONE` = field absent in this version).
#[derive(Debug, Clone)]
pub struct Offs {
    pub ma_keys: u64,
    pub ma_values: u64,
    pub dk_size: u64,
    pub dk_log2_size: u64,
    pub dk_log2_index_bytes: u64,
    pub dk_kind: u64,
    pub dk_nentries: u64,
    pub dk_usable: u64,
    pub dk_indices: u64,
    pub list_items: u64,
    pub list_allocated: u64,
    pub set_mask: u64,
    pub set_table: u64,
    pub set_smalltable: u64,
    pub str_state: u64,
    pub str_length: u64,
    pub ascii_size: u64,
    pub compact_size: u64,
    pub unicode_size: u64,
    pub ustr_data: u64,
    pub utf8_length: u64,
    pub utf8: u64,
    pub wstr: u64,
    pub wstr_length: u64,
    pub lv_tag: u64,
    pub ba_alloc: u64,
    pub ba_bytes_object: u64,
    pub md_dict: u64,
    pub md_name: u64,
    pub cell_ref: u64,
    pub im_func: u64,
    pub im_self: u64,
    pub func_fields: Vec<u64>,
    pub func_names: Vec<&'static str>,
    pub code_fields: Vec<u64>,
    pub code_names: Vec<&'static str>,
    pub co_localsplusnames: u64,
    pub co_varnames: u64,
    pub co_nlocals: u64,
    pub co_nlocalsplus: u64,
    pub co_stacksize: u64,
    pub co_cellvars: u64,
    pub co_freevars: u64,
    pub f_back: u64,
    pub f_code: u64,
    pub f_locals: u64,
    pub f_valuestack: u64,
    pub f_stacktop: u64,
    pub f_stackdepth: u64,
    pub f_localsplus: u64,
    pub f_frame: u64,
    pub f_frame_data: u64,
    pub gi_frame: u64,
    pub gi_code: u64,
    pub gi_name: u64,
    pub gi_qualname: u64,
    pub gi_exc_state: u64,
    pub gi_iframe: u64,
    pub gi_frame_state: u64,
    pub if_executable: u64,
    pub if_funcobj: u64,
    pub if_globals: u64,
    pub if_builtins: u64,
    pub if_locals: u64,
    pub if_frame_obj: u64,
    pub if_previous: u64,
    pub if_stack: u64,
    pub if_owner: u64,
    pub if_localsplus: u64,
    pub ht_name: u64,
    pub ht_qualname: u64,
    pub ht_slots: u64,
    pub ht_module: u64,
    pub exc_value: u64,
    pub sizeof_heaptype: u64,
    pub sizeof_keys: u64,
    pub stackref: bool,
}

impl Offs {
    pub fn new(l: &Layout) -> Offs {
        let g = |s: &str| l.get(s).map(|v| v as u64).unwrap_or(NONE);
        let many = |names: &[&'static str]| {
            let v: Vec<(u64, &'static str)> = names
                .iter()
                .filter_map(|s| {
                    l.get(s)
                        .map(|v| (v as u64, s.split('.').nth(1).unwrap_or(s)))
                })
                .collect();
            (
                v.iter().map(|x| x.0).collect::<Vec<u64>>(),
                v.iter().map(|x| x.1).collect::<Vec<&'static str>>(),
            )
        };
        let (func_fields, func_names) = many(&[
            "func.func_globals",
            "func.func_builtins",
            "func.func_name",
            "func.func_qualname",
            "func.func_code",
            "func.func_defaults",
            "func.func_kwdefaults",
            "func.func_closure",
            "func.func_doc",
            "func.func_dict",
            "func.func_module",
            "func.func_annotations",
            "func.func_annotate",
            "func.func_typeparams",
        ]);
        let (code_fields, code_names) = many(&[
            "code.co_code",
            "code.co_consts",
            "code.co_names",
            "code.co_varnames",
            "code.co_cellvars",
            "code.co_freevars",
            "code.co_localsplusnames",
            "code.co_localspluskinds",
            "code.co_filename",
            "code.co_name",
            "code.co_qualname",
            "code.co_linetable",
            "code.co_lnotab",
            "code.co_exceptiontable",
        ]);
        Offs {
            ma_keys: g("dict.ma_keys"),
            ma_values: g("dict.ma_values"),
            dk_size: g("dictkeys.dk_size"),
            dk_log2_size: g("dictkeys.dk_log2_size"),
            dk_log2_index_bytes: g("dictkeys.dk_log2_index_bytes"),
            dk_kind: g("dictkeys.dk_kind"),
            dk_nentries: g("dictkeys.dk_nentries"),
            dk_usable: g("dictkeys.dk_usable"),
            dk_indices: g("dictkeys.dk_indices"),
            list_items: g("list.ob_item"),
            list_allocated: g("list.allocated"),
            set_mask: g("set.mask"),
            set_table: g("set.table"),
            set_smalltable: g("set.smalltable"),
            str_state: g("str.state"),
            str_length: g("str.length"),
            ascii_size: g("sizeof(PyASCIIObject)"),
            compact_size: g("sizeof(PyCompactUnicodeObject)"),
            unicode_size: g("sizeof(PyUnicodeObject)"),
            ustr_data: g("ustr.data"),
            utf8_length: g("cstr.utf8_length"),
            utf8: g("cstr.utf8"),
            wstr: g("str.wstr"),
            wstr_length: g("cstr.wstr_length"),
            lv_tag: g("long.lv_tag"),
            ba_alloc: g("bytearray.ob_alloc"),
            ba_bytes_object: g("bytearray.ob_bytes_object"),
            md_dict: g("module.md_dict"),
            md_name: g("module.md_name"),
            cell_ref: g("cell.ob_ref"),
            im_func: g("method.im_func"),
            im_self: g("method.im_self"),
            func_fields,
            func_names,
            code_fields,
            code_names,
            co_localsplusnames: g("code.co_localsplusnames"),
            co_varnames: g("code.co_varnames"),
            co_nlocals: g("code.co_nlocals"),
            co_nlocalsplus: g("code.co_nlocalsplus"),
            co_stacksize: g("code.co_stacksize"),
            co_cellvars: g("code.co_cellvars"),
            co_freevars: g("code.co_freevars"),
            f_back: g("frameobj.f_back"),
            f_code: g("frameobj.f_code"),
            f_locals: g("frameobj.f_locals"),
            f_valuestack: g("frameobj.f_valuestack"),
            f_stacktop: g("frameobj.f_stacktop"),
            f_stackdepth: g("frameobj.f_stackdepth"),
            f_localsplus: g("frameobj.f_localsplus"),
            f_frame: g("frameobj.f_frame"),
            f_frame_data: g("frameobj._f_frame_data"),
            gi_frame: g("gen.gi_frame"),
            gi_code: g("gen.gi_code"),
            gi_name: g("gen.gi_name"),
            gi_qualname: g("gen.gi_qualname"),
            gi_exc_state: g("gen.gi_exc_state"),
            gi_iframe: g("gen.gi_iframe"),
            gi_frame_state: g("gen.gi_frame_state"),
            if_executable: g("iframe.f_code/f_executable"),
            if_funcobj: g("iframe.f_funcobj/f_func"),
            if_globals: g("iframe.f_globals"),
            if_builtins: g("iframe.f_builtins"),
            if_locals: g("iframe.f_locals"),
            if_frame_obj: g("iframe.frame_obj"),
            if_previous: g("iframe.previous"),
            if_stack: g("iframe.stacktop/stackpointer"),
            if_owner: g("iframe.owner"),
            if_localsplus: g("iframe.localsplus"),
            ht_name: g("heaptype.ht_name"),
            ht_qualname: g("heaptype.ht_qualname"),
            ht_slots: g("heaptype.ht_slots"),
            ht_module: g("heaptype.ht_module"),
            exc_value: g("errstack.exc_value"),
            sizeof_heaptype: g("sizeof(PyHeapTypeObject)"),
            sizeof_keys: g("sizeof(PyDictKeysObject)"),
            stackref: l.version.at_least(14),
        }
    }
}

#[inline]
fn some(o: u64) -> bool {
    o != NONE
}

/// Decoded header of a dict keys object.
pub struct Keys {
    pub size: u64,
    pub nentries: u64,
    pub usable: u64,
    pub index_bytes: u64,
    pub entries: u64,
    pub entry_size: u64,
    /// offset of key / value inside an entry
    pub key_off: u64,
    pub value_off: u64,
}

pub fn keys_info(ctx: &Ctx, k: u64) -> Option<Keys> {
    let o = &ctx.o;
    let m = ctx.mem;
    if some(o.dk_log2_size) {
        let log2 = m.u8(k + o.dk_log2_size)? as u64;
        let log2i = m.u8(k + o.dk_log2_index_bytes)? as u64;
        let kind = m.u8(k + o.dk_kind)?;
        if log2 > 40 || log2i > 44 || kind > 2 {
            return None;
        }
        let general = kind == 0;
        Some(Keys {
            size: 1 << log2,
            nentries: m.u64(k + o.dk_nentries)?,
            usable: m.u64(k + o.dk_usable)?,
            index_bytes: 1 << log2i,
            entries: k + o.dk_indices + (1 << log2i),
            entry_size: if general { 24 } else { 16 },
            key_off: if general { 8 } else { 0 },
            value_off: if general { 16 } else { 8 },
        })
    } else {
        let size = m.u64(k + o.dk_size)?;
        if size == 0 || size > (1 << 40) || !size.is_power_of_two() {
            return None;
        }
        let width = if size <= 0xff {
            1
        } else if size <= 0xffff {
            2
        } else if size <= 0xffff_ffff {
            4
        } else {
            8
        };
        Some(Keys {
            size,
            nentries: m.u64(k + o.dk_nentries)?,
            usable: m.u64(k + o.dk_usable)?,
            index_bytes: size * width,
            entries: k + o.dk_indices + size * width,
            entry_size: 24,
            key_off: 8,
            value_off: 16,
        })
    }
}

/// Values of a split table or inline values, paired with the shared keys: pushes (key, value).
fn split_items(ctx: &Ctx, keys: u64, values: u64, inline_header: bool, out: &mut Vec<(u64, u64)>) {
    let Some(ki) = keys_info(ctx, keys) else {
        return;
    };
    let m = ctx.mem;
    let key_at = |i: u64| {
        if i < ki.nentries {
            ctx.ptr(ki.entries + i * ki.entry_size + ki.key_off)
        } else {
            0
        }
    };
    if inline_header {
        // 3.13+: {u8 capacity, u8 size, u8 embedded, u8 valid}, values at +8
        let cap = m.u8(values).unwrap_or(0) as u64;
        for i in 0..cap {
            let v = ctx.ptr(values + 8 + 8 * i);
            if v != 0 {
                out.push((key_at(i), v));
            }
        }
    } else if ctx.at_least(11) {
        // 3.11/3.12: byte[-1] prefix size, byte[-2] used count, byte[-3-k] insertion order
        let used = m.u8(values.wrapping_sub(2)).unwrap_or(0) as u64;
        for k in 0..used {
            let i = m.u8(values.wrapping_sub(3 + k)).unwrap_or(255) as u64;
            if i >= ki.nentries {
                continue;
            }
            let v = ctx.ptr(values + 8 * i);
            if v != 0 {
                out.push((key_at(i), v));
            }
        }
    } else {
        for i in 0..ki.nentries.min(1 << 26) {
            let v = ctx.ptr(values + 8 * i);
            if v != 0 {
                out.push((key_at(i), v));
            }
        }
    }
}

/// (key, value) pairs of a dict object.
pub fn dict_items(ctx: &Ctx, d: u64, out: &mut Vec<(u64, u64)>) {
    let o = &ctx.o;
    let keys = ctx.ptr(d + o.ma_keys);
    let values = ctx.ptr(d + o.ma_values);
    if keys == 0 {
        return;
    }
    if values != 0 {
        split_items(ctx, keys, values, ctx.at_least(13), out);
        return;
    }
    let Some(ki) = keys_info(ctx, keys) else {
        return;
    };
    let n = ki.nentries.min(ki.size);
    let Some(raw) = ctx.mem.bytes(ki.entries, (n * ki.entry_size) as usize) else {
        return;
    };
    for e in raw.chunks_exact(ki.entry_size as usize) {
        let k = u64::from_le_bytes(
            e[ki.key_off as usize..ki.key_off as usize + 8]
                .try_into()
                .unwrap(),
        );
        let v = u64::from_le_bytes(
            e[ki.value_off as usize..ki.value_off as usize + 8]
                .try_into()
                .unwrap(),
        );
        if k != 0 && v != 0 {
            out.push((k, v));
        }
    }
}

/// A str object's text (names, `__module__`), at most 4096 characters.
pub fn read_str(ctx: &Ctx, s: u64) -> Option<String> {
    let o = &ctx.o;
    let m = ctx.mem;
    let state = m.u8(s + o.str_state)?;
    let len = m.u64(s + o.str_length)?;
    if len > 4096 {
        return None;
    }
    let kind = (state >> 2) & 7;
    let compact = state & 0x20 != 0;
    let ascii = state & 0x40 != 0;
    let data = if compact {
        s + if ascii { o.ascii_size } else { o.compact_size }
    } else {
        m.u64(s + o.ustr_data)?
    };
    let b = m.bytes(data, (len * kind.max(1) as u64) as usize)?;
    Some(match kind {
        1 => b.iter().map(|&c| c as char).collect(),
        2 => char::decode_utf16(b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])))
            .map(|r| r.unwrap_or('\u{fffd}'))
            .collect(),
        4 => b
            .chunks_exact(4)
            .map(|c| {
                char::from_u32(u32::from_le_bytes(c.try_into().unwrap())).unwrap_or('\u{fffd}')
            })
            .collect(),
        _ => return None,
    })
}

/// A code object's file name, (qualified) name and first line.
pub fn code_info(ctx: &Ctx, code: u64) -> (Option<String>, Option<String>, i32) {
    let field = |label: &str| {
        ctx.off(label)
            .and_then(|off| read_str(ctx, ctx.ptr(code + off)))
    };
    let name = field("code.co_qualname").or_else(|| field("code.co_name"));
    let line = ctx
        .off("code.co_firstlineno")
        .and_then(|off| ctx.mem.i32(code + off))
        .unwrap_or(0);
    (field("code.co_filename"), name, line)
}

/// Decode a `_PyStackRef` (3.14+) or a plain pointer; 0 if it is not an object pointer.
#[inline]
pub fn stackref(ctx: &Ctx, bits: u64) -> u64 {
    if ctx.o.stackref {
        if bits & 3 == 3 || bits <= 2 {
            0
        } else {
            bits & !3
        }
    } else {
        bits
    }
}

fn push_ptrs<S: Sink>(ctx: &Ctx, base: u64, n: u64, label: Label, out: &mut S) {
    if n == 0 || n > (1 << 28) {
        return;
    }
    if let Some(b) = ctx.mem.bytes(base, (n * 8) as usize) {
        for c in b.chunks_exact(8) {
            let p = u64::from_le_bytes(c.try_into().unwrap());
            if p != 0 {
                out.add(p, label);
            }
        }
    }
}

/// Names of the `localsplus` slots of a code object (3.11+ `co_localsplusnames`; <= 3.10 varnames + cellvars +
/// freevars), as str addresses.
pub fn local_names(ctx: &Ctx, code: u64, n: u64) -> Vec<u64> {
    let o = &ctx.o;
    let mut names = Vec::new();
    let tuple = |t: u64, names: &mut Vec<u64>| {
        if t == 0 {
            return;
        }
        let len = ctx.mem.i64(t + 16).unwrap_or(0).clamp(0, 1 << 16) as u64;
        for i in 0..len {
            names.push(ctx.ptr(t + ctx.tuple_items + 8 * i));
        }
    };
    if some(o.co_localsplusnames) {
        tuple(ctx.ptr(code + o.co_localsplusnames), &mut names);
    } else {
        for off in [o.co_varnames, o.co_cellvars, o.co_freevars] {
            if some(off) {
                tuple(ctx.ptr(code + off), &mut names);
            }
        }
    }
    names.truncate(n as usize);
    names
}

/// References held by an interpreter frame (3.11+): code, function, globals, builtins, locals, frame object,
/// local variables, cells and the value stack.
pub fn iframe_refs<S: Sink>(ctx: &Ctx, f: u64, out: &mut S) {
    let o = &ctx.o;
    let code = stackref(ctx, ctx.ptr(f + o.if_executable));
    out.add(code, Label::Field("f_code"));
    if some(o.if_funcobj) {
        out.add(
            stackref(ctx, ctx.ptr(f + o.if_funcobj)),
            Label::Field("f_func"),
        );
    }
    let globals = ctx.ptr(f + o.if_globals);
    for (off, name) in [
        (o.if_globals, "f_globals"),
        (o.if_builtins, "f_builtins"),
        (o.if_locals, "f_locals"),
        (o.if_frame_obj, "frame"),
    ] {
        if some(off) {
            let p = ctx.ptr(f + off);
            // a module-level frame's locals are its globals: a real reference, but no owner of them
            let name = if name == "f_locals" && p == globals {
                "f_locals=f_globals"
            } else {
                name
            };
            out.add(p, Label::Field(name));
        }
    }
    let base = f + o.if_localsplus;
    let n = if ctx.at_least(14) {
        let sp = ctx.ptr(f + o.if_stack);
        if sp >= base && sp - base < (1 << 20) {
            (sp - base) / 8
        } else {
            0
        }
    } else {
        let top = ctx.mem.i32(f + o.if_stack).unwrap_or(0);
        if (0..(1 << 17)).contains(&top) {
            top as u64
        } else {
            0
        }
    };
    // at least the code object's own locals, if the stack pointer was not written back
    let nlp = if some(o.co_nlocalsplus) && code != 0 {
        ctx.mem
            .i32(code + o.co_nlocalsplus)
            .filter(|v| (0..(1 << 16)).contains(v))
            .unwrap_or(0) as u64
    } else {
        0
    };
    let n = n.max(nlp);
    if n == 0 {
        return;
    }
    let names = if S::LABELS {
        local_names(ctx, code, nlp)
    } else {
        Vec::new()
    };
    if let Some(b) = ctx.mem.bytes(base, (n * 8) as usize) {
        for (i, c) in b.chunks_exact(8).enumerate() {
            let p = stackref(ctx, u64::from_le_bytes(c.try_into().unwrap()));
            if p != 0 {
                let l = match names.get(i) {
                    Some(&nm) => Label::Local(nm),
                    None => Label::Field("value stack"),
                };
                out.add(p, l);
            }
        }
    }
}

/// Is the frame embedded in a generator still alive (not completed/cleared)?
fn gen_frame_alive(ctx: &Ctx, g: u64) -> bool {
    let st = ctx.mem.u8(g + ctx.o.gi_frame_state).unwrap_or(0) as i8;
    if ctx.at_least(15) { st < 5 } else { st < 1 }
}

/// The label of a dict value whose key is `k`.
#[inline]
fn key_label(ctx: &Ctx, k: u64, attr: bool) -> Label {
    if ctx.mem.u64(k + 8) == Some(ctx.known.str_type) {
        if attr {
            Label::Attr(k)
        } else {
            Label::StrKey(k)
        }
    } else {
        Label::OtherKey(k)
    }
}

/// All references of object `a` whose type is `ti`. Weak references are not included.
pub fn refs<S: Sink>(ctx: &Ctx, a: u64, ti: &TypeInfo, out: &mut S, items: &mut Vec<(u64, u64)>) {
    let o = &ctx.o;
    let m = ctx.mem;
    match ti.kind {
        Kind::List => {
            let n = m.i64(a + 16).unwrap_or(0);
            if n > 0 {
                push_ptrs(ctx, ctx.ptr(a + o.list_items), n as u64, Label::Item, out);
            }
        }
        Kind::Tuple => {
            let n = m.i64(a + 16).unwrap_or(0);
            if n > 0 {
                push_ptrs(ctx, a + ctx.tuple_items, n as u64, Label::Item, out);
            }
        }
        Kind::Dict => {
            items.clear();
            dict_items(ctx, a, items);
            for &(k, v) in items.iter() {
                out.add(k, Label::DictKey);
                out.add(
                    v,
                    if S::LABELS {
                        key_label(ctx, k, false)
                    } else {
                        Label::None
                    },
                );
            }
        }
        Kind::Set => {
            let mask = m.u64(a + o.set_mask).unwrap_or(0);
            let table = ctx.ptr(a + o.set_table);
            if mask < (1 << 32)
                && let Some(b) = m.bytes(table, ((mask + 1) * 16) as usize)
            {
                for e in b.chunks_exact(16) {
                    let k = u64::from_le_bytes(e[..8].try_into().unwrap());
                    if k != 0 && k != ctx.known.set_dummy {
                        out.add(k, Label::Item);
                    }
                }
            }
        }
        Kind::Str
        | Kind::Bytes
        | Kind::Int
        | Kind::Float
        | Kind::Complex
        | Kind::ByteArray
        | Kind::Object => {}
        Kind::Type => type_refs(ctx, a, out, items),
        Kind::Module => {
            let d = ctx.ptr(a + o.md_dict);
            out.add(d, Label::Field("__dict__"));
            out.add(ctx.ptr(a + o.md_name), Label::Field("__name__"));
        }
        Kind::Function => {
            for (i, &f) in o.func_fields.iter().enumerate() {
                out.add(ctx.ptr(a + f), Label::Field(o.func_names[i]));
            }
        }
        Kind::Cell => out.add(ctx.ptr(a + o.cell_ref), Label::Field("cell_contents")),
        Kind::Method => {
            out.add(ctx.ptr(a + o.im_func), Label::Field("__func__"));
            out.add(ctx.ptr(a + o.im_self), Label::Field("__self__"));
        }
        Kind::Code => {
            for (i, &f) in o.code_fields.iter().enumerate() {
                out.add(ctx.ptr(a + f), Label::Field(o.code_names[i]));
            }
        }
        Kind::Frame => frame_refs(ctx, a, out),
        Kind::Gen => {
            for (off, name) in [
                (o.gi_frame, "gi_frame"),
                (o.gi_code, "gi_code"),
                (o.gi_name, "__name__"),
                (o.gi_qualname, "__qualname__"),
            ] {
                if some(off) {
                    out.add(ctx.ptr(a + off), Label::Field(name));
                }
            }
            if some(o.gi_exc_state) {
                if ctx.at_least(11) {
                    out.add(ctx.ptr(a + o.gi_exc_state), Label::Field("exception"));
                } else {
                    push_ptrs(ctx, a + o.gi_exc_state, 3, Label::Field("exception"), out);
                }
            }
            if some(o.gi_iframe) && gen_frame_alive(ctx, a) {
                iframe_refs(ctx, a + o.gi_iframe, out);
            }
        }
        Kind::CFunction => {
            out.add(ctx.ptr(a + 24), Label::Field("__self__"));
            out.add(ctx.ptr(a + 32), Label::Field("__module__"));
        }
        Kind::WeakRef => {
            // wr_object (+16) is weak; the callback (+24) is a real reference
            out.add(ctx.ptr(a + 24), Label::Field("callback"));
        }
        Kind::Other => scan(ctx, a, ti, 0, ti.base_basicsize, out),
    }
    if ti.extra_scan.1 > ti.extra_scan.0 {
        scan(ctx, a, ti, ti.extra_scan.0, ti.extra_scan.1, out);
    }
    if ti.is_heap {
        instance_refs(ctx, a, ti, out, items);
    }
}

/// Words of the fixed part of a C object that point at objects (validated by the caller).
fn scan<S: Sink>(ctx: &Ctx, a: u64, ti: &TypeInfo, from: i64, basicsize: i64, out: &mut S) {
    let start = (from.max(0) as u64).max(if ti.itemsize != 0 { 24 } else { 16 });
    let end = basicsize.clamp(0, 4096) as u64;
    let wl = ti.weaklistoffset;
    let mut off = start;
    while off + 8 <= end {
        if off as i64 != wl {
            out.add(ctx.ptr(a + off), Label::None);
        }
        off += 8;
    }
}

fn type_refs<S: Sink>(ctx: &Ctx, t: u64, out: &mut S, _items: &mut Vec<(u64, u64)>) {
    let o = &ctx.o;
    let d = ctx.ptr(t + ctx.tp_dict);
    out.add(d, Label::Field("__dict__"));
    out.add(ctx.ptr(t + ctx.tp_mro), Label::Field("__mro__"));
    out.add(ctx.ptr(t + ctx.tp_bases), Label::Field("__bases__"));
    out.add(ctx.ptr(t + ctx.tp_base), Label::Field("__base__"));
    let fl = ctx.u64(t + ctx.tp_flags).unwrap_or(0);
    if fl & flags::HEAPTYPE != 0 {
        for (off, name) in [
            (o.ht_name, "__name__"),
            (o.ht_qualname, "__qualname__"),
            (o.ht_slots, "__slots__"),
            (o.ht_module, "module"),
        ] {
            if some(off) {
                out.add(ctx.ptr(t + off), Label::Field(name));
            }
        }
        // the names in the shared keys of its instances' dicts
        let keys = ctx.ptr(t + ctx.ht_cached_keys);
        if keys != 0
            && let Some(ki) = keys_info(ctx, keys)
        {
            for i in 0..ki.nentries.min(ki.size) {
                out.add(
                    ctx.ptr(ki.entries + i * ki.entry_size + ki.key_off),
                    Label::Field("shared keys"),
                );
            }
        }
    } else if ctx.at_least(12) && d == 0 {
        // static builtin type: its dict lives in the interpreter (interp->types, index tp_subclasses - 1)
        if let Some(d) = super::roots::static_type_dict(ctx, t) {
            out.add(d, Label::Field("__dict__"));
        }
    }
}

/// Locals, cells and free variables of a <= 3.10 frame object (`f_localsplus`), named when the sink wants labels.
pub fn frame_object_locals<S: Sink>(ctx: &Ctx, f: u64, code: u64, out: &mut S) {
    let o = &ctx.o;
    let tuple_len = |t: u64| {
        if t == 0 {
            0
        } else {
            ctx.mem.i64(t + 16).unwrap_or(0).clamp(0, 1 << 16) as u64
        }
    };
    let nlocals = ctx
        .mem
        .i32(code + o.co_nlocals)
        .unwrap_or(0)
        .clamp(0, 1 << 16) as u64;
    let n = nlocals
        + tuple_len(ctx.ptr(code + o.co_cellvars))
        + tuple_len(ctx.ptr(code + o.co_freevars));
    let base = f + o.f_localsplus;
    if S::LABELS {
        let names = local_names(ctx, code, n);
        for i in 0..n {
            let p = ctx.ptr(base + 8 * i);
            if p != 0 {
                out.add(
                    p,
                    names
                        .get(i as usize)
                        .map(|&n| Label::Local(n))
                        .unwrap_or(Label::None),
                );
            }
        }
    } else {
        push_ptrs(ctx, base, n, Label::None, out);
    }
}

fn frame_refs<S: Sink>(ctx: &Ctx, f: u64, out: &mut S) {
    let o = &ctx.o;
    out.add(ctx.ptr(f + o.f_back), Label::Field("f_back"));
    if some(o.f_frame) {
        // 3.11+: a frame object; it owns its interpreter frame only once the call has returned
        let iframe = ctx.ptr(f + o.f_frame);
        if some(o.f_frame_data) && iframe == f + o.f_frame_data {
            iframe_refs(ctx, iframe, out);
        }
        return;
    }
    // <= 3.10: f_code, f_builtins, f_globals, f_locals, then locals + cells + frees, then the value stack
    let code = ctx.ptr(f + o.f_code);
    out.add(code, Label::Field("f_code"));
    out.add(ctx.ptr(f + 40), Label::Field("f_builtins"));
    let globals = ctx.ptr(f + 48);
    out.add(globals, Label::Field("f_globals"));
    let locals = ctx.ptr(f + o.f_locals);
    out.add(
        locals,
        Label::Field(if locals == globals {
            "f_locals=f_globals"
        } else {
            "f_locals"
        }),
    );
    frame_object_locals(ctx, f, code, out);
    let vs = ctx.ptr(f + o.f_valuestack);
    let depth = if some(o.f_stackdepth) {
        ctx.mem
            .i32(f + o.f_stackdepth)
            .unwrap_or(0)
            .clamp(0, 1 << 16) as u64
    } else {
        let top = ctx.ptr(f + o.f_stacktop);
        if top >= vs && top - vs < (1 << 19) {
            (top - vs) / 8
        } else {
            0
        }
    };
    push_ptrs(ctx, vs, depth, Label::Field("value stack"), out);
}

/// The values array of a 3.11/3.12 managed-dict instance whose `__dict__` is not materialised (0 if none):
/// 3.11 keeps a pointer at `obj-32`, 3.12 a tagged word at `obj-24` (bit 0 set: values - 1).
pub fn values_array(ctx: &Ctx, a: u64) -> u64 {
    if ctx.at_least(12) {
        let w = ctx.ptr(a.wrapping_sub(24));
        if w & 1 == 1 { w.wrapping_add(1) } else { 0 }
    } else {
        ctx.ptr(a.wrapping_sub(32))
    }
}

/// `__dict__`, inline/split values and `__slots__` of an instance of a heap type.
fn instance_refs<S: Sink>(
    ctx: &Ctx,
    a: u64,
    ti: &TypeInfo,
    out: &mut S,
    items: &mut Vec<(u64, u64)>,
) {
    for (i, &s) in ti.slots.iter().enumerate() {
        out.add(ctx.ptr(a + s), Label::CAttr(ti.slot_names[i]));
    }
    let fl = ti.flags;
    let mut dict = 0;
    if ctx.at_least(11) && fl & flags::MANAGED_DICT != 0 {
        let word = ctx.ptr(a.wrapping_sub(24));
        let keys = ctx.ptr(ti.addr + ctx.ht_cached_keys);
        items.clear();
        if ctx.at_least(13) {
            dict = word;
            if fl & flags::INLINE_VALUES != 0 {
                let values = a + ti.basicsize as u64;
                if ctx.mem.u8(values + 3) == Some(1) && keys != 0 {
                    split_items(ctx, keys, values, true, items);
                }
            }
        } else if ctx.at_least(12) {
            if word & 1 == 1 {
                if keys != 0 {
                    split_items(ctx, keys, word.wrapping_add(1), false, items);
                }
            } else {
                dict = word;
            }
        } else {
            dict = word;
            let values = ctx.ptr(a.wrapping_sub(32));
            if values != 0 && keys != 0 {
                split_items(ctx, keys, values, false, items);
            }
        }
        for &(k, v) in items.iter() {
            out.add(
                v,
                if S::LABELS {
                    key_label(ctx, k, true)
                } else {
                    Label::None
                },
            );
        }
    } else {
        let off = ti.dictoffset;
        if off > 0 {
            dict = ctx.ptr(a + off as u64);
        } else if off < 0 {
            let size = ctx.mem.i64(a + 16).unwrap_or(0).unsigned_abs() as i64;
            let o = ti.basicsize + size * ti.itemsize + off;
            let o = (o + 7) & !7;
            if o > 0 {
                dict = ctx.ptr(a + o as u64);
            }
        }
    }
    if dict != 0 {
        out.add(dict, Label::Field("__dict__"));
    }
}
