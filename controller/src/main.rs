fn main() -> std::process::ExitCode {
    aiops_controller::main()
}
