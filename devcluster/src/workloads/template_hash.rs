//! The `pod-template-hash`: a short, stable name for one version of a Deployment's pod template.
//!
//! Like the real controller: a 32-bit FNV-1a hash of the template, printed in decimal and each digit
//! mapped onto the alphabet Kubernetes uses for generated names (no vowels, so no accidental words).

use serde_json::Value;

/// Characters of generated name parts (`rand.SafeEncodeString` in Kubernetes).
pub(crate) const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

struct Fnv1a32(u32);

impl Fnv1a32 {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u32::from(*b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }
}

/// Feeds `value` in a canonical form (object keys sorted) so the hash does not depend on key order.
fn write_canonical(hasher: &mut Fnv1a32, value: &Value) {
    match value {
        Value::Null => hasher.write(b"n"),
        Value::Bool(b) => hasher.write(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            hasher.write(b"#");
            hasher.write(n.to_string().as_bytes());
        }
        Value::String(s) => {
            // Length-prefixed so `["ab"]` and `["a","b"]` differ.
            hasher.write(format!("s{}:", s.len()).as_bytes());
            hasher.write(s.as_bytes());
        }
        Value::Array(items) => {
            hasher.write(format!("[{}", items.len()).as_bytes());
            for item in items {
                write_canonical(hasher, item);
            }
            hasher.write(b"]");
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hasher.write(format!("{{{}", keys.len()).as_bytes());
            for key in keys {
                write_canonical(hasher, &Value::String(key.clone()));
                write_canonical(hasher, &map[key]);
            }
            hasher.write(b"}");
        }
    }
}

/// The 32-bit FNV-1a hash of `bytes` (also seeds the simulated IPs and container ids).
pub(crate) fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut hasher = Fnv1a32(FNV_OFFSET);
    hasher.write(bytes);
    hasher.0
}

/// Maps each byte of `s` onto [`NAME_ALPHABET`].
fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(NAME_ALPHABET[usize::from(b) % NAME_ALPHABET.len()]))
        .collect()
}

/// The `pod-template-hash` label value for a pod template (`spec.template` of a Deployment).
pub fn pod_template_hash(template: &Value) -> String {
    let mut hasher = Fnv1a32(FNV_OFFSET);
    write_canonical(&mut hasher, template);
    safe_encode(&hasher.0.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_is_stable_across_key_order_and_changes_with_the_template() {
        let a = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}});
        let reordered = json!({"spec": {"containers": [{"image": "nginx:1", "name": "web"}]}, "metadata": {"labels": {"app": "web"}}});
        let changed = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:2"}]}});
        assert_eq!(pod_template_hash(&a), pod_template_hash(&reordered));
        assert_ne!(pod_template_hash(&a), pod_template_hash(&changed));
    }

    #[test]
    fn hash_is_a_valid_label_value_from_the_safe_alphabet() {
        let hash = pod_template_hash(&json!({"spec": {"containers": []}}));
        assert!(!hash.is_empty() && hash.len() <= 10, "{hash}");
        assert!(hash.bytes().all(|b| NAME_ALPHABET.contains(&b)), "{hash}");
    }

    #[test]
    fn strings_are_not_confused_with_their_concatenation() {
        let split = json!({"args": ["ab", "c"]});
        let joined = json!({"args": ["a", "bc"]});
        assert_ne!(pod_template_hash(&split), pod_template_hash(&joined));
    }
}
