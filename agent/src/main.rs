fn main() -> std::process::ExitCode {
    aiops_agent::main()
}
