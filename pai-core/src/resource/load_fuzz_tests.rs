//! The loader against hostile and random input: no panic, bounded work, every failure a list
//! of sentences.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::load::load;

/// Runs `load` and checks the shape of its answer.
fn load_checked(text: &str) {
    match load(text) {
        Ok(loaded) => {
            for r in &loaded.resources {
                assert!(!r.name().is_empty());
            }
        }
        Err(e) => {
            assert!(!e.problems.is_empty());
            assert!(e.problems.iter().all(|p| !p.is_empty()));
        }
    }
}

#[test]
fn deep_nesting_and_alias_bombs_are_refused_quickly() {
    let started = Instant::now();
    // 100,000 levels of flow sequences, and 2,000 of block mappings.
    load_checked(&"[".repeat(100_000));
    let mut deep = String::new();
    for i in 0..2_000 {
        deep.push_str(&" ".repeat(i));
        deep.push_str("a:\n");
    }
    load_checked(&deep);
    // A billion laughs: nine levels of aliases, each ten times the one before.
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        let refs = vec![format!("*{prev}"); 10].join(",");
        bomb.push_str(&format!("{next}: &{next} [{refs}]\n"));
    }
    bomb.push_str("kind: Secret\napiVersion: pai.io/v1\nmetadata: {name: x}\ndata: {k: *i}\n");
    let problems = load(&bomb).err().map(|e| e.problems).unwrap_or_default();
    assert!(
        problems.iter().any(|p| p.contains("budget")),
        "{problems:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

/// YAML-ish text built from the pieces resource files are made of, so random cases reach past
/// the parser into field checks and validation.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("apiVersion: pai.io/v1\n".to_owned()),
        Just("kind: ModelProvider\n".to_owned()),
        Just("kind: AccessKey\n".to_owned()),
        Just("kind: Agent\n".to_owned()),
        Just("kind: Secret\n".to_owned()),
        Just("metadata: {name: x}\n".to_owned()),
        Just("spec:\n".to_owned()),
        Just("  provider: openai\n".to_owned()),
        Just("  endpoint: http://127.0.0.1:1\n".to_owned()),
        Just("  allowedModels: [a, b*]\n".to_owned()),
        Just("  restrictions: {allowedCIDRs: [10.0.0.0/8, x]}\n".to_owned()),
        Just("  models: [openai/gpt-4o]\n".to_owned()),
        Just("  maxTokensPerDay: -1\n".to_owned()),
        Just("  maxTokensPerRequest: 1e400\n".to_owned()),
        Just("  rateLimits: {maxCostPerDayUSD: .nan}\n".to_owned()),
        Just("---\n".to_owned()),
        Just("data: {api-key: v}\n".to_owned()),
        Just("&x ".to_owned()),
        Just("*x\n".to_owned()),
        Just("!!binary ".to_owned()),
        "[ -~]{0,20}\n",
        "\\PC{0,8}",
    ];
    proptest::collection::vec(token, 0..24).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        load_checked(&text);
    }

    #[test]
    fn random_documents_never_panic(text in yamlish()) {
        load_checked(&text);
    }
}
