//! The Rust blocks of README.md and of every file in docs/, compiled (and run, unless marked
//! `no_run`) as doc-tests by `cargo test`, so the documentation cannot drift from the API.
//! The README shows the actix-session and tower-sessions stores as a user writes them, without
//! hidden `cfg` lines (GitHub and crates.io would show them), so its blocks compile with those
//! features on: in `cargo test --all-features`, the README's test command and CI's.

#[cfg(all(doctest, feature = "actix-session", feature = "tower-sessions"))]
#[doc = include_str!("../README.md")]
struct Readme;

#[cfg(doctest)]
#[doc = include_str!("../docs/security.md")]
struct Security;

#[cfg(doctest)]
#[doc = include_str!("../docs/failures.md")]
struct Failures;

#[cfg(doctest)]
#[doc = include_str!("../docs/operations.md")]
struct Operations;

#[cfg(doctest)]
#[doc = include_str!("../docs/performance.md")]
struct Performance;

#[cfg(doctest)]
#[doc = include_str!("../docs/development.md")]
struct Development;

#[cfg(doctest)]
#[doc = include_str!("../docs/axum.md")]
struct Axum;

#[cfg(doctest)]
#[doc = include_str!("../docs/traces.md")]
struct Traces;

#[cfg(doctest)]
#[doc = include_str!("../docs/cost-control.md")]
struct CostControl;

#[cfg(doctest)]
#[doc = include_str!("../docs/memory-store.md")]
struct MemoryStore;

#[cfg(doctest)]
#[doc = include_str!("../docs/session-listing.md")]
struct SessionListing;

#[cfg(doctest)]
#[doc = include_str!("../docs/architecture.md")]
struct Architecture;

#[cfg(test)]
mod tests {
    /// A file added to docs/ without its `include_str!` above would have its Rust blocks
    /// silently left out of the doc-tests.
    #[test]
    fn every_file_in_docs_is_compiled_as_doc_tests() {
        let this_file = include_str!("doc_examples.rs");
        let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/docs");
        let mut names: Vec<String> = std::fs::read_dir(docs)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".md"))
            .collect();
        names.sort();
        assert!(!names.is_empty(), "no docs/*.md found in {docs}");
        for name in names {
            let include = format!("include_str!(\"../docs/{name}\")");
            assert!(
                this_file.contains(&include),
                "docs/{name} is not included in src/doc_examples.rs"
            );
        }
    }
}
