//! The `avro-edge` binary. The command line lives here, in [`cli`], and uses only the library's public
//! API: it is not part of the library a user depends on. On musl targets it also sets the global
//! allocator ([`gateway_alloc`]); it must not hold any other logic.
mod cli;

#[cfg(target_env = "musl")]
mod gateway_alloc;

#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: gateway_alloc::Allocator = gateway_alloc::Allocator::new();

fn main() {
    std::process::exit(cli::main());
}
