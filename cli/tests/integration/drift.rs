//! `reprise drift` against scipy and numpy: the reference script writes two
//! CSV files (shifted and unshifted numeric and categorical columns, missing
//! cells) and the distances scipy/numpy compute; ours must equal them within
//! 1e-9 (the KS p-value, an approximation, within 0.01).

use crate::server::run_cli;

#[test]
fn distances_equal_the_scipy_numpy_reference() {
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/drift-reference.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the reference script needs numpy and scipy (.ci/run installs them): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json_file = dir.path().join("got.json");
    let out = run_cli(
        dir.path(),
        &[
            "drift",
            "--reference",
            dir.path().join("reference.csv").to_str().unwrap(),
            "--current",
            dir.path().join("current.csv").to_str().unwrap(),
            "--json",
            json_file.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let expected = read(&dir.path().join("expected.json"));
    let got = read(&json_file);
    let columns = expected["columns"].as_object().unwrap();
    assert_eq!(columns.len(), 6);
    for (name, want) in columns {
        for (key, value) in want.as_object().unwrap() {
            let have = &got["columns"][name][key];
            match value.as_f64() {
                Some(v) => {
                    let h = have.as_f64().unwrap_or(f64::NAN);
                    let tolerance = if key == "ks_pvalue" { 1e-2 } else { 1e-9 };
                    assert!(
                        (v - h).abs() <= tolerance,
                        "{name}.{key}: scipy/numpy {v}, ours {h}"
                    );
                }
                None => assert_eq!(have, value, "{name}.{key}"),
            }
        }
    }
    // The shifted columns stand out; the unshifted ones do not.
    let linf = |c: &str| got["columns"][c]["linf"].as_f64().unwrap();
    assert!(linf("minutes_shifted") > 0.15 && linf("minutes") < 0.05);
    assert!(linf("device_shifted") > 0.15 && linf("device") < 0.05);
    assert_eq!(got["columns"]["device_shifted"]["linf_value"], "tv");
}
