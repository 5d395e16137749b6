//! Every core module takes its synchronisation primitives from the facade (`sync/mod.rs`), so loom and
//! shuttle see every atomic, lock, condvar and thread. This test fails if any other file of
//! core/src names std's (or parking_lot's) sync primitives directly.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "std::sync::atomic",
    "std::sync::Arc",
    "std::sync::Mutex",
    "std::sync::Condvar",
    "std::sync::RwLock",
    "std::sync::{",
    "std::thread",
    "std::cell::UnsafeCell",
    "std::hint::spin_loop",
    "parking_lot",
    "core::sync::atomic",
];

fn scan(dir: &Path, hits: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            scan(&path, hits);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs")
            || path.file_name().unwrap() == "sync.rs"
            || path.ends_with("sync/mod.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            // Doc comments are the user's side: their examples are compiled as the user's own
            // crates, where std's types are what a user has.
            let t = line.trim_start();
            if t.starts_with("///") || t.starts_with("//!") {
                continue;
            }
            for pat in FORBIDDEN {
                if line.contains(pat) {
                    hits.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                }
            }
        }
    }
}

#[test]
fn only_the_facade_names_sync_primitives() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut hits = Vec::new();
    scan(&src, &mut hits);
    assert!(
        hits.is_empty(),
        "sync primitives named outside sync/mod.rs:\n{}",
        hits.join("\n")
    );
}

#[test]
fn the_scan_sees_a_violation() {
    // The pattern list must catch what it is meant to: run it over a file that names std's Mutex.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.rs"),
        "/// use std::sync::Mutex; (a doc example: the user's code)\nuse std::sync::Mutex;\n",
    )
    .unwrap();
    let mut hits = Vec::new();
    scan(dir.path(), &mut hits);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(hits[0].contains(":2:"), "{hits:?}");
}
