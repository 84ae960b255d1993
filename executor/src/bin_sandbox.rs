//! `aiops-sandbox`: see `aiops_exec::switch`.

fn main() -> std::process::ExitCode {
    aiops_exec::switch::main()
}
