fn main() {
    std::process::exit(sequent_acquirer_sim::cli::main_with_args(
        std::env::args_os(),
    ));
}
