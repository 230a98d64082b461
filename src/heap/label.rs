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
                        | "f_code"
                        | "f_func"
                        | "func_globals"
                        | "func_builtins"
                        | "__module__"
                )
        )
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
