//! Env names from identities: DNS-valid, deterministic and injective.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use ephemerator_core::names::{MAX_ENVS, base_env_name, is_valid_env_name, nth_env_name};
use proptest::prelude::*;

fn identity() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,20}",
        "[A-Za-z0-9._%+-]{1,20}@[a-z0-9.-]{1,15}\\.[a-z]{2,4}",
        any::<String>(),
        "\\PC{1,80}",
        "[a-z0-9-]{50,70}",
        (1usize..400).prop_map(|n| "X".repeat(n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn names_are_valid_and_deterministic(identity in identity(), n in 1u32..=MAX_ENVS) {
        let base = base_env_name(&identity);
        prop_assert!(is_valid_env_name(&base), "{identity:?} -> {base}");
        prop_assert_eq!(&base, &base_env_name(&identity));
        let nth = nth_env_name(&identity, n).unwrap();
        prop_assert!(is_valid_env_name(&nth), "{identity:?} #{n} -> {nth}");
        prop_assert!(!nth.contains("---"));
    }

    #[test]
    fn distinct_identities_get_distinct_names(
        identities in proptest::collection::hash_set(identity(), 2..40),
    ) {
        let mut owners: HashMap<String, (String, u32)> = HashMap::new();
        for identity in &identities {
            for n in [1, 2, 10, MAX_ENVS] {
                let name = nth_env_name(identity, n).unwrap();
                if let Some(previous) = owners.insert(name.clone(), (identity.clone(), n)) {
                    prop_assert!(false, "{name} for both {previous:?} and {:?}", (identity, n));
                }
            }
        }
    }

    /// Near-collisions: an identity and its sanitised or numbered look-alikes.
    #[test]
    fn look_alikes_do_not_collide(identity in identity()) {
        let base = base_env_name(&identity);
        for other in [
            identity.to_lowercase(),
            identity.to_uppercase(),
            base.clone(),
            format!("{base}--2"),
            format!("{identity}--2"),
        ] {
            if other != identity {
                prop_assert_ne!(base_env_name(&other), base.clone(), "{:?} vs {:?}", identity, other);
                prop_assert_ne!(nth_env_name(&other, 1).unwrap(), nth_env_name(&identity, 1).unwrap());
            }
            prop_assert_ne!(base_env_name(&other), nth_env_name(&identity, 2).unwrap());
        }
    }
}
