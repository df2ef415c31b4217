//! The fixed ports that CI's scripts and tools bind stay out of Linux's
//! default ephemeral range (32768-60999, `net.ipv4.ip_local_port_range`).
//! A port in that range can be the local end of any outgoing connection on
//! the machine (a replica's pool, a test client), and a listener's `bind`
//! then fails with "Address already in use": CI failed so once, a replica
//! of deploy/local finding 50712 taken.

/// The files that name ports CI binds (`.ci/run` and what it calls).
const FILES: &[&str] = &[
    ".ci/run",
    "deploy/local/up",
    "deploy/local/walk",
    "scripts/chaos",
    "scripts/lib/pg.sh",
    "tools/bench/src/main.rs",
    "tools/chaos/src/main.rs",
];

const EPHEMERAL: std::ops::RangeInclusive<u32> = 32_768..=60_999;

/// Every run of five or more digits (underscores allowed, as in Rust
/// literals) that reads as a number in the ephemeral range.
fn ephemeral_numbers(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut token = String::new();
        for c in line.chars().chain(std::iter::once(' ')) {
            if c.is_ascii_digit() || (c == '_' && !token.is_empty()) {
                token.push(c);
                continue;
            }
            let digits: String = token.chars().filter(char::is_ascii_digit).collect();
            if digits.len() == 5
                && digits.parse::<u32>().is_ok_and(|v| EPHEMERAL.contains(&v))
                && !c.is_ascii_alphabetic()
            {
                found.push((n + 1, token.clone()));
            }
            token.clear();
        }
    }
    found
}

#[test]
fn the_scanner_finds_a_port_in_the_ephemeral_range() {
    let found = ephemeral_numbers("PORT=50600\n#[arg(default_value_t = 50_711)]\nok=20600 60999x");
    assert_eq!(
        found,
        vec![(1, "50600".to_string()), (2, "50_711".to_string())]
    );
}

#[test]
fn the_fixed_ports_ci_binds_are_outside_the_ephemeral_range() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut offenders = Vec::new();
    for file in FILES {
        let text = std::fs::read_to_string(format!("{root}/{file}"))
            .unwrap_or_else(|e| panic!("reading {file}: {e}"));
        for (line, number) in ephemeral_numbers(&text) {
            offenders.push(format!("{file}:{line}: {number}"));
        }
    }
    assert!(
        offenders.is_empty(),
        "numbers in the ephemeral port range 32768-60999 (a listener there can \
         find its port taken by an outgoing connection): {offenders:#?}"
    );
}
