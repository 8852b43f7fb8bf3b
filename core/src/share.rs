//! Share links: an env's owner (or an admin) gives people without an account that env, every
//! port of it, until a deadline. The links live on the env ConfigMap, in the
//! [`SHARE_LINKS_ANNOTATION`](crate::labels::SHARE_LINKS_ANNOTATION) as a JSON list, bounded in
//! number and size, so no database is needed and `kubectl` shows (and edits) them.
//!
//! A link's secret is not stored: its token is a signature of the env's UID and the link's id
//! (`ephemerator-kit`'s `signing`), so revoking is removing the id, and a link never opens a
//! later env of the same name (another UID).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Most links one env has at once.
pub const MAX_SHARE_LINKS: usize = 10;
/// Longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 60;
/// Longest creator identity kept, in bytes (identities are shorter; see `validate`).
const MAX_CREATOR_BYTES: usize = 256;

/// One link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShareLink {
    /// Its id: 8 to 32 characters of `A-Z a-z 0-9 - _`, unique on the env.
    pub id: String,
    /// When it stops opening the env.
    pub expires: Timestamp,
    /// What it is for, as its creator put it (may be empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created: Timestamp,
}

impl ShareLink {
    /// Whether it still opens the env at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires
    }
}

/// Whether `id` is a valid link id.
pub fn is_valid_link_id(id: &str) -> bool {
    (8..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks a label: at most [`MAX_LABEL_CHARS`] characters, no control characters.
pub fn check_label(label: &str) -> Result<(), String> {
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(format!("at most {MAX_LABEL_CHARS} characters"));
    }
    if label.chars().any(char::is_control) {
        return Err("no control characters (line breaks, tabs)".into());
    }
    Ok(())
}

/// The gateway's path of a share link: `/__ephemerator/link/ENV/ID.TAG` on the dashboard's
/// host, where TAG is the link's signature (`ephemerator-kit`'s `SigningKeys::tag` of
/// [`link_signed_data`]).
pub fn link_path(env: &str, id: &str, tag: &str) -> String {
    format!("{LINK_PATH_PREFIX}{env}/{id}.{tag}")
}

/// Where share link paths start.
pub const LINK_PATH_PREFIX: &str = "/__ephemerator/link/";
/// What a share link's tag signs for: its env's UID and its id.
pub const LINK_PURPOSE: &str = "share-link";

/// The data a link's tag signs: the env's UID, so that a later env of the same name (another
/// UID) is never opened by it, and the link's id.
pub fn link_signed_data(env_uid: &str, id: &str) -> Vec<u8> {
    [env_uid.as_bytes(), b"\0", id.as_bytes()].concat()
}

/// A share link path read back: `(env, id, tag)`, or `None` if it is not one.
pub fn parse_link_path(path: &str) -> Option<(&str, &str, &str)> {
    let rest = path.strip_prefix(LINK_PATH_PREFIX)?;
    let (env, token) = rest.split_once('/')?;
    let (id, tag) = token.split_once('.')?;
    (crate::names::is_valid_env_name(env) && is_valid_link_id(id) && tag.len() <= 64)
        .then_some((env, id, tag))
}

/// Parses the annotation's value. The whole list is refused if any link is invalid, a id
/// repeats, or there are more than [`MAX_SHARE_LINKS`]: a hand edit gone wrong is said, not
/// half-read.
pub fn parse_share_links(text: &str) -> Result<Vec<ShareLink>, String> {
    let links: Vec<ShareLink> = serde_json::from_str(text)
        .map_err(|error| format!("not a list of share links: {error}"))?;
    if links.len() > MAX_SHARE_LINKS {
        return Err(format!("{} links, at most {MAX_SHARE_LINKS}", links.len()));
    }
    for (index, link) in links.iter().enumerate() {
        let at = |problem: String| format!("[{index}]: {problem}");
        if !is_valid_link_id(&link.id) {
            return Err(at(format!("id {:?}: 8 to 32 of A-Z a-z 0-9 - _", link.id)));
        }
        if links[..index].iter().any(|other| other.id == link.id) {
            return Err(at(format!("id {:?} is used twice", link.id)));
        }
        check_label(&link.label).map_err(|problem| at(format!("label: {problem}")))?;
        if link.created_by.is_empty() || link.created_by.len() > MAX_CREATOR_BYTES {
            return Err(at(format!("createdBy: 1 to {MAX_CREATOR_BYTES} bytes")));
        }
    }
    Ok(links)
}

/// The annotation's value for `links`.
pub fn share_links_json(links: &[ShareLink]) -> String {
    // A list of plain structs always serializes.
    serde_json::to_string(links).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: &str) -> ShareLink {
        ShareLink {
            id: id.into(),
            expires: "2026-12-03T18:00:00Z".parse().unwrap(),
            label: "for QA".into(),
            created_by: "jane.doe".into(),
            created: "2026-12-03T12:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn links_round_trip_through_the_annotation() {
        let links = vec![link("abcdefgh12"), link("ZYXW-_vu")];
        let text = share_links_json(&links);
        assert!(text.contains(r#""createdBy":"jane.doe""#), "{text}");
        assert_eq!(parse_share_links(&text).unwrap(), links);
        assert_eq!(parse_share_links("[]").unwrap(), vec![]);
        let live = link("abcdefgh");
        assert!(live.is_live("2026-12-03T17:59:59Z".parse().unwrap()));
        assert!(!live.is_live("2026-12-03T18:00:00Z".parse().unwrap()));
    }

    #[test]
    fn link_paths_read_back_and_nothing_else_does() {
        let path = link_path("jane-doe", "abcdefgh12", "0a1b2c3d.xyz-_");
        assert_eq!(
            path,
            "/__ephemerator/link/jane-doe/abcdefgh12.0a1b2c3d.xyz-_"
        );
        assert_eq!(
            parse_link_path(&path),
            Some(("jane-doe", "abcdefgh12", "0a1b2c3d.xyz-_"))
        );
        for bad in [
            "/__ephemerator/link/jane-doe/abcdefgh12",
            "/__ephemerator/link/Jane/abcdefgh12.t",
            "/__ephemerator/link/jane/short.t",
            "/__ephemerator/link/jane",
            "/other/jane/abcdefgh12.t",
        ] {
            assert_eq!(parse_link_path(bad), None, "{bad}");
        }
        assert_ne!(
            link_signed_data("uid-1", "id"),
            link_signed_data("uid-2", "id")
        );
    }

    #[test]
    fn a_bad_list_is_refused_whole_and_says_where() {
        let many: Vec<ShareLink> = (0..11).map(|i| link(&format!("link{i:04}"))).collect();
        let cases = [
            ("{}".to_string(), "not a list"),
            (share_links_json(&many), "11 links, at most 10"),
            (share_links_json(&[link("short")]), "[0]: id \"short\""),
            (
                share_links_json(&[link("abcdefgh"), link("abcdefgh")]),
                "[1]: id \"abcdefgh\" is used twice",
            ),
            (
                share_links_json(&[ShareLink {
                    label: "x".repeat(61),
                    ..link("abcdefgh")
                }]),
                "[0]: label: at most 60",
            ),
            (
                share_links_json(&[ShareLink {
                    label: "a\nb".into(),
                    ..link("abcdefgh")
                }]),
                "control characters",
            ),
            (
                share_links_json(&[ShareLink {
                    created_by: String::new(),
                    ..link("abcdefgh")
                }]),
                "[0]: createdBy",
            ),
            (
                r#"[{"id":"abcdefgh","expires":"soon","createdBy":"x","created":"2026-12-03T12:00:00Z"}]"#
                    .to_string(),
                "not a list of share links",
            ),
        ];
        for (text, expected) in cases {
            let problem = parse_share_links(&text).unwrap_err();
            assert!(problem.contains(expected), "{text}: {problem}");
        }
    }
}
