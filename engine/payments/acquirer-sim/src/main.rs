//! `sequent-acquirer-sim` — see the library docs. Exit codes: 0 after `shutdown`, 2 on bad usage
//! or configuration, 1 when a socket cannot be bound.

fn main() {
    std::process::exit(sequent_acquirer_sim::cli::main_with_args(
        std::env::args_os(),
    ));
}
