use super::*;

#[test]
fn ipv4_keeps_its_first_three_octets() {
    assert_eq!(ip_prefix("203.0.113.77").unwrap(), "203.0.113.0/24");
    assert_eq!(ip_prefix(" 10.1.2.3 ").unwrap(), "10.1.2.0/24");
    assert_eq!(ip_prefix("::ffff:198.51.100.9").unwrap(), "198.51.100.0/24");
}

#[test]
fn ipv6_keeps_its_site_prefix() {
    assert_eq!(
        ip_prefix("2001:db8:1234:5678:9abc::1").unwrap(),
        "2001:db8:1234::/48"
    );
    assert_eq!(ip_prefix("::1").unwrap(), "::/48");
}

#[test]
fn anything_else_is_not_an_ip() {
    for bad in [
        "",
        "203.0.113",
        "example.com",
        "203.0.113.7:443",
        "1.2.3.4/24",
    ] {
        assert_eq!(ip_prefix(bad), Err(AnonymiseError::NotAnIp), "{bad}");
    }
}

/// Property over a sweep of addresses: the stored prefix never holds the host part.
#[test]
fn no_host_part_survives() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..2_000 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let v4 = std::net::Ipv4Addr::from((x >> 32) as u32);
        let p = ip_prefix(&v4.to_string()).unwrap();
        assert!(p.ends_with(".0/24"), "{v4} -> {p}");
        assert!(p.starts_with(&format!(
            "{}.{}.{}.",
            v4.octets()[0],
            v4.octets()[1],
            v4.octets()[2]
        )));
        let v6 = std::net::Ipv6Addr::from(u128::from(x) << 64 | u128::from(x.rotate_left(17)));
        let p6 = ip_prefix(&v6.to_string()).unwrap();
        let net: std::net::Ipv6Addr = p6.trim_end_matches("/48").parse().unwrap();
        assert_eq!(u128::from(net) & ((1u128 << 80) - 1), 0, "{v6} -> {p6}");
        assert_eq!(u128::from(net) >> 80, u128::from(v6) >> 80, "{v6} -> {p6}");
    }
}

#[test]
fn user_agents_become_family_and_major_version() {
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.129 Safari/537.36";
    let c = client_agent(chrome).unwrap();
    assert_eq!(c.family, "Chrome");
    assert_eq!(c.major.as_deref(), Some("120"));
    assert_eq!(c.os.as_deref(), Some("Windows 10"));
    assert_eq!(c.category, "pc");
    // woothee groups HTTP libraries (curl, python-requests, …) without their versions.
    let curl = client_agent("curl/8.5.0").unwrap();
    assert_eq!(
        (curl.family.as_str(), curl.category.as_str()),
        ("HTTP Library", "misc"),
        "{curl:?}"
    );
    let unknown = client_agent("my-agent/1.0 (build 0xdeadbeef; user=alice@example.com)").unwrap();
    assert_eq!(unknown.family, "other", "{unknown:?}");
    assert_eq!(unknown.major, None);
    let json = serde_json::to_string(&unknown).unwrap();
    assert!(!json.contains("alice"), "{json}");
    assert_eq!(
        client_agent(&"x".repeat(MAX_USER_AGENT_BYTES + 1)),
        Err(AnonymiseError::TooLong {
            max: MAX_USER_AGENT_BYTES
        })
    );
}

#[test]
fn error_messages_lose_secrets_addresses_and_homes() {
    let raw = "upstream 10.0.4.17 refused token ghp_0123456789abcdefghijABCDEFGHIJ012345 for bob@example.com reading /home/bob/.config/agent.toml";
    let clean = sanitise_message(raw);
    for leaked in [
        "10.0.4.17",
        "ghp_0123456789",
        "bob@example.com",
        "/home/bob",
    ] {
        assert!(!clean.contains(leaked), "{leaked} in {clean}");
    }
    assert!(clean.contains("~/.config/agent.toml"), "{clean}");
    assert!(clean.starts_with("upstream"), "{clean}");
    let windows = sanitise_message("cannot open C:\\Users\\carol\\secrets.txt");
    assert!(!windows.contains("carol"), "{windows}");
    let long = sanitise_message(&"e".repeat(5_000));
    assert_eq!(long.chars().count(), MAX_ERROR_MESSAGE_CHARS + 1);
    assert_eq!(sanitise_message("bell\u{7} and\ttab"), "bell  and tab");
}
