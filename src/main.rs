fn main() -> std::process::ExitCode {
    wsclose::cli::main()
}
