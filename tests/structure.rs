//! The crate's structure, checked from its sources: no import circle between the modules of
//! `src/` (a module that names another through `crate::`, `super::` or `self::` paths depends
//! on it; a circle means neither can be understood or tested without the other). Comments and
//! `#[cfg(test)] mod tests` blocks do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file: `src/broker/mgmt/mod.rs` → `crate::broker::mgmt`.
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = vec!["crate".into()];
    parts.extend(rel.iter().map(|p| p.to_string_lossy().into_owned()));
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// The code of a file without its comments and its `#[cfg(test)] mod tests` block.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `crate::`/`super::`/`self::` paths in `code`, as identifier lists.
fn paths(code: &str) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts = ["crate::", "super::", "self::"]
            .iter()
            .any(|p| bytes[i..].starts_with(p.as_bytes()));
        if starts && (i == 0 || !ident(bytes[i - 1])) {
            let mut parts = Vec::new();
            let mut j = i;
            loop {
                let s = j;
                while j < bytes.len() && ident(bytes[j]) {
                    j += 1;
                }
                if s == j {
                    break;
                }
                parts.push(code[s..j].to_string());
                if code[j..].starts_with("::") {
                    j += 2;
                } else {
                    break;
                }
            }
            out.push(parts);
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn the_modules_of_src_import_no_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| (module_of(&root, f), f.clone()))
        .collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, file) in &modules {
        let is_dir_module = file.ends_with("mod.rs") || file.ends_with("lib.rs");
        let text = std::fs::read_to_string(file).unwrap();
        let deps = edges.entry(module.clone()).or_default();
        for path in paths(&code(&text)) {
            // Resolve `super`/`self` against this module.
            let mut base: Vec<String> = module.clone();
            if !is_dir_module && path[0] != "crate" {
                base.pop(); // a file module's `super` is its directory's module
            }
            let mut rest = path.as_slice();
            if rest[0] == "crate" {
                base = vec!["crate".into()];
                rest = &rest[1..];
            } else if rest[0] == "self" {
                if !is_dir_module {
                    base = module.clone();
                }
                rest = &rest[1..];
            } else {
                let mut first = true;
                while rest.first().is_some_and(|p| p == "super") {
                    if !first {
                        base.pop();
                    }
                    first = false;
                    rest = &rest[1..];
                }
            }
            let full: Vec<String> = base.iter().chain(rest).cloned().collect();
            // The longest prefix that names a module of this crate is the dependency.
            if let Some(dep) = (1..=full.len())
                .rev()
                .map(|k| full[..k].to_vec())
                .find(|m| modules.contains_key(m))
            {
                // A module naming its own ancestors' items goes up, not around.
                if dep != *module && !module.starts_with(&dep) {
                    deps.insert(dep);
                }
            }
        }
    }
    // Tarjan's strongly connected components: any component of two or more is a circle.
    struct State<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<Vec<String>, usize>,
        low: BTreeMap<Vec<String>, usize>,
        stack: Vec<Vec<String>>,
        circles: Vec<Vec<String>>,
    }
    fn visit(s: &mut State, v: &Vec<String>) {
        let n = s.index.len();
        s.index.insert(v.clone(), n);
        s.low.insert(v.clone(), n);
        s.stack.push(v.clone());
        for w in s.edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                let done = w == *v;
                comp.push(w.join("::"));
                if done {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.circles.push(comp);
            }
        }
    }
    let mut state = State {
        edges: &edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        circles: Vec::new(),
    };
    for v in edges.keys() {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    assert!(
        modules.len() > 20 && edges.values().map(BTreeSet::len).sum::<usize>() > 30,
        "the scan found too little to mean anything: {} modules",
        modules.len()
    );
    assert!(
        state.circles.is_empty(),
        "import circles between modules: {:#?}",
        state.circles
    );
}
