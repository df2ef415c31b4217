//! Fingerprints the migration sources, so that the test kit's template
//! database is rebuilt whenever a migration changes, even under the same name.

use std::hash::Hasher;

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/src");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    // FNV-1a: stable across Rust versions, unlike DefaultHasher's algorithm.
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    for f in files {
        h.write(
            f.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        h.write(&std::fs::read(&f).unwrap_or_default());
    }
    println!(
        "cargo:rustc-env=CORRIDOR_MIGRATIONS_HASH={:016x}",
        h.finish()
    );
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
