//! Subscription filters (§2.6): whether an item reaches a subscription, and how its
//! content is rewritten for that subscription.
//!
//! Message filters (`skip-self`, `skip-users`, `require-sub`) decide delivery from the
//! publish `meta` and the subscription's metadata. Content filters (`var-subst`,
//! `build-id`) rewrite the bytes per connection, so they are the one place where a
//! delivery costs a copy — only for subscriptions that asked for them.

use std::collections::BTreeMap;

use bytes::Bytes;
use fjord_protocol::instruction::Filter;

/// Whether a message filter lets the item through (§2.6).
pub fn passes_message_filters(
    filters: &[Filter],
    item_meta: &BTreeMap<String, String>,
    subscription_meta: &BTreeMap<String, String>,
    is_subscribed: &dyn Fn(&str) -> bool,
) -> bool {
    let user = subscription_meta.get("user");
    for filter in filters {
        match filter {
            Filter::SkipSelf => {
                if let (Some(sender), Some(user)) = (item_meta.get("sender"), user) {
                    if sender == user {
                        return false;
                    }
                }
            }
            Filter::SkipUsers => {
                if let (Some(skip), Some(user)) = (item_meta.get("skip_users"), user) {
                    if skip.split(',').any(|u| u.trim() == user) {
                        return false;
                    }
                }
            }
            Filter::RequireSub => {
                if let Some(required) = item_meta.get("require_sub") {
                    if !is_subscribed(required) {
                        return false;
                    }
                }
            }
            _ => {}
        }
    }
    true
}

/// The content-affecting filters of a subscription, in the order given, as names —
/// compared with a format's `content-filters` (§2.6).
pub fn content_filter_names(filters: &[Filter]) -> Vec<&'static str> {
    filters
        .iter()
        .filter_map(|f| match f {
            Filter::BuildId => Some("build-id"),
            Filter::VarSubst => Some("var-subst"),
            _ => None,
        })
        .collect()
}

/// Whether a format's declared `content-filters` allow delivery to a subscription
/// with these filters: absent means any; present must equal the subscription's
/// content-affecting filters exactly (§2.6).
pub fn content_filters_match(declared: &[String], filters: &[Filter]) -> bool {
    declared.is_empty() || {
        let own = content_filter_names(filters);
        declared.len() == own.len() && declared.iter().zip(own).all(|(a, b)| a == b)
    }
}

/// Applies the subscription's content filters to `content`. `positions` names the
/// connection's current id per channel, already advanced past this item (§2.6
/// documents why: django-eventstream assumes it).
pub fn apply_content_filters(
    content: &Bytes,
    filters: &[Filter],
    meta: &BTreeMap<String, String>,
    positions: &BTreeMap<String, String>,
) -> Bytes {
    let mut out = content.clone();
    for filter in filters {
        match filter {
            Filter::VarSubst => out = Bytes::from(substitute(&out, |name| meta.get(name))),
            Filter::BuildId => {
                let Some(format) = meta.get("id_format") else {
                    continue;
                };
                let id = substitute(format.as_bytes(), |channel| positions.get(channel));
                let id = if meta.get("id_encoding").is_some_and(|e| e == "hex") {
                    hex(&id).into_bytes()
                } else {
                    id
                };
                out = Bytes::from(replace_id_marker(&out, &id));
            }
            _ => {}
        }
    }
    out
}

/// Replaces `%(name)s` with `lookup(name)` (empty when unknown) and `%%` with `%`.
fn substitute<'a>(input: &[u8], lookup: impl Fn(&str) -> Option<&'a String>) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.iter().position(|&b| b == b'%') {
        out.extend_from_slice(&rest[..pos]);
        let tail = &rest[pos..];
        if tail.starts_with(b"%%") {
            out.push(b'%');
            rest = &tail[2..];
        } else if let Some(end) = tail
            .starts_with(b"%(")
            .then(|| tail.windows(2).position(|w| w == b")s"))
            .flatten()
        {
            let name = String::from_utf8_lossy(&tail[2..end]);
            if let Some(value) = lookup(&name) {
                out.extend_from_slice(value.as_bytes());
            }
            rest = &tail[end + 2..];
        } else {
            out.push(b'%');
            rest = &tail[1..];
        }
    }
    out.extend_from_slice(rest);
    out
}

/// Replaces every `%I` with `id`.
fn replace_id_marker(input: &[u8], id: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + id.len());
    let mut rest = input;
    while let Some(pos) = rest.windows(2).position(|w| w == b"%I") {
        out.extend_from_slice(&rest[..pos]);
        out.extend_from_slice(id);
        rest = &rest[pos + 2..];
    }
    out.extend_from_slice(rest);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn skip_self_drops_items_sent_by_the_subscriber() {
        let sub = meta(&[("user", "u1")]);
        let f = [Filter::SkipSelf];
        let none = &|_: &str| false;
        assert!(!passes_message_filters(
            &f,
            &meta(&[("sender", "u1")]),
            &sub,
            none
        ));
        assert!(passes_message_filters(
            &f,
            &meta(&[("sender", "u2")]),
            &sub,
            none
        ));
    }

    #[test]
    fn skip_users_drops_listed_users() {
        let sub = meta(&[("user", "u2")]);
        let f = [Filter::SkipUsers];
        let none = &|_: &str| false;
        assert!(!passes_message_filters(
            &f,
            &meta(&[("skip_users", "u1,u2")]),
            &sub,
            none
        ));
        assert!(passes_message_filters(
            &f,
            &meta(&[("skip_users", "u3")]),
            &sub,
            none
        ));
    }

    #[test]
    fn require_sub_needs_the_named_channel() {
        let f = [Filter::RequireSub];
        let item = meta(&[("require_sub", "b")]);
        assert!(!passes_message_filters(
            &f,
            &item,
            &meta(&[]),
            &|c: &str| c == "a"
        ));
        assert!(passes_message_filters(&f, &item, &meta(&[]), &|c: &str| c
            == "a"
            || c == "b"));
    }

    #[test]
    fn var_subst_replaces_names_and_double_percent() {
        let out = apply_content_filters(
            &Bytes::from_static(b"hi %(user)s, 100%% %(missing)s!"),
            &[Filter::VarSubst],
            &meta(&[("user", "u1")]),
            &BTreeMap::new(),
        );
        assert_eq!(&out[..], b"hi u1, 100% !");
    }

    #[test]
    fn build_id_renders_the_id_format_with_channel_positions() {
        let out = apply_content_filters(
            &Bytes::from_static(b"id: %I\n"),
            &[Filter::BuildId],
            &meta(&[("id_format", "a:%(a)s")]),
            &meta(&[("a", "2")]),
        );
        assert_eq!(&out[..], b"id: a:2\n");
    }

    #[test]
    fn build_id_hex_encoding() {
        let out = apply_content_filters(
            &Bytes::from_static(b"%I"),
            &[Filter::BuildId],
            &meta(&[("id_format", "%(a)s"), ("id_encoding", "hex")]),
            &meta(&[("a", "AB")]),
        );
        assert_eq!(&out[..], b"4142");
    }

    #[test]
    fn declared_content_filters_must_match_exactly() {
        assert!(content_filters_match(&[], &[Filter::BuildId]));
        assert!(content_filters_match(
            &["build-id".into()],
            &[Filter::BuildId, Filter::SkipSelf]
        ));
        assert!(!content_filters_match(&["build-id".into()], &[]));
        assert!(!content_filters_match(
            &["var-subst".into()],
            &[Filter::BuildId]
        ));
    }
}
