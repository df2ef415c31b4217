//! The fixed ports that CI's scripts and tools bind stay out of Linux's
//! default ephemeral range (32768-60999, `net.ipv4.ip_local_port_range`).
//! A port in that range can be the local end of any outgoing connection on
//! the machine (a replica's pool, a test client), and a listener's `bind`
//! then fails with "Address already in use": CI failed so once, a replica
//! of deploy/local finding 50712 taken. Ports a script computes
//! (`$((port + 100))`, a base port plus an index) are not seen here; they
//! stay below the range by their bases' margin.

/// Where CI's ports are named: `.ci/run` and the scripts and tools it runs.
/// The Kubernetes manifests and the image are left out: a container has
/// its own network namespace.
const PLACES: &[&str] = &[
    ".ci/run",
    "scripts",
    "deploy/local",
    "deploy/validate",
    "tools",
];

/// The service's default ports (gRPC, HTTP), which the walk scripts name
/// only as the address they call by default; CI binds its own.
const ALLOWED: &[u32] = &[50_051, 50_052];

/// The files under `place`: shell scripts (no extension) and Rust sources.
fn files(root: &std::path::Path, place: &str, out: &mut Vec<std::path::PathBuf>) {
    let path = root.join(place);
    if path.is_file() {
        out.push(path);
        return;
    }
    let Ok(entries) = std::fs::read_dir(&path) else {
        panic!("{} is not readable", path.display());
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if name != "target" {
                files(root, &format!("{place}/{name}"), out);
            }
        } else if p.extension().is_none() || name.ends_with(".rs") || name.ends_with(".sh") {
            out.push(p);
        }
    }
}

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
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let mut all = Vec::new();
    for place in PLACES {
        files(root, place, &mut all);
    }
    assert!(
        all.len() > 20,
        "only {} files found under {PLACES:?}: the scan would miss the scripts",
        all.len()
    );
    let mut offenders = Vec::new();
    for file in &all {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue; // not text
        };
        for (line, number) in ephemeral_numbers(&text) {
            let value: u32 = number.replace('_', "").parse().unwrap_or(0);
            if !ALLOWED.contains(&value) {
                offenders.push(format!("{}:{line}: {number}", file.display()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "numbers in the ephemeral port range 32768-60999 (a listener there can \
         find its port taken by an outgoing connection): {offenders:#?}"
    );
}
