//! The `avro-edge` binary. The command line lives here, in [`cli`], and uses only the library's public
//! API: it is not part of the library a user depends on.
mod cli;

fn main() {
    std::process::exit(cli::main());
}
