use super::*;
use crate::route::RouteTarget;

fn one(line: &str) -> Route {
    let table = parse_routes(line).unwrap();
    assert_eq!(table.len(), 1, "{line}");
    table.routes()[0].clone()
}

fn origins(route: &Route) -> &[OriginTarget] {
    match &route.target {
        RouteTarget::Origin(targets) => targets,
        RouteTarget::Test | RouteTarget::Direct(_) | RouteTarget::Files(_) => {
            panic!("not an origin target")
        }
    }
}

fn line_error(text: &str) -> LineError {
    match parse_routes(text) {
        Err(RoutesFileError::Line(e)) => e,
        other => panic!("expected a line error for {text:?}, got {other:?}"),
    }
}

fn warnings(text: &str) -> Vec<String> {
    let table = parse_routes(text).unwrap();
    table.warnings().iter().map(ToString::to_string).collect()
}

// --- syntax -------------------------------------------------------------------

#[test]
fn sample_lines_of_section_7_1() {
    let t = parse_routes(
        "* localhost:8000\n\
         api.example.com,path_beg=/v2/,replace_beg=/ localhost:8001\n\
         *,proto=ws localhost:8002,over_http\n",
    )
    .unwrap();
    assert_eq!(t.len(), 3);
    assert!(t.warnings().is_empty());
    let pick = |host, path, ws| {
        let r = t.select(Some(host), path, false, ws).unwrap();
        (origins(r)[0].port, r.rewrite_path(path))
    };
    assert_eq!(pick("x.com", "/a", false), (8000, "/a".to_string()));
    assert_eq!(
        pick("api.example.com", "/v2/x", false),
        (8001, "/x".to_string())
    );
    assert_eq!(
        pick("x.com", "/socket", true),
        (8002, "/socket".to_string())
    );
    assert!(origins(&t.routes()[2])[0].over_http);
}

#[test]
fn comments_blank_lines_and_spacing() {
    let t = parse_routes(
        "# full-line comment\n\n   \n  *   a:1  # trailing comment\n*,proto=ws#comment\tb:2\n\t*,ssl=yes\tc:3\t\n",
    );
    let err = t.unwrap_err().to_string();
    // `#` ends the line, so the second rule has no target
    assert!(err.contains("line 5"), "{err}");
    let t = parse_routes("# c\n\n  *   a:1  # trailing\n\t*,ssl=yes\tc:3\t\n").unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(origins(&t.routes()[0])[0].host, "a");
    assert_eq!(t.routes()[1].condition.ssl, Some(true));
}

#[test]
fn crlf_line_endings_and_bom() {
    let t = parse_routes("\u{feff}* a:1\r\nexample.com b:2\r\n").unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(
        t.routes()[1].condition.host,
        HostMatch::Exact("example.com".into())
    );
    assert_eq!(origins(&t.routes()[0])[0].port, 1);
}

#[test]
fn quoted_value_with_space_comma_hash_and_escapes() {
    let r = one(r#"*,prefix="a, \"b\" \\c #d" o:80"#);
    assert_eq!(r.channel_prefix, r#"a, "b" \c #d"#);
}

#[test]
fn quotes_may_cover_part_of_an_item() {
    let r = one(r#"*,prefix=pre"fix x" o:80"#);
    assert_eq!(r.channel_prefix, "prefix x");
    let r = one(r#"*,"prefix=q" o:80"#);
    assert_eq!(r.channel_prefix, "q");
}

#[test]
fn unterminated_quote_names_line_column_and_token() {
    let e = line_error("* a:1\n*,prefix=\"abc o:80\n");
    assert_eq!(e.kind, LineErrorKind::UnterminatedQuote);
    assert_eq!((e.line, e.column), (2, 10));
    assert_eq!(e.token, "prefix=\"abc o:80");
}

#[test]
fn bad_escape_is_an_error() {
    let e = line_error(r#"*,prefix="a\nb" o:80"#);
    assert_eq!(e.kind, LineErrorKind::BadEscape);
    assert_eq!(e.column, 12);
}

#[test]
fn trailing_comma_expects_a_prop() {
    let e = line_error("*,ssl=yes, o:80");
    assert_eq!(e.kind, LineErrorKind::ExpectingProp);
    assert_eq!(e.token, "*,ssl=yes,");
    assert_eq!(e.column, 11);
}

#[test]
fn empty_prop_name_is_an_error() {
    let e = line_error("*,=x o:80");
    assert_eq!(e.kind, LineErrorKind::EmptyPropName);
    assert_eq!((e.column, e.token.as_str()), (3, "=x"));
}

#[test]
fn condition_without_target_is_an_error() {
    let e = line_error("\n\n*,path_beg=/a   # no target\n");
    assert_eq!(e.kind, LineErrorKind::MissingTarget);
    assert_eq!(
        (e.line, e.column, e.token.as_str()),
        (3, 1, "*,path_beg=/a")
    );
}

#[test]
fn condition_without_domain_or_id_is_an_error() {
    let e = line_error(",ssl=yes o:80");
    assert_eq!(e.kind, LineErrorKind::NoDomainOrId);
}

#[test]
fn error_display_is_one_line_with_line_column_token() {
    let e = parse_routes("* a:1\n\n*,proto=tcp o:80\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 3, column 3, at `proto=tcp`: proto must be `http` or `ws`"
    );
}

#[test]
fn empty_file_gives_empty_table() {
    assert!(parse_routes("").unwrap().is_empty());
    assert!(parse_routes("# only comments\n\n").unwrap().is_empty());
}

// --- condition props ------------------------------------------------------------

#[test]
fn condition_domain_exact_and_any() {
    assert_eq!(one("* o:80").condition.host, HostMatch::Any);
    assert_eq!(
        one("API.Example.com o:80").condition.host,
        HostMatch::Exact("api.example.com".into())
    );
}

#[test]
fn condition_domain_with_port_warns() {
    let w = warnings("example.com:8080 o:80");
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("never matches"), "{w:?}");
}

#[test]
fn prop_path_beg() {
    assert_eq!(
        one("*,path_beg=/api/ o:80").condition.path_beg.as_deref(),
        Some("/api/")
    );
    assert_eq!(
        line_error("*,path_beg= o:80").kind,
        LineErrorKind::EmptyPathBeg
    );
    assert_eq!(
        line_error("*,path_beg o:80").kind,
        LineErrorKind::EmptyPathBeg
    );
}

#[test]
fn prop_path_rem() {
    assert_eq!(one("*,path_rem=4 o:80").rewrite.remove, 4);
    for bad in ["-1", "x", "", "+3"] {
        let e = line_error(&format!("*,path_rem={bad} o:80"));
        assert_eq!(e.kind, LineErrorKind::BadPathRem, "{bad}");
    }
}

#[test]
fn prop_replace_beg() {
    let r = one("*,path_beg=/s,replace_beg=/x/y o:80");
    assert_eq!(
        r.rewrite,
        PathRewrite {
            remove: 2,
            prepend: "/x/y".into()
        }
    );
}

#[test]
fn prop_prefix() {
    assert_eq!(one("*,prefix=tenant1- o:80").channel_prefix, "tenant1-");
    assert_eq!(one("* o:80").channel_prefix, "");
}

#[test]
fn prop_id() {
    let r = one("*,id=orders o:80");
    assert_eq!((r.id.as_str(), r.explicit_id), ("orders", true));
    let r = one("*,id= o:80");
    assert_eq!((r.id.as_str(), r.explicit_id), ("*,*,*,*", false));
}

#[test]
fn prop_proto() {
    assert_eq!(
        one("*,proto=http o:80").condition.proto,
        Some(Protocol::Http)
    );
    assert_eq!(one("*,proto=ws o:80").condition.proto, Some(Protocol::Ws));
    assert_eq!(line_error("*,proto=WS o:80").kind, LineErrorKind::BadProto);
}

#[test]
fn prop_ssl() {
    assert_eq!(one("*,ssl=yes o:80").condition.ssl, Some(true));
    assert_eq!(one("*,ssl=no o:80").condition.ssl, Some(false));
    assert_eq!(line_error("*,ssl o:80").kind, LineErrorKind::BadSsl);
    assert_eq!(line_error("*,ssl=true o:80").kind, LineErrorKind::BadSsl);
}

#[test]
fn prop_sig_iss_and_sig_key() {
    let r = one("*,sig_iss=edge,sig_key=base64:c2VjcmV0 o:80");
    assert_eq!(r.sig_iss.as_deref(), Some("edge"));
    assert_eq!(r.sig_key.as_deref(), Some("base64:c2VjcmV0"));
    let r = one("*,sig_iss=,sig_key= o:80");
    assert_eq!((r.sig_iss, r.sig_key), (None, None));
    let r = one("*,sig_key=file:key.pem o:80");
    assert_eq!(r.sig_key.as_deref(), Some("file:key.pem"));
}

#[test]
fn relative_sig_key_file_resolves_against_routes_file_dir() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes");
    let text = "*,sig_key=file:keys/k.pem o:80\n*,path_beg=/x,sig_key=file:/abs.pem o:81\n";
    std::fs::write(&path, text).unwrap();
    let t = load_routes_file(&path).unwrap();
    let expected = format!("file:{}", dir.path().join("keys/k.pem").display());
    assert_eq!(t.routes()[0].sig_key.as_deref(), Some(expected.as_str()));
    assert_eq!(t.routes()[1].sig_key.as_deref(), Some("file:/abs.pem"));
}

#[test]
fn relative_client_certificate_files_resolve_against_routes_file_dir() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes");
    std::fs::write(
        &path,
        "* o:443,ssl,client_cert=tls/c.pem,client_key=/abs/k.pem\n",
    )
    .unwrap();
    let t = load_routes_file(&path).unwrap();
    let target = &origins(&t.routes()[0])[0];
    let expected = dir.path().join("tls/c.pem").display().to_string();
    assert_eq!(target.client_cert.as_deref(), Some(expected.as_str()));
    assert_eq!(target.client_key.as_deref(), Some("/abs/k.pem"));
}

#[test]
fn prop_no_grip_and_debug() {
    let r = one("*,no_grip,debug o:80");
    assert!(r.no_grip && r.debug);
    let r = one("* o:80");
    assert!(!r.no_grip && !r.debug);
}

#[test]
fn prop_header() {
    let r = one(r#"*,header="X-Api-Key:  secret",header="X-Note:a, b",header=X-Drop: o:80"#);
    let got: Vec<(&str, &str)> = r
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.to_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [("x-api-key", "secret"), ("x-note", "a, b"), ("x-drop", "")]
    );
}

#[test]
fn prop_header_errors() {
    assert_eq!(
        line_error("*,header=NoColon o:80").kind,
        LineErrorKind::BadHeader
    );
    assert_eq!(
        line_error("*,header=:v o:80").kind,
        LineErrorKind::BadHeader
    );
    assert_eq!(line_error("*,header o:80").kind, LineErrorKind::BadHeader);
    assert_eq!(
        line_error(r#"*,"header=Bad Name:v" o:80"#).kind,
        LineErrorKind::BadHeaderName
    );
}

#[test]
fn prop_as_host() {
    assert_eq!(
        one("*,as_host=internal:8080 o:80").as_host.as_deref(),
        Some("internal:8080")
    );
}

#[test]
fn prop_aco_orig_headers_log_level() {
    let r = one("*,aco,orig_headers,log_level=3 o:80");
    assert!(r.auto_cross_origin && r.orig_headers);
    assert_eq!(r.log_level.as_deref(), Some("3"));
}

#[test]
fn later_single_valued_prop_wins() {
    let r = one("*,prefix=a,prefix=b o:80");
    assert_eq!(r.channel_prefix, "b");
}

#[test]
fn unsupported_condition_props_warn_and_are_ignored() {
    let w = warnings("*,session,sockjs=/s,jsonp_mode=basic o:80");
    assert_eq!(w.len(), 3);
    assert!(
        w[0].starts_with("line 1: `session`: unsupported prop"),
        "{w:?}"
    );
}

#[test]
fn unknown_props_warn_and_are_ignored() {
    let t = parse_routes("* a:1\n*,path_beg=/x,frobnicate=1 o:80,teleport\n").unwrap();
    assert_eq!(t.len(), 2);
    let w: Vec<String> = t.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [
            "line 2: `frobnicate=1`: unknown condition prop `frobnicate` ignored",
            "line 2: `teleport`: unknown target prop `teleport` ignored",
        ]
    );
}

#[test]
fn flag_with_off_value_still_sets_and_warns() {
    let t = parse_routes("*,debug=no o:443,ssl=no").unwrap();
    assert!(t.routes()[0].debug);
    assert!(origins(&t.routes()[0])[0].ssl);
    assert_eq!(t.warnings().len(), 2);
    assert!(parse_routes("* o:443,ssl=yes")
        .unwrap()
        .warnings()
        .is_empty());
}

#[test]
fn duplicate_condition_is_skipped_with_warning() {
    let t = parse_routes("*,path_beg=/a first:1\n* other:2\n*,path_beg=/a second:3\n").unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(
        origins(t.select(Some("h"), "/a", false, false).unwrap())[0].port,
        1
    );
    assert_eq!(t.warnings().len(), 1);
    assert_eq!(t.warnings()[0].line, 3);
    assert!(t.warnings()[0].message.contains("duplicate"));
}

// --- targets ----------------------------------------------------------------------

#[test]
fn target_host_and_port() {
    let r = one("* origin.internal:8080");
    let t = &origins(&r)[0];
    assert_eq!((t.host.as_str(), t.port), ("origin.internal", 8080));
    assert!(!t.ssl && !t.over_http && !t.insecure && !t.untrusted && !t.trust_connect_host);
}

#[test]
fn several_targets_keep_their_order() {
    let r = one("* a:1 b:2,ssl c:3");
    let got: Vec<(&str, bool)> = origins(&r)
        .iter()
        .map(|t| (t.host.as_str(), t.ssl))
        .collect();
    assert_eq!(got, [("a", false), ("b", true), ("c", false)]);
}

#[test]
fn target_prop_ssl() {
    assert!(origins(&one("* o:443,ssl"))[0].ssl);
}

#[test]
fn target_prop_host() {
    let r = one("* o:80,host=public.example.com");
    assert_eq!(
        origins(&r)[0].host_header.as_deref(),
        Some("public.example.com")
    );
}

#[test]
fn target_prop_over_http() {
    assert!(origins(&one("*,proto=ws o:80,over_http"))[0].over_http);
}

#[test]
fn target_prop_sub_is_repeatable_and_skips_empty() {
    let r = one("* o:80,sub=news,sub=,sub=\"a b\"");
    assert_eq!(origins(&r)[0].subscriptions, ["news", "a b"]);
}

#[test]
fn target_props_insecure_untrusted_trust_connect_host() {
    let r = one("* o:443,ssl,insecure,untrusted,trust_connect_host");
    let t = &origins(&r)[0];
    assert!(t.insecure && t.untrusted && t.trust_connect_host);
}

#[test]
fn target_props_client_cert_and_key() {
    let r = one("* o:443,ssl,client_cert=/etc/c.pem,client_key=/etc/k.pem");
    let t = &origins(&r)[0];
    assert_eq!(t.client_cert.as_deref(), Some("/etc/c.pem"));
    assert_eq!(t.client_key.as_deref(), Some("/etc/k.pem"));
}

#[test]
fn a_client_cert_without_its_key_warns() {
    let w = warnings("* o:443,ssl,client_cert=/etc/c.pem\n");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("go together"), "{w:?}");
    assert!(warnings("* o:443,ssl,client_cert=/c.pem,client_key=/k.pem\n").is_empty());
}

#[test]
fn unsupported_target_props_warn() {
    let w = warnings("* o:80,one_event,ipc_file_mode=777");
    assert_eq!(w.len(), 2);
    assert!(w[0].contains("unsupported prop `one_event`"));
}

#[test]
fn ipv6_target_in_brackets() {
    let r = one("* [::1]:8000,ssl [2001:db8::7]:443");
    let t = origins(&r);
    assert_eq!(
        (t[0].host.as_str(), t[0].port, t[0].ssl),
        ("::1", 8000, true)
    );
    assert_eq!(t[1].authority(), "[2001:db8::7]:443");
}

#[test]
fn ipv6_target_errors() {
    assert_eq!(line_error("* ::1:8000").kind, LineErrorKind::Ipv6Brackets);
    assert_eq!(line_error("* [::1]").kind, LineErrorKind::TargetFormat);
    assert_eq!(line_error("* [::1:8000").kind, LineErrorKind::TargetFormat);
    assert_eq!(line_error("* [nothex]:80").kind, LineErrorKind::BadIpv6);
}

#[test]
fn target_format_and_port_errors() {
    let e = line_error("* a:1\n* localhost");
    assert_eq!(
        (e.line, e.column, e.kind),
        (2, 3, LineErrorKind::TargetFormat)
    );
    assert_eq!(line_error("* :80").kind, LineErrorKind::TargetFormat);
    for port in ["0", "65536", "http", "", "-1"] {
        let e = line_error(&format!("* host:{port},ssl"));
        assert_eq!(e.kind, LineErrorKind::TargetPort, "{port}");
        assert_eq!(e.token, format!("host:{port},ssl"));
    }
}

#[test]
fn zhttp_targets_are_rejected_clearly() {
    for target in ["zhttp/tcp://127.0.0.1:5000", "zhttpreq/ipc:///tmp/x"] {
        let e = line_error(&format!("* {target}"));
        assert_eq!(e.kind, LineErrorKind::ZhttpNotSupported);
        assert!(e.to_string().contains("not supported"));
    }
}

#[test]
fn test_target() {
    let r = one("*,path_beg=/t test");
    assert_eq!(r.target, RouteTarget::Test);
    assert_eq!(warnings("* test,ssl").len(), 1);
}

#[test]
fn test_target_cannot_mix_with_origins() {
    let e = line_error("* o:80 test");
    assert_eq!((e.kind, e.column), (LineErrorKind::TestMixed, 8));
}

// --- files ------------------------------------------------------------------------

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes");
    std::fs::write(&path, "* a:1\n* b:http\n").unwrap();
    let msg = load_routes_file(&path).unwrap_err().to_string();
    assert_eq!(
        msg,
        format!(
            "routes file {}: line 2, column 3, at `b:http`: target port must be a number from 1 to 65535",
            path.display()
        )
    );
    std::fs::write(&path, b"* a:1\n* b:\xff\n").unwrap();
    let err = load_routes_file(&path).unwrap_err();
    assert!(
        matches!(err, RoutesFileError::NotUtf8 { line: 2, .. }),
        "{err}"
    );
    let missing = load_routes_file(&dir.path().join("nope")).unwrap_err();
    assert!(
        missing.to_string().starts_with("cannot read routes file"),
        "{missing}"
    );
}
