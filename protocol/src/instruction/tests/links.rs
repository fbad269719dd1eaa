use super::super::*;
use super::header_map;

fn parse(pairs: &[(&str, &str)]) -> Result<Instruction, InstructionError> {
    Instruction::parse(StatusCode::OK, &header_map(pairs), b"")
}

fn ok(pairs: &[(&str, &str)]) -> Instruction {
    parse(pairs).unwrap()
}

#[test]
fn grip_link_next_defaults_to_120_seconds() {
    let i = ok(&[("Grip-Link", "</second>; rel=next")]);
    assert_eq!(
        i.next_link,
        Some(NextLink {
            uri: "/second".into(),
            timeout: Duration::from_secs(120)
        })
    );
    assert_eq!(i.hold, None);
}

#[test]
fn grip_link_next_timeout_parameter() {
    let i = ok(&[
        ("Grip-Hold", "stream"),
        ("Grip-Link", "</n>; rel=next; timeout=3"),
    ]);
    assert_eq!(i.next_link.unwrap().timeout, Duration::from_secs(3));
}

#[test]
fn grip_link_next_bad_timeout_is_an_error() {
    let e = parse(&[("Grip-Link", "</n>; rel=next; timeout=-3")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"Grip-Link timeout: "-3" is not a non-negative integer"#
    );
}

#[test]
fn grip_link_gone_is_kept_unresolved() {
    let i = ok(&[("Grip-Link", "</gone/7>; rel=gone")]);
    assert_eq!(i.gone_link.as_deref(), Some("/gone/7"));
    assert_eq!(i.next_link, None);
}

#[test]
fn grip_link_next_and_gone_in_one_header_or_two() {
    let one = ok(&[("Grip-Link", "</r?after=1>; rel=next, </g>; rel=gone")]);
    let two = ok(&[
        ("Grip-Link", "</r?after=1>; rel=next"),
        ("Grip-Link", "</g>; rel=gone"),
    ]);
    assert_eq!(one, two);
    assert_eq!(one.next_link.unwrap().uri, "/r?after=1");
    assert_eq!(one.gone_link.as_deref(), Some("/g"));
}

#[test]
fn grip_link_relative_reference_is_kept_as_written() {
    let i = ok(&[("Grip-Link", "<next?x=1>; rel=next")]);
    assert_eq!(i.next_link.unwrap().uri, "next?x=1");
}

#[test]
fn grip_link_quoted_and_uppercase_rel_is_recognised() {
    let i = ok(&[("Grip-Link", r#"</n>; rel="NEXT""#)]);
    assert_eq!(i.next_link.unwrap().uri, "/n");
}

#[test]
fn grip_link_other_rel_values_are_ignored() {
    let i = ok(&[("Grip-Link", "</p>; rel=prev, </q>; title=x")]);
    assert_eq!((i.next_link, i.gone_link), (None, None));
}

#[test]
fn grip_link_element_without_parameters_is_skipped() {
    let i = ok(&[("Grip-Link", "not-a-link")]);
    assert_eq!(i.next_link, None);
}

#[test]
fn grip_link_later_next_link_wins() {
    let i = ok(&[("Grip-Link", "</a>; rel=next, </b>; rel=next")]);
    assert_eq!(i.next_link.unwrap().uri, "/b");
}

#[test]
fn grip_link_comma_inside_brackets_does_not_split() {
    let i = ok(&[("Grip-Link", "</r?ids=1,2>; rel=next")]);
    assert_eq!(i.next_link.unwrap().uri, "/r?ids=1,2");
}

#[test]
fn grip_link_without_angle_brackets_is_an_error() {
    let e = parse(&[("Grip-Link", "/n; rel=next")]).unwrap_err();
    assert_eq!(e, InstructionError::LinkNotBracketed("/n".into()));
    assert_eq!(e.to_string(), r#"Grip-Link: "/n" is not a <URI> reference"#);
}

#[test]
fn grip_link_empty_brackets_are_an_error() {
    let e = parse(&[("Grip-Link", "<>; rel=next")]).unwrap_err();
    assert_eq!(e, InstructionError::LinkNotBracketed("<>".into()));
}

#[test]
fn grip_link_invalid_uri_is_an_error() {
    let cases = [
        ("</a b>; rel=next", LinkError::InvalidCharacter(' ')),
        ("</a%zz>; rel=next", LinkError::BadPercentEncoding),
        (
            "<ftp://h/x>; rel=next",
            LinkError::UnsupportedScheme("ftp".into()),
        ),
        ("<http:///x>; rel=gone", LinkError::MissingHost),
        ("<1a:b>; rel=next", LinkError::ColonInFirstSegment),
    ];
    for (value, expected) in cases {
        match parse(&[("Grip-Link", value)]) {
            Err(InstructionError::InvalidLink { source, .. }) => {
                assert_eq!(source, expected, "{value}")
            }
            other => panic!("{value}: {other:?}"),
        }
    }
}

#[test]
fn grip_link_absolute_http_url_is_accepted() {
    let i = ok(&[(
        "Grip-Link",
        "<https://user@example.com:8443/s?x=%20>; rel=next",
    )]);
    assert_eq!(
        i.next_link.unwrap().uri,
        "https://user@example.com:8443/s?x=%20"
    );
}

#[test]
fn resolve_relative_link_against_request_directory() {
    assert_eq!(resolve_link("/a/b", "next?x=1").unwrap(), "/a/next?x=1");
}

#[test]
fn resolve_absolute_path_is_kept() {
    assert_eq!(resolve_link("/s/long/path?q=1", "/t").unwrap(), "/t");
    assert_eq!(resolve_link("/a/b", "/r?after=1").unwrap(), "/r?after=1");
}

#[test]
fn resolve_absolute_http_url_is_kept() {
    let url = "http://other.example:8080/x?y=1";
    assert_eq!(resolve_link("/a/b", url).unwrap(), url);
    assert_eq!(resolve_link("/a/b", "HTTPS://h/").unwrap(), "HTTPS://h/");
}

#[test]
fn resolve_network_path_reference_is_returned_for_the_caller() {
    assert_eq!(
        resolve_link("/a/b", "//cdn.example/x").unwrap(),
        "//cdn.example/x"
    );
}

#[test]
fn resolve_dot_segments_are_removed() {
    assert_eq!(resolve_link("/a/b/c", "../d").unwrap(), "/a/d");
    assert_eq!(resolve_link("/a/b/c", "./d/./e").unwrap(), "/a/b/d/e");
    assert_eq!(resolve_link("/a/b/c", "..").unwrap(), "/a/");
    assert_eq!(resolve_link("/a", "../../x").unwrap(), "/x");
    assert_eq!(resolve_link("/a/b", "/x/../y/.").unwrap(), "/y/");
}

#[test]
fn resolve_query_only_link_keeps_base_path() {
    assert_eq!(resolve_link("/a/b?old=1", "?new=2").unwrap(), "/a/b?new=2");
}

#[test]
fn resolve_empty_or_fragment_link_is_the_base() {
    assert_eq!(resolve_link("/a/b?q=1", "#frag").unwrap(), "/a/b?q=1");
}

#[test]
fn resolve_drops_fragments() {
    assert_eq!(resolve_link("/a/b", "c?d=1#e").unwrap(), "/a/c?d=1");
    assert_eq!(resolve_link("/a/b#x", "c").unwrap(), "/a/c");
}

#[test]
fn resolve_against_root_and_directory_bases() {
    assert_eq!(resolve_link("/", "next").unwrap(), "/next");
    assert_eq!(resolve_link("/a/", "next").unwrap(), "/a/next");
    assert_eq!(resolve_link("/a/b?x=/y/z", "c").unwrap(), "/a/c");
}

#[test]
fn resolve_rejects_relative_base_and_invalid_link() {
    assert_eq!(
        resolve_link("a/b", "c"),
        Err(LinkError::BaseNotAbsolutePath("a/b".into()))
    );
    assert_eq!(
        resolve_link("/a", "b c"),
        Err(LinkError::InvalidCharacter(' '))
    );
}
