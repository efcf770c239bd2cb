//! The project's copies of the output contract (`docs/contract/`, the
//! schema in `tests/contract/`) stay in step with the shared contract, when
//! it is beside the checkout (`../shared/contract/`, as on the developers'
//! machines and in CI). Code comments cite the contract's rules by number;
//! `docs/contract/` is where a reader finds them.

use std::path::Path;

#[test]
fn copies_match_the_shared_contract() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/contract");
    let copies = [
        ("README.md", root.join("docs/contract/README.md")),
        ("DIAGNOSES.md", root.join("docs/contract/DIAGNOSES.md")),
        (
            "summary.schema.json",
            root.join("tests/contract/summary.schema.json"),
        ),
    ];
    for (name, copy) in &copies {
        let ours = std::fs::read(copy).expect("the project's copy");
        assert!(!ours.is_empty(), "{} is empty", copy.display());
        let Ok(theirs) = std::fs::read(shared.join(name)) else {
            eprintln!("no shared contract beside the checkout: {name} not compared");
            continue;
        };
        assert!(
            ours == theirs,
            "{} differs from ../shared/contract/{name}: copy it over",
            copy.display()
        );
    }
}
