//! ELF files of the target (read through `/proc/PID/root`): symbols, sections, build-id and debug files.

use goblin::elf::Elf;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable ELF file: {msg}")]
    Parse { path: PathBuf, msg: String },
}

/// What pymemspy needs from one ELF file.
#[derive(Debug, Default, Clone)]
pub struct ElfInfo {
    pub path: PathBuf,
    /// ET_EXEC (not position independent)
    pub is_exec: bool,
    /// Symbol name -> st_value (unrelocated), from `.dynsym` and `.symtab`.
    pub symbols: HashMap<String, u64>,
    pub has_symtab: bool,
    /// Section name -> (addr, size)
    pub sections: HashMap<String, (u64, u64)>,
    /// vaddr of the first PT_LOAD, rounded down to its alignment.
    pub first_load_vaddr: u64,
    pub build_id: Option<String>,
}

impl ElfInfo {
    pub fn load(path: &Path) -> Result<ElfInfo, ElfError> {
        let data = std::fs::read(path).map_err(|source| ElfError::Io {
            path: path.into(),
            source,
        })?;
        Self::parse(path, &data)
    }

    pub fn parse(path: &Path, data: &[u8]) -> Result<ElfInfo, ElfError> {
        let elf = Elf::parse(data).map_err(|e| ElfError::Parse {
            path: path.into(),
            msg: e.to_string(),
        })?;
        if !elf.is_64 || !elf.little_endian {
            return Err(ElfError::Parse {
                path: path.into(),
                msg: "not a 64-bit little-endian ELF".into(),
            });
        }
        let mut symbols = HashMap::new();
        for sym in elf.dynsyms.iter() {
            if sym.st_value != 0
                && let Some(name) = elf.dynstrtab.get_at(sym.st_name)
            {
                symbols.insert(strip_version(name).to_string(), sym.st_value);
            }
        }
        let has_symtab = !elf.syms.is_empty();
        for sym in elf.syms.iter() {
            if sym.st_value != 0
                && let Some(name) = elf.strtab.get_at(sym.st_name)
            {
                symbols.entry(name.to_string()).or_insert(sym.st_value);
            }
        }
        let mut sections = HashMap::new();
        for sh in &elf.section_headers {
            if let Some(name) = elf.shdr_strtab.get_at(sh.sh_name) {
                sections.insert(name.to_string(), (sh.sh_addr, sh.sh_size));
            }
        }
        let first_load_vaddr = elf
            .program_headers
            .iter()
            .filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD)
            .map(|p| p.p_vaddr & !(p.p_align.max(0x1000) - 1))
            .min()
            .unwrap_or(0);
        let mut build_id = None;
        if let Some(notes) = elf.iter_note_sections(data, Some(".note.gnu.build-id")) {
            for n in notes.flatten() {
                if n.n_type == goblin::elf::note::NT_GNU_BUILD_ID {
                    build_id = Some(n.desc.iter().map(|b| format!("{b:02x}")).collect());
                }
            }
        }
        Ok(ElfInfo {
            path: path.into(),
            is_exec: elf.header.e_type == goblin::elf::header::ET_EXEC,
            symbols,
            has_symtab,
            sections,
            first_load_vaddr,
            build_id,
        })
    }

    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.symbols.get(name).copied()
    }

    /// Merge the `.symtab` of a separate debug file (same build-id, same addresses).
    pub fn merge_debug(&mut self, debug: ElfInfo) {
        for (k, v) in debug.symbols {
            self.symbols.entry(k).or_insert(v);
        }
        self.has_symtab |= debug.has_symtab;
    }
}

fn strip_version(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

/// Where a separate debug file for `build_id` may live, looked up inside the target's root first.
pub fn debug_file_candidates(root: &Path, build_id: &str) -> Vec<PathBuf> {
    if build_id.len() < 3 {
        return vec![];
    }
    let rel = format!(
        "usr/lib/debug/.build-id/{}/{}.debug",
        &build_id[..2],
        &build_id[2..]
    );
    vec![root.join(&rel), Path::new("/").join(&rel)]
}
