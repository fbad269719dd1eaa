use super::*;
use crate::routes_file::parse_routes;

fn table(text: &str) -> RouteTable {
    parse_routes(text).unwrap()
}

/// Port of the first origin target of the selected route, to tell routes apart.
fn port(table: &RouteTable, host: Option<&str>, path: &str, tls: bool, ws: bool) -> Option<u16> {
    let route = table.select(host, path, tls, ws)?;
    match &route.target {
        RouteTarget::Origin(targets) => Some(targets[0].port),
        RouteTarget::Test => Some(0),
        RouteTarget::Direct(_) | RouteTarget::Files(_) => None,
    }
}

fn http(table: &RouteTable, host: &str, path: &str) -> Option<u16> {
    port(table, Some(host), path, false, false)
}

#[test]
fn item_49_path_beg_rule_and_catch_all() {
    let t = table("*,path_beg=/api o1:8001\n* o0:8000\n");
    assert_eq!(http(&t, "localhost", "/api/x"), Some(8001));
    assert_eq!(http(&t, "localhost", "/x"), Some(8000));
}

#[test]
fn exact_host_beats_any() {
    let t = table("* any:1\nexample.com exact:2\n");
    assert_eq!(http(&t, "example.com", "/"), Some(2));
    assert_eq!(http(&t, "other.com", "/"), Some(1));
}

#[test]
fn exact_host_beats_any_even_with_longer_path_beg_on_any() {
    let t = table("*,path_beg=/very/long/ any:1\nexample.com exact:2\n");
    assert_eq!(http(&t, "example.com", "/very/long/x"), Some(2));
}

#[test]
fn host_is_compared_without_port_and_case_insensitively() {
    let t = table("* any:1\nExample.COM exact:2\n");
    assert_eq!(http(&t, "example.com:7999", "/"), Some(2));
    assert_eq!(http(&t, "EXAMPLE.com", "/"), Some(2));
    assert_eq!(http(&t, " example.com:443 ", "/"), Some(2));
}

#[test]
fn ipv6_host_header_matches_bracketed_or_bare_rule() {
    let t = table("* any:1\n[::1] v6:2\n");
    assert_eq!(http(&t, "[::1]:7999", "/"), Some(2));
    assert_eq!(http(&t, "[::1]", "/"), Some(2));
    assert_eq!(http(&t, "[::2]:7999", "/"), Some(1));
}

#[test]
fn host_with_own_rules_never_falls_back_to_any() {
    // Pushpin's DomainMap picks the host's rule list first, then matches in it.
    let t = table("* any:1\nexample.com,path_beg=/v2/ exact:2\n");
    assert_eq!(http(&t, "example.com", "/v2/x"), Some(2));
    assert_eq!(http(&t, "example.com", "/other"), None);
    assert_eq!(http(&t, "other.com", "/other"), Some(1));
}

#[test]
fn missing_or_empty_host_uses_any_rules() {
    let t = table("* any:1\nexample.com exact:2\n");
    assert_eq!(port(&t, None, "/", false, false), Some(1));
    assert_eq!(port(&t, Some(""), "/", false, false), Some(1));
}

#[test]
fn no_matching_rule_selects_nothing() {
    let t = table("*,path_beg=/api a:1\n");
    assert_eq!(http(&t, "h", "/other"), None);
    assert!(RouteTable::new()
        .select(Some("h"), "/", false, false)
        .is_none());
}

#[test]
fn proto_beats_longer_path_beg() {
    let t = table("*,path_beg=/chat/room/ long:1\n*,proto=ws proto:2\n");
    assert_eq!(port(&t, Some("h"), "/chat/room/1", false, true), Some(2));
    // for plain HTTP the ws rule does not match at all
    assert_eq!(port(&t, Some("h"), "/chat/room/1", false, false), Some(1));
}

#[test]
fn proto_http_and_ws_match_only_their_protocol() {
    let t = table("*,proto=http h:1\n*,proto=ws w:2\n");
    assert_eq!(port(&t, Some("h"), "/", false, false), Some(1));
    assert_eq!(port(&t, Some("h"), "/", false, true), Some(2));
}

#[test]
fn longer_path_beg_wins() {
    let t = table("*,path_beg=/a a:1\n*,path_beg=/a/b/ ab:2\n* root:3\n");
    assert_eq!(http(&t, "h", "/a/b/c"), Some(2));
    assert_eq!(http(&t, "h", "/a/x"), Some(1));
    assert_eq!(http(&t, "h", "/z"), Some(3));
}

#[test]
fn path_beg_is_a_plain_prefix_and_query_is_ignored() {
    let t = table("*,path_beg=/api a:1\n* root:2\n");
    assert_eq!(http(&t, "h", "/apiary"), Some(1));
    assert_eq!(http(&t, "h", "/x?p=/api"), Some(2));
    assert_eq!(http(&t, "h", "/api?x=1"), Some(1));
}

#[test]
fn ssl_breaks_tie_between_equal_paths() {
    let t = table("*,path_beg=/p plain:1\n*,path_beg=/p,ssl=yes tls:2\n");
    assert_eq!(port(&t, Some("h"), "/p/x", true, false), Some(2));
    assert_eq!(port(&t, Some("h"), "/p/x", false, false), Some(1));
}

#[test]
fn ssl_condition_must_match_the_connection() {
    let t = table("*,ssl=no plain:1\n*,ssl=yes tls:2\n");
    assert_eq!(port(&t, Some("h"), "/", false, false), Some(1));
    assert_eq!(port(&t, Some("h"), "/", true, false), Some(2));
}

#[test]
fn longer_path_beg_beats_ssl_whatever_the_line_order() {
    let forward = table("*,path_beg=/api a:1\n*,ssl=yes s:2\n");
    let backward = table("*,ssl=yes s:2\n*,path_beg=/api a:1\n");
    for t in [&forward, &backward] {
        assert_eq!(port(t, Some("h"), "/api/x", true, false), Some(1));
        assert_eq!(port(t, Some("h"), "/x", true, false), Some(2));
    }
}

#[test]
fn push_skips_duplicate_condition_first_wins() {
    let mut t = RouteTable::new();
    let first = Route::from_origin_url(Some("/api/"), "http://first:1").unwrap();
    let second = Route::from_origin_url(Some("/api/"), "http://second:2").unwrap();
    t.push(first).unwrap();
    let err = t.push(second).unwrap_err();
    assert_eq!(err.id, "*,*,*,/api/");
    assert_eq!(t.len(), 1);
    assert_eq!(http(&t, "h", "/api/x"), Some(1));
}

#[test]
fn same_condition_on_different_hosts_is_not_a_duplicate() {
    let t = table("a.com a:1\nb.com b:2\n* any:3\n");
    assert_eq!(t.len(), 3);
    assert!(t.warnings().is_empty());
}

#[test]
fn ssl_yes_and_ssl_no_are_different_conditions() {
    let t = table("*,ssl=yes a:1\n*,ssl=no b:2\n*,proto=ws c:3\n*,proto=http d:4\n");
    assert_eq!(t.len(), 4);
}

#[test]
fn derived_ids_follow_pushpin_format() {
    let t =
        table("* a:1\nexample.com,proto=ws,ssl=yes,path_beg=/chat/ b:2\n*,ssl=no,proto=http c:3\n");
    let ids: Vec<&str> = t.routes().iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        ["*,*,*,*", "example.com,ws,ssl,/chat/", "*,http,no-ssl,*"]
    );
    assert!(t.routes().iter().all(|r| !r.explicit_id));
}

#[test]
fn by_id_finds_explicit_and_derived_ids() {
    let t = table("*,id=api,path_beg=/api a:1\n* b:2\n");
    assert_eq!(t.by_id("api").map(|r| r.explicit_id), Some(true));
    assert!(t.by_id("*,*,*,*").is_some());
    assert!(t.by_id("nope").is_none());
}

#[test]
fn shared_id_selects_nothing() {
    let t = table("*,id=x,path_beg=/a a:1\n*,id=x,path_beg=/b b:2\n");
    assert_eq!(t.len(), 2);
    assert!(t.by_id("x").is_none());
    assert_eq!(http(&t, "h", "/b"), Some(2));
}

#[test]
fn id_only_route_is_reached_by_id_not_by_host() {
    let t = table("id=internal hidden:1\n");
    assert_eq!(t.routes()[0].condition.host, HostMatch::IdOnly);
    assert!(t.select(Some("h"), "/", false, false).is_none());
    assert!(t.by_id("internal").is_some());
}

fn rewrite_with(line: &str) -> Route {
    table(line).routes()[0].clone()
}

#[test]
fn item_35_replace_beg_swaps_the_matched_prefix() {
    let r = rewrite_with("*,path_beg=/s,replace_beg=/x/y o:80");
    assert_eq!(r.rewrite_path("/s"), "/x/y");
    assert_eq!(r.rewrite_path("/s/t"), "/x/y/t");
    assert_eq!(r.rewrite_path("/s/t?a=/s"), "/x/y/t?a=/s");
}

#[test]
fn sample_v2_rule_rewrites_to_root() {
    let r = rewrite_with("api.example.com,path_beg=/v2/,replace_beg=/ localhost:8001");
    assert_eq!(r.rewrite_path("/v2/x"), "/x");
    assert_eq!(r.rewrite_path("/v2/"), "/");
}

#[test]
fn path_rem_cuts_bytes_from_the_path_only() {
    let r = rewrite_with("*,path_beg=/api,path_rem=4 o:80");
    assert_eq!(r.rewrite_path("/api/items?q=1"), "/items?q=1");
    assert_eq!(r.rewrite_path("/api"), "/");
    assert_eq!(r.rewrite_path("/api?q=1"), "/?q=1");
}

#[test]
fn path_rem_longer_than_path_leaves_root() {
    let r = rewrite_with("*,path_rem=50 o:80");
    assert_eq!(r.rewrite_path("/short"), "/");
}

#[test]
fn replace_beg_overrides_path_rem_in_any_order() {
    for line in [
        "*,path_rem=1,path_beg=/old/,replace_beg=/new/ o:80",
        "*,replace_beg=/new/,path_beg=/old/,path_rem=1 o:80",
    ] {
        assert_eq!(rewrite_with(line).rewrite_path("/old/a"), "/new/a");
    }
}

#[test]
fn replace_beg_without_path_beg_prepends() {
    let r = rewrite_with("*,replace_beg=/base o:80");
    assert_eq!(r.rewrite_path("/x"), "/base/x");
}

#[test]
fn no_rewrite_keeps_path_and_query() {
    let r = rewrite_with("* o:80");
    assert!(r.rewrite.is_identity());
    assert_eq!(r.rewrite_path("/a/b?c=d"), "/a/b?c=d");
}

#[test]
fn from_origin_url_http_with_path() {
    let r = Route::from_origin_url(Some("/api/"), "http://127.0.0.1:8080").unwrap();
    assert_eq!(r.condition.host, HostMatch::Any);
    assert_eq!(r.condition.path_beg.as_deref(), Some("/api/"));
    assert_eq!(r.condition.proto, None);
    assert_eq!(r.condition.ssl, None);
    let RouteTarget::Origin(targets) = &r.target else {
        panic!("not an origin route")
    };
    assert_eq!(targets.len(), 1);
    assert_eq!(
        (targets[0].host.as_str(), targets[0].port),
        ("127.0.0.1", 8080)
    );
    assert!(!targets[0].ssl);
    assert_eq!(r.id, "*,*,*,/api/");
}

#[test]
fn from_origin_url_default_ports_and_tls() {
    let r = Route::from_origin_url(None, "https://origin.example/").unwrap();
    assert_eq!(r.condition.path_beg, None);
    let RouteTarget::Origin(t) = &r.target else {
        panic!()
    };
    assert_eq!(
        (t[0].host.as_str(), t[0].port, t[0].ssl),
        ("origin.example", 443, true)
    );
    let r = Route::from_origin_url(Some("/"), "HTTP://origin").unwrap();
    assert_eq!(r.condition.path_beg, None);
    let RouteTarget::Origin(t) = &r.target else {
        panic!()
    };
    assert_eq!((t[0].port, t[0].ssl), (80, false));
}

#[test]
fn from_origin_url_ipv6() {
    let r = Route::from_origin_url(None, "http://[::1]:9000").unwrap();
    let RouteTarget::Origin(t) = &r.target else {
        panic!()
    };
    assert_eq!((t[0].host.as_str(), t[0].port), ("::1", 9000));
    assert_eq!(t[0].authority(), "[::1]:9000");
}

#[test]
fn from_origin_url_rejects_other_schemes_clearly() {
    let err = Route::from_origin_url(None, "ws://127.0.0.1:8080").unwrap_err();
    assert!(matches!(err, OriginUrlError::Scheme { ref scheme, .. } if scheme == "ws"));
    assert_eq!(
        err.to_string(),
        "origin `ws://127.0.0.1:8080` has scheme `ws`; only http and https are supported"
    );
    let err = Route::from_origin_url(None, "zhttp/tcp://127.0.0.1:5555").unwrap_err();
    assert!(matches!(err, OriginUrlError::Scheme { .. }));
}

#[test]
fn from_origin_url_rejects_malformed_urls() {
    let cases = [
        ("127.0.0.1:8080", "not a URL"),
        ("http://", "no host"),
        ("http://:80", "no host"),
        ("http://h:0", "invalid port"),
        ("http://h:99999", "invalid port"),
        ("http://h:+80", "invalid port"),
        ("http://h:80/base", "no user info, path"),
        ("http://u@h:80", "no user info"),
        ("http://h?x=1", "query"),
    ];
    for (url, needle) in cases {
        let err = Route::from_origin_url(None, url).unwrap_err().to_string();
        assert!(err.contains(needle), "{url}: {err}");
    }
}

#[test]
fn from_origin_url_rejects_bad_paths() {
    let err = Route::from_origin_url(Some("api/"), "http://h").unwrap_err();
    assert_eq!(err, OriginUrlError::PathNotAbsolute("api/".into()));
    let err = Route::from_origin_url(Some("/orders/{id}"), "http://h").unwrap_err();
    assert!(err.to_string().contains("direct-mode"));
}

#[test]
fn authority_brackets_only_ipv6() {
    assert_eq!(
        OriginTarget::new("localhost", 80).authority(),
        "localhost:80"
    );
    assert_eq!(
        OriginTarget::new("fe80::1", 8000).authority(),
        "[fe80::1]:8000"
    );
}

#[test]
fn normalize_host_forms() {
    assert_eq!(normalize_host("Example.com"), "example.com");
    assert_eq!(normalize_host("example.com:8080"), "example.com");
    assert_eq!(normalize_host("[2001:DB8::1]:443"), "2001:db8::1");
    assert_eq!(normalize_host("[::1]"), "::1");
    assert_eq!(normalize_host("::1"), "::1");
}
