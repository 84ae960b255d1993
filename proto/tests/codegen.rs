//! Fails when the checked-in generated code no longer matches the .proto file.
//! Run with `AIOPS_BLESS=1` to rewrite it.

use std::path::{Path, PathBuf};

fn generate(out: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fds = protox::compile([root.join("aiops/agent/v1/agent.proto")], [root])
        .expect("agent.proto compiles");
    std::fs::write(
        out.join("descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )
    .unwrap();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .out_dir(out)
        .compile_fds(fds)
        .expect("code generation succeeds");
}

#[test]
fn generated_code_is_up_to_date() {
    let checked_in = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/generated");
    let fresh = tempfile_dir();
    generate(&fresh);
    if std::env::var_os("AIOPS_BLESS").is_some() {
        std::fs::create_dir_all(&checked_in).unwrap();
        for name in ["aiops.agent.v1.rs", "descriptor.bin"] {
            std::fs::copy(fresh.join(name), checked_in.join(name)).unwrap();
        }
    }
    for name in ["aiops.agent.v1.rs", "descriptor.bin"] {
        let want = std::fs::read(fresh.join(name)).unwrap();
        let have = std::fs::read(checked_in.join(name)).unwrap_or_default();
        assert!(
            want == have,
            "proto/src/generated/{name} is stale: run `AIOPS_BLESS=1 cargo test -p aiops-proto --test codegen` and commit the result"
        );
    }
    let _ = std::fs::remove_dir_all(&fresh);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("aiops-codegen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
