//! `aiops-exec`: see the library documentation.

fn main() -> std::process::ExitCode {
    aiops_exec::main()
}
