//! The `brevvakt` command; everything lives in the library (see `cli`).

fn main() -> std::process::ExitCode {
    brevvakt::cli::main()
}
