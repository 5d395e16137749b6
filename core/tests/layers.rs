//! The layering of core (SPEC.md §1): each module may import only modules of its own layer or
//! below. This test reads every source file of core/src (test code aside), finds each path it
//! names through `crate::` — following lib.rs's re-exports, so `crate::PageMapper` counts as
//! `object` — and fails on an import of a higher layer that is not one of the listed exceptions,
//! and on an exception that no longer occurs (so the list stays exact, and shrinks as the
//! remaining upward edges are removed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may import its own layer and those below it.
const LAYERS: &[&[&str]] = &[
    &["sync", "pack", "error", "access", "stats"],
    // The frame pool: frames, pins, obtain/take/revert/free, queue, memory, census. No I/O.
    &["frames"],
    // The backing stores: the Accessor trait, file, computed, memory, anonymous, swap.
    &["backing"],
    // The arbiter proper: page states, records, grants and releases on entries.
    &["arbitration"],
    &["object"],
    &["copies"],
    // A client's request over the object's fault path and its copies, and the client handles.
    &["arbitration::request", "arbitration::client"],
    // The front: the pool handle (opens objects).
    &["pages"],
    // Over the front: address spaces, the reverse map's reports, mappings.
    &["regions", "rmap", "mmap"],
    &["lib"],
];

/// Upward imports allowed, as (module or file, e.g. `object::mapper`, path prefix it names, why).
const EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "frames",
        "object::mapper::MapperShared",
        "the owner type the pool stores (a frame's owner is an object's page)",
    ),
    (
        "object",
        "regions::Registration",
        "an object stores the registrations of the regions mapping it (the reverse map's data, as \
         a frame stores its owner) and calls nothing on them",
    ),
];

/// Types named upward only to be stored, as the issue allows the pool its frames' owner type: the
/// pool keeps a frame's owner (an object's page) and reads that page's entry through it; an
/// object keeps the registrations of the regions that map it, for the reverse map. The cycle
/// check leaves these edges out; every other upward edge counts.
const STORED_TYPES: &[&str] = &["object::mapper::MapperShared", "regions::Registration"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The unit of a path (`arbitration::client::Client` -> `arbitration::client`, a unit of its
/// own in [`LAYERS`]; `arbitration::Arbiter` -> `arbitration`).
fn unit_of(path: &str) -> String {
    let mut parts = path.split("::");
    let first = parts.next().unwrap_or_default();
    if let Some(second) = parts.next() {
        let sub = format!("{first}::{second}");
        if layer_of(&sub).is_some() {
            return sub;
        }
    }
    first.to_string()
}

/// lib.rs's `pub use a::b::{X, Y}`: re-exported name -> path (`a::b::X`).
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for stmt in statements(lib, "pub use ") {
        for path in expand(&stmt) {
            let name = path.rsplit("::").next().unwrap().to_string();
            map.insert(name, path);
        }
    }
    map
}

/// The text of every statement starting with `prefix` (up to its `;`), comments removed.
fn statements(text: &str, prefix: &str) -> Vec<String> {
    let code = strip(text);
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find(prefix) {
        let after = &rest[i + prefix.len()..];
        let end = after.find(';').unwrap_or(after.len());
        // `X as Y` keeps X (marked with `@` before the spaces go).
        let stmt = after[..end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        out.push(stmt.replace(" as ", "@").replace(' ', ""));
        rest = &after[end..];
    }
    out
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e` (whitespace removed).
fn expand(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        return vec![tree.split('@').next().unwrap().to_string()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap()];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(p).into_iter().map(move |e| format!("{prefix}{e}")))
        .collect()
}

/// The source without comments and without in-file test modules.
fn strip(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        let code = match t.find("//") {
            Some(i) => &t[..i],
            None => t,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Every `crate::` path a file names: (first module, full path).
fn imports(text: &str, reexports: &BTreeMap<String, String>) -> BTreeSet<String> {
    let code = strip(text);
    let mut paths = BTreeSet::new();
    for stmt in statements(&code, "use crate::") {
        paths.extend(expand(&stmt));
    }
    // Paths named in code, outside `use` (`crate::copies::break_cow(..)`).
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let end = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(after.len());
        let path = after[..end].trim_end_matches(':');
        if !path.is_empty() {
            paths.insert(path.to_string());
        }
        rest = &after[end..];
    }
    paths
        .into_iter()
        .map(|p| {
            let first = p.split("::").next().unwrap();
            match reexports.get(first) {
                Some(full) => format!("{full}{}", &p[first.len()..]),
                None => p,
            }
        })
        .collect()
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().unwrap() != "tests.rs"
        {
            out.push(path);
        }
    }
}

/// The unit a file belongs to: its module under src (`frames/reclaim.rs` -> `frames`,
/// `pages.rs` -> `pages`), or its submodule where that is a unit of its own
/// (`arbitration/client.rs` -> `arbitration::client`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let path: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    unit_of(&path.join("::"))
}

/// Every upward import under `src`: (file, module, path), and the exceptions that matched.
fn scan(src: &Path) -> (Vec<String>, BTreeSet<usize>) {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let re = reexports(&lib);
    let mut list = Vec::new();
    files(src, &mut list);
    list.sort();
    let mut bad = Vec::new();
    let mut used = BTreeSet::new();
    for file in list {
        let module = module_of(src, &file);
        let Some(mine) = layer_of(&module) else {
            bad.push(format!("{}: module {module} has no layer", file.display()));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for path in imports(&text, &re) {
            let target = unit_of(&path);
            let Some(theirs) = layer_of(&target) else {
                continue; // not a module (a macro, `crate::` alone)
            };
            if theirs <= mine {
                continue;
            }
            let rel = file.strip_prefix(src).unwrap().with_extension("");
            let file_unit = rel.to_string_lossy().replace('/', "::");
            match EXCEPTIONS
                .iter()
                .position(|(m, p, _)| (*m == module || *m == file_unit) && path.starts_with(p))
            {
                Some(i) => {
                    used.insert(i);
                }
                None => bad.push(format!(
                    "{}: {module} (layer {mine}) imports crate::{path} (layer {theirs})",
                    file.display()
                )),
            }
        }
    }
    (bad, used)
}

/// The unit -> unit import graph of the files under `src` (test code aside).
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let re = reexports(&lib);
    let mut list = Vec::new();
    files(src, &mut list);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in list {
        let from = module_of(src, &file);
        let text = std::fs::read_to_string(&file).unwrap();
        for path in imports(&text, &re) {
            let to = unit_of(&path);
            let stored = STORED_TYPES.iter().any(|t| path == *t) && layer_of(&to) > layer_of(&from);
            if to != from && layer_of(&to).is_some() && !stored {
                g.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    g
}

/// The groups of units that import each other (strongly connected, more than one unit).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<BTreeSet<String>> {
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(u) = stack.pop() {
            for v in g.get(&u).into_iter().flatten() {
                if seen.insert(v.clone()) {
                    stack.push(v.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> = g.keys().map(|u| (u, reach(u))).collect();
    let mut out = BTreeSet::new();
    for (u, r) in &reaches {
        let group: BTreeSet<String> = r
            .iter()
            .filter(|v| reaches.get(v).is_some_and(|rv| rv.contains(*u)))
            .cloned()
            .chain([(*u).clone()])
            .collect();
        if group.len() > 1 {
            out.insert(group);
        }
    }
    out
}

#[test]
fn no_import_cycle() {
    // The last one, object <-> copies, went when the fault path began calling the chain's
    // resolution and break through `object::layer::Chain` (which copies implements) instead of
    // naming copies.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = cycles(&graph(&src));
    assert!(
        found.is_empty(),
        "import cycles between core's units: {found:?}"
    );
}

#[test]
fn no_module_imports_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (bad, used) = scan(&src);
    assert!(bad.is_empty(), "upward imports:\n{}", bad.join("\n"));
    let stale: Vec<_> = EXCEPTIONS
        .iter()
        .enumerate()
        .filter(|(i, _)| !used.contains(i))
        .map(|(_, e)| format!("{e:?}"))
        .collect();
    assert!(
        stale.is_empty(),
        "exceptions that no longer occur (remove them):\n{}",
        stale.join("\n")
    );
}

#[test]
fn the_scan_catches_a_planted_violation() {
    // A copy of a small tree in which the pool calls up into arbitration (what reclaim did
    // before the object layer took over its write-back and asking) and names an accessor through
    // a re-export: both must be caught, and the owner-type exception must not hide them.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(
        src.join("lib.rs"),
        "mod frames;\nmod arbitration;\npub use backing::accessor::{Accessor, MemoryAccessor};\n",
    )
    .unwrap();
    std::fs::create_dir(src.join("frames")).unwrap();
    std::fs::write(
        src.join("frames/reclaim.rs"),
        "use crate::object::mapper::MapperShared;\n\
         // crate::copies::break_cow in a comment is not an import\n\
         fn ask(m: &MapperShared) {\n    crate::arbitration::PageError::of(x);\n}\n\
         use crate::{sync::lock, Accessor};\n\
         #[cfg(test)]\nmod tests { use crate::copies::Layer; }\n",
    )
    .unwrap();
    // And the arbiter proper naming the client handles above it (a unit of its own).
    std::fs::create_dir(src.join("arbitration")).unwrap();
    std::fs::write(
        src.join("arbitration/arbiter.rs"),
        "use crate::arbitration::client::Client;\nuse crate::arbitration::state::PageState;\n",
    )
    .unwrap();
    let (bad, _) = scan(src);
    assert_eq!(bad.len(), 3, "{bad:#?}");
    assert!(
        bad[0].contains("crate::arbitration::client::Client"),
        "{bad:#?}"
    );
    assert!(
        bad[1].contains("crate::arbitration::PageError::of"),
        "{bad:#?}"
    );
    assert!(
        bad[2].contains("crate::backing::accessor::Accessor"),
        "{bad:#?}"
    );
}

#[test]
fn use_trees_expand() {
    assert_eq!(
        expand("a::{b,c::{d,e},F}"),
        vec!["a::b", "a::c::d", "a::c::e", "a::F"]
    );
    assert_eq!(expand("a::b::C"), vec!["a::b::C"]);
    assert_eq!(
        statements("use crate::{basket as b, c};", "use crate::"),
        vec!["{basket@b,c}"]
    );
}

#[test]
fn the_cycle_check_finds_a_planted_cycle() {
    let edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")];
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (u, v) in edges {
        g.entry(u.to_string()).or_default().insert(v.to_string());
    }
    let expected: BTreeSet<BTreeSet<String>> =
        [["a", "b", "c"].iter().map(|s| s.to_string()).collect()].into();
    assert_eq!(cycles(&g), expected);
}
