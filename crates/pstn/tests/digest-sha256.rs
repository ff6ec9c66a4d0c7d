//! Digest auth towards a trunk with SHA-256 (RFC 8760, RFC 7616 §3.4.1): sipp's
//! `verifyauth` checks only MD5, so the response our authenticator (ezk-sip-auth, as
//! `sip::dial` uses it) puts in `Authorization` is checked against one computed here
//! independently, with the `sha2` crate.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] fns unwrap too.

use ezk_sip_auth::{
    ClientAuthenticator, DigestAuthenticator, DigestCredentials, DigestUser, RequestParts,
    ResponseParts,
};
use ezk_sip_types::msg::MessageLine;
use ezk_sip_types::parse::Parse;
use ezk_sip_types::{Headers, Name};
use ringwire_pstn::inbound::parse_request;
use sha2::{Digest, Sha256};

fn hex_sha256(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The value of `name=value` or `name="value"` in a digest header.
fn param(header: &str, name: &str) -> String {
    let start = header
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name} in {header}"))
        + name.len()
        + 1;
    let rest = &header[start..];
    let value = if let Some(quoted) = rest.strip_prefix('"') {
        &quoted[..quoted.find('"').unwrap()]
    } else {
        rest.split([',', ' ']).next().unwrap()
    };
    value.to_owned()
}

#[test]
fn our_sha256_digest_response_is_what_rfc_7616_says() {
    let uri = "sip:+15551230000@198.51.100.1:5060";
    let invite = format!(
        "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
         To: <{uri}>\r\nFrom: <sip:+15550001111@192.0.2.1>;tag=a\r\nCall-ID: d1\r\n\
         CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    let (line, headers, body) = parse_request(invite.as_bytes()).unwrap();

    let challenge = "Digest realm=\"trunk.example\", nonce=\"n0nce-42\", \
                     algorithm=SHA-256, qop=\"auth\"";
    let status = bytes::Bytes::from_static(b"SIP/2.0 401 Unauthorized");
    let MessageLine::Response(status_line) =
        MessageLine::parse(&status)("SIP/2.0 401 Unauthorized")
            .unwrap()
            .1
    else {
        panic!("not a status line");
    };
    let mut response_headers = Headers::new();
    response_headers.insert(Name::WWW_AUTHENTICATE, challenge);

    let mut credentials = DigestCredentials::new();
    credentials.set_default(DigestUser::new("ringwire", b"s3cret".to_vec()));
    let mut auth = DigestAuthenticator::new(credentials);
    auth.handle_rejection(
        RequestParts {
            line: &line,
            headers: &headers,
            body: &body,
        },
        ResponseParts {
            line: &status_line,
            headers: &response_headers,
            body: &[],
        },
    )
    .expect("the SHA-256 challenge is answered");
    let mut retry = Headers::new();
    auth.authorize_request(&mut retry);
    let authorization = retry
        .get_raw(&Name::AUTHORIZATION)
        .next()
        .expect("an Authorization header")
        .to_string();

    assert_eq!(param(&authorization, "username"), "ringwire");
    assert_eq!(param(&authorization, "realm"), "trunk.example");
    assert_eq!(param(&authorization, "nonce"), "n0nce-42");
    assert_eq!(param(&authorization, "algorithm"), "SHA-256");
    assert_eq!(param(&authorization, "qop"), "auth");
    let digest_uri = param(&authorization, "uri");
    assert_eq!(digest_uri, uri, "the digest uri is the Request-URI");
    let nc = param(&authorization, "nc");
    let cnonce = param(&authorization, "cnonce");
    // RFC 7616 §3.4.1: response = H(H(A1):nonce:nc:cnonce:qop:H(A2)).
    let ha1 = hex_sha256("ringwire:trunk.example:s3cret");
    let ha2 = hex_sha256(&format!("INVITE:{digest_uri}"));
    let expected = hex_sha256(&format!("{ha1}:n0nce-42:{nc}:{cnonce}:auth:{ha2}"));
    assert_eq!(param(&authorization, "response"), expected);
    assert!(
        !authorization.contains("s3cret"),
        "the password never goes on the wire"
    );
}
