fn main() {
    std::process::exit(pgdr::cli::main());
}
