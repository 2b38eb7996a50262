//! Compiles the one piece of C in the library: `mbus_qmsgf`'s printf-style
//! formatting (a variadic function, which stable Rust cannot define).

fn main() {
    println!("cargo:rerun-if-changed=src/qmsgf.c");
    println!("cargo:rerun-if-changed=include/mbus.h");
    println!("cargo:rerun-if-changed=src/exports.map");
    cc::Build::new()
        .file("src/qmsgf.c")
        .include("include")
        .warnings(true)
        .compile("rmbus_qmsgf");
    // On x86-64 and 64-bit ARM the exported `mbus_qmsgf` is a Rust
    // trampoline into the C body (src/ucl.rs), exported like every Rust
    // function. Elsewhere the C file defines `mbus_qmsgf` itself, and a
    // second version script exports it: LLVM's linker (Rust's default)
    // merges it with rustc's; GNU ld refuses two.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch != "x86_64" && arch != "aarch64" {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        let map = std::path::Path::new(&dir).join("src/exports.map");
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
            map.display()
        );
    }
}
