//! Custody gaps of issue 19: who signed each backup in `list --json`, change segments
//! re-encrypted by `pgdr rekey` (checked with the `age` tool, not pgdr), and marks signed
//! like the other records. The Object Lock cases live in `objectlock_custody`.

use std::path::{Path, PathBuf};

use crate::common::*;

/// `pgdr keygen --signing --out DIR/NAME`: (key file, public key, key id from stderr).
pub(crate) fn signing_key(dir: &Path, name: &str) -> (PathBuf, String, String) {
    let path = dir.join(name);
    let mut c = pgdr_cmd();
    c.args(["keygen", "--signing", "--out"]).arg(&path);
    let r = run(c).ok();
    let id = r
        .stderr
        .split_whitespace()
        .nth(2)
        .expect("signing key <id> written")
        .to_string();
    (path, r.stdout.trim().to_string(), id)
}

/// The key id inside a minisign public key, decoded by hand (base64 of "Ed", the 8-byte key
/// number little-endian, the 32-byte key): the oracle for what pgdr reports.
fn key_id_of(public: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut raw = Vec::new();
    for c in public.trim().bytes().take_while(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            raw.push((bits >> n) as u8);
        }
    }
    assert_eq!(&raw[..2], b"Ed", "{public}");
    let mut id = [0u8; 8];
    id.copy_from_slice(&raw[2..10]);
    format!("{:016X}", u64::from_le_bytes(id))
}

#[test]
fn list_json_names_the_key_that_signed_each_backup() {
    let w = World::local();
    let (host, host_pub, host_id) = signing_key(w.dir.path(), "host.key");
    assert_eq!(host_id, key_id_of(&host_pub));
    let mut c = w.pgdr(&["backup", "--quiet"]);
    c.arg("--signing-key").arg(&host);
    run(c).ok();
    w.run(&["backup", "--quiet"]).ok();
    let list = w.list();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["signer"], key_id_of(&host_pub).as_str(), "{list:?}");
    assert_eq!(list[1]["signer"], "unsigned", "{list:?}");
    // Human `show` says it too.
    let id = list[0]["id"].as_str().unwrap();
    let show = w.run(&["show", id]).ok().stdout;
    assert!(show.contains(&format!("yes, by key {host_id}")), "{show}");
}
