//! How one object refers to another: edge labels of the reference graph, and the `Sink` decoders write to.

/// The label of a reference, rendered as `.name`, `['key']`, `[*]`, `__dict__`, a local variable's name, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    /// Found by scanning a C object's fields: the field is unknown.
    None,
    /// `ob_type`
    Class,
    /// an element of a list, tuple or set: `[*]`
    Item,
    /// the key object of a dict entry
    DictKey,
    /// value of a dict entry with a str key (the str's address): `['key']`
    StrKey(u64),
    /// value of a dict entry with any other key (its address): `[…]`, or `[1234]` in reference chains
    OtherKey(u64),
    /// attribute (module global, class or instance attribute) named by a str object: `.name`
    Attr(u64),
    /// attribute named by a C string (a `__slots__` member): `.name`
    CAttr(u64),
    /// a named C field such as `__dict__`, `f_globals`, `co_consts`
    Field(&'static str),
    /// a frame's local variable, named by a str object
    Local(u64),
    /// a module in `sys.modules`, named by a str object
    Module(u64),
    /// a label from the graph's own string table (roots, threads, frames)
    Text(u32),
}

impl Label {
    /// References that give context rather than ownership: an object's class, a function's or frame's globals and
    /// builtins. The dominator tree follows them only to objects nothing else reaches, so that a module's globals
    /// stay under the module even when functions defined there are used elsewhere.
    pub fn is_context(&self) -> bool {
        matches!(
            self,
            Label::Class
                | Label::Field(
                    "f_globals"
                        | "f_builtins"
                        | "f_locals=f_globals"
                        | "f_code"
                        | "f_func"
                        | "func_globals"
                        | "func_builtins"
                        | "__module__"
                )
        )
    }
}

impl Label {
    /// The name this label shows, by address and kind as `Graph::name` takes them (0: a str object, 1: a C string,
    /// 2: a dict key of another type).
    pub fn name_ref(&self) -> Option<(u8, u64)> {
        match *self {
            Label::StrKey(a) | Label::Attr(a) | Label::Local(a) | Label::Module(a) => Some((0, a)),
            Label::CAttr(a) => Some((1, a)),
            Label::OtherKey(a) if a != 0 => Some((2, a)),
            _ => None,
        }
    }

    /// References that hold no reference count: an interpreter frame (3.11+) only borrows its globals and builtins.
    pub fn is_borrowed(&self, minor: u8) -> bool {
        minor >= 11 && matches!(self, Label::Field("f_globals" | "f_builtins"))
    }
}

/// A `Label` in 8 bytes, for storing one per edge of a graph with tens of millions of edges.
/// Bits 60..64 hold the variant, the rest the payload (an address below 2^48, or for `Field` the static str's
/// address and length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Packed(u64);

const ADDR: u64 = (1 << 48) - 1;

impl Default for Packed {
    fn default() -> Packed {
        Packed::pack(Label::None)
    }
}

impl Packed {
    /// No label at all (not a `Label`; `unpack` gives `Label::None`).
    pub const ABSENT: Packed = Packed(u64::MAX);

    #[inline]
    pub fn is_absent(self) -> bool {
        self == Packed::ABSENT
    }

    /// Whether this is a `Label::Field`.
    #[inline]
    pub fn is_field(self) -> bool {
        self.0 >> 60 == 8
    }

    /// The key's address of a `Label::StrKey`.
    #[inline]
    pub fn str_key(self) -> Option<u64> {
        (self.0 >> 60 == 4).then_some(self.0 & ADDR)
    }

    /// Whether this is a `Label::OtherKey`.
    #[inline]
    pub fn is_other_key(self) -> bool {
        self.0 >> 60 == 5
    }

    /// Whether the label names something by address (`Label::name_ref`), without unpacking it.
    #[inline]
    pub fn has_name(self) -> bool {
        matches!(self.0 >> 60, 4..=7 | 9 | 10)
    }

    /// `Label::is_context` without unpacking labels that cannot be context.
    #[inline]
    pub fn is_context(self) -> bool {
        match self.0 >> 60 {
            1 => true,
            8 => self.unpack().is_context(),
            _ => false,
        }
    }

    #[inline]
    pub fn pack(l: Label) -> Packed {
        let (tag, payload) = match l {
            Label::None => (0, 0),
            Label::Class => (1, 0),
            Label::Item => (2, 0),
            Label::DictKey => (3, 0),
            Label::StrKey(a) => (4, a & ADDR),
            Label::OtherKey(a) => (5, a & ADDR),
            Label::Attr(a) => (6, a & ADDR),
            Label::CAttr(a) => (7, a & ADDR),
            Label::Field(f) => {
                debug_assert!((f.as_ptr() as u64) <= ADDR && f.len() < 4096);
                (
                    8,
                    (f.as_ptr() as u64 & ADDR) | ((f.len() as u64 & 0xfff) << 48),
                )
            }
            Label::Local(a) => (9, a & ADDR),
            Label::Module(a) => (10, a & ADDR),
            Label::Text(i) => (11, i as u64),
        };
        Packed((tag << 60) | payload)
    }

    #[inline]
    pub fn unpack(self) -> Label {
        let p = self.0 & ((1 << 60) - 1);
        match self.0 >> 60 {
            1 => Label::Class,
            2 => Label::Item,
            3 => Label::DictKey,
            4 => Label::StrKey(p),
            5 => Label::OtherKey(p),
            6 => Label::Attr(p),
            7 => Label::CAttr(p),
            8 => {
                let ptr = (p & ADDR) as *const u8;
                let len = (p >> 48) as usize;
                // SAFETY: packed from a `&'static str` of this very process (see `pack`): the pointer and length
                // describe that string, which lives for the whole program.
                Label::Field(unsafe {
                    std::str::from_utf8_unchecked(std::slice::from_raw_parts(ptr, len))
                })
            }
            9 => Label::Local(p),
            10 => Label::Module(p),
            11 => Label::Text(p as u32),
            _ => Label::None,
        }
    }
}

/// Receiver of the references a decoder finds.
pub trait Sink {
    /// Whether this sink wants labels (the census does not, and the decoders skip work that only labels need).
    const LABELS: bool;
    fn add(&mut self, p: u64, label: Label);
}

impl Sink for Vec<u64> {
    const LABELS: bool = false;
    #[inline]
    fn add(&mut self, p: u64, _label: Label) {
        if p != 0 {
            self.push(p);
        }
    }
}

impl Sink for Vec<(u64, Label)> {
    const LABELS: bool = true;
    #[inline]
    fn add(&mut self, p: u64, label: Label) {
        if p != 0 {
            self.push((p, label));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trips() {
        for l in [
            Label::None,
            Label::Class,
            Label::Item,
            Label::DictKey,
            Label::StrKey(0x7f00_1234_5678),
            Label::OtherKey(8),
            Label::Attr(0x5555_0000_0010),
            Label::CAttr(0x4000_0003),
            Label::Field("__dict__"),
            Label::Field("value stack"),
            Label::Local(0x10),
            Label::Module(0x7fff_ffff_fff8),
            Label::Text(123456),
        ] {
            assert_eq!(Packed::pack(l).unpack(), l);
        }
        assert!(
            Packed::pack(Label::Field("f_globals"))
                .unpack()
                .is_context()
        );
    }
}
